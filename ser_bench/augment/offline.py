"""Offline augmentation: K augmented copies of every clip of a corpus, made once and cached by content.

The key covers the decoded audio's own cache key and everything that shapes the copies (transforms
with their settings, number of copies, seed), so every run and every fold that asks for the same
copies reads the same entry. Copies are made for every clip, test clips included, so that one
entry serves all folds; only training rows ever read them.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ser_bench.augment import Augmentation
from ser_bench.data.cache import cached_arrays

log = logging.getLogger(__name__)

OFFLINE_VERSION = 1


def offline_key(audio_key: str, augmentation: Augmentation) -> str:
    spec = json.dumps({"v": OFFLINE_VERSION, "audio": audio_key, **augmentation.describe()}, sort_keys=True)
    return hashlib.sha1(spec.encode()).hexdigest()[:16]


def make_copies(waves: list[np.ndarray], augmentation: Augmentation) -> list[np.ndarray]:
    """Copy k of clip i is drawn from the stream (seed, i, k), whatever else runs in the process.

    One torch thread: per-clip FFTs and resampling are too small to share, and a second thread only
    spins (3x slower per clip measured on 2 busy cores).
    """
    out = []
    total = augmentation.copies * len(waves)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode(), tqdm(total=total, desc=f"augmenting ({augmentation.name})", unit="clip",
                                          mininterval=1.0) as bar:
            for k in range(augmentation.copies):
                for i, wave in enumerate(waves):
                    copy = augmentation(torch.from_numpy(np.array(wave, dtype=np.float32)),
                                        augmentation.generator(i, k))
                    out.append(copy.numpy().astype(np.float32, copy=False))
                    bar.update()
    finally:
        torch.set_num_threads(threads)
    return out


def offline_copies(waves: list[np.ndarray], audio_key: str, augmentation: Augmentation,
                   cache_dir: str | Path) -> list[np.ndarray]:
    """`copies * len(waves)` arrays: all clips' copy 0, then all clips' copy 1, ..."""
    entry = Path(cache_dir).expanduser() / "augment" / offline_key(audio_key, augmentation)
    return cached_arrays(entry, lambda: make_copies(waves, augmentation),
                         {"audio": audio_key, "augment": augmentation.name, **augmentation.describe()})
