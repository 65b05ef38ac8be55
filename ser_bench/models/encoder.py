"""A pretrained encoder with a head: the one code path for every encoder family (transformers' wav2vec2 family in
`ssl.py`, resemblyzer's GE2E in `ge2e.py`, torchcrepe's CREPE in `crepe.py`).

A family subclasses `EncoderClassifier` and supplies the encoder itself (`self.encoder`), the part that stays
frozen in `finetune` mode (`stem`), and `hidden_states(wave, mask)`: every layer's frames, [B, layers, frames,
hidden], with each clip's count of valid frames. Everything else is shared:

`mode`:
- `frozen`: the encoder never trains (and stays in eval mode); a learnable softmax-weighted sum of
  all hidden layers, mean-pooled over valid frames, feeds the head (the SUPERB / EmoBox protocol).
- `finetune`: the stem stays frozen; the rest of the encoder trains at `encoder_lr_scale` times the head's
  learning rate.
- `full`: everything trains; the encoder at the scaled learning rate.

Padding never changes a prediction: families whose encoder mixes a clip's frames with its padding (group norm over
time) set `per_clip` and see each clip on its own; the others get one batched call with a mask.
"""

from __future__ import annotations

import hashlib
import logging
from importlib import metadata, util
from pathlib import Path

import torch
from torch import nn

from ser_bench.errors import UserError
from ser_bench.models.base import ENCODER_MODES as MODES

log = logging.getLogger(__name__)


class EncoderClassifier(nn.Module):
    # Set by ser_bench.models.features: inputs are then cached pooled layer features [B, layers * hidden].
    precomputed = False
    per_clip = False  # True: each clip alone through the encoder (its outputs would depend on the padding)
    min_samples = 1  # shorter clips are zero-padded up to this (the encoder's receptive field)

    def __init__(self, num_classes: int, hidden_size: int, n_layers: int, pretrained: str | None, mode: str,
                 head_hidden: int, dropout: float, encoder_lr_scale: float, standardize: bool = False):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        if standardize and mode != "frozen":
            raise ValueError("standardize needs mode=frozen (its statistics come from the cached frozen features)")
        self.mode, self.encoder_lr_scale, self.pretrained = mode, encoder_lr_scale, pretrained
        self.standardize = standardize
        self.layer_weights = nn.Parameter(torch.zeros(n_layers))
        if standardize:  # fitted by `fit_standardizer` on the training rows; kept in the checkpoint
            self.register_buffer("feature_mean", torch.zeros(n_layers, hidden_size))
            self.register_buffer("feature_std", torch.ones(n_layers, hidden_size))
        self.head = nn.Sequential(nn.Linear(hidden_size, head_hidden), nn.ReLU(), nn.Dropout(dropout),
                                  nn.Linear(head_hidden, num_classes))

    def freeze(self) -> None:
        """Applies `mode` to the encoder (call once it is built). Sets train mode: from_pretrained returns an encoder
        in eval mode and a new one is in train mode; Lightning keeps whatever it finds."""
        if self.mode == "frozen":
            self.encoder.requires_grad_(False)
        elif self.mode == "finetune":
            self.stem().requires_grad_(False)
        self.train()

    def stem(self) -> nn.Module:
        """What stays frozen in `finetune` mode."""
        raise NotImplementedError

    def hidden_states(self, wave: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """([B, layers, frames, hidden], valid frames per clip [B] or None when every frame is valid)."""
        raise NotImplementedError

    def train(self, mode: bool = True):
        super().train(mode)
        if self.mode == "frozen":
            self.encoder.eval()  # no dropout or feature masking in a frozen encoder
        return self

    def layer_features(self, wave: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """[B, layers, hidden]: every hidden layer, mean-pooled over the clip's valid frames."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.mode != "frozen"):
            if self.per_clip:
                return torch.cat([self._pooled(self._at_least(w[: int(n)])[None], None)
                                  for w, n in zip(wave, lengths)])
            if wave.shape[1] < self.min_samples:
                wave = nn.functional.pad(wave, (0, self.min_samples - wave.shape[1]))
            mask = torch.arange(wave.shape[1], device=wave.device)[None, :] < lengths[:, None]
            return self._pooled(wave, mask)

    def _at_least(self, clip: torch.Tensor) -> torch.Tensor:
        """Clips shorter than the encoder's receptive field are zero-padded up to it."""
        return nn.functional.pad(clip, (0, self.min_samples - len(clip))) if len(clip) < self.min_samples else clip

    def _pooled(self, wave: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        hidden, frames = self.hidden_states(wave, mask)
        if frames is None:
            return hidden.mean(dim=2)
        frames = frames.clamp(min=1, max=hidden.shape[2])
        valid = (torch.arange(hidden.shape[2], device=wave.device)[None, :] < frames[:, None]).to(hidden.dtype)
        return (hidden * valid[:, None, :, None]).sum(2) / valid.sum(-1)[:, None, None]

    def fit_standardizer(self, train_features: torch.Tensor) -> None:
        """Per layer and unit, the training clips' mean and std of the pooled features [N, layers, hidden]: the
        head then sees every unit on one scale, whatever the encoder's (random weights' features can vary from clip
        to clip a thousand times less than trained ones)."""
        self.feature_mean.copy_(train_features.mean(0))
        self.feature_std.copy_(train_features.std(0).clamp(min=1e-8))

    def classify(self, layer_features: torch.Tensor) -> torch.Tensor:
        if self.standardize:
            layer_features = (layer_features - self.feature_mean) / self.feature_std
        weights = self.layer_weights.softmax(0)
        return self.head((layer_features * weights[None, :, None]).sum(1))

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.precomputed:
            return self.classify(wave.view(len(wave), len(self.layer_weights), -1))
        return self.classify(self.layer_features(wave, lengths))

    def weights_id(self) -> str | None:
        """What identifies the encoder's weights for the feature cache; None for random weights."""
        raise NotImplementedError

    def features_id(self) -> str:
        """What identifies the encoder's features for the cache: its weights, or a digest of random ones."""
        return self.weights_id() or random_weights_id(self.encoder)

    def provenance(self) -> dict[str, str]:
        """Where the encoder's weights came from, as MLflow tags."""
        return {"pretrained": "true" if self.pretrained is not None else "false"}

    def param_groups(self, lr: float) -> list[dict]:
        """The head and layer weights at `lr`, trainable encoder parameters at `lr * encoder_lr_scale`."""
        head = [self.layer_weights, *self.head.parameters()]
        encoder = [p for p in self.encoder.parameters() if p.requires_grad]
        groups = [{"params": head, "lr": lr, "name": "head"}]
        if encoder:
            groups.append({"params": encoder, "lr": lr * self.encoder_lr_scale, "name": "encoder"})
        return groups


class PackagedWeights:
    """Pretrained weights that ship inside an installed package (so they load offline): the file, the package's
    version and the file's sha256, which identify them for the feature cache and in MLflow."""

    def __init__(self, package: str, relative: str, extra: str):
        spec = util.find_spec(package)  # finds the package without importing it
        if spec is None or not spec.submodule_search_locations:
            raise UserError(f"model needs the `{package}` package: pip install \"ser_bench[{extra}]\"")
        self.package, self.version = package, metadata.version(package)
        self.path = Path(next(iter(spec.submodule_search_locations))) / relative
        if not self.path.is_file():
            raise UserError(f"{package} {self.version} has no {relative} (a damaged install?): "
                            f"pip install --force-reinstall {package}")
        self.sha256 = _sha256(self.path)

    def load(self) -> dict:
        return torch.load(self.path, map_location="cpu", weights_only=True)

    def weights_id(self) -> str:
        return f"{self.package}=={self.version}:{self.path.name}:sha256={self.sha256}"

    def tags(self) -> dict[str, str]:
        return {"pretrained": "true", "weights.package": self.package, "weights.version": self.version,
                "weights.file": self.path.name, "weights.sha256": self.sha256}


_HASHES: dict[tuple, str] = {}


def _sha256(path: Path) -> str:
    """The file's sha256, once per process and file version (torchcrepe's full weights are 89 MB)."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


def require(package: str, extra: str):
    """Import `package`, or one line naming the extra that installs it."""
    try:
        return __import__(package)
    except ImportError:
        raise UserError(f"this model needs the `{package}` package: pip install \"ser_bench[{extra}]\"") from None


def random_weights_id(module: nn.Module) -> str:
    """A digest of randomly initialised weights: equal seeds give equal weights, so their frozen features can be
    cached too (the random-weights control of a pretrained encoder)."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return f"random:{type(module).__name__}:sha256={digest.hexdigest()[:32]}"
