"""What every corpus adapter shares: finding the audio under a root, and the checks on the result."""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from ser_bench.data.manifest import Utterance, speaker_order
from ser_bench.errors import UserError

log = logging.getLogger(__name__)

# Audio is decoded by content (soundfile), whatever the suffix says; these only pick the files.
AUDIO_SUFFIXES = (".wav", ".flac")


def walk(root: Path) -> list[Path]:
    """Every file under `root`, through symbolic links to folders and files (a corpus assembled from links reads
    as the corpus); a link back to a folder already walked is not walked twice."""
    seen, out = set(), []
    for folder, dirs, names in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs.sort()
        out.extend(Path(folder) / name for name in names)
    return out


def audio_files(root: str | Path, corpus: str, layout: str) -> list[Path]:
    """Every .wav / .flac file under `root`, sorted; `layout` describes what was expected, for errors."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise UserError(f"data.root={root} is not a folder; point it at the {corpus} folder ({layout})")
    files = sorted(p for p in walk(root)
                   if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file() and not p.name.startswith("."))
    if not files:
        raise UserError(f"data.root={root} holds no .wav or .flac files; expected {layout}")
    return files


def scan(root: str | Path, corpus: str, layout: str, parse: Callable[[Path, str], Utterance]) -> list[Utterance]:
    """Manifest of a corpus: `parse(path, corpus)` reads one file's name (a UserError naming it if it cannot)."""
    manifest = [parse(path, corpus) for path in audio_files(root, corpus, layout)]
    return checked(manifest, f"data.root={Path(root).expanduser()}", corpus)


def checked(manifest: list[Utterance], where: str, corpus: str) -> list[Utterance]:
    """One utterance per id, sorted by speaker and id, and a log line saying what was found."""
    dup = sorted(i for i, n in Counter(u.utt_id for u in manifest).items() if n > 1)
    if dup:
        raise UserError(f"{where} holds the same utterance twice (e.g. {dup[:3]}); keep one copy (.wav or .flac)")
    manifest.sort(key=lambda u: (speaker_order(u.actor), u.utt_id))
    log.info("%s: %d utterances from %d speakers (%s)", corpus, len(manifest), len({u.actor for u in manifest}),
             where)
    return manifest
