"""`torch.ops.gennorm.*`: the shared op registered as PyTorch custom ops.

Schemas and kernels come from the compiled library in `cuda/` (TORCH_LIBRARY(gennorm, ...),
CPU and CUDA kernels) when it is built; otherwise the same schemas are defined here with the
reference kernels, so `torch.ops.gennorm.*` exists on every machine. Either way the fake
(meta) implementations and the autograd formulas are registered here, once.
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

if not COMPILED:
    # Same names and schemas as cuda/gennorm_ops.cpp, reference kernels for every device.
    _lib = torch.library.Library("gennorm", "DEF")
    for _schema in SCHEMAS.values():
        _lib.define(_schema)

    def _patch_moments(x, kernel_size, stride, dilation, groups, eps):
        with torch.no_grad():
            mean, rstd = reference.patch_moments(x, tuple(kernel_size), tuple(stride), tuple(dilation), groups, eps)
        return mean.contiguous(), rstd.contiguous()

    def _patch_moments_backward(grad_mean, grad_rstd, x, mean, rstd, kernel_size, stride, dilation, groups):
        with torch.no_grad():
            return reference.patch_moments_backward(
                grad_mean, grad_rstd, x, mean, rstd, tuple(kernel_size), tuple(stride), tuple(dilation), groups
            ).contiguous()

    def _moment_epilogue(y, mean, rstd, S, bias):
        with torch.no_grad():
            return reference.moment_epilogue(y, mean, rstd, S, bias).contiguous()

    def _moment_epilogue_backward(grad_out, y, mean, rstd, S):
        with torch.no_grad():
            return tuple(t.contiguous() for t in reference.moment_epilogue_backward(grad_out, y, mean, rstd, S))

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
    n, c, hp, wp = x.shape
    ho = reference.output_size(hp, kernel_size[0], stride[0], dilation[0])
    wo = reference.output_size(wp, kernel_size[1], stride[1], dilation[1])
    dtype = reference.accumulation_dtype(x.dtype)
    return x.new_empty(n, groups, ho, wo, dtype=dtype), x.new_empty(n, groups, ho, wo, dtype=dtype)


@torch.library.register_fake("gennorm::patch_moments_backward")
def _patch_moments_backward_fake(grad_mean, grad_rstd, x, mean, rstd, kernel_size, stride, dilation, groups):
    return torch.empty_like(x, memory_format=torch.contiguous_format)


@torch.library.register_fake("gennorm::moment_epilogue")
def _moment_epilogue_fake(y, mean, rstd, S, bias):
    return torch.empty_like(y, memory_format=torch.contiguous_format)


@torch.library.register_fake("gennorm::moment_epilogue_backward")
def _moment_epilogue_backward_fake(grad_out, y, mean, rstd, S):
    return (
        torch.empty_like(y, memory_format=torch.contiguous_format),
        torch.empty_like(mean),
        torch.empty_like(rstd),
        torch.empty_like(S),
        torch.empty_like(S),
    )


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
    grad_y, grad_mean, grad_rstd, grad_S, grad_bias = torch.ops.gennorm.moment_epilogue_backward(
        grad_out.contiguous(), y, mean, rstd, S
    )
    return grad_y, grad_mean, grad_rstd, grad_S, (grad_bias if ctx.has_bias else None)


torch.library.register_autograd("gennorm::moment_epilogue", _moment_epilogue_grad, setup_context=_moment_epilogue_setup)
