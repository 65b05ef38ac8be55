"""Training-set augmentation: waveform transforms (offline copies or online draws) and SpecAugment.

`conf/augment/*.yaml` instantiates one `Augmentation`; each transform is one small class in this
package with a probability and its ranges in the yaml. Validation and test clips never pass through
here: the data module applies it to training rows only, and SpecAugment acts only in train mode.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ser_bench.errors import UserError

MODES = ("offline", "online")


class Augmentation:
    """An ordered chain of transforms. Waveform transforms run in yaml order; `kind = "spec"` ones
    (SpecAugment) act on the model's features.

    mode `offline`: each training clip gets `copies` augmented copies, made once and cached.
    mode `online`: each training clip is transformed afresh every epoch, seeded by (seed, epoch, clip).
    """

    def __init__(self, name: str, mode: str = "offline", copies: int = 1, seed: int = 0,
                 transforms: dict | None = None):
        if mode not in MODES:
            raise ValueError(f"augment.mode must be one of {', '.join(MODES)}, not {mode!r}")
        transforms = dict(transforms or {})
        self.name, self.mode, self.copies, self.seed = name, mode, int(copies), int(seed)
        self.wave = {k: t for k, t in transforms.items() if getattr(t, "kind", "wave") == "wave"}
        self.spec = {k: t for k, t in transforms.items() if getattr(t, "kind", "wave") == "spec"}
        if self.wave and mode == "offline" and self.copies < 1:
            raise ValueError(f"augment.copies must be >= 1 for offline augmentation, not {copies}")

    @property
    def offline(self) -> bool:
        return bool(self.wave) and self.mode == "offline"

    @property
    def online(self) -> bool:
        return bool(self.wave) and self.mode == "online"

    def __call__(self, wave: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        for transform in self.wave.values():
            wave = transform(wave, rng)
        return wave

    def generator(self, *keys: int) -> torch.Generator:
        """The random stream of one draw, e.g. (clip, copy) offline or (epoch, clip) online."""
        state = np.random.SeedSequence([self.seed, *keys]).generate_state(2, dtype=np.uint32)
        return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))

    def describe(self) -> dict:
        """Everything that determines the waveform copies (the offline cache keys on it)."""
        return {"seed": self.seed, "copies": self.copies,
                "transforms": [[k, t.describe()] for k, t in self.wave.items()]}

    def attach(self, net: nn.Module) -> None:
        """Apply the spec transforms to `net.frontend`'s output in training mode (a forward hook, so
        the model's parameters and checkpoint keys stay as they are)."""
        if not self.spec:
            return
        frontend = getattr(net, "frontend", None)
        if frontend is None or not hasattr(frontend, "n_mels"):
            raise UserError(f"augment={self.name} has spectrogram transforms ({', '.join(self.spec)}), "
                             f"which need a model with a log-mel frontend")

        def hook(module: nn.Module, args, output):
            if not module.training:
                return output
            feats, frames = output
            for transform in self.spec.values():
                feats = transform(feats, frames)
            return feats, frames

        frontend.register_forward_hook(hook)

    def __repr__(self) -> str:
        parts = [repr(t) for t in (*self.wave.values(), *self.spec.values())] or ["nothing"]
        mode = (f" (offline, {self.copies} cop{'y' if self.copies == 1 else 'ies'} per training clip)" if self.offline
                else " (online, fresh every epoch)" if self.online else "")
        return f"augment={self.name}{mode}: {' -> '.join(parts)}"
