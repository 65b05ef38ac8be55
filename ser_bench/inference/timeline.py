"""A clip longer than the model's window, scored as a timeline of windows plus one whole-clip answer.

Windows start at 0, hop, 2 hop, ... and the last one is the first that reaches the clip's end (so it may be
shorter than the window, never shorter than window - hop). The whole-clip answer is the mean of the windows'
probabilities. A clip no longer than the window is one window: the whole clip, as the run's test pass saw it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def spans(n_samples: int, window: int | None, hop: int | None) -> list[tuple[int, int]]:
    """(start, end) sample offsets of the windows over a clip of `n_samples`."""
    if not window or n_samples <= window:
        return [(0, n_samples)]
    if not hop or hop <= 0:
        raise ValueError(f"hop must be a positive number of samples, not {hop}")
    out, start = [], 0
    while True:
        end = min(start + window, n_samples)
        out.append((start, end))
        if end >= n_samples:
            return out
        start += hop


@dataclass
class Scored:
    """One clip's answer: its windows (start s, end s, probabilities) and the whole-clip probabilities."""

    seconds: float
    windows: list[tuple[float, float, np.ndarray]]
    probabilities: np.ndarray


def score(model, waves: list[np.ndarray], window_seconds: float | None, hop_seconds: float | None,
          calibrated: bool = True) -> list[Scored]:
    """Score clips (mono, at `model.sample_rate`) with `model` (a Scorer or Ensemble); every window of every clip
    goes through the model in one call, so batches mix clips."""
    rate = model.sample_rate
    window = int(round(window_seconds * rate)) if window_seconds else None
    hop = int(round(hop_seconds * rate)) if hop_seconds else None
    cuts = [spans(len(w), window, hop) for w in waves]
    pieces = [w[a:b] for w, spans_ in zip(waves, cuts) for a, b in spans_]
    probs = model.probabilities(pieces, calibrated) if pieces else np.zeros((0, len(model.class_names)))
    out, i = [], 0
    for w, spans_ in zip(waves, cuts):
        p = probs[i:i + len(spans_)]
        i += len(spans_)
        out.append(Scored(len(w) / rate, [(a / rate, b / rate, q) for (a, b), q in zip(spans_, p)], p.mean(axis=0)))
    return out
