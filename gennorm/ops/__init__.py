"""The shared op under every gennorm normalization (SPEC.md section 5).

    mean, rstd = patch_moments(x_padded, kernel_size, stride, dilation, groups, eps)  # [N, g, Ho, Wo]
    out = moment_epilogue(y, mean, rstd, S, bias)          # (y - mean * S) * rstd + bias

`impl` chooses the implementation per call, StyleGAN3-style:
  "auto"  the compiled CUDA kernels when x is on a GPU and the library is built, else "torch";
  "cuda"  the CUDA kernels (error if unavailable);
  "op"    the registered `torch.ops.gennorm.*` op on whatever device x is on;
  "torch" the plain-PyTorch reference (autograd, any device).
"""
from __future__ import annotations

import torch

from gennorm.ops import extension, reference
from gennorm.ops.center import group_mean, pad_and_center
from gennorm.ops import library as _library  # registers torch.ops.gennorm.*

IMPLS = ("auto", "cuda", "op", "torch")

__all__ = ["patch_moments", "moment_epilogue", "pad_and_center", "group_mean", "has_cuda", "IMPLS"]


def has_cuda() -> bool:
    """True when the compiled library with CUDA kernels is loaded and a GPU is visible."""
    return _library.COMPILED and extension.loaded_with_cuda() and torch.cuda.is_available()


def _pair(value, name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and v >= 1 for v in pair):
        raise ValueError(f"{name} must be a positive int or a pair of positive ints, got {value!r}")
    return pair


def _use_op(x: torch.Tensor, impl: str) -> bool:
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    if impl == "cuda":
        if not (x.is_cuda and has_cuda()):
            where = "the tensor is on the CPU" if not x.is_cuda else "the CUDA library is not built (python -m gennorm.ops build)"
            raise RuntimeError(f"impl='cuda' requested but {where}")
        return True
    if impl == "auto":
        return x.is_cuda and has_cuda()
    return impl == "op"


def patch_moments(x, kernel_size, stride=1, dilation=1, groups=1, eps=1e-5, impl="auto"):
    """Mean and rstd of every (C/groups) x kh x kw window of an already padded x [N, C, Hp, Wp].

    Returns (mean, rstd), each [N, groups, Ho, Wo] (float32 for half inputs).
    """
    if x.dim() != 4:
        raise ValueError(f"patch_moments expects x of shape [N, C, H, W], got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"patch_moments expects a floating-point tensor, got {x.dtype}")
    kernel_size, stride, dilation = _pair(kernel_size, "kernel_size"), _pair(stride, "stride"), _pair(dilation, "dilation")
    if x.shape[1] % groups:
        raise ValueError(f"channels ({x.shape[1]}) must be divisible by groups ({groups})")
    for axis, size in ((0, x.shape[2]), (1, x.shape[3])):
        span = dilation[axis] * (kernel_size[axis] - 1) + 1
        if span > size:
            raise ValueError(
                f"kernel size {kernel_size} (dilation {dilation}) is larger than the padded input {tuple(x.shape[2:])}"
            )
    if _use_op(x, impl):
        return torch.ops.gennorm.patch_moments(x, kernel_size, stride, dilation, groups, float(eps))
    return reference.patch_moments(x, kernel_size, stride, dilation, groups, eps)


def moment_epilogue(y, mean, rstd, S, bias=None, impl="auto"):
    """(y - mean * S) * rstd + bias for y [N, O, H, W], mean/rstd [N, g, H, W], S/bias [O]."""
    if y.dim() != 4 or mean.dim() != 4 or mean.shape != rstd.shape:
        raise ValueError(f"moment_epilogue expects y [N, O, H, W] and mean, rstd [N, g, H, W]; got {tuple(y.shape)}, {tuple(mean.shape)}, {tuple(rstd.shape)}")
    n, o, h, w = y.shape
    if mean.shape[0] != n or mean.shape[2:] != y.shape[2:] or o % mean.shape[1]:
        raise ValueError(f"mean {tuple(mean.shape)} does not fit y {tuple(y.shape)} (same N, H, W; O divisible by g)")
    if S.shape != (o,) or (bias is not None and bias.shape != (o,)):
        raise ValueError(f"S and bias must have shape [{o}]")
    if _use_op(y, impl):
        return torch.ops.gennorm.moment_epilogue(y, mean, rstd, S, bias)
    return reference.moment_epilogue(y, mean, rstd, S, bias)
