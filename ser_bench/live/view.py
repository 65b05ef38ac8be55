"""The terminal view: a small panel redrawn in place on a terminal (current emotion, confidence, per-class bars,
a short history), one line per update otherwise (a pipe, a log file)."""

from __future__ import annotations

import sys
from collections import deque

from ser_bench.live.engine import NO_SPEECH, Event

BAR = 24
SHORT = {NO_SPEECH: "·", "uncertain": "?"}


class Screen:
    def __init__(self, class_names: list[str], card: str, live: bool, stream=sys.stdout, history: int = 24):
        self.class_names, self.card, self.live, self.stream = class_names, card, live, stream
        self.history: deque[str] = deque(maxlen=history)
        self._lines = 0
        print(card, file=stream, flush=True)

    def show(self, e: Event) -> None:
        self.history.append(SHORT.get(e.label, e.label[:3]))
        if not self.live:
            probs = " ".join(f"{c}={e.probabilities[c]:.2f}" for c in self.class_names) if e.probabilities else ""
            print(f"{e.start:7.1f}-{e.end:6.1f} s  {e.label:<10} {e.confidence:4.2f}  {probs}", file=self.stream,
                  flush=True)
            return
        lines = [f"{e.end:7.1f} s   {e.label.upper():<12} confidence {e.confidence:4.2f}   speech {e.speech:4.2f}"]
        for c in self.class_names:
            p = e.probabilities.get(c, 0.0)
            lines.append(f"  {c:<10} {'█' * int(round(p * BAR)):<{BAR}} {p:4.2f}")
        lines.append("  history: " + " ".join(self.history))
        if self._lines:
            self.stream.write(f"\x1b[{self._lines}F\x1b[J")  # up to the panel's first line, clear below
        self.stream.write("\n".join(lines) + "\n")
        self.stream.flush()
        self._lines = len(lines)

    def close(self) -> None:
        self.stream.flush()
