"""Residual 2D CNN over the log-mel image (a thin ResNet, as speaker verification uses): a stem, then
one stage per width whose first block halves frequency and time, frequency collapsed, masked
statistics over time. Padded frames are zeroed after every convolution, so a clip scores the same
alone or padded in a batch."""

from __future__ import annotations

import torch
from torch import nn

from ser_bench.models.layers import pooling, zero_padding


class ResBlock(nn.Module):
    """Two 3x3 convolutions with batch norm, and a shortcut (1x1 where the shape changes)."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.stride = stride
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Identity() if stride == 1 and c_in == c_out else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # A stride-2 convolution (kernel 3, padding 1) over L valid frames has ceil(L / 2) outputs
        # that see no padding beyond what the clip alone would see (zeros).
        lengths = (lengths + self.stride - 1) // self.stride
        h = zero_padding(torch.relu(self.bn1(self.conv1(x))), lengths)
        return zero_padding(torch.relu(self.bn2(self.conv2(h)) + self.shortcut(x)), lengths), lengths


class ResNet2d(nn.Module):
    def __init__(self, frontend: nn.Module, num_classes: int, channels: tuple[int, ...] = (16, 32, 64, 128),
                 blocks: int = 2, dropout: float = 0.3, pool: str = "attentive"):
        super().__init__()
        if blocks < 1 or not channels:
            raise ValueError(f"resnet2d needs at least one channel width and one block per stage "
                             f"(channels={list(channels)}, blocks={blocks})")
        self.frontend = frontend
        self.stem = nn.Sequential(nn.Conv2d(1, channels[0], 3, 1, 1, bias=False), nn.BatchNorm2d(channels[0]),
                                  nn.ReLU(inplace=True))
        widths = [channels[0], *channels]
        self.stages = nn.ModuleList(ResBlock(a if i == 0 else b, b, 2 if i == 0 else 1)
                                    for a, b in zip(widths, widths[1:]) for i in range(blocks))
        self.pool = pooling(pool, widths[-1])
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * widths[-1], num_classes))

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        feats, frames = self.frontend(wave, lengths)
        x = zero_padding(self.stem(zero_padding(feats.unsqueeze(1), frames)), frames)  # [B, C, mel, T]
        for block in self.stages:
            x, frames = block(x, frames)
        return self.head(self.pool(x.mean(dim=2), frames))
