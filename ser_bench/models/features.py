"""Features computed once per clip set and cached: log-mel for the CNNs, pooled layers for frozen encoders,
openSMILE functionals for the classic baselines.

Log-mel: the raw (unnormalised) log-mel of every clip, offline copies included, is made once per
(clips, frontend settings) and memory-mapped afterwards; runs crop, mask and normalise it per batch
as they did the waveform, so a run with a warm cache skips the STFT entirely. Each clip is
transformed alone, followed by silence (zeros), so its frames do not depend on which clips share
its batch. Online waveform augmentation changes the clips every epoch, so it bypasses the cache.

Frozen encoders: a 6-fold frozen sweep runs the encoder once, not six times.

In `frozen` mode the encoder is a fixed function of the clip, so its pooled per-layer features are
cached per (encoder weights, clips, crop; random weights by a digest of their values: the control runs'): the
corpus's decoded audio, plus its offline augmented copies where there are any. Clips longer than
`loader.max_seconds` are centre-cropped, as evaluation crops them. Later runs and folds train only the layer
weights and the head on the table.
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
from ser_bench.data.padding import pad

log = logging.getLogger(__name__)

FEATURES_VERSION = 1
LOG_MEL_VERSION = 1


def cached_log_mel(frontend, waves: list[np.ndarray], clips_key: str, cache_dir: str | Path,
                   batch_size: int = 32) -> list[np.ndarray]:
    """One [frames, n_mels] float32 array per clip: `frontend.raw`, made once per key (clips, settings)."""
    spec = {"v": LOG_MEL_VERSION, "clips": clips_key, "log_mel": frontend.settings()}
    key = hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    n_mels, tail = frontend.n_mels, frontend.mel.n_fft // 2

    def make() -> list[np.ndarray]:
        order = np.argsort([len(w) for w in waves], kind="stable")  # similar lengths share a batch: little padding
        out: list[np.ndarray | None] = [None] * len(waves)
        with torch.inference_mode():
            for start in tqdm(range(0, len(waves), batch_size), desc="log-mel features", unit="batch",
                              mininterval=1.0):
                rows = order[start:start + batch_size]
                batch, lengths = pad([np.concatenate([waves[r], np.zeros(tail, np.float32)]) for r in rows])
                feats, frames = frontend.raw(batch, lengths - tail)
                for r, f, n in zip(rows, feats, frames.tolist()):
                    out[r] = f[:, :n].T.contiguous().numpy().ravel()
        return out

    flat = cached_arrays(Path(cache_dir).expanduser() / "log_mel" / key, make, spec)
    return [f.reshape(-1, n_mels) for f in flat]


def speaker_normalised(table: list[np.ndarray], speakers: list[str]) -> list[np.ndarray]:
    """Raw [frames, n_mels] log-mel normalised per mel band with the mean and spread of every frame of
    the clip's speaker (`speakers[i]` for row i; offline copies pass their source clip's speaker).

    The statistics come from the first len(speakers) rows (the corpus's own clips, copies left out),
    all speakers' clips together, test speakers' too: their audio, never their labels. That makes a
    run that uses it transductive (see `frontends.LogMel`)."""
    n = len(speakers)
    if len(table) % n:
        raise ValueError(f"{len(table)} feature rows for {n} clips: not a whole number per clip")
    stats = {}
    for speaker in dict.fromkeys(speakers):
        frames = np.concatenate([np.asarray(table[i], dtype=np.float64) for i in range(n) if speakers[i] == speaker])
        stats[speaker] = (frames.mean(axis=0), frames.std(axis=0) + 1e-5)
    out = []
    for i, feats in enumerate(table):
        mean, std = stats[speakers[i % n]]
        out.append(((np.asarray(feats) - mean) / std).astype(np.float32))
    return out


def cached_layer_features(net, waves: list[np.ndarray], clips_key: str, max_samples: int | None,
                          cache_dir: str | Path, batch_size: int = 16) -> list[np.ndarray]:
    """One flat [layers * hidden] float32 array per clip, made by `net.layer_features` once per key."""
    spec = {"v": FEATURES_VERSION, "encoder": net.features_id(), "clips": clips_key, "max_samples": max_samples,
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


def cached_functionals(functionals, waves: list[np.ndarray], clips_key: str, max_samples: int | None,
                       cache_dir: str | Path) -> list[np.ndarray]:
    """One [features] float32 array per clip: openSMILE's functionals (`models.classic`), made once per key (clips,
    feature set and openSMILE version, crop). Clips longer than `max_samples` are centre-cropped, as evaluation
    crops them."""
    spec = {"v": FEATURES_VERSION, "functionals": functionals.settings(), "clips": clips_key,
            "max_samples": max_samples}
    key = hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]

    def make() -> list[np.ndarray]:
        return [functionals.clip(_centre(np.asarray(w), max_samples))
                for w in tqdm(waves, desc=f"openSMILE {functionals.feature_set}", unit="clip", mininterval=1.0)]

    return cached_arrays(Path(cache_dir).expanduser() / "functionals" / key, make, spec)


def _centre(wave: np.ndarray, max_samples: int | None) -> np.ndarray:
    if max_samples and len(wave) > max_samples:
        start = (len(wave) - max_samples) // 2
        wave = wave[start:start + max_samples]
    return np.array(wave, dtype=np.float32)
