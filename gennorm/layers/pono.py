"""Positional Normalization and Moment Shortcuts (Li et al. 2019; docs/SPEC.md section 2).

PONO standardizes across channels at each position, i.e. NC's statistics with a 1x1 window:
    mean, std [N, 1, H, W];  PONO(x) = ((x - mean) / std, mean, std)
MomentShortcut puts an encoder's moments back into the decoder: h * std + mean.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from gennorm.layers.checks import check_input
from gennorm.ops import kernels, patch_moments


class PONO(nn.Module):
    """x [N, C, H, W] -> (normalized x, mean [N, 1, H, W], std [N, 1, H, W]).

    std = sqrt(var + eps) with the biased variance (the paper); `unbiased=True` reproduces the
    authors' PyTorch snippet, which uses torch.var's unbiased estimate.
    """

    def __init__(self, eps: float = 1e-5, unbiased: bool = False, impl: str = "auto"):
        super().__init__()
        self.eps = float(eps)
        self.unbiased = bool(unbiased)
        self.impl = impl

    def forward(self, x: torch.Tensor):
        check_input(x, "PONO")
        if self.unbiased:
            if x.shape[1] < 2:
                raise ValueError("PONO(unbiased=True) needs at least 2 channels")
            mean = x.mean(1, keepdim=True)
            std = (x.var(1, unbiased=True, keepdim=True) + self.eps).sqrt()
            return (x - mean) / std, mean, std
        shift = kernels.center_shift(x, 1)[:, :, None, None]  # c [N, 1, 1, 1]: float32 stays exact far from 0
        shifted = x - shift.to(x.dtype)
        mean, rstd = patch_moments(shifted, 1, 1, 1, 1, self.eps, self.impl)  # [N, 1, H, W], acc
        normalized = ((shifted.to(mean.dtype) - mean) * rstd).to(x.dtype)
        return normalized, (mean + shift).to(x.dtype), rstd.reciprocal().to(x.dtype)

    def extra_repr(self) -> str:
        return f"eps={self.eps}" + (", unbiased=True" if self.unbiased else "")


class MomentShortcut(nn.Module):
    """MS(h, mean, std) = h * std + mean (moments broadcast over channels)."""

    def forward(self, h: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        if mean.shape[-2:] != h.shape[-2:]:
            raise ValueError(f"MomentShortcut: moments of size {tuple(mean.shape[-2:])} do not match features {tuple(h.shape[-2:])}")
        return h * std + mean


class DynamicMomentShortcut(nn.Module):
    """DMS: predict (beta, gamma) from cat(mean, std) with a small conv stack; h * gamma + beta.

    The stack predicts a correction to (mean, std) and its last conv starts at zero, so a fresh
    DMS equals MomentShortcut and learns to deviate from it.
    """

    def __init__(self, hidden: int = 8, kernel_size: int = 3):
        super().__init__()
        pad = kernel_size // 2
        self.net = nn.Sequential(
            nn.Conv2d(2, hidden, kernel_size, padding=pad),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, 2, kernel_size, padding=pad),
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, h: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        if mean.shape[-2:] != h.shape[-2:]:
            raise ValueError(f"DynamicMomentShortcut: moments of size {tuple(mean.shape[-2:])} do not match features {tuple(h.shape[-2:])}")
        delta_beta, delta_gamma = self.net(torch.cat([mean, std], 1)).chunk(2, dim=1)  # [N, 1, H, W] each
        return h * (std + delta_gamma) + (mean + delta_beta)
