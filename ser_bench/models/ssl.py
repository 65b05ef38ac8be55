"""Self-supervised speech encoders (wav2vec2, HuBERT, WavLM) from transformers, with a small head.

The modes, pooling and head are ser_bench.models.encoder's. In `finetune` mode the convolutional feature encoder
stays frozen and the transformer trains. Encoders whose feature extractor uses group norm over time (wav2vec2-base,
HuBERT-base, WavLM-base) see each clip on its own; the others get one batched call with an attention mask.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from torch import nn

from ser_bench.errors import UserError
from ser_bench.models.encoder import EncoderClassifier

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


class SSLClassifier(EncoderClassifier):
    """A transformers speech encoder (see ser_bench.models.encoder for the modes, pooling and head)."""

    def __init__(self, num_classes: int, arch: str = "wav2vec2", pretrained: str | None = None,
                 mode: str = "frozen", head_hidden: int = 256, dropout: float = 0.2, encoder_lr_scale: float = 0.05,
                 gradient_checkpointing: bool = False, standardize: bool = False):
        encoder = load_encoder(arch, pretrained)
        config = encoder.config
        config.layerdrop = 0.0  # the weighted sum needs every layer's output, every step
        # the transformer's input and every layer's output
        super().__init__(num_classes, config.hidden_size, config.num_hidden_layers + 1, pretrained, mode,
                         head_hidden, dropout, encoder_lr_scale, standardize)
        self.encoder = encoder
        self.per_clip = getattr(config, "feat_extract_norm", "group") == "group"
        self.min_samples = receptive_field(config.conv_kernel, config.conv_stride)
        if gradient_checkpointing:
            self.encoder.gradient_checkpointing_enable()
        self.freeze()

    def stem(self) -> nn.Module:
        return self.encoder.feature_extractor  # the convolutional feature encoder

    def hidden_states(self, wave: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        out = self.encoder(wave, attention_mask=None if mask is None else mask.long(), output_hidden_states=True)
        hidden = torch.stack(out.hidden_states, dim=1)  # [B, layers, frames, hidden]
        return hidden, None if mask is None else self.encoder._get_feat_extract_output_lengths(mask.sum(-1))

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

    def provenance(self) -> dict[str, str]:
        tags = super().provenance()
        if self.pretrained is not None:
            tags["weights.id"] = str(self.pretrained)
        return tags
