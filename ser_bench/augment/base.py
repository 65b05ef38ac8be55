"""What every waveform augmentation shares: a probability, a seeded draw, one clip in and one out."""

from __future__ import annotations

import torch

SAMPLE_RATE = 16_000


def uniform(rng: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=rng))


def check_range(name: str, values, low: float | None = None, high: float | None = None) -> tuple[float, float]:
    """A [low, high] pair from the yaml, checked so that a typo fails at start-up with one clear line."""
    if len(values) != 2 or float(values[0]) > float(values[1]):
        raise ValueError(f"{name} must be [low, high] with low <= high, not {list(values)}")
    lo, hi = float(values[0]), float(values[1])
    if (low is not None and lo < low) or (high is not None and hi > high):
        raise ValueError(f"{name} must lie within [{low}, {high}], not {list(values)}")
    return lo, hi


class WaveTransform:
    """Applied to one mono 16 kHz clip with probability `p`; randomness comes only from `rng`.

    Subclasses implement `apply(wave, rng)`. `describe()` is what the offline cache keys on.
    """

    def __init__(self, p: float = 1.0):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{type(self).__name__}: p must lie within [0, 1], not {p}")
        self.p = float(p)

    def __call__(self, wave: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        if self.p < 1.0 and float(torch.rand((), generator=rng)) >= self.p:
            return wave
        return self.apply(wave, rng)

    def apply(self, wave: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def describe(self) -> dict:
        return {"type": type(self).__name__, **{k: v for k, v in vars(self).items() if not k.startswith("_")}}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.describe().items() if k != "type")
        return f"{type(self).__name__}({args})"
