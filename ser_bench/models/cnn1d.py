"""1D CNN over log-mel frames (mel bins as channels): the original study's model family."""

from __future__ import annotations

import torch
from torch import nn

from ser_bench.models.layers import masked_mean_std, pooled_lengths


class CNN1d(nn.Module):
    def __init__(self, frontend: nn.Module, num_classes: int, channels: tuple[int, ...] = (128, 128, 256),
                 kernel_size: int = 5, dropout: float = 0.3):
        super().__init__()
        self.frontend = frontend
        blocks, c_in = [], frontend.n_mels
        for c_out in channels:
            blocks += [nn.Conv1d(c_in, c_out, kernel_size, padding=kernel_size // 2, bias=False),
                       nn.BatchNorm1d(c_out), nn.ReLU(inplace=True), nn.MaxPool1d(2)]
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.n_pools = len(channels)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * c_in, num_classes))

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        feats, frames = self.frontend(wave, lengths)
        x = self.blocks(feats)
        return self.head(masked_mean_std(x, pooled_lengths(frames, self.n_pools, x.shape[-1])))
