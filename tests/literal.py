"""The literal im2col definitions of docs/SPEC.md, in plain PyTorch, for the tests to compare against.

Slow and memory-hungry on purpose: every window is materialized with F.unfold.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def pad_like_conv(x, conv):
    """Pad x exactly as nn.Conv2d would (any padding_mode, 'same', asymmetric)."""
    pad = conv._reversed_padding_repeated_twice  # (left, right, top, bottom)
    mode = "constant" if conv.padding_mode == "zeros" else conv.padding_mode
    return F.pad(x, pad, mode=mode) if any(pad) else x


def im2col_rows(xp, kernel_size, stride, dilation, groups):
    """xp [N, C, Hp, Wp] (padded) -> rows [N, g, L, K], K = C/g * kh * kw, and (Ho, Wo)."""
    n, c, hp, wp = xp.shape
    kh, kw = kernel_size
    cols = F.unfold(xp, kernel_size, dilation=dilation, stride=stride)  # [N, C*kh*kw, L]
    ho = (hp - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (wp - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    rows = cols.view(n, groups, (c // groups) * kh * kw, -1).transpose(2, 3)  # [N, g, L, K]
    return rows, (ho, wo)


def standardize_rows(rows, eps):
    mu = rows.mean(-1, keepdim=True)
    var = rows.var(-1, unbiased=False, keepdim=True)
    return (rows - mu) / torch.sqrt(var + eps)


def nc_conv(xp, weight, bias, stride, dilation, groups, eps, weight_standardization=False):
    """NC: standardize every im2col row, then the matrix product with the weights."""
    o = weight.shape[0]
    rows, (ho, wo) = im2col_rows(xp, weight.shape[2:], stride, dilation, groups)
    w = weight.reshape(groups, o // groups, -1)  # [g, O/g, K]
    if weight_standardization:
        w = standardize_rows(w, eps)
    out = torch.einsum("gok,ngLk->ngoL", w, standardize_rows(rows, eps)).reshape(xp.shape[0], o, ho, wo)
    return out if bias is None else out + bias.view(1, -1, 1, 1)


def window_moments(xp, kernel_size, stride, dilation, groups, eps):
    rows, (ho, wo) = im2col_rows(xp, kernel_size, stride, dilation, groups)
    mean = rows.mean(-1)
    var = rows.var(-1, unbiased=False)
    n = xp.shape[0]
    return mean.view(n, groups, ho, wo), (var + eps).rsqrt().view(n, groups, ho, wo)


def knconv(xp, weight, bias, kernel_size, stride, eps, stats=None):
    """KNConv on the padded x~ (one statistics group): (conv(x~, W) - mean * sum W[o]) * rstd + b, with the window
    moments of `stats` (KN's dropout(x~) in training; default x~ itself)."""
    mean, rstd = window_moments(xp if stats is None else stats, kernel_size, stride, (1, 1), 1, eps)
    y = F.conv2d(xp, weight, stride=stride)
    return (y - mean * weight.sum((1, 2, 3)).view(1, -1, 1, 1)) * rstd + bias.view(1, -1, 1, 1)


def kernel_norm_tiles(xp, kernel_size, stride, eps):
    """KernelNorm2d: each window over (C, kh, kw) standardized, laid out as tiles."""
    n, c = xp.shape[:2]
    kh, kw = kernel_size
    rows, (ho, wo) = im2col_rows(xp, kernel_size, stride, (1, 1), 1)  # [N, 1, L, C*kh*kw]
    z = standardize_rows(rows, eps).view(n, ho, wo, c, kh, kw)
    return z.permute(0, 3, 1, 4, 2, 5).reshape(n, c, ho * kh, wo * kw)


def pono(x, eps):
    mean = x.mean(1, keepdim=True)
    std = torch.sqrt(x.var(1, unbiased=False, keepdim=True) + eps)
    return (x - mean) / std, mean, std
