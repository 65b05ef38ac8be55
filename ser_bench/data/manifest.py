"""One row per utterance: what every corpus adapter produces and everything downstream reads."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

# RAVDESS emotion codes 01..08, in code order; index = label id.
EMOTIONS: tuple[str, ...] = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")


@dataclass(frozen=True)
class Utterance:
    """A labelled clip. `actor` identifies the speaker; splits are made on it."""

    path: Path
    utt_id: str
    corpus: str
    actor: int
    gender: str  # "male" | "female"
    emotion: str
    intensity: int = 1
    statement: int = 1
    repetition: int = 1

    def as_row(self) -> dict:
        row = asdict(self)
        row["path"] = str(self.path)
        return row


def actors_of(manifest: list[Utterance]) -> dict[int, str]:
    """Actor id -> gender, sorted by actor id."""
    return dict(sorted({u.actor: u.gender for u in manifest}.items()))


def label_ids(manifest: list[Utterance], class_names: tuple[str, ...]) -> list[int]:
    return [class_names.index(u.emotion) for u in manifest]
