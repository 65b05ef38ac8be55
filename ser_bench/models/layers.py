"""Small pieces shared by backbones: length masks and masked pooling over time."""

from __future__ import annotations

import torch
from torch import nn


def lengths_to_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """[B, max_len] bool, True on valid positions."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def zero_padding(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """`x` [B, ..., T] with the steps past each clip's length (last axis) set to zero."""
    mask = lengths_to_mask(lengths, x.shape[-1]).to(x.dtype)
    return x * mask.view(mask.shape[0], *([1] * (x.dim() - 2)), mask.shape[1])


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


class AttentiveStats(nn.Module):
    """Attentive statistics pooling (Okabe et al., 2018): [B, C, T] -> [B, 2C], a weighted mean and
    standard deviation over valid time steps, with weights from a small network over each frame."""

    def __init__(self, channels: int, hidden: int = 128):
        super().__init__()
        self.score = nn.Sequential(nn.Conv1d(channels, hidden, 1), nn.Tanh(), nn.Conv1d(hidden, 1, 1))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = lengths_to_mask(lengths, x.shape[-1]).unsqueeze(1)
        weights = self.score(x).masked_fill(~mask, float("-inf")).softmax(dim=-1)
        mean = (x * weights).sum(-1)
        var = ((x - mean.unsqueeze(-1)) ** 2 * weights).sum(-1)
        return torch.cat([mean, (var + 1e-5).sqrt()], dim=1)


class StatsPool(nn.Module):
    """Plain masked mean and standard deviation over time (`masked_mean_std` as a module)."""

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return masked_mean_std(x, lengths)


def pooling(kind: str, channels: int) -> nn.Module:
    """`stats`: mean and std over time; `attentive`: the same, weighted by learned frame scores."""
    if kind == "stats":
        return StatsPool()
    if kind == "attentive":
        return AttentiveStats(channels)
    raise ValueError(f"pooling must be 'stats' or 'attentive', not {kind!r}")


def conv_block_1d(c_in: int, c_out: int, kernel_size: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(c_in, c_out, kernel_size, padding=kernel_size // 2, bias=False),
                         nn.BatchNorm1d(c_out), nn.ReLU(inplace=True), nn.MaxPool1d(2))


def conv_block_2d(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True), nn.MaxPool2d(2))


def run_masked(blocks: nn.ModuleList, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply stride-2 blocks over time (last axis), zeroing padded steps after each one.

    Re-zeroing keeps padding from leaking into valid frames through the next convolution, so a
    clip scores (nearly) the same alone or padded in a batch.
    """
    shortfall = 2 ** len(blocks) - x.shape[-1]
    if shortfall > 0:  # very short clips: enough (masked) frames for every pooling to keep one
        x = nn.functional.pad(x, (0, shortfall))
    for block in blocks:
        x = block(x)
        lengths = pooled_lengths(lengths, 1, x.shape[-1])
        x = zero_padding(x, lengths)
    return x, lengths


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.scale * grad, None


def reverse_gradient(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Identity forward; the gradient flows back multiplied by -`scale` (Ganin & Lempitsky, 2015)."""
    return _ReverseGradient.apply(x, scale)
