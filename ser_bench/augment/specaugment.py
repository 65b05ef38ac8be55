"""SpecAugment (Park et al., 2019): time and frequency masks on the log-mel features, training only.

It acts on a batch of features inside the model, after the frontend, so it is always applied fresh
each step (never stored as offline copies). Masked cells take the value 0, the mean of the
utterance-normalised log-mel.
"""

from __future__ import annotations

import torch


class SpecAugment:
    kind = "spec"

    def __init__(self, time_masks: int = 2, time_width: int = 40, freq_masks: int = 2, freq_width: int = 8,
                 p: float = 1.0):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"SpecAugment: p must lie within [0, 1], not {p}")
        if min(time_masks, time_width, freq_masks, freq_width) < 0:
            raise ValueError("SpecAugment: mask counts and widths must be >= 0")
        self.time_masks, self.time_width = int(time_masks), int(time_width)
        self.freq_masks, self.freq_width = int(freq_masks), int(freq_width)
        self.p = float(p)

    @staticmethod
    def _masks(n: int, width: int, extent: torch.Tensor, size: int) -> torch.Tensor:
        """[B, size] boolean: `n` bands of random width <= `width`, each inside [0, extent[b])."""
        b = len(extent)
        mask = torch.zeros(b, size, dtype=torch.bool, device=extent.device)
        pos = torch.arange(size, device=extent.device)
        for _ in range(n):
            w = (torch.rand(b, device=extent.device) * (width + 1)).long().minimum(extent)
            start = (torch.rand(b, device=extent.device) * (extent - w + 1)).long()
            mask |= (pos >= start[:, None]) & (pos < (start + w)[:, None])
        return mask

    def __call__(self, feats: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """feats [B, n_mels, F] (or [B, C, n_mels, F]) with valid frame counts `frames` [B]."""
        b, n_mels, n_frames = feats.shape[0], feats.shape[-2], feats.shape[-1]
        keep = torch.rand(b, device=feats.device) < self.p
        t = self._masks(self.time_masks, self.time_width, frames.to(feats.device), n_frames)
        f = self._masks(self.freq_masks, self.freq_width, torch.full((b,), n_mels, device=feats.device), n_mels)
        mask = (t[:, None, :] | f[:, :, None]) & keep[:, None, None]
        if feats.dim() == 4:
            mask = mask[:, None]
        return feats.masked_fill(mask, 0.0)

    def describe(self) -> dict:
        return {"type": "SpecAugment", **vars(self)}

    def __repr__(self) -> str:
        return f"SpecAugment({', '.join(f'{k}={v}' for k, v in vars(self).items())})"
