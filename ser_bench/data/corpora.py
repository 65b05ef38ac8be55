"""Adapters for corpora as distributed: TESS, EmoDB, CREMA-D and SAVEE (RAVDESS has its own module).

Each reads speaker and emotion from the corpus's own file naming; audio is decoded by content, so a
`.wav` name holding another container still reads. Emotions use the shared names of
`ser_bench.data.labels` (e.g. EmoDB's W is `angry`); each corpus keeps its own set of them.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from ser_bench.data import files
from ser_bench.data.manifest import Utterance
from ser_bench.errors import UserError


def _bad(path: Path, corpus: str, pattern: str, why: str = "") -> UserError:
    return UserError(f"file name {path} is not a {corpus} name ({pattern}){': ' + why if why else ''}")


# --- TESS: OAF_back_angry.wav, YAF_bath_ps.wav (two female speakers, older and younger).
TESS_EMOTIONS = {"angry": "angry", "disgust": "disgust", "fear": "fearful", "happy": "happy", "neutral": "neutral",
                 "ps": "surprised", "sad": "sad"}  # ps: pleasant surprise
_TESS = re.compile(r"^(OAF|YAF|OA|YA)_(.+)_([a-z]+)$", re.IGNORECASE)


def _tess(path: Path, corpus: str) -> Utterance:
    m = _TESS.match(path.stem)
    pattern = "SPEAKER_WORD_EMOTION, e.g. OAF_back_angry.wav"
    if m is None:
        raise _bad(path, corpus, pattern)
    speaker = m.group(1).upper()
    speaker = {"OA": "OAF", "YA": "YAF"}.get(speaker, speaker)  # a few files drop the F
    emotion = m.group(3).lower()
    if emotion not in TESS_EMOTIONS:
        raise _bad(path, corpus, pattern, f"emotion '{m.group(3)}' not in {', '.join(TESS_EMOTIONS)}")
    return Utterance(path=path, utt_id=f"{speaker}_{m.group(2).lower()}_{emotion}", corpus=corpus, actor=speaker,
                     gender="female", emotion=TESS_EMOTIONS[emotion])


def tess(root: str | Path, corpus: str = "tess") -> list[Utterance]:
    """Toronto emotional speech set: 2 speakers x 200 words x 7 emotions (file name trusted, not folder)."""
    return files.scan(root, corpus, "folders such as OAF_angry holding OAF_back_angry.wav", _tess)


# --- EmoDB: 03a01Fa.wav = speaker 03, text a01, emotion F, version a.
EMODB_SPEAKERS = {3: "male", 8: "female", 9: "female", 10: "male", 11: "male", 12: "male", 13: "female",
                  14: "female", 15: "male", 16: "female"}
EMODB_TEXTS = ("a01", "a02", "a04", "a05", "a07", "b01", "b02", "b03", "b09", "b10")
EMODB_EMOTIONS = {"W": "angry", "L": "boredom", "E": "disgust", "A": "fearful", "F": "happy", "T": "sad",
                  "N": "neutral"}
_EMODB = re.compile(r"^(\d\d)([ab]\d\d)([A-Z])([a-z])$")


def _emodb(path: Path, corpus: str) -> Utterance:
    m = _EMODB.match(path.stem)
    pattern = "SStttEv, e.g. 03a01Fa.wav"
    if m is None:
        raise _bad(path, corpus, pattern)
    speaker, text, emotion, version = int(m.group(1)), m.group(2), m.group(3), m.group(4)
    problems = []
    if speaker not in EMODB_SPEAKERS:
        problems.append(f"speaker {speaker:02d} not in {' '.join(f'{s:02d}' for s in EMODB_SPEAKERS)}")
    if text not in EMODB_TEXTS:
        problems.append(f"text {text} not in {' '.join(EMODB_TEXTS)}")
    if emotion not in EMODB_EMOTIONS:
        problems.append(f"emotion {emotion} not in {''.join(EMODB_EMOTIONS)}")
    if version not in "abcdef":
        problems.append(f"version {version} not in a-f")
    if problems:
        raise _bad(path, corpus, pattern, "; ".join(problems))
    return Utterance(path=path, utt_id=path.stem, corpus=corpus, actor=speaker, gender=EMODB_SPEAKERS[speaker],
                     emotion=EMODB_EMOTIONS[emotion], statement=EMODB_TEXTS.index(text) + 1,
                     repetition="abcdef".index(version) + 1)


def emodb(root: str | Path, corpus: str = "emodb") -> list[Utterance]:
    """Berlin EmoDB: 10 speakers, 10 texts, 7 emotions (535 files as released)."""
    return files.scan(root, corpus, "wav/03a01Fa.wav style files", _emodb)


# --- CREMA-D: 1001_DFA_ANG_XX.wav = actor, sentence, emotion, level.
CREMAD_SENTENCES = ("IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI")
CREMAD_EMOTIONS = {"ANG": "angry", "DIS": "disgust", "FEA": "fearful", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
CREMAD_LEVELS = {"XX": 0, "LO": 1, "MD": 2, "HI": 3}  # XX: unspecified
_CREMAD = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")


def _cremad_genders(root: Path) -> dict[int, str]:
    """Actor -> gender from CREMA-D's VideoDemographics.csv where it lies under the root; else nothing."""
    for table in sorted(p for p in files.walk(root) if p.name == "VideoDemographics.csv"):
        with open(table, newline="") as f:
            return {int(row["ActorID"]): row["Sex"].strip().lower() for row in csv.DictReader(f)
                    if row.get("ActorID", "").strip().isdigit()}
    return {}


def _cremad(path: Path, corpus: str, genders: dict[int, str] | None = None) -> Utterance:
    m = _CREMAD.match(path.stem)
    pattern = "AAAA_SSS_EEE_LL, e.g. 1001_DFA_ANG_XX.wav"
    if m is None:
        raise _bad(path, corpus, pattern)
    actor, sentence, emotion, level = int(m.group(1)), m.group(2), m.group(3), m.group(4)
    problems = []
    if not 1001 <= actor <= 1091:
        problems.append(f"actor {actor} not in 1001-1091")
    if sentence not in CREMAD_SENTENCES:
        problems.append(f"sentence {sentence} not in {' '.join(CREMAD_SENTENCES)}")
    if emotion not in CREMAD_EMOTIONS:
        problems.append(f"emotion {emotion} not in {' '.join(CREMAD_EMOTIONS)}")
    if level not in CREMAD_LEVELS:
        problems.append(f"level {level} not in {' '.join(CREMAD_LEVELS)}")
    if problems:
        raise _bad(path, corpus, pattern, "; ".join(problems))
    return Utterance(path=path, utt_id=path.stem, corpus=corpus, actor=actor,
                     gender=(genders or {}).get(actor, "unknown"), emotion=CREMAD_EMOTIONS[emotion],
                     intensity=CREMAD_LEVELS[level], statement=CREMAD_SENTENCES.index(sentence) + 1)


def cremad(root: str | Path, corpus: str = "cremad") -> list[Utterance]:
    """CREMA-D: actors 1001-1091, 12 sentences, 6 emotions at up to 4 levels.

    Genders come from VideoDemographics.csv when it lies under the root (as released); without it
    they are `unknown` and validation speakers are drawn without balancing gender.
    """
    folder = Path(root).expanduser()
    genders = _cremad_genders(folder) if folder.is_dir() else {}
    return files.scan(root, corpus, "AudioWAV/1001_DFA_ANG_XX.wav style files",
                      lambda path, corpus: _cremad(path, corpus, genders))


# --- SAVEE: DC/a01.wav or DC_a01.wav = speaker DC, emotion a (anger), sentence 01. Four male speakers.
SAVEE_SPEAKERS = ("DC", "JE", "JK", "KL")
SAVEE_EMOTIONS = {"a": "angry", "d": "disgust", "f": "fearful", "h": "happy", "n": "neutral", "sa": "sad",
                  "su": "surprised"}
_SAVEE = re.compile(r"^(?:([A-Z]{2})_)?(sa|su|[a-z])(\d\d)$")


def _savee(path: Path, corpus: str) -> Utterance:
    m = _SAVEE.match(path.stem)
    pattern = "SPEAKER/EMNN.wav or SPEAKER_EMNN.wav, e.g. DC/a01.wav or DC_sa03.wav"
    if m is None:
        raise _bad(path, corpus, pattern)
    speaker = m.group(1) or path.parent.name
    problems = []
    if speaker not in SAVEE_SPEAKERS:
        problems.append(f"speaker '{speaker}' not in {' '.join(SAVEE_SPEAKERS)}")
    if m.group(2) not in SAVEE_EMOTIONS:
        problems.append(f"emotion '{m.group(2)}' not in {' '.join(SAVEE_EMOTIONS)}")
    if problems:
        raise _bad(path, corpus, pattern, "; ".join(problems))
    stem = f"{m.group(2)}{m.group(3)}"
    return Utterance(path=path, utt_id=f"{speaker}_{stem}", corpus=corpus, actor=speaker, gender="male",
                     emotion=SAVEE_EMOTIONS[m.group(2)], statement=int(m.group(3)))


def savee(root: str | Path, corpus: str = "savee") -> list[Utterance]:
    """Surrey Audio-Visual Expressed Emotion: 4 male speakers, 7 emotions."""
    return files.scan(root, corpus, "DC/a01.wav or DC_a01.wav style files", _savee)
