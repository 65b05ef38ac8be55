"""2D CNN over the log-mel image: conv blocks, frequency collapsed, masked statistics over time."""

from __future__ import annotations

import torch
from torch import nn

from ser_bench.models.layers import conv_block_2d, pooling, run_masked


class CNN2d(nn.Module):
    def __init__(self, frontend: nn.Module, num_classes: int, channels: tuple[int, ...] = (32, 64, 128, 128),
                 dropout: float = 0.3, pool: str = "stats"):
        super().__init__()
        self.frontend = frontend
        widths = [1, *channels]
        self.blocks = nn.ModuleList(conv_block_2d(a, b) for a, b in zip(widths, widths[1:]))
        self.pool = pooling(pool, widths[-1])
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * widths[-1], num_classes))

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        feats, frames = self.frontend(wave, lengths)
        x, frames = run_masked(self.blocks, feats.unsqueeze(1), frames)  # [B, C, mel', T']
        return self.head(self.pool(x.mean(dim=2), frames))
