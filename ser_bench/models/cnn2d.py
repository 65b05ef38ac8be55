"""2D CNN over the log-mel image: conv blocks, frequency collapsed, masked statistics over time."""

from __future__ import annotations

import torch
from torch import nn

from ser_bench.models.layers import masked_mean_std, pooled_lengths


class CNN2d(nn.Module):
    def __init__(self, frontend: nn.Module, num_classes: int, channels: tuple[int, ...] = (32, 64, 128, 128),
                 dropout: float = 0.3):
        super().__init__()
        self.frontend = frontend
        blocks, c_in = [], 1
        for c_out in channels:
            blocks += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.n_pools = len(channels)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * c_in, num_classes))

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        feats, frames = self.frontend(wave, lengths)
        x = self.blocks(feats.unsqueeze(1))  # [B, C, mel', T']
        x = x.mean(dim=2)  # collapse frequency
        return self.head(masked_mean_std(x, pooled_lengths(frames, self.n_pools, x.shape[-1])))
