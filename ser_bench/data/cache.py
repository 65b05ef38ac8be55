"""Decoded waveforms of a corpus, kept on disk so that later runs skip decoding.

One entry per (files, sample rate): the key hashes every file's path, size and modification
time, so an edited, added or removed file, or another sample rate, makes a new entry instead of
serving a stale one. An entry is one concatenated float32 array plus offsets, memory-mapped on load.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ser_bench.data.audio import SAMPLE_RATE, read_audio

log = logging.getLogger(__name__)

CACHE_VERSION = 1


def cache_key(paths: list[Path], sample_rate: int) -> str:
    h = hashlib.sha1(f"v{CACHE_VERSION}:{sample_rate}".encode())
    for p in paths:
        st = os.stat(p)
        h.update(f"\n{Path(p).resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def load_waveforms(paths: list[Path], cache_dir: str | Path, sample_rate: int = SAMPLE_RATE) -> list[np.ndarray]:
    """Mono waveforms at `sample_rate`, decoded once per key and memory-mapped afterwards."""
    entry = Path(cache_dir).expanduser() / "audio" / cache_key(paths, sample_rate)
    if not (entry / "offsets.npy").exists():
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}-", dir=entry.parent))
        try:
            waves = [read_audio(p, sample_rate) for p in tqdm(paths, desc="decoding audio", unit="file",
                                                                mininterval=1.0)]
            offsets = np.cumsum([0] + [len(w) for w in waves]).astype(np.int64)
            np.save(tmp / "audio.npy", np.concatenate(waves) if waves else np.zeros(0, np.float32))
            (tmp / "files.json").write_text(json.dumps([str(p) for p in paths]))
            np.save(tmp / "offsets.npy", offsets)  # written last: its presence marks a complete entry
            try:
                os.rename(tmp, entry)
            except OSError:
                if not (entry / "offsets.npy").exists():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        log.info("cached %d decoded files in %s", len(paths), entry)
    else:
        log.info("audio cache hit: %s", entry)
    audio = np.load(entry / "audio.npy", mmap_mode="r")
    offsets = np.load(entry / "offsets.npy")
    return [audio[offsets[i]:offsets[i + 1]] for i in range(len(paths))]
