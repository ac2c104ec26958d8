"""Kernel-normalized convolution (KNConv, Nasirigerdeh et al.; SPEC.md section 3).

KernelNorm standardizes each window over (all channels, kh, kw), then a conv runs on the
windows; computed like NC, without im2col:

    out = (conv(x~ - c, W) - mu * S) * rstd + b,   mu, rstd = moments of dropout(x~) - c

Statistics use all input channels even when the conv is grouped, and (as in the authors'
code) dropout is applied only to the input of the statistics; the conv sees the clean input.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from gennorm.layers.checks import check_input, check_window_fits
from gennorm.layers.padding import four_sided
from gennorm.ops import moment_epilogue, patch_moments
from gennorm.ops.center import pad_and_center


def statistics_input(shifted: torch.Tensor, shift: torch.Tensor, p: float, active: bool) -> torch.Tensor:
    """The input of the statistics: dropout(x~) - c when dropout is active, else x~ - c.

    shifted = x~ - c [N, C, Hp, Wp], shift = c [N, C, 1, 1]. Dropout acts on x~ itself (a dropped
    value is 0, not c), as in the authors' code.
    """
    if p > 0 and active:
        return F.dropout(shifted + shift, p, training=True) - shift
    return shifted


class KNConv2d(nn.Conv2d):
    """KernelNorm followed by a conv on the same windows, in one layer (no dilation, zero padding).

    padding: int, (h, w) or (left, right, top, bottom). `dropout_in_eval=True` keeps dropout on
    in eval mode, reproducing the authors' module.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True, dropout_p=0.05,
                 eps=1e-5, groups=1, dropout_in_eval=False, impl="auto", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, 0, 1, groups, bias, device=device, dtype=dtype)
        if not 0 <= dropout_p < 1:
            raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p}")
        self.kn_padding = four_sided(padding)
        self.dropout_p = float(dropout_p)
        self.eps = float(eps)
        self.dropout_in_eval = bool(dropout_in_eval)
        self.impl = impl

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, "KNConv2d", self.in_channels)
        shifted, shift = pad_and_center(x, self.kn_padding)  # x~ - c [N, C, Hp, Wp], c [N, C, 1, 1]
        check_window_fits(shifted, self.kernel_size, (1, 1), "KNConv2d")
        stats = statistics_input(shifted, shift, self.dropout_p, self.training or self.dropout_in_eval)
        mean, rstd = patch_moments(stats, self.kernel_size, self.stride, 1, 1, self.eps, self.impl)  # [N, 1, Ho, Wo]
        y = F.conv2d(shifted, self.weight, None, self.stride, 0, 1, self.groups)  # [N, O, Ho, Wo]
        return moment_epilogue(y, mean, rstd, self.weight.sum((1, 2, 3)), self.bias, self.impl)

    def extra_repr(self) -> str:
        return (super().extra_repr() + f", padding={self.kn_padding}, dropout_p={self.dropout_p}, eps={self.eps}"
                + (", dropout_in_eval=True" if self.dropout_in_eval else ""))
