"""Pitch shift in semitones with the tempo kept: stretch by the pitch ratio, then play back faster by it.

The ratio is rounded to the resampler's 1% steps (0.17 semitone), which keeps every shift fast.
"""

from __future__ import annotations

import torch

from ser_bench.augment.base import WaveTransform, check_range, uniform
from ser_bench.augment.resample import STEPS, play_faster, quantize, time_stretch


class Pitch(WaveTransform):
    def __init__(self, semitones: tuple[float, float] = (-2.0, 2.0), p: float = 1.0):
        super().__init__(p)
        self.semitones = check_range("pitch semitones", semitones, -12.0, 12.0)

    def apply(self, wave: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        steps = quantize(2 ** (uniform(rng, *self.semitones) / 12))
        if steps == STEPS:
            return wave
        longer = time_stretch(wave, STEPS / steps)  # duration x ratio, pitch kept
        return play_faster(longer, steps)[: len(wave)]
