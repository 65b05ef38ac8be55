"""Frozen-encoder features computed once: a 6-fold frozen sweep runs the encoder once, not six times.

In `frozen` mode the encoder is a fixed function of the clip, so its pooled per-layer features are
cached per (encoder weights, clips, crop): the corpus's decoded audio, plus its offline augmented
copies where there are any. Clips longer than `loader.max_seconds` are centre-cropped, as
evaluation crops them. Later runs and folds train only the layer weights and the head on the table.
Online augmentation changes the clips every epoch, so it bypasses the cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ser_bench.data.cache import cached_arrays
from ser_bench.data.datamodule import pad

log = logging.getLogger(__name__)

FEATURES_VERSION = 1


def cached_layer_features(net, waves: list[np.ndarray], clips_key: str, max_samples: int | None,
                          cache_dir: str | Path, batch_size: int = 16) -> list[np.ndarray]:
    """One flat [layers * hidden] float32 array per clip, made by `net.layer_features` once per key."""
    spec = {"v": FEATURES_VERSION, "encoder": net.weights_id(), "clips": clips_key, "max_samples": max_samples,
            "layers": len(net.layer_weights)}
    key = hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]

    def make() -> list[np.ndarray]:
        was_training = net.training
        net.eval()
        out = []
        try:
            with torch.inference_mode():
                for start in tqdm(range(0, len(waves), batch_size), desc="frozen encoder features", unit="batch",
                                  mininterval=1.0):
                    batch, lengths = pad([_centre(np.asarray(w), max_samples) for w in waves[start:start + batch_size]])
                    out += [f.flatten().numpy().astype(np.float32) for f in net.layer_features(batch, lengths)]
        finally:
            net.train(was_training)
        return out

    return cached_arrays(Path(cache_dir).expanduser() / "features" / key, make, spec)


def _centre(wave: np.ndarray, max_samples: int | None) -> np.ndarray:
    if max_samples and len(wave) > max_samples:
        start = (len(wave) - max_samples) // 2
        wave = wave[start:start + max_samples]
    return np.array(wave, dtype=np.float32)
