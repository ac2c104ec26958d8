"""patch_moments: the mean and rstd of every window of an already padded input (PONO, KernelNorm2d).

    mean, rstd = patch_moments(x, kernel_size, stride=1, dilation=1, groups=1, eps=1e-5, impl="auto")
    x [N, C, Hp, Wp] -> mean, rstd [N, groups, Ho, Wo] (float32 for half inputs); differentiable

Each window covers C/groups channels and kh x kw taps; rstd = 1 / sqrt(var + eps), var biased.
Callers that need float32 accuracy where |mean| >> std subtract a per-(sample, group) constant
first (the variance does not depend on it). Two implementations: `patch_moments_ref` (plain autograd ops, the
"torch" path and the registered op's CPU kernel) and the registered op `torch.ops.gennorm.patch_moments`
("op"; its CUDA kernel where the compiled library is loaded).
"""
from __future__ import annotations

import torch

from gennorm.ops import checks, extension
from gennorm.ops.kernels import accumulation_dtype, window_sum


def patch_moments(x, kernel_size, stride=1, dilation=1, groups=1, eps=1e-5, impl="auto"):
    """Mean and rstd of every (C/groups) x kh x kw window of x [N, C, Hp, Wp] (module docstring)."""
    checks.check_4d_float(x, "patch_moments", error=ValueError, type_error=TypeError)
    kernel_size, stride, dilation = (checks.pair(v, name) for v, name in
                                     ((kernel_size, "kernel_size"), (stride, "stride"), (dilation, "dilation")))
    checks.check_groups(x.shape[1], groups, "patch_moments", error=ValueError)
    checks.window_output(x.shape[2:], kernel_size, stride, dilation, "patch_moments", error=ValueError)
    # auto on CUDA: the op when the compiled kernels loaded and passed their self-check (has_cuda)
    if extension.resolve_impl(x, impl) == "op":
        return torch.ops.gennorm.patch_moments(x, kernel_size, stride, dilation, groups, float(eps))
    return patch_moments_ref(x, kernel_size, stride, dilation, groups, eps)


class _ChannelSums(torch.autograd.Function):
    """Per-group channel sums of x and x^2: xa [N, g, C/g, Hp, Wp] -> [N, 2g, Hp, Wp].

    The explicit backward g1 + 2 * x * g2 is one full-size pass where autograd's needs four. It is
    made of differentiable ops, so double backward still works.
    """

    @staticmethod
    def forward(ctx, xa):
        ctx.save_for_backward(xa)
        return torch.cat([xa.sum(2), xa.square().sum(2)], dim=1)

    @staticmethod
    def backward(ctx, grad):
        (xa,) = ctx.saved_tensors
        g = xa.shape[1]
        return torch.addcmul(grad[:, :g, None], xa, grad[:, g:, None], value=2)  # [N, g, C/g, Hp, Wp]


def patch_moments_ref(x: torch.Tensor, kernel_size, stride, dilation, groups: int, eps: float):
    """The reference: window sums of the channel sums of x and x^2, in plain differentiable ops."""
    c = x.shape[1]
    xa = x.to(accumulation_dtype(x.dtype)).unflatten(1, (groups, c // groups))  # [N, g, C/g, Hp, Wp]
    sums = _ChannelSums.apply(xa)  # [N, 2g, Hp, Wp]
    count = (c // groups) * kernel_size[0] * kernel_size[1]
    window = window_sum(sums, kernel_size, stride, dilation) / count  # [N, 2g, Ho, Wo]
    mean, mean_sq = window[:, :groups], window[:, groups:]
    var = (mean_sq - mean.square()).clamp_min(0)
    return mean, torch.sqrt(var + eps).reciprocal()
