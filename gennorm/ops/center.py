"""Pad and center in one pass: x~ - c, the input every NC/KN layer feeds to its conv and moments.

E[x^2] - E[x]^2 cancels catastrophically in float32 when |mean| >> std (x = 300 +- 0.01 gives
negative variances). Window moments of x~ - c, with c a per-(sample, group) constant, have
the same variance and a mean shifted by c; a layer that feeds the shifted tensor to both its
conv and `patch_moments` gets the exact output. c is the mean of the *unpadded* input (zero
padding would pull it toward 0 and leave interior windows far from it) and carries no
gradient: the output does not depend on it.

Padding commutes with the shift for reflect/replicate/circular (the border copies interior
values); zero padding becomes padding with -c, written here directly into the output so the
whole thing is one pass over x forward and a view backward.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def group_mean(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Per-(sample, group) mean of x [N, C, H, W], detached, broadcast to channels: [N, C, 1, 1]."""
    n, c = x.shape[:2]
    mean = x.detach().unflatten(1, (groups, c // groups)).mean((2, 3, 4), keepdim=True)  # [N, g, 1, 1, 1]
    return mean.expand(n, groups, c // groups, 1, 1).reshape(n, c, 1, 1)


class _ZeroPadMinusShift(torch.autograd.Function):
    """F.pad(x, pad) - shift for constant-zero padding, in one pass. shift [N, C, 1, 1], no grad."""

    @staticmethod
    def forward(ctx, x, shift, pad):
        left, right, top, bottom = pad
        n, c, h, w = x.shape
        out = x.new_empty(n, c, h + top + bottom, w + left + right)
        border = (-shift).to(x.dtype)
        out[:, :, :top].copy_(border.expand(n, c, top, out.shape[3]))
        out[:, :, top + h:].copy_(border.expand(n, c, bottom, out.shape[3]))
        out[:, :, top:top + h, :left].copy_(border.expand(n, c, h, left))
        out[:, :, top:top + h, left + w:].copy_(border.expand(n, c, h, right))
        interior = out[:, :, top:top + h, left:left + w]
        if torch.compiler.is_compiling():  # dynamo refuses out= on a strided view; inductor fuses this anyway
            interior.copy_(x - shift.to(x.dtype))
        else:  # eager: one pass, no temporary
            torch.sub(x, shift.to(x.dtype), out=interior)
        ctx.window = (top, h, left, w)
        return out

    @staticmethod
    def backward(ctx, grad):
        top, h, left, w = ctx.window
        return grad[:, :, top:top + h, left:left + w], None, None


def pad_and_center(x: torch.Tensor, pad, mode: str = "zeros", groups: int = 1):
    """(x~ - c, c): x padded as nn.Conv2d would (pad = (left, right, top, bottom), mode zeros |
    reflect | replicate | circular) minus its per-(sample, group) mean c [N, C, 1, 1]."""
    shift = group_mean(x, groups)
    if not any(pad):
        return x - shift, shift
    if mode in ("zeros", "constant"):
        return _ZeroPadMinusShift.apply(x, shift, tuple(pad)), shift
    return F.pad(x - shift, tuple(pad), mode=mode), shift
