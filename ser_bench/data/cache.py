"""Decoded waveforms of a corpus, kept on disk so that later runs skip decoding.

One entry per (files, sample rate): the key hashes every file's path, size and modification
time, so an edited, added or removed file, or another sample rate, makes a new entry instead of
serving a stale one. An entry is one concatenated float32 array plus offsets, memory-mapped on load; augmented
copies (ser_bench.augment.offline) are stored the same way.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from filelock import FileLock
from tqdm import tqdm

from ser_bench.data import integrity
from ser_bench.data.audio import SAMPLE_RATE, read_audio

log = logging.getLogger(__name__)

CACHE_VERSION = 3  # 2: files not at 16 kHz are resampled with soxr (was torchaudio); 3: non-finite samples refused
DECODE_THREADS = min(4, os.cpu_count() or 1)


def cache_key(paths: list[Path], sample_rate: int) -> str:
    """Hash of every file's fully resolved path, size and modification time, and the sample rate.

    Each folder is resolved once and each file costs one `lstat`; only a file that is itself a
    link is resolved on its own. Same result as `Path.resolve()` per file, about 10x faster for a
    corpus (a warm run computes this key before anything else).
    """
    h = hashlib.sha1(f"v{CACHE_VERSION}:{sample_rate}".encode())
    folders: dict[str, str] = {}
    for p in map(os.fspath, paths):
        st = os.lstat(p)
        if stat.S_ISLNK(st.st_mode):
            real, st = os.path.realpath(p), os.stat(p)
        else:
            folder, name = os.path.split(p)
            if folder not in folders:
                folders[folder] = os.path.realpath(folder or ".")
            real = os.path.join(folders[folder], name)
        h.update(f"\n{real}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def load_waveforms(paths: list[Path], cache_dir: str | Path, sample_rate: int = SAMPLE_RATE,
                   key: str | None = None) -> list[np.ndarray]:
    """Mono waveforms at `sample_rate`, decoded once per key and memory-mapped afterwards.
    `key`: `cache_key(paths, sample_rate)` where the caller already has it."""
    entry = Path(cache_dir).expanduser() / "audio" / (key or cache_key(paths, sample_rate))

    def decode() -> list[np.ndarray]:
        # Decoding (libsndfile) and resampling (torch) release the GIL: threads use every core.
        with ThreadPoolExecutor(max_workers=DECODE_THREADS) as pool:
            return list(tqdm(pool.map(lambda p: read_audio(p, sample_rate), paths), total=len(paths),
                             desc="decoding audio", unit="file", mininterval=1.0))

    return cached_arrays(entry, decode, {"files": [str(p) for p in paths]})


def cached_arrays(entry: Path, make: Callable[[], list[np.ndarray]], info: dict) -> list[np.ndarray]:
    """The 1-D float32 arrays stored in `entry`, made by `make()` first where the entry is missing.

    Parallel jobs asking for the same entry wait on a file lock, so the work is done once; the entry
    appears by an atomic rename, so a crash never leaves a half-written one. Every open checks the entry
    (`integrity`): a damaged one is set aside with a warning naming it and made again, never served.
    """
    entry.parent.mkdir(parents=True, exist_ok=True)
    try:
        audio, offsets = _open(entry)
    except FileNotFoundError:
        with FileLock(str(entry) + ".lock"):
            if not (entry / "offsets.npy").exists():
                _write(entry, make(), info)
                log.info("cached %s", entry)
        audio, offsets = _open(entry)
    except integrity.Damaged as why:
        log.warning("cache entry %s is damaged (%s): set aside and made again", entry, why)
        with FileLock(str(entry) + ".lock"):
            _set_aside(entry)
            _write(entry, make(), info)
        audio, offsets = _open(entry)
    else:
        log.info("cache hit: %s", entry)
    return [audio[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]


def _open(entry: Path) -> tuple[np.ndarray, np.ndarray]:
    """(data, offsets) of a complete entry that passes its checks; FileNotFoundError where there is none."""
    if not (entry / "offsets.npy").exists():
        raise FileNotFoundError(entry)
    try:
        info = json.loads((entry / "info.json").read_text())
    except (OSError, ValueError):
        raise integrity.Damaged("info.json is missing or unreadable") from None
    refresh = integrity.verify(entry, info)
    audio, offsets = integrity.structure(entry)
    if refresh:  # an entry from before the records, or copied: record it as it is now
        with FileLock(str(entry) + ".lock"):
            integrity.rewrite_info(entry, info)
    return audio, offsets


def _set_aside(entry: Path) -> None:
    if entry.exists():
        aside = entry.with_name(f".{entry.name}.damaged-{os.getpid()}")
        os.rename(entry, aside)
        shutil.rmtree(aside, ignore_errors=True)


def _write(entry: Path, arrays: list[np.ndarray], info: dict) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}-", dir=entry.parent))
    try:
        offsets = np.cumsum([0] + [len(a) for a in arrays]).astype(np.int64)
        np.save(tmp / "audio.npy", np.concatenate(arrays).astype(np.float32, copy=False) if arrays
                else np.zeros(0, np.float32))
        np.save(tmp / "offsets.npy", offsets)
        # Written last, with the files' checksums: a complete info.json marks a complete entry.
        (tmp / "info.json").write_text(json.dumps({**info, "integrity": integrity.record(tmp)}))
        try:
            os.rename(tmp, entry)
        except OSError:
            if not (entry / "offsets.npy").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
