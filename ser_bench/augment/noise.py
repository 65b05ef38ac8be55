"""Additive white noise at a random signal-to-noise ratio (the original study's noise injection)."""

from __future__ import annotations

import torch

from ser_bench.augment.base import WaveTransform, check_range, uniform


class Noise(WaveTransform):
    def __init__(self, snr_db: tuple[float, float] = (10.0, 30.0), p: float = 1.0):
        super().__init__(p)
        self.snr_db = check_range("noise snr_db", snr_db)

    def apply(self, wave: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        snr = uniform(rng, *self.snr_db)
        power = wave.pow(2).mean().clamp_min(1e-10)
        noise = torch.randn(wave.shape, generator=rng, dtype=wave.dtype)
        return wave + noise * (power / 10 ** (snr / 10)).sqrt()
