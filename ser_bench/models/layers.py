"""Small pieces shared by backbones: length masks and masked pooling over time."""

from __future__ import annotations

import torch


def lengths_to_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """[B, max_len] bool, True on valid positions."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def pooled_lengths(lengths: torch.Tensor, n_pools: int, max_len: int) -> torch.Tensor:
    """Valid lengths after `n_pools` stride-2 poolings (floor), at least one frame."""
    return (lengths // (2 ** n_pools)).clamp(min=1, max=max_len)


def masked_mean_std(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """[B, C, T] -> [B, 2C]: mean and standard deviation over valid time steps only."""
    mask = lengths_to_mask(lengths, x.shape[-1]).unsqueeze(1).to(x.dtype)
    count = mask.sum(-1).clamp(min=1)
    mean = (x * mask).sum(-1) / count
    var = (((x - mean.unsqueeze(-1)) * mask) ** 2).sum(-1) / count
    return torch.cat([mean, (var + 1e-5).sqrt()], dim=1)
