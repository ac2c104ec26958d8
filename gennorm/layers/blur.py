"""Antialiased (blur-pooled) resampling as CUT's generator and discriminator use it.

CUT (Park et al. 2020; taesungp/contrastive-unpaired-translation, models/networks.py `Downsample`,
`Upsample`) follows Zhang 2019 ("Making convolutional networks shift-invariant again"): a
stride-2 conv becomes a stride-1 conv followed by a fixed low-pass filter applied with stride 2,
and a stride-2 transposed conv becomes a fixed x2 interpolation followed by a stride-1 conv. Both
filters are binomial, applied to each channel on its own (depthwise), and never trained:

BlurDownsample(C): reflect-pad 1, then the 3x3 filter [1,2,1]^T [1,2,1] / 16 with stride 2.
    [N, C, H, W] -> [N, C, ceil(H/2), ceil(W/2)]
BlurUpsample(C): replicate-pad 1, then the transposed conv (stride 2, padding 2) of the 4x4 filter
    [1,3,3,1]^T [1,3,3,1] / 64 x 4 (the x4 = stride^2 keeps the mean), cropped by one pixel on
    each side. Per axis every output pixel is 3/4 of its nearer and 1/4 of its farther input
    pixel, with the border pixel repeated: bilinear x2 upsampling (align_corners=False).
    [N, C, H, W] -> [N, C, 2H, 2W]

The filters are persistent buffers `filt` [C, 1, k, k] (the 2-D filter repeated per channel), as
in CUT, so a network using these layers has CUT's state-dict layout tensor for tensor and CUT's
checkpoints import one to one (gennorm.networks.junyanz). Inputs need H, W >= 2 (reflect pad).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def binomial_filter(size: int) -> torch.Tensor:
    """The normalized 2-D binomial filter [size, size] (float32): the outer product of row
    `size - 1` of Pascal's triangle with itself, divided by its sum (size 3: [1,2,1]^T [1,2,1] / 16)."""
    row = torch.tensor([math.comb(size - 1, k) for k in range(size)], dtype=torch.float64)
    filt = row[:, None] * row[None, :]
    return (filt / filt.sum()).float()


class BlurDownsample(nn.Module):
    """Reflect-pad 1, depthwise 3x3 binomial blur, stride 2: [N, C, H, W] -> [N, C, ceil(H/2), ceil(W/2)]."""

    # what gennorm.networks.receptive reads: the blur widens the receptive field like a 3x3 stride-2 conv
    kernel_size, stride, dilation = (3, 3), (2, 2), (1, 1)

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.register_buffer("filt", binomial_filter(3)[None, None].repeat(channels, 1, 1, 1))  # [C, 1, 3, 3]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded = F.pad(x, (1, 1, 1, 1), mode="reflect")  # [N, C, H+2, W+2]
        return F.conv2d(padded, self.filt.to(x.dtype), stride=2, groups=x.shape[1])

    def extra_repr(self) -> str:
        return f"{self.channels}"


class BlurUpsample(nn.Module):
    """Replicate-pad 1, depthwise 4x4 binomial transposed conv, stride 2, crop 1:
    [N, C, H, W] -> [N, C, 2H, 2W] (bilinear x2 upsampling, align_corners=False)."""

    # for gennorm.networks.receptive: like a transposed conv, each output pixel sees ceil(4/2) = 2 inputs per axis
    kernel_size, stride, dilation = (4, 4), (2, 2), (1, 1)

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.register_buffer("filt", (binomial_filter(4) * 4)[None, None].repeat(channels, 1, 1, 1))  # [C, 1, 4, 4]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded = F.pad(x, (1, 1, 1, 1), mode="replicate")  # [N, C, H+2, W+2]
        # transposed conv: (H+2-1)*2 - 2*2 + 4 = 2H + 2 rows; dropping the first and last leaves 2H
        up = F.conv_transpose2d(padded, self.filt.to(x.dtype), stride=2, padding=2, groups=x.shape[1])
        return up[:, :, 1:-1, 1:-1]

    def extra_repr(self) -> str:
        return f"{self.channels}"
