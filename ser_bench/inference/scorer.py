"""Clips (mono float32 at the model's rate) -> calibrated class probabilities, for one network or an ensemble.

Each clip is followed by `tail_samples` zeros and masked at its own length, exactly as the log-mel cache
computed the features a run was trained and tested on, so a clip scores the same alone, in a batch, and
in the run's own test pass (up to float rounding).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ser_bench.data.padding import pad
from ser_bench.errors import UserError

MAX_BATCH_SAMPLES = 16 * 6 * 16_000  # padded samples per forward pass: 16 clips of 6 s
UNCERTAIN = "uncertain"


def answer(probs: np.ndarray, class_names: list[str], abstain: float = 0.0) -> tuple[str, float]:
    """(emotion, confidence): the top class, or `uncertain` when its probability is below `abstain`."""
    top = int(np.argmax(probs))
    confidence = float(probs[top])
    return (class_names[top] if confidence >= abstain else UNCERTAIN), confidence


class Scorer:
    """One network with its class names, temperature and preprocessing (see bundle.py for where they come from).
    On the CPU: a model folder holds no device."""

    def __init__(self, net: nn.Module, class_names: list[str], temperature: float = 1.0, sample_rate: int = 16_000,
                 window_seconds: float | None = None, hop_seconds: float | None = None, tail_samples: int = 0,
                 precision: str = "32-true", meta: dict | None = None, batch_size: int = 16):
        self.net = net.eval()
        self.class_names, self.temperature = list(class_names), float(temperature)
        self.sample_rate, self.tail_samples, self.batch_size = int(sample_rate), int(tail_samples), batch_size
        self.window_seconds = window_seconds
        self.hop_seconds = hop_seconds or (window_seconds / 2 if window_seconds else None)
        self.meta = meta or {}
        # A run trained with trainer.precision=bf16-mixed was tested under bf16 autocast: scored the same way, its
        # clips get the probabilities the run logged (the log-mel itself stays float32 either way).
        self.autocast = precision.startswith("bf16")

    @property
    def name(self) -> str:
        return self.meta.get("name", type(self.net).__name__)

    def logits(self, clips: list[np.ndarray]) -> np.ndarray:
        """[N, C] float64 logits, clips scored in batches of similar length."""
        out = np.zeros((len(clips), len(self.class_names)))
        order = np.argsort([len(c) for c in clips], kind="stable")
        start = 0
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.autocast):
            while start < len(order):
                longest = len(clips[order[min(start + self.batch_size, len(order)) - 1]]) + self.tail_samples
                size = max(1, min(self.batch_size, MAX_BATCH_SAMPLES // max(1, longest)))
                rows = order[start:start + size]
                wave, lengths = pad([np.concatenate([clips[r], np.zeros(self.tail_samples, np.float32)])
                                     for r in rows])
                out[rows] = self.net(wave, lengths - self.tail_samples).double().numpy()
                start += size
        return out

    def probabilities(self, clips: list[np.ndarray], calibrated: bool = True) -> np.ndarray:
        logits = self.logits(clips) / (self.temperature if calibrated else 1.0)
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        return probs / probs.sum(axis=1, keepdims=True)


class Ensemble:
    """Settings, each a list of member Scorers (a setting's seeds): per clip, each setting's members' probabilities
    are averaged, then the settings with equal weight, as the leaderboard's ensembles average them. A single
    model is an ensemble of one."""

    def __init__(self, settings: list[list[Scorer]]):
        members = [m for s in settings for m in s]
        if not members:
            raise ValueError("an ensemble needs at least one model")
        first = members[0]
        for m in members[1:]:
            if m.class_names != first.class_names:
                raise UserError(f"the models of an ensemble must share their classes: {first.name} has "
                                f"{', '.join(first.class_names)}, {m.name} has {', '.join(m.class_names)}")
            if m.sample_rate != first.sample_rate:
                raise UserError(f"the models of an ensemble must share a sample rate ({first.sample_rate} vs "
                                f"{m.sample_rate} Hz)")
        self.settings, self.members = settings, members
        self.class_names, self.sample_rate = first.class_names, first.sample_rate
        self.window_seconds, self.hop_seconds = first.window_seconds, first.hop_seconds

    def probabilities(self, clips: list[np.ndarray], calibrated: bool = True) -> np.ndarray:
        per_setting = [np.mean([m.probabilities(clips, calibrated) for m in s], axis=0) for s in self.settings]
        return np.mean(per_setting, axis=0)

    def describe(self) -> str:
        return " | ".join(" + ".join(m.name for m in s) for s in self.settings)
