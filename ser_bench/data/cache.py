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

from ser_bench.data.audio import SAMPLE_RATE, read_audio

log = logging.getLogger(__name__)

CACHE_VERSION = 2  # 2: files not at 16 kHz are resampled with soxr (was torchaudio)
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
    appears by an atomic rename, so a crash never leaves a half-written one.
    """
    if not (entry / "offsets.npy").exists():
        entry.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(entry) + ".lock"):
            if not (entry / "offsets.npy").exists():
                _write(entry, make(), info)
                log.info("cached %s", entry)
    else:
        log.info("cache hit: %s", entry)
    audio = np.load(entry / "audio.npy", mmap_mode="r")
    offsets = np.load(entry / "offsets.npy")
    return [audio[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]


def _write(entry: Path, arrays: list[np.ndarray], info: dict) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}-", dir=entry.parent))
    try:
        offsets = np.cumsum([0] + [len(a) for a in arrays]).astype(np.int64)
        np.save(tmp / "audio.npy", np.concatenate(arrays).astype(np.float32, copy=False) if arrays
                else np.zeros(0, np.float32))
        (tmp / "info.json").write_text(json.dumps(info))
        np.save(tmp / "offsets.npy", offsets)  # written last: its presence marks a complete entry
        try:
            os.rename(tmp, entry)
        except OSError:
            if not (entry / "offsets.npy").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
