"""Time-stretch: tempo changes, pitch stays (phase vocoder)."""

from __future__ import annotations

import torch

from ser_bench.augment.base import WaveTransform, check_range, uniform
from ser_bench.augment.resample import time_stretch


class Stretch(WaveTransform):
    def __init__(self, rate: tuple[float, float] = (0.8, 1.25), p: float = 1.0):
        super().__init__(p)
        self.rate = check_range("stretch rate", rate, 0.25, 4.0)

    def apply(self, wave: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        return time_stretch(wave, uniform(rng, *self.rate))
