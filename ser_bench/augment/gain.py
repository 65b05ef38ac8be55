"""Random level change in dB, clipped to [-1, 1] like a real recording.

The log-mel frontend's per-utterance normalisation cancels a pure level change; gain matters for
frontends without it (`norm: none`, wav2vec2) and where clipping sets in.
"""

from __future__ import annotations

import torch

from ser_bench.augment.base import WaveTransform, check_range, uniform


class Gain(WaveTransform):
    def __init__(self, gain_db: tuple[float, float] = (-6.0, 6.0), p: float = 1.0):
        super().__init__(p)
        self.gain_db = check_range("gain gain_db", gain_db)

    def apply(self, wave: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        return (wave * 10 ** (uniform(rng, *self.gain_db) / 20)).clamp(-1.0, 1.0)
