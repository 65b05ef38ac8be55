"""1D CNN over log-mel frames (mel bins as channels): the original study's model family."""

from __future__ import annotations

import torch
from torch import nn

from ser_bench.models.layers import conv_block_1d, pooling, run_masked


class CNN1d(nn.Module):
    def __init__(self, frontend: nn.Module, num_classes: int, channels: tuple[int, ...] = (128, 128, 256),
                 kernel_size: int = 5, dropout: float = 0.3, pool: str = "stats"):
        super().__init__()
        self.frontend = frontend
        widths = [frontend.n_mels, *channels]
        self.blocks = nn.ModuleList(conv_block_1d(a, b, kernel_size) for a, b in zip(widths, widths[1:]))
        self.pool = pooling(pool, widths[-1])
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * widths[-1], num_classes))

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        feats, frames = self.frontend(wave, lengths)
        x, frames = run_masked(self.blocks, feats, frames)
        return self.head(self.pool(x, frames))
