"""resemblyzer's GE2E speaker encoder (Wan et al., 2018) as a pretrained encoder with an emotion head.

The network is resemblyzer's: 40 mel bands (power, not log: 25 ms windows, 10 ms hop) into three LSTM layers of
256 and a 256-unit ReLU projection, trained to tell speakers apart. Its weights (`pretrained.pt`, ~17 MB) ship
inside the `resemblyzer` package, so they load offline. The LSTM is rebuilt here as three one-layer LSTMs so that
each layer's frames reach the weighted layer sum: the layers are the three LSTM outputs and the projection,
each mean-pooled over the clip's frames (ser_bench.models.encoder). Each clip's level is raised to -30 dBFS
first, as resemblyzer's preprocessing does (never lowered); its silence trimming (webrtcvad) is left out.
`finetune` keeps the first LSTM layer frozen.

An LSTM only looks back, so padding after a clip never reaches its frames: clips are batched.
"""

from __future__ import annotations

import torch
import torchaudio
from torch import nn

from ser_bench.models.encoder import EncoderClassifier, PackagedWeights

HIDDEN, LAYERS, N_MELS, HOP = 256, 3, 40, 160
TARGET_DBFS = -30.0


class GE2E(nn.Module):
    def __init__(self):
        super().__init__()
        # resemblyzer computes it with librosa's defaults: Slaney mel scale and area normalisation, zero padding.
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=16_000, n_fft=400, hop_length=HOP, n_mels=N_MELS, power=2.0, norm="slaney",
            mel_scale="slaney", pad_mode="constant")
        self.lstms = nn.ModuleList(nn.LSTM(N_MELS if i == 0 else HIDDEN, HIDDEN, batch_first=True)
                                   for i in range(LAYERS))
        self.linear = nn.Linear(HIDDEN, HIDDEN)

    def load_resemblyzer(self, state: dict) -> None:
        """resemblyzer's `model_state` (one 3-layer nn.LSTM, `lstm.*_l{i}`) into the three one-layer LSTMs."""
        mine = {}
        for key, value in state.items():
            if key.startswith("lstm."):
                name, layer = key.removeprefix("lstm.").rsplit("_l", 1)
                mine[f"lstms.{layer}.{name}_l0"] = value
            elif key.startswith("linear."):
                mine[key] = value
        self.load_state_dict(mine, strict=False)  # the mel filterbank is a buffer this code makes
        missing = set(self.state_dict()) - set(mine) - {k for k in self.state_dict() if k.startswith("mel.")}
        if missing:
            raise ValueError(f"resemblyzer weights lack {', '.join(sorted(missing))}")

    def mels(self, wave: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[B, frames, 40] power mel of each clip, raised to -30 dBFS over its valid samples."""
        valid = mask.to(wave.dtype)
        power = (wave.square() * valid).sum(1) / valid.sum(1).clamp(min=1)
        gain_db = (TARGET_DBFS - 10 * torch.log10(power.clamp(min=1e-10))).clamp(min=0)  # increase only
        wave = wave * valid * torch.pow(10.0, gain_db / 20)[:, None]
        with torch.autocast(wave.device.type, enabled=False):
            return self.mel(wave.float()).transpose(1, 2)

    def layers(self, mels: torch.Tensor) -> list[torch.Tensor]:
        out, x = [], mels
        for lstm in self.lstms:
            x = lstm(x)[0]
            out.append(x)
        out.append(torch.relu(self.linear(x)))  # the speaker projection, frame by frame
        return out


class GE2EClassifier(EncoderClassifier):
    """`pretrained`: "resemblyzer" (the weights in that package) or None (the same network, random weights)."""

    def __init__(self, num_classes: int, pretrained: str | None = "resemblyzer", mode: str = "frozen",
                 head_hidden: int = 256, dropout: float = 0.2, encoder_lr_scale: float = 0.1,
                 standardize: bool = False):
        super().__init__(num_classes, HIDDEN, LAYERS + 1, pretrained, mode, head_hidden, dropout, encoder_lr_scale,
                         standardize)
        if pretrained not in (None, "resemblyzer"):
            raise ValueError(f"model.pretrained for ge2e is 'resemblyzer' (its packaged weights) or null, "
                             f"not {pretrained!r}")
        self.weights = PackagedWeights("resemblyzer", "pretrained.pt", "pretrained") if pretrained else None
        self.encoder = GE2E()
        if self.weights is not None:
            self.encoder.load_resemblyzer(self.weights.load()["model_state"])
        self.freeze()

    def stem(self) -> nn.Module:
        return self.encoder.lstms[0]

    def hidden_states(self, wave: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        if mask is None:
            mask = torch.ones_like(wave, dtype=torch.bool)
        layers = self.encoder.layers(self.encoder.mels(wave, mask))
        return torch.stack(layers, dim=1), mask.sum(-1) // HOP + 1  # centred frames

    def weights_id(self) -> str | None:
        return self.weights.weights_id() if self.weights is not None else None

    def provenance(self) -> dict[str, str]:
        return self.weights.tags() if self.weights is not None else super().provenance()
