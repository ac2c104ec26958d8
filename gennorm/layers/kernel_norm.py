"""KernelNorm2d (Nasirigerdeh et al.; SPEC.md section 3): every window, standardized, as tiles.

Output [N, C, Ho*kh, Wo*kw]: tile (i, j) holds window (i, j) standardized over (C, kh, kw);
element [n, c, i*kh + a, j*kw + b] is window (i, j)'s value at (c, a, b). The output is
inherently kh*kw times the window count, so here the windows are materialized (as a strided
view, then one copy); the statistics still come from the shared op.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from gennorm.layers.checks import check_input, check_window_fits, int_pair
from gennorm.layers.kn_conv import statistics_input
from gennorm.layers.padding import four_sided
from gennorm.ops import moment_epilogue, patch_moments
from gennorm.ops.center import pad_and_center


class KernelNorm2d(nn.Module):
    def __init__(self, kernel_size, stride=1, padding=0, dropout_p=0.1, eps=1e-5, dropout_in_eval=False, impl="auto"):
        super().__init__()
        if not 0 <= dropout_p < 1:
            raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p}")
        self.kernel_size = int_pair(kernel_size, "kernel_size", "KernelNorm2d")
        self.stride = int_pair(stride, "stride", "KernelNorm2d")
        self.padding = four_sided(padding)
        self.dropout_p = float(dropout_p)
        self.eps = float(eps)
        self.dropout_in_eval = bool(dropout_in_eval)
        self.impl = impl

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, "KernelNorm2d")
        shifted, shift = pad_and_center(x, self.padding)  # x~ - c [N, C, Hp, Wp], c [N, C, 1, 1]
        check_window_fits(shifted, self.kernel_size, (1, 1), "KernelNorm2d")
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        stats = statistics_input(shifted, shift, self.dropout_p, self.training or self.dropout_in_eval)
        mean, rstd = patch_moments(stats, self.kernel_size, self.stride, 1, 1, self.eps, self.impl)  # [N, 1, Ho, Wo]
        n, c = x.shape[:2]
        ho, wo = mean.shape[-2:]
        windows = shifted.unfold(2, kh, sh).unfold(3, kw, sw)  # [N, C, Ho, Wo, kh, kw] (a view)
        tiles = windows.permute(0, 1, 2, 4, 3, 5).reshape(n, c, ho * kh, wo * kw)
        def to_tiles(t):  # [N, 1, Ho, Wo] -> [N, 1, Ho*kh, Wo*kw]
            return t.repeat_interleave(kh, 2).repeat_interleave(kw, 3)
        return moment_epilogue(tiles, to_tiles(mean), to_tiles(rstd), x.new_ones(c), None, self.impl)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dropout_p={self.dropout_p}, eps={self.eps}")
