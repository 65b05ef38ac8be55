"""The streaming engine: audio in chunks of any size and rate -> one event per hop.

Windows over the stream start at 0, hop, 2 hop, ... seconds, exactly as `predict` cuts a long file
(ser_bench.inference.timeline.spans): a window is scored once the stream reaches its end, and `flush` scores the
last, shorter one. Each window gets the model's calibrated probabilities; voice-activity detection decides whether
it holds speech at all (`no speech` otherwise); the probabilities of the last `smoothing` speech windows are
averaged; below the `abstain` threshold the answer is `uncertain`. With `vad="none"` and `smoothing=1`, a whole
file fed through the engine gives predict's timeline window for window.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass

import numpy as np

from ser_bench.errors import UserError
from ser_bench.inference.scorer import UNCERTAIN, answer
from ser_bench.live import vad as vads

NO_SPEECH = "no speech"
WINDOW, HOP = 3.0, 0.5  # seconds: about one utterance (RAVDESS clips are 3-5 s), and two updates a second
MIN_RATE, MAX_RATE = 8_000, 192_000


@dataclass
class Event:
    start: float  # seconds from the start of the stream
    end: float
    label: str  # an emotion, `uncertain` or `no speech`
    confidence: float  # the smoothed top probability (0 for no speech)
    probabilities: dict[str, float]  # smoothed, calibrated (empty for no speech)
    window: list[float]  # this window's own calibrated probabilities, before smoothing
    speech: float  # share of the window's VAD frames that hold speech

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()} | {
            "probabilities": {k: round(v, 4) for k, v in self.probabilities.items()},
            "window": [round(v, 5) for v in self.window]}


class Engine:
    """Feed it audio with `feed(chunk, rate)`; it returns the events that chunk completed. `flush()` at the end of
    a stream scores what is left. One engine per stream: it holds the stream's buffer, VAD state and history."""

    def __init__(self, model, window: float | None = WINDOW, hop: float = HOP, vad: str = "silero",
                 min_speech: float = 0.3, smoothing: int = 3, abstain: float = 0.5, calibrated: bool = True):
        if not (window is None or window > 0) or not hop > 0:
            raise UserError(f"window {window} s and hop {hop} s must be positive")
        if smoothing < 1:
            raise UserError(f"smoothing {smoothing}: at least 1 window")
        self.model, self.class_names, self.rate = model, list(model.class_names), int(model.sample_rate)
        self.window_seconds = window
        self.window = int(round(window * self.rate)) if window else None
        self.hop = int(round(hop * self.rate))
        self.vad, self.min_speech, self.abstain, self.calibrated = vads.make(vad), min_speech, abstain, calibrated
        self.history: deque[np.ndarray] = deque(maxlen=smoothing)
        self._buffer = np.zeros(0, np.float32)  # samples from `_offset` on
        self._offset = 0  # stream position of _buffer[0], in samples
        self._next = 0  # start of the next window
        self._emitted_end = 0  # end of the last window scored
        self._speech: deque[tuple[int, float]] = deque()  # (frame start, speech probability)
        self._frames = 0  # VAD frames seen
        self._resampler = None
        self._input_rate = None

    @property
    def received(self) -> int:
        return self._offset + len(self._buffer)

    def feed(self, chunk: np.ndarray, rate: int | None = None) -> list[Event]:
        samples = self._to_model_rate(_mono(chunk), rate or self.rate, last=False)
        return self._advance(samples, final=False)

    def flush(self) -> list[Event]:
        """The stream ended: score the last window (shorter than the others) where the stream went past the last
        window scored, as predict's timeline ends."""
        samples = self._to_model_rate(np.zeros(0, np.float32), self._input_rate or self.rate, last=True)
        return self._advance(samples, final=True)

    def _to_model_rate(self, samples: np.ndarray, rate: int, last: bool) -> np.ndarray:
        if not MIN_RATE <= rate <= MAX_RATE:
            raise UserError(f"sample rate {rate} Hz: the engine takes {MIN_RATE}-{MAX_RATE} Hz")
        if self._input_rate is None:
            self._input_rate = rate
        elif rate != self._input_rate:
            raise UserError(f"the stream changed its sample rate from {self._input_rate} to {rate} Hz")
        if rate == self.rate:
            return samples
        if self._resampler is None:
            import soxr

            self._resampler = soxr.ResampleStream(rate, self.rate, 1, dtype="float32", quality="HQ")
        return self._resampler.resample_chunk(samples, last=last)

    def _advance(self, samples: np.ndarray, final: bool) -> list[Event]:
        if len(samples):
            if not np.isfinite(samples).all():
                raise UserError("the stream holds non-finite samples (NaN or inf)")
            self._buffer = np.concatenate([self._buffer, samples])
            for p in self.vad.feed(samples):
                self._speech.append((self._frames * vads.FRAME, p))
                self._frames += 1
        due = []
        while True:
            end = self._next + self.window if self.window else None
            if end is not None and end <= self.received:
                due.append((self._next, end))
                self._next += self.hop
            else:
                break
        if final and self.received > (due[-1][1] if due else self._emitted_end):
            due.append((self._next if self.window else 0, self.received))  # the last, shorter window
        if not due:
            return []
        clips = [self._buffer[a - self._offset:b - self._offset] for a, b in due]
        probs = self.model.probabilities(clips, self.calibrated)
        events = [self._event(a, b, p) for (a, b), p in zip(due, probs)]
        self._emitted_end = due[-1][1]
        self._drop_before(min(self._next, self.received))
        return events

    def _event(self, start: int, end: int, probs: np.ndarray) -> Event:
        speech = self._speech_share(start, end)
        seconds = (start / self.rate, end / self.rate)
        if speech < self.min_speech:
            self.history.clear()  # a pause ends an utterance: the next one is not averaged with this one
            return Event(*seconds, NO_SPEECH, 0.0, {}, probs.tolist(), speech)
        self.history.append(probs)
        smooth = np.mean(self.history, axis=0)
        label, confidence = answer(smooth, self.class_names, self.abstain)
        return Event(*seconds, label, confidence, dict(zip(self.class_names, smooth.tolist())), probs.tolist(),
                     speech)

    def _speech_share(self, start: int, end: int) -> float:
        frames = [p for s, p in self._speech if s >= start and s + vads.FRAME <= end]
        if not frames:  # a window shorter than a frame, or its frames still pending: judge by what overlaps
            frames = [p for s, p in self._speech if s < end and s + vads.FRAME > start]
        if not frames:
            return 1.0 if self.vad.name == "none" else 0.0
        return float(np.mean([p >= self.vad.threshold for p in frames]))

    def _drop_before(self, position: int) -> None:
        cut = position - self._offset
        if cut > 0:
            self._buffer, self._offset = self._buffer[cut:], position
        while self._speech and self._speech[0][0] + vads.FRAME <= position:
            self._speech.popleft()


def _mono(chunk) -> np.ndarray:
    a = np.asarray(chunk, dtype=np.float32)
    if a.ndim == 2:
        a = a.mean(axis=1) if a.shape[1] > 1 else a[:, 0]
    if a.ndim != 1:
        raise UserError(f"audio chunks are [samples] or [samples, channels], not shape {a.shape}")
    return a


__all__ = ["Engine", "Event", "NO_SPEECH", "UNCERTAIN"]
