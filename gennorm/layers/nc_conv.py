"""Normalized convolution (NC, docs/SPEC.md section 1): a conv whose im2col rows are standardized.

Never materializes im2col. With x~ the padded input and c a per-(sample, group) constant,

    out = (conv(x~ - c, W) - mu * S) * rstd + b,     S[o] = sum_k W[o, k]

where mu, rstd are the moments of each window of x~ - c. The whole layer is one autograd unit of
the shared op (gennorm.ops.nc_conv2d, docs/SPEC.md section 5).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from gennorm.layers.checks import check_input, check_windows
from gennorm.ops import nc_conv2d


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
    op's implementation ("auto" | "cuda" | "op" | "torch", see gennorm.ops).
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
        name = type(self).__name__
        check_input(x, name, self.in_channels)
        pad4 = tuple(self._reversed_padding_repeated_twice)  # (left, right, top, bottom), as nn.Conv2d pads
        check_windows(x, pad4, self.padding_mode, self.kernel_size, self.stride, self.dilation, name)
        weight = standardize_weight(self.weight, self.eps) if self.weight_standardization else self.weight
        return nc_conv2d(x, weight, self.bias, pad4, self.padding_mode, self.stride, self.dilation, self.groups,
                         self.eps, impl=self.impl)  # [N, O, Ho, Wo]

    def extra_repr(self) -> str:
        extra = f", eps={self.eps}"
        if self.weight_standardization:
            extra += ", weight_standardization=True"
        return super().extra_repr() + extra
