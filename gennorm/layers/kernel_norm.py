"""Kernel normalization (Nasirigerdeh et al.; docs/SPEC.md section 3): KNConv2d and KernelNorm2d.

KernelNorm standardizes each kernel-sized window over (all channels, kh, kw); KNConv is
"KernelNorm, then a conv on the same windows", computed like NC without im2col:

    out = (conv(x~ - c, W) - mu * S) * rstd + b,   mu, rstd = moments of dropout(x~) - c

Statistics use all input channels even when the conv is grouped, and (as in the authors' code)
dropout is applied only to the input of the statistics; the conv sees the clean input. Padding is
zero padding given as an int, (h, w) or (left, right, top, bottom). KNConv2d is one autograd unit of
the shared op (gennorm.ops.nc_conv2d, docs/SPEC.md section 5).

KernelNorm2d returns the windows themselves, standardized, as tiles: [N, C, Ho*kh, Wo*kw], tile
(i, j) holds window (i, j); element [n, c, i*kh + a, j*kw + b] is window (i, j)'s value at
(c, a, b). That output is inherently kh*kw times the window count, so the windows are
materialized (a strided view, then one copy); their statistics come from `patch_moments`.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from gennorm.layers.checks import check_input, check_windows, int_pair
from gennorm.ops import kernels, nc_conv2d, patch_moments


def four_sided(padding) -> tuple[int, int, int, int]:
    """Zero padding in the kernel-normalization style -> (left, right, top, bottom) as F.pad wants it."""
    if isinstance(padding, int):
        pad = (padding,) * 4
    else:
        padding = tuple(padding)
        if len(padding) == 2:  # (h, w) like nn.Conv2d
            pad = (padding[1], padding[1], padding[0], padding[0])
        elif len(padding) == 4:
            pad = padding
        else:
            raise ValueError(f"padding must be an int, (h, w) or (left, right, top, bottom), got {padding!r}")
    if not all(isinstance(p, int) and p >= 0 for p in pad):
        raise ValueError(f"padding values must be non-negative ints, got {padding!r}")
    return pad


def _check_dropout(p: float) -> float:
    if not 0 <= p < 1:
        raise ValueError(f"dropout_p must be in [0, 1), got {p}")
    return float(p)


class KNConv2d(nn.Conv2d):
    """KernelNorm followed by a conv on the same windows, in one layer (no dilation, zero padding).

    padding: int, (h, w) or (left, right, top, bottom). `dropout_in_eval=True` keeps dropout on
    in eval mode, reproducing the authors' module.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True, dropout_p=0.05,
                 eps=1e-5, groups=1, dropout_in_eval=False, impl="auto", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, 0, 1, groups, bias, device=device, dtype=dtype)
        self.dropout_p = _check_dropout(dropout_p)
        self.kn_padding = four_sided(padding)
        self.eps = float(eps)
        self.dropout_in_eval = bool(dropout_in_eval)
        self.impl = impl

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, "KNConv2d", self.in_channels)
        check_windows(x, self.kn_padding, "zeros", self.kernel_size, self.stride, (1, 1), "KNConv2d")
        stats = None
        if self.dropout_p > 0 and (self.training or self.dropout_in_eval):
            # dropout acts on x~ itself (a dropped value is 0, not c), for the statistics only
            stats = F.dropout(kernels.pad(x, self.kn_padding, "zeros"), self.dropout_p, training=True)
        return nc_conv2d(x, self.weight, self.bias, self.kn_padding, "zeros", self.stride, (1, 1), self.groups,
                         self.eps, stat_groups=1, stats=stats, impl=self.impl)  # [N, O, Ho, Wo]

    def extra_repr(self) -> str:
        return (super().extra_repr() + f", padding={self.kn_padding}, dropout_p={self.dropout_p}, eps={self.eps}"
                + (", dropout_in_eval=True" if self.dropout_in_eval else ""))


class KernelNorm2d(nn.Module):
    """Every kh x kw window standardized over (C, kh, kw), laid out as tiles [N, C, Ho*kh, Wo*kw]."""

    def __init__(self, kernel_size, stride=1, padding=0, dropout_p=0.1, eps=1e-5, dropout_in_eval=False, impl="auto"):
        super().__init__()
        self.dropout_p = _check_dropout(dropout_p)
        self.kernel_size = int_pair(kernel_size, "kernel_size", "KernelNorm2d")
        self.stride = int_pair(stride, "stride", "KernelNorm2d")
        self.padding = four_sided(padding)
        self.eps = float(eps)
        self.dropout_in_eval = bool(dropout_in_eval)
        self.impl = impl

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, "KernelNorm2d")
        check_windows(x, self.padding, "zeros", self.kernel_size, self.stride, (1, 1), "KernelNorm2d")
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        xp = kernels.pad(x, self.padding, "zeros")  # x~ [N, C, Hp, Wp]
        shift = kernels.center_shift(x, 1)[:, :, None, None].to(x.dtype)  # c [N, 1, 1, 1], no gradient
        shifted = xp - shift
        stats = shifted
        if self.dropout_p > 0 and (self.training or self.dropout_in_eval):
            stats = F.dropout(xp, self.dropout_p, training=True) - shift
        mean, rstd = patch_moments(stats, self.kernel_size, self.stride, 1, 1, self.eps, self.impl)  # [N, 1, Ho, Wo]
        n, c = x.shape[:2]
        ho, wo = mean.shape[-2:]
        windows = shifted.unfold(2, kh, sh).unfold(3, kw, sw)  # [N, C, Ho, Wo, kh, kw] (a view)
        tiles = windows.permute(0, 1, 2, 4, 3, 5).reshape(n, c, ho * kh, wo * kw)

        def to_tiles(t):  # [N, 1, Ho, Wo] -> [N, 1, Ho*kh, Wo*kw]
            return t.repeat_interleave(kh, 2).repeat_interleave(kw, 3)

        return ((tiles.to(mean.dtype) - to_tiles(mean)) * to_tiles(rstd)).to(x.dtype)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dropout_p={self.dropout_p}, eps={self.eps}")
