"""Fast tempo and pitch primitives shared by the speed, stretch and pitch augmentations.

`torchaudio.functional.pitch_shift` resamples by `sample_rate / ratio` for an arbitrary ratio: the
frequencies share no common divisor, so every call builds a sinc kernel with thousands of phases
(seconds per clip). Here ratios are rounded to steps of 1/STEPS, so `orig/new` reduces to small
integers, and the few kernels that occur are built once and kept.
"""

from __future__ import annotations

import functools
import math

import torch
import torchaudio

STEPS = 100  # ratio resolution 1% (0.17 semitone)
N_FFT, HOP = 512, 128


def quantize(ratio: float) -> int:
    """`ratio` as a whole number of 1/STEPS steps (at least 1)."""
    return max(1, round(ratio * STEPS))


@functools.lru_cache(maxsize=128)
def _resampler(orig: int, new: int) -> torchaudio.transforms.Resample:
    g = math.gcd(orig, new)
    return torchaudio.transforms.Resample(orig // g, new // g)


def play_faster(wave: torch.Tensor, steps: int) -> torch.Tensor:
    """Play `wave` at `steps / STEPS` times its speed: duration divided, pitch multiplied by that factor."""
    if steps == STEPS:
        return wave
    with torch.no_grad():
        return _resampler(steps, STEPS)(wave)


@functools.lru_cache(maxsize=4)
def _window_and_advance(device: str) -> tuple[torch.Tensor, torch.Tensor]:
    window = torch.hann_window(N_FFT, device=device)
    advance = torch.linspace(0, math.pi * HOP, N_FFT // 2 + 1, device=device)[:, None]
    return window, advance


def time_stretch(wave: torch.Tensor, rate: float) -> torch.Tensor:
    """Tempo times `rate` with pitch kept (phase vocoder); the result has round(len / rate) samples."""
    if rate == 1.0 or len(wave) < N_FFT:
        return wave
    window, advance = _window_and_advance(str(wave.device))
    with torch.no_grad():
        spec = torch.stft(wave, N_FFT, HOP, window=window, return_complex=True)
        spec = torchaudio.functional.phase_vocoder(spec, rate, advance)
        return torch.istft(spec, N_FFT, HOP, window=window, length=round(len(wave) / rate))
