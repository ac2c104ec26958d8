"""The shared op in plain PyTorch: window moments and the moment epilogue (SPEC.md section 5).

This is the reference path. It runs on any device, is differentiable by autograd, compiles
with `torch.compile`, and is what `impl="torch"` (and `impl="auto"` on the CPU) uses. The
explicit backward formulas below are the CPU kernels of the registered `torch.ops.gennorm`
ops when the compiled library is not loaded, and the ground truth for the CUDA kernels.

Shapes: x [N, C, Hp, Wp] (already padded), groups g, window kh x kw with stride and dilation;
mean, rstd [N, g, Ho, Wo] in float32 for half inputs (float64 stays float64).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

Pair = tuple[int, int]


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """float16/bfloat16 accumulate in float32; float32 and float64 keep their own precision."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def output_size(size: int, kernel: int, stride: int, dilation: int) -> int:
    """Number of valid window positions along one axis (no further padding)."""
    return (size - dilation * (kernel - 1) - 1) // stride + 1


def _window_sum(t: torch.Tensor, kernel_size: Pair, stride: Pair, dilation: Pair) -> torch.Tensor:
    """Sum of each window over the last two dims. t [N, G, Hp, Wp] -> [N, G, Ho, Wo]."""
    kh, kw = kernel_size
    if kh == kw == 1:
        return t[:, :, :: stride[0], :: stride[1]]
    if dilation == (1, 1):
        # avg_pool2d is the fastest box filter on every backend; undo its division.
        return F.avg_pool2d(t, kernel_size, stride) * (kh * kw)
    ones = t.new_ones(t.shape[1], 1, kh, kw)
    return F.conv2d(t, ones, None, stride, 0, dilation, groups=t.shape[1])


class _ChannelSums(torch.autograd.Function):
    """Per-group channel sums of x and x^2: xa [N, g, C/g, Hp, Wp] -> [N, 2g, Hp, Wp].

    The same values as cat(xa.sum(2), xa.square().sum(2)); the explicit backward
    g1 + 2 * x * g2 is one full-size pass, where autograd's needs four (pow's backward, the
    broadcasts of the two sums, their sum): NC's forward + backward on the CPU, ~15% faster.
    Its backward is made of differentiable ops, so double backward still works.
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


def patch_moments(x: torch.Tensor, kernel_size: Pair, stride: Pair, dilation: Pair, groups: int, eps: float):
    """Mean and 1/sqrt(var + eps) of every window of x over (C/groups channels, kh, kw).

    Two window sums of the per-group channel sums of x and x^2 (biased variance, clamped at 0).
    Callers that need accuracy when |mean| >> std subtract a per-(sample, group) constant first
    (`gennorm.ops.pad_and_center`); the variance is invariant to it.
    """
    n, c, hp, wp = x.shape
    xa = x.to(accumulation_dtype(x.dtype)).unflatten(1, (groups, c // groups))  # [N, g, C/g, Hp, Wp]
    sums = _ChannelSums.apply(xa)  # [N, 2g, Hp, Wp]: channel sums of x and x^2
    count = (c // groups) * kernel_size[0] * kernel_size[1]
    window = _window_sum(sums, kernel_size, stride, dilation) / count  # [N, 2g, Ho, Wo]
    mean, mean_sq = window[:, :groups], window[:, groups:]
    var = (mean_sq - mean.square()).clamp_min(0)
    return mean, (var + eps).rsqrt()


def _window_sum_transposed(g: torch.Tensor, size: Pair, kernel_size: Pair, stride: Pair, dilation: Pair):
    """Adjoint of `_window_sum`: scatter each window's value back onto its taps. [N,G,Ho,Wo] -> [N,G,Hp,Wp]."""
    kh, kw = kernel_size
    ho, wo = g.shape[-2:]
    extra = [size[i] - ((g.shape[-2 + i] - 1) * stride[i] + dilation[i] * (kernel_size[i] - 1) + 1) for i in (0, 1)]
    ones = g.new_ones(g.shape[1], 1, kh, kw)
    out = F.conv_transpose2d(g, ones, None, stride, 0, (0, 0), groups=g.shape[1], dilation=dilation)
    # Rows/columns past the last window receive no gradient.
    return F.pad(out, (0, extra[1], 0, extra[0])) if any(extra) else out


def patch_moments_backward(grad_mean, grad_rstd, x, mean, rstd, kernel_size: Pair, stride: Pair, dilation: Pair, groups: int):
    """Gradient of `patch_moments` with respect to x. grads, mean, rstd [N, g, Ho, Wo] -> [N, C, Hp, Wp]."""
    n, c, hp, wp = x.shape
    count = (c // groups) * kernel_size[0] * kernel_size[1]
    grad_var = -0.5 * grad_rstd * rstd.pow(3)  # d rstd / d var = -rstd^3 / 2
    grad_s1 = (grad_mean - 2 * mean * grad_var) / count  # var = E[x^2] - mean^2
    grad_s2 = grad_var / count
    both = _window_sum_transposed(torch.cat([grad_s1, grad_s2], 1), (hp, wp), kernel_size, stride, dilation)
    g1, g2 = both[:, :groups, None], both[:, groups:, None]  # [N, g, 1, Hp, Wp]
    xa = x.to(mean.dtype).unflatten(1, (groups, c // groups))
    return (g1 + 2 * xa * g2).flatten(1, 2).to(x.dtype)


def _grouped(t: torch.Tensor, groups: int) -> torch.Tensor:
    return t.unflatten(1, (groups, t.shape[1] // groups))  # [N, O, H, W] -> [N, g, O/g, H, W]


def moment_epilogue(y, mean, rstd, S, bias):
    """(y - mean * S) * rstd + bias, output channel o using group o // (O / g).

    y [N, O, H, W]; mean, rstd [N, g, H, W]; S [O]; bias [O] or None. Result in y's dtype.
    """
    n, o, h, w = y.shape
    g, dt = mean.shape[1], mean.dtype
    # Computed as y * rstd + (bias - S * (mean * rstd)) (the same value): per (sample, group) the
    # second term is the outer product of -S [O/g] and mean * rstd [H*W], one batched matmul with
    # K = 1 instead of broadcasts over [N, O, H, W]. Forward writes one full-size tensor instead of
    # four, and autograd's backward needs two full-size products instead of five (CPU: 2x faster).
    def per_group(v):  # [O] -> [N*g, O/g, 1]
        return v.to(dt).view(1, g, o // g, 1).expand(n, g, o // g, 1).reshape(n * g, o // g, 1)

    m = (mean * rstd).reshape(n * g, 1, h * w)  # [N*g, 1, HW]
    minus_S = per_group(S).neg()
    shift = torch.bmm(minus_S, m) if bias is None else torch.baddbmm(per_group(bias), minus_S, m)  # [N*g, O/g, HW]
    out = shift.addcmul_(y.to(dt).reshape(n * g, o // g, h * w), rstd.reshape(n * g, 1, h * w))
    return out.view(n, o, h, w).to(y.dtype)


def moment_epilogue_backward(grad_out, y, mean, rstd, S):
    """Gradients of `moment_epilogue` w.r.t. (y, mean, rstd, S, bias)."""
    n, o, h, w = y.shape
    g = mean.shape[1]
    go = _grouped(grad_out, g).to(mean.dtype)  # [N, g, O/g, H, W]
    rs, mu = rstd[:, :, None], mean[:, :, None]
    Sg = S.view(g, o // g, 1, 1).to(mean.dtype)
    go_rs = go * rs
    grad_y = go_rs.flatten(1, 2).to(y.dtype)
    grad_mean = -(go_rs * Sg).sum(2)
    grad_rstd = (go * (_grouped(y, g).to(mean.dtype) - mu * Sg)).sum(2)
    grad_S = -(go_rs * mu).sum((0, 3, 4)).flatten().to(S.dtype)
    grad_bias = go.sum((0, 3, 4)).flatten().to(S.dtype)
    return grad_y, grad_mean, grad_rstd, grad_S, grad_bias
