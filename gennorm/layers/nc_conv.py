"""Normalized convolution (NC, SPEC.md section 1): a conv whose im2col rows are standardized.

Never materializes im2col. With x~ the padded input and c a per-(sample, group) constant,

    out = (conv(x~ - c, W) - mu * S) * rstd + b,     S[o] = sum_k W[o, k]

where mu, rstd are the window moments of x~ - c (the shared op `patch_moments`).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from gennorm.layers.checks import check_input, check_window_fits
from gennorm.ops import moment_epilogue, patch_moments
from gennorm.ops.center import pad_and_center


def standardize_weight(weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Each filter W[o] over its K = C/g * kh * kw values: mean 0, variance 1 (biased, eps inside)."""
    flat = weight.flatten(1)
    mean = flat.mean(1, keepdim=True)
    var = flat.var(1, unbiased=False, keepdim=True)
    return ((flat - mean) * (var + eps).rsqrt()).view_as(weight)


class NCConv2d(nn.Conv2d):
    """nn.Conv2d whose every im2col row (one window of C/groups channels) is standardized.

    Same signature and state dict as nn.Conv2d, plus `eps` (inside the sqrt) and
    `weight_standardization` (standardize each filter before use). `impl` picks the shared
    op's implementation ("auto" | "cuda" | "op" | "torch").
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", eps=1e-5, weight_standardization=False, impl="auto",
                 device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device=device, dtype=dtype)
        self.eps = float(eps)
        self.weight_standardization = bool(weight_standardization)
        self.impl = impl

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, type(self).__name__, self.in_channels)
        # x~ - c: padded as nn.Conv2d pads, minus a per-(sample, group) constant. [N, C, Hp, Wp]
        shifted, _ = pad_and_center(x, self._reversed_padding_repeated_twice, self.padding_mode, self.groups)
        check_window_fits(shifted, self.kernel_size, self.dilation, type(self).__name__)
        weight = standardize_weight(self.weight, self.eps) if self.weight_standardization else self.weight
        y = F.conv2d(shifted, weight, None, self.stride, 0, self.dilation, self.groups)  # [N, O, Ho, Wo]
        mean, rstd = patch_moments(shifted, self.kernel_size, self.stride, self.dilation, self.groups, self.eps, self.impl)
        S = weight.sum((1, 2, 3))  # [O]
        return moment_epilogue(y, mean, rstd, S, self.bias, self.impl)

    def extra_repr(self) -> str:
        extra = f", eps={self.eps}"
        if self.weight_standardization:
            extra += ", weight_standardization=True"
        return super().extra_repr() + extra
