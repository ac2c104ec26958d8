"""`torch.ops.gennorm.*`: the shared op registered as PyTorch custom ops.

Schemas and kernels come from the compiled library in `cuda/` (TORCH_LIBRARY(gennorm, ...),
CPU and CUDA kernels) when it is loaded (`extension.try_load()`); otherwise the same schemas are
defined here, so `torch.ops.gennorm.*` exists on every machine. The reference kernels are
registered here as CompositeExplicitAutograd in both cases (with the compiled library they serve
only devices it has no kernel for). Either way the fake (meta) implementations and the autograd
formulas are registered here, once.
"""
from __future__ import annotations

import torch

from gennorm.ops import extension, reference

SCHEMAS = {
    "patch_moments": "patch_moments(Tensor x, int[2] kernel_size, int[2] stride, int[2] dilation, int groups, float eps) -> (Tensor, Tensor)",
    "patch_moments_backward": "patch_moments_backward(Tensor grad_mean, Tensor grad_rstd, Tensor x, Tensor mean, Tensor rstd, int[2] kernel_size, int[2] stride, int[2] dilation, int groups) -> Tensor",
    "moment_epilogue": "moment_epilogue(Tensor y, Tensor mean, Tensor rstd, Tensor S, Tensor? bias) -> Tensor",
    "moment_epilogue_backward": "moment_epilogue_backward(Tensor grad_out, Tensor y, Tensor mean, Tensor rstd, Tensor S) -> (Tensor, Tensor, Tensor, Tensor, Tensor)",
}

COMPILED = extension.try_load()


# ---- argument checks: the messages of cuda/gennorm_ops.h, for the Python and fake kernels -------


def _check_patch_moments(x, kernel_size, stride, dilation, groups):
    op = "gennorm::patch_moments"
    if x.dim() != 4:
        raise RuntimeError(f"{op}: x must have shape [N, C, H, W] (4 dims), got {x.dim()} dims: {tuple(x.shape)}")
    if not x.is_floating_point():
        raise RuntimeError(f"{op}: x must be a floating-point tensor (float32/float64/float16/bfloat16), got {x.dtype}")
    for name, pair in (("kernel_size", kernel_size), ("stride", stride), ("dilation", dilation)):
        if len(pair) != 2 or min(pair) < 1:
            raise RuntimeError(f"{op}: {name} must be 2 positive ints, got {list(pair)}")
    if groups < 1 or x.shape[1] % groups:
        raise RuntimeError(f"{op}: channels ({x.shape[1]}) must be divisible by groups ({groups})")
    for axis in (0, 1):
        if dilation[axis] * (kernel_size[axis] - 1) + 1 > x.shape[2 + axis]:
            raise RuntimeError(f"{op}: kernel size {list(kernel_size)} (dilation {list(dilation)}) is larger than "
                               f"the padded input {tuple(x.shape[2:])}")
    return (reference.output_size(x.shape[2], kernel_size[0], stride[0], dilation[0]),
            reference.output_size(x.shape[3], kernel_size[1], stride[1], dilation[1]))


def _check_moment_epilogue(y, mean, rstd, S, bias, op="gennorm::moment_epilogue"):
    if y.dim() != 4 or mean.dim() != 4 or mean.shape != rstd.shape:
        raise RuntimeError(f"{op}: expects y [N, O, H, W] and mean, rstd [N, g, H, W] of the same shape; got "
                           f"{tuple(y.shape)}, {tuple(mean.shape)}, {tuple(rstd.shape)}")
    n, o, h, w = y.shape
    if mean.shape[0] != n or mean.shape[2:] != y.shape[2:] or mean.shape[1] < 1 or o % mean.shape[1]:
        raise RuntimeError(f"{op}: mean {tuple(mean.shape)} does not fit y {tuple(y.shape)} (same N, H, W; O divisible by g)")
    for name, t in (("S", S), ("bias", bias)):
        if t is not None and tuple(t.shape) != (o,):
            raise RuntimeError(f"{op}: {name} must have shape [{o}], got {tuple(t.shape)}")
    for name, t in (("y", y), ("mean", mean), ("rstd", rstd), ("S", S), ("bias", bias)):
        if t is not None and not t.is_floating_point():
            raise RuntimeError(f"{op}: {name} must be a floating-point tensor, got {t.dtype}")
        if t is not None and t.device != y.device:
            raise RuntimeError(f"{op}: {name} is on {t.device} but y is on {y.device}; all inputs must be on the same device")


# ---- reference kernels (plain PyTorch) ---------------------------------------------------------
# Every device's kernel when the compiled library is not loaded; with the compiled library, the
# fallback for devices it has no kernel for (CUDA tensors with a CPU-only build, MPS, ...):
# backend kernels from C++ take precedence over CompositeExplicitAutograd.
# Output layouts match the fake kernels below: mean/rstd contiguous, the rest `empty_like` its input.


def _like(t, value):
    return torch.empty_like(t).copy_(value)


def _patch_moments(x, kernel_size, stride, dilation, groups, eps):
    _check_patch_moments(x, kernel_size, stride, dilation, groups)
    with torch.no_grad():
        mean, rstd = reference.patch_moments(x, tuple(kernel_size), tuple(stride), tuple(dilation), groups, eps)
    return mean.contiguous(), rstd.contiguous()


def _patch_moments_backward(grad_mean, grad_rstd, x, mean, rstd, kernel_size, stride, dilation, groups):
    _check_patch_moments(x, kernel_size, stride, dilation, groups)
    with torch.no_grad():
        grad_x = reference.patch_moments_backward(
            grad_mean, grad_rstd, x, mean, rstd, tuple(kernel_size), tuple(stride), tuple(dilation), groups
        )
    return _like(x, grad_x)


def _moment_epilogue(y, mean, rstd, S, bias):
    _check_moment_epilogue(y, mean, rstd, S, bias)
    with torch.no_grad():
        return _like(y, reference.moment_epilogue(y, mean, rstd, S, bias))


def _moment_epilogue_backward(grad_out, y, mean, rstd, S):
    _check_moment_epilogue(y, mean, rstd, S, None, "gennorm::moment_epilogue_backward")
    with torch.no_grad():
        grads = reference.moment_epilogue_backward(grad_out, y, mean, rstd, S)
    return tuple(_like(t, g) for t, g in zip((y, mean, rstd, S, S), grads))


# Same names and schemas as cuda/gennorm_ops.cpp when nothing is compiled; else add to its library.
_lib = torch.library.Library("gennorm", "IMPL" if COMPILED else "DEF")
if not COMPILED:
    for _schema in SCHEMAS.values():
        _lib.define(_schema)
for _name, _fn in [
    ("patch_moments", _patch_moments),
    ("patch_moments_backward", _patch_moments_backward),
    ("moment_epilogue", _moment_epilogue),
    ("moment_epilogue_backward", _moment_epilogue_backward),
]:
    _lib.impl(_name, _fn, "CompositeExplicitAutograd")


# ---- fake (meta) kernels: shapes and dtypes only, for torch.compile and opcheck -------------


@torch.library.register_fake("gennorm::patch_moments")
def _patch_moments_fake(x, kernel_size, stride, dilation, groups, eps):
    ho, wo = _check_patch_moments(x, kernel_size, stride, dilation, groups)
    n = x.shape[0]
    dtype = reference.accumulation_dtype(x.dtype)
    return x.new_empty(n, groups, ho, wo, dtype=dtype), x.new_empty(n, groups, ho, wo, dtype=dtype)


@torch.library.register_fake("gennorm::patch_moments_backward")
def _patch_moments_backward_fake(grad_mean, grad_rstd, x, mean, rstd, kernel_size, stride, dilation, groups):
    _check_patch_moments(x, kernel_size, stride, dilation, groups)
    return torch.empty_like(x)


@torch.library.register_fake("gennorm::moment_epilogue")
def _moment_epilogue_fake(y, mean, rstd, S, bias):
    _check_moment_epilogue(y, mean, rstd, S, bias)
    return torch.empty_like(y)


@torch.library.register_fake("gennorm::moment_epilogue_backward")
def _moment_epilogue_backward_fake(grad_out, y, mean, rstd, S):
    _check_moment_epilogue(y, mean, rstd, S, None, "gennorm::moment_epilogue_backward")
    return torch.empty_like(y), torch.empty_like(mean), torch.empty_like(rstd), torch.empty_like(S), torch.empty_like(S)


# ---- autograd ----------------------------------------------------------------------------


def _patch_moments_setup(ctx, inputs, output):
    x, kernel_size, stride, dilation, groups, eps = inputs
    ctx.save_for_backward(x, *output)
    ctx.window = (kernel_size, stride, dilation, groups)


def _patch_moments_grad(ctx, grad_mean, grad_rstd):
    x, mean, rstd = ctx.saved_tensors
    grad_mean = torch.zeros_like(mean) if grad_mean is None else grad_mean
    grad_rstd = torch.zeros_like(rstd) if grad_rstd is None else grad_rstd
    grad_x = torch.ops.gennorm.patch_moments_backward(grad_mean, grad_rstd, x, mean, rstd, *ctx.window)
    return grad_x, None, None, None, None, None


torch.library.register_autograd("gennorm::patch_moments", _patch_moments_grad, setup_context=_patch_moments_setup)


def _moment_epilogue_setup(ctx, inputs, output):
    y, mean, rstd, S, bias = inputs
    ctx.save_for_backward(y, mean, rstd, S)
    ctx.has_bias = bias is not None


def _moment_epilogue_grad(ctx, grad_out):
    y, mean, rstd, S = ctx.saved_tensors
    grad_y, grad_mean, grad_rstd, grad_S, grad_bias = torch.ops.gennorm.moment_epilogue_backward(grad_out, y, mean, rstd, S)
    return grad_y, grad_mean, grad_rstd, grad_S, (grad_bias if ctx.has_bias else None)


torch.library.register_autograd("gennorm::moment_epilogue", _moment_epilogue_grad, setup_context=_moment_epilogue_setup)
