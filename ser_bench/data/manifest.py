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
    actor: int | str  # the corpus's own speaker id (RAVDESS 12, TESS "OAF")
    gender: str  # "male" | "female" | "unknown"
    emotion: str
    intensity: int = 1
    statement: int = 1
    repetition: int = 1

    def as_row(self) -> dict:
        row = asdict(self)
        row["path"] = str(self.path)
        return row


    @property
    def speaker(self) -> str:
        """The speaker across corpora: `corpus:actor` (actor ids repeat between corpora)."""
        return f"{self.corpus}:{self.actor}"


def speaker_order(actor: int | str) -> str:
    """Sort key for speaker ids: numbers in numeric order (2 before 11), names alphabetically."""
    return str(actor).zfill(8)


def actors_of(manifest: list[Utterance]) -> dict:
    """Actor id -> gender, sorted by actor id."""
    return dict(sorted({u.actor: u.gender for u in manifest}.items(), key=lambda kv: speaker_order(kv[0])))


def label_ids(manifest: list[Utterance], class_names: tuple[str, ...]) -> list[int]:
    return [class_names.index(u.emotion) for u in manifest]


def concat(parts: dict[str, list[Utterance]], corpus: str = "mix") -> list[Utterance]:
    """Several corpora as one manifest (`data=mix`); each utterance keeps its own corpus name."""
    from ser_bench.errors import UserError

    if not parts:
        raise UserError("data=mix has no parts: add corpora with "
                        "+data@data.parts.NAME=CORPUS data.parts.NAME.root=PATH")
    out = [u for part in parts.values() for u in part]
    ids = [f"{u.corpus}/{u.utt_id}" for u in out]
    if len(set(ids)) != len(ids):
        raise UserError("data=mix holds the same corpus twice; list each corpus once")
    return out
