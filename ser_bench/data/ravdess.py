"""RAVDESS adapter: the official `ROOT/Actor_NN/MM-VV-EE-II-SS-RR-AA.wav` layout (also `.flac`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ser_bench.data import files
from ser_bench.data.manifest import EMOTIONS, Utterance
from ser_bench.errors import UserError

MODALITIES = {1: "full-AV", 2: "video-only", 3: "audio-only"}
CHANNELS = {1: "speech", 2: "song"}
_NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")


@dataclass(frozen=True)
class RavdessName:
    """The seven fields of a RAVDESS file name."""

    modality: int
    channel: int
    emotion: int
    intensity: int
    statement: int
    repetition: int
    actor: int

    @property
    def emotion_name(self) -> str:
        return EMOTIONS[self.emotion - 1]

    @property
    def gender(self) -> str:
        return "male" if self.actor % 2 == 1 else "female"

    def stem(self) -> str:
        fields = (self.modality, self.channel, self.emotion, self.intensity, self.statement,
                  self.repetition, self.actor)
        return "-".join(f"{v:02d}" for v in fields)


def parse_name(path: Path | str) -> RavdessName:
    """Parse a RAVDESS file name; anything else is a UserError naming the file."""
    path = Path(path)
    m = _NAME.match(path.stem)
    if m is None:
        raise UserError(f"file name {path} is not a RAVDESS name (MM-VV-EE-II-SS-RR-AA, e.g. 03-01-05-02-01-02-12)")
    name = RavdessName(*(int(g) for g in m.groups()))
    problems = []
    if name.modality not in MODALITIES:
        problems.append(f"modality {name.modality:02d} not in 01-03")
    if name.channel not in CHANNELS:
        problems.append(f"vocal channel {name.channel:02d} not in 01-02")
    if not 1 <= name.emotion <= len(EMOTIONS):
        problems.append(f"emotion {name.emotion:02d} not in 01-08")
    if name.intensity not in (1, 2):
        problems.append(f"intensity {name.intensity:02d} not in 01-02")
    elif name.emotion == 1 and name.intensity == 2:
        problems.append("neutral has no strong intensity")
    if name.statement not in (1, 2):
        problems.append(f"statement {name.statement:02d} not in 01-02")
    if name.repetition not in (1, 2):
        problems.append(f"repetition {name.repetition:02d} not in 01-02")
    if not 1 <= name.actor <= 24:
        problems.append(f"actor {name.actor:02d} not in 01-24")
    if problems:
        raise UserError(f"file name {path} does not parse as RAVDESS: {'; '.join(problems)}")
    return name


def scan(root: str | Path, corpus: str = "ravdess") -> list[Utterance]:
    """Manifest of every audio file under `root` (Actor_NN folders), sorted by actor and name."""
    return files.scan(root, corpus, "Actor_01 ... Actor_24 holding MM-VV-EE-II-SS-RR-AA.wav", _utterance)


def _utterance(path: Path, corpus: str) -> Utterance:
    name = parse_name(path)
    folder = re.fullmatch(r"Actor_(\d+)", path.parent.name)
    if folder and int(folder.group(1)) != name.actor:
        raise UserError(f"file {path} names actor {name.actor:02d} but lies in folder {path.parent.name}")
    return Utterance(path=path, utt_id=path.stem, corpus=corpus, actor=name.actor, gender=name.gender,
                     emotion=name.emotion_name, intensity=name.intensity, statement=name.statement,
                     repetition=name.repetition)
