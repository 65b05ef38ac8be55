"""EmoBox-format metadata (`data=manifest`): any of EmoBox's 32 corpora with its official folds.

EmoBox publishes, per corpus, `data/NAME/NAME.jsonl` (one record per clip: `key`, `wav`, `emo`,
`length`, `sample_rate`, `channel`, ...), `label_map.json` (emotion code -> name) and
`fold_K/NAME_train_fold_K.jsonl` / `NAME_test_fold_K.jsonl`. `wav` paths are relative to where the
user keeps the audio (`data.root`).

Speakers are not in the records. They are read from the file name where ser_bench has an adapter
for the corpus (ravdess, tess, emodb, cremad, savee), else with `data.speaker_pattern` (a regex on
the key; its first group is the speaker), else left unknown.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from ser_bench.data import corpora, files, ravdess
from ser_bench.data.labels import canonical
from ser_bench.data.manifest import Utterance
from ser_bench.errors import UserError

UNKNOWN = "unknown"
REQUIRED = ("key", "wav", "emo")
# Adapters whose file-name parser gives the speaker (and gender) of a clip of that corpus.
PARSERS = {"ravdess": ravdess._utterance, "tess": corpora._tess, "emodb": corpora._emodb,
           "cremad": corpora._cremad, "savee": corpora._savee}


def read_jsonl(path: Path) -> list[dict]:
    records = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise UserError(f"{path} line {n} is not JSON ({err.msg})") from None
            lacking = [k for k in REQUIRED if k not in record]
            if lacking:
                raise UserError(f"{path} line {n} lacks {', '.join(lacking)} (EmoBox records have key, wav, emo, "
                                f"length, sample_rate, channel)")
            records.append(record)
    return records


def _metadata_dir(metadata: str | Path) -> Path:
    folder = Path(metadata).expanduser()
    if not folder.is_dir():
        raise UserError(f"data.metadata={folder} is not a folder; point it at EmoBox's data/NAME folder "
                        f"(NAME.jsonl, label_map.json, fold_1/ ...)")
    return folder


def inside(root: Path, wav: str, allow_outside: bool) -> Path:
    """`wav` (relative to `root`, or absolute) as a path; one that leads out of `root` (`..`, an absolute path
    elsewhere) is refused unless `allow_outside`. Judged on the path as written, so links inside the root to
    audio kept elsewhere still work."""
    path = Path(os.path.normpath(root / Path(wav).expanduser()))
    if not allow_outside and not path.is_relative_to(Path(os.path.normpath(root))):
        raise UserError(f"a record's wav path {wav!r} leads outside data.root={root}: refused (set "
                        f"data.allow_outside_root=true if the manifest is meant to point there)")
    return path


def load(metadata: str | Path, root: str | Path, corpus: str | None = None,
         speaker_pattern: str | None = None, allow_outside_root: bool = False) -> list[Utterance]:
    """Manifest from EmoBox's `NAME.jsonl`, audio under `root`; corpus defaults to the folder name."""
    folder = _metadata_dir(metadata)
    name = folder.name
    table = folder / f"{name}.jsonl"
    if not table.is_file():
        raise UserError(f"data.metadata={folder} has no {name}.jsonl (EmoBox keeps one per corpus folder)")
    label_map = {}
    if (folder / "label_map.json").is_file():
        label_map = {str(k): str(v) for k, v in json.loads((folder / "label_map.json").read_text()).items()}
    audio_root = Path(root).expanduser()
    if not audio_root.is_dir():
        raise UserError(f"data.root={audio_root} is not a folder; point it at where the records' wav paths start")
    corpus = corpus or name
    pattern = re.compile(speaker_pattern) if speaker_pattern else None
    parse = PARSERS.get(name)
    manifest, missing = [], []
    for record in read_jsonl(table):
        path = inside(audio_root, str(record["wav"]), allow_outside_root)
        if not path.is_file():
            missing.append(str(path))
            continue
        actor, gender = _speaker(record["key"], path, name, parse, pattern)
        emo = str(record["emo"])
        manifest.append(Utterance(path=path, utt_id=str(record["key"]), corpus=corpus, actor=actor, gender=gender,
                                  emotion=canonical(label_map.get(emo, emo))))
    if missing:
        raise UserError(f"{len(missing)} of the clips {table} lists are not under data.root={audio_root} "
                        f"(e.g. {missing[0]}); fetch the corpus or fix data.root")
    return files.checked(manifest, str(table), corpus)


def _speaker(key: str, path: Path, name: str, parse, pattern: re.Pattern | None) -> tuple[int | str, str]:
    if pattern is not None:
        m = pattern.search(key)
        if m is None or not m.groups():
            raise UserError(f"data.speaker_pattern={pattern.pattern} finds no speaker group in key {key}")
        speaker = m.group(1)
        return (int(speaker) if speaker.isdigit() else speaker), UNKNOWN
    if parse is not None:
        try:
            u = parse(path, name)
            return u.actor, u.gender
        except UserError:
            pass
    return UNKNOWN, UNKNOWN


def fold_files(metadata: str | Path) -> list[tuple[Path, Path]]:
    """(train, test) jsonl per fold, in fold order (fold_1 first)."""
    folder = _metadata_dir(metadata)
    numbered = sorted((int(m.group(1)), p) for p in folder.iterdir()
                      if p.is_dir() and (m := re.fullmatch(r"fold_(\d+)", p.name)))
    out = []
    for k, fold_dir in numbered:
        train = sorted(fold_dir.glob(f"*_train_fold_{k}.jsonl"))
        test = sorted(fold_dir.glob(f"*_test_fold_{k}.jsonl"))
        if len(train) != 1 or len(test) != 1:
            raise UserError(f"{fold_dir} must hold one *_train_fold_{k}.jsonl and one *_test_fold_{k}.jsonl")
        out.append((train[0], test[0]))
    if not out:
        raise UserError(f"data.metadata={folder} has no fold_K folders; EmoBox's folds are "
                        f"fold_1/NAME_train_fold_1.jsonl ...")
    return out


def keys(path: Path) -> list[str]:
    return [str(r["key"]) for r in read_jsonl(path)]
