"""Self-supervised speech encoders (wav2vec2, HuBERT, WavLM) from transformers, with a small head.

`mode`:
- `frozen`: the encoder never trains (and stays in eval mode); a learnable softmax-weighted sum of
  all hidden layers, mean-pooled over valid frames, feeds the head (the SUPERB / EmoBox protocol).
- `finetune`: the convolutional feature encoder stays frozen; the transformer trains at
  `encoder_lr_scale` times the head's learning rate.
- `full`: everything trains; the encoder at the scaled learning rate.

Padding never changes a prediction. Encoders whose feature extractor uses group norm over time
(wav2vec2-base, HuBERT-base, WavLM-base) see each clip on its own; the others get one batched call
with an attention mask.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from torch import nn

from ser_bench.errors import UserError
from ser_bench.models.base import ENCODER_MODES as MODES

log = logging.getLogger(__name__)


def _architecture(arch: str):
    import transformers as tf

    archs = {"wav2vec2": (tf.Wav2Vec2Config, tf.Wav2Vec2Model), "hubert": (tf.HubertConfig, tf.HubertModel),
             "wavlm": (tf.WavLMConfig, tf.WavLMModel)}
    if arch not in archs:
        raise ValueError(f"arch must be one of {', '.join(archs)}, not {arch!r}")
    return archs[arch]


def load_encoder(arch: str, pretrained: str | None) -> nn.Module:
    """The encoder from a hub id or local folder, or randomly initialised (base size) when None."""
    config_cls, model_cls = _architecture(arch)
    if pretrained is None:
        log.warning("model.pretrained=null: %s with RANDOM weights (no pretraining)", arch)
        return model_cls(config_cls())
    local = os.path.isdir(os.path.expanduser(str(pretrained)))
    try:
        return model_cls.from_pretrained(os.path.expanduser(str(pretrained)) if local else pretrained)
    except OSError as err:
        if local:
            raise UserError(f"model.pretrained={pretrained} is a folder but holds no loadable {arch} "
                            f"checkpoint ({str(err).splitlines()[0]})") from None
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0", "false")
        why = "HF_HUB_OFFLINE is set" if offline else "the Hugging Face hub cannot be reached"
        raise UserError(
            f"cannot load pretrained weights '{pretrained}': not in the local Hugging Face cache and {why}. "
            f"Ways out: download it where there is a network (`hf download {pretrained}`) and copy the "
            f"cache here, or point model.pretrained=/path/to/a/local/checkpoint/folder, or set "
            f"model.pretrained=null to train from random initialisation (tagged as such in MLflow)") from None


def receptive_field(kernels, strides) -> int:
    """Samples behind one output frame of the convolutional feature encoder."""
    field = 1
    for k, s in zip(reversed(kernels), reversed(strides)):
        field = (field - 1) * s + k
    return field


class SSLClassifier(nn.Module):
    # Set by ser_bench.models.features: inputs are then cached pooled layer features [B, layers * hidden].
    precomputed = False

    def __init__(self, num_classes: int, arch: str = "wav2vec2", pretrained: str | None = None,
                 mode: str = "frozen", head_hidden: int = 256, dropout: float = 0.2, encoder_lr_scale: float = 0.05,
                 gradient_checkpointing: bool = False):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        self.mode, self.encoder_lr_scale, self.pretrained = mode, encoder_lr_scale, pretrained
        self.encoder = load_encoder(arch, pretrained)
        config = self.encoder.config
        config.layerdrop = 0.0  # the weighted sum needs every layer's output, every step
        self.per_clip = getattr(config, "feat_extract_norm", "group") == "group"
        self.min_samples = receptive_field(config.conv_kernel, config.conv_stride)
        if gradient_checkpointing:
            self.encoder.gradient_checkpointing_enable()
        if mode == "frozen":
            self.encoder.requires_grad_(False)
        elif mode == "finetune":
            self.encoder.feature_extractor.requires_grad_(False)
        n_layers = config.num_hidden_layers + 1  # the transformer's input and every layer's output
        self.layer_weights = nn.Parameter(torch.zeros(n_layers))
        self.head = nn.Sequential(nn.Linear(config.hidden_size, head_hidden), nn.ReLU(), nn.Dropout(dropout),
                                  nn.Linear(head_hidden, num_classes))
        # from_pretrained returns an encoder in eval mode and a new one is in train mode; Lightning keeps
        # whatever it finds, so the mode is set here, once, the way this `mode` wants it.
        self.train()

    def train(self, mode: bool = True):
        super().train(mode)
        if self.mode == "frozen":
            self.encoder.eval()  # no dropout or feature masking in a frozen encoder
        return self

    def layer_features(self, wave: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """[B, layers, hidden]: every hidden layer, mean-pooled over the clip's valid frames."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.mode != "frozen"):
            if self.per_clip:
                return torch.cat([self._pooled(self._at_least_one_frame(w[: int(n)])[None], None)
                                  for w, n in zip(wave, lengths)])
            if wave.shape[1] < self.min_samples:
                wave = nn.functional.pad(wave, (0, self.min_samples - wave.shape[1]))
            mask = torch.arange(wave.shape[1], device=wave.device)[None, :] < lengths[:, None]
            return self._pooled(wave, mask)

    def _at_least_one_frame(self, clip: torch.Tensor) -> torch.Tensor:
        """Clips shorter than the feature encoder's receptive field are zero-padded up to it."""
        return nn.functional.pad(clip, (0, self.min_samples - len(clip))) if len(clip) < self.min_samples else clip

    def _pooled(self, wave: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        out = self.encoder(wave, attention_mask=None if mask is None else mask.long(), output_hidden_states=True)
        hidden = torch.stack(out.hidden_states, dim=1)  # [B, layers, frames, hidden]
        if mask is None:
            return hidden.mean(dim=2)
        frames = self.encoder._get_feat_extract_output_lengths(mask.sum(-1)).clamp(min=1)
        valid = (torch.arange(hidden.shape[2], device=wave.device)[None, :] < frames[:, None]).to(hidden.dtype)
        return (hidden * valid[:, None, :, None]).sum(2) / valid.sum(-1)[:, None, None]

    def classify(self, layer_features: torch.Tensor) -> torch.Tensor:
        weights = self.layer_weights.softmax(0)
        return self.head((layer_features * weights[None, :, None]).sum(1))

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.precomputed:
            return self.classify(wave.view(len(wave), len(self.layer_weights), -1))
        return self.classify(self.layer_features(wave, lengths))

    def weights_id(self) -> str | None:
        """What identifies the encoder's weights for the feature cache; None for random weights."""
        if self.pretrained is None:
            return None
        folder = Path(str(self.pretrained)).expanduser()
        if folder.is_dir():
            files = sorted(p for p in folder.iterdir() if p.is_file())
            stamps = (f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)
            return f"{folder.resolve()}|" + "|".join(stamps)
        return f"{self.pretrained}@{getattr(self.encoder.config, '_commit_hash', None) or 'unknown revision'}"

    def param_groups(self, lr: float) -> list[dict]:
        """The head and layer weights at `lr`, trainable encoder parameters at `lr * encoder_lr_scale`."""
        head = [self.layer_weights, *self.head.parameters()]
        encoder = [p for p in self.encoder.parameters() if p.requires_grad]
        groups = [{"params": head, "lr": lr, "name": "head"}]
        if encoder:
            groups.append({"params": encoder, "lr": lr * self.encoder_lr_scale, "name": "encoder"})
        return groups
