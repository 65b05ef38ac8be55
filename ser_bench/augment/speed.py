"""Speed perturbation: tempo and pitch change together, as playing a tape faster or slower (Kaldi's 0.9-1.1)."""

from __future__ import annotations

import torch

from ser_bench.augment.base import WaveTransform, check_range, uniform
from ser_bench.augment.resample import play_faster, quantize


class Speed(WaveTransform):
    def __init__(self, factor: tuple[float, float] = (0.9, 1.1), p: float = 1.0):
        super().__init__(p)
        self.factor = check_range("speed factor", factor, 0.5, 2.0)

    def apply(self, wave: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        return play_faster(wave, quantize(uniform(rng, *self.factor)))
