"""Clips of different lengths as one zero-padded batch (training, the caches and inference share it)."""

from __future__ import annotations

import numpy as np
import torch


def pad(waves) -> tuple[torch.Tensor, torch.Tensor]:
    """Clips (tensors or arrays, memory-mapped ones too) zero-padded to the longest along the first axis:
    ([B, T, ...], lengths [B]). Waveforms are 1-D; cached log-mel features are [frames, n_mels]."""
    lengths = torch.tensor([len(w) for w in waves])
    padded = torch.zeros(len(waves), int(lengths.max()), *np.shape(waves[0])[1:])
    for i, w in enumerate(waves):
        padded[i, : len(w)] = w if torch.is_tensor(w) else torch.from_numpy(np.array(w, dtype=np.float32))
    return padded, lengths
