"""The registered ops' Python kernels: docs/SPEC.md section 5.1 (the contract with cuda/), literally.

Each `torch.ops.gennorm.*` op serves CPU tensors (and CUDA tensors until the compiled library is
loaded) with the function of its name here, and tests/test_cuda.py checks the CUDA kernels
against these. Straightforward tensor code, accuracy first. The padding and window-sum pieces at
the top are shared with the ops' own files (nc_conv2d.py, patch_moments.py).

Shapes: x [N, C, H, W]; groups g, Cg = C / g; pad = (left, right, top, bottom) as F.pad and
nn.Conv2d's `_reversed_padding_repeated_twice`; window (kh, kw) with stride and dilation on the
padded [Hp, Wp] grid, Ho x Wo windows; acc = float32 for half inputs, else the input's dtype.

    pad_center_sums(x, pad, mode, g)          -> xc [N, C, Hp, Wp] = pad(x) - c, sums [N, 2g, Hp, Wp]
    window_epilogue(y, sums, S, b, k, s, d, cg, eps) -> out = (y - mean * S) * rstd + b, mean, rstd
    window_epilogue_backward(...)             -> grad_y, grad_window [N, 2g, Ho, Wo], grad_S, grad_bias
    pad_center_sums_backward(...)             -> grad_x [N, C, H, W]
    patch_moments_backward(...)               -> grad_x [N, C, Hp, Wp]  (the forward: patch_moments_ref)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from gennorm.ops.checks import output_size  # noqa: F401  (re-exported: the one definition)

Pair = tuple[int, int]


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """float16/bfloat16 accumulate in float32; float32 and float64 keep their own precision."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def memory_format_of(x: torch.Tensor) -> torch.memory_format:
    """channels_last when x is channels_last (and not also plain contiguous), else contiguous."""
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


# ---- padding and its adjoint ------------------------------------------------------------------


def pad(x: torch.Tensor, padding, mode: str) -> torch.Tensor:
    """x padded as nn.Conv2d pads (mode zeros | reflect | replicate | circular)."""
    if not any(padding):
        return x
    return F.pad(x, tuple(padding), mode="constant" if mode == "zeros" else mode)


def _unpad_axis(g: torch.Tensor, dim: int, before: int, after: int, size: int, mode: str) -> torch.Tensor:
    """Adjoint of padding one axis: [.., before + size + after, ..] -> [.., size, ..]."""
    out = g.narrow(dim, before, size)
    if mode == "zeros" or before + after == 0:
        return out
    out = out.clone()
    head, tail = g.narrow(dim, 0, before), g.narrow(dim, before + size, after)
    if mode == "replicate":
        out.narrow(dim, 0, 1).add_(head.sum(dim, keepdim=True))
        out.narrow(dim, size - 1, 1).add_(tail.sum(dim, keepdim=True))
    elif mode == "reflect":  # padded p < 0 copies -p; p = size + k copies size - 2 - k
        out.narrow(dim, 1, before).add_(head.flip(dim))
        out.narrow(dim, size - 1 - after, after).add_(tail.flip(dim))
    elif mode == "circular":  # p < 0 copies p + size; p = size + k copies k
        out.narrow(dim, size - before, before).add_(head)
        out.narrow(dim, 0, after).add_(tail)
    else:
        raise ValueError(f"unknown padding mode {mode!r}")
    return out


def pad_adjoint(g: torch.Tensor, padding, mode: str) -> torch.Tensor:
    """The adjoint of `pad`: every padded position adds into the source pixel it copied.

    g [..., Hp, Wp] -> [..., H, W]. In zeros mode this is a view of the interior.
    """
    left, right, top, bottom = padding
    if not any(padding):
        return g
    h, w = g.shape[-2] - top - bottom, g.shape[-1] - left - right
    g = _unpad_axis(g, g.dim() - 2, top, bottom, h, mode)
    return _unpad_axis(g, g.dim() - 1, left, right, w, mode)


# ---- window sums and their adjoint (separable, any stride and dilation) ------------------------


def window_sum(t: torch.Tensor, kernel_size: Pair, stride: Pair, dilation: Pair) -> torch.Tensor:
    """Sum of each window over the last two dims: [.., Hp, Wp] -> [.., Ho, Wo], a new tensor: columns,
    then rows, k - 1 adds of strided views each (in place into the first sum)."""
    fresh = False
    for axis in (1, 0):
        k, s, d = kernel_size[axis], stride[axis], dilation[axis]
        span = s * (output_size(t.shape[-2 + axis], k, s, d) - 1) + 1

        def tap(a):  # what tap a of every window reads along this axis
            window = slice(a * d, a * d + span, s)
            return t[..., window] if axis else t[..., window, :]

        total = tap(0)
        if k > 1:
            total = total + tap(1)
            for a in range(2, k):
                total.add_(tap(a))
            fresh = True
        t = total
    return t if fresh else t.clone()  # a 1 x 1 window: a copy, not a view of the input


def window_sum_transposed(g: torch.Tensor, size: Pair, kernel_size: Pair, stride: Pair, dilation: Pair) -> torch.Tensor:
    """Adjoint of `window_sum`: each window's value added onto all its taps. [.., Ho, Wo] -> [.., Hp, Wp].

    Rows/columns past the last window receive nothing.
    """
    for axis in (1, 0):
        dim = g.dim() - 2 + axis
        k, s, d = kernel_size[axis], stride[axis], dilation[axis]
        n = g.shape[dim]
        shape = list(g.shape)
        shape[dim] = size[axis]
        out = g.new_zeros(shape)
        index = (slice(None),) * dim + (slice(None, None, s),)
        span = s * (n - 1) + 1
        for a in range(k):
            out.narrow(dim, a * d, span)[index].add_(g)
        g = out
    return g


# ---- 1. pad_center_sums ------------------------------------------------------------------------


def center_shift(x: torch.Tensor, groups: int) -> torch.Tensor:
    """c [N, g] (acc): the mean over each group's channels of the centre pixel x[:, :, H // 2, W // 2].

    Any per-(sample, group) constant near the data keeps E[x^2] - E[x]^2 exact enough in float32
    (x = 300 +- 0.01 cancels without it); the layer output does not depend on it.
    """
    n, c, h, w = x.shape
    centre = x[:, :, h // 2, w // 2].detach().to(accumulation_dtype(x.dtype))  # [N, C]
    return centre.view(n, groups, c // groups).mean(2)


def channel_sums(xc: torch.Tensor, groups: int) -> torch.Tensor:
    """[N, 2g, Hp, Wp] (acc, contiguous): per-group channel sums of xc and of xc^2."""
    xa = xc.to(accumulation_dtype(xc.dtype)).unflatten(1, (groups, xc.shape[1] // groups))  # [N, g, Cg, Hp, Wp]
    return torch.cat([xa.sum(2), xa.square().sum(2)], 1).contiguous()


def pad_center_sums(x: torch.Tensor, padding, mode: str, groups: int):
    """(xc, sums): xc = round(pad(x) - c) in x's dtype and memory format; sums of xc, xc^2 per group."""
    n, c = x.shape[:2]
    shift = center_shift(x, groups).repeat_interleave(c // groups, 1)[:, :, None, None]  # [N, C, 1, 1]
    xp = pad(x, padding, mode)
    xc = torch.empty(xp.shape, dtype=x.dtype, device=x.device, memory_format=memory_format_of(x))
    torch.sub(xp, shift, out=xc)  # computed in acc, rounded once to x's dtype
    return xc, channel_sums(xc, groups)


# ---- 2. window_epilogue ------------------------------------------------------------------------


def window_moments(sums: torch.Tensor, kernel_size: Pair, stride: Pair, dilation: Pair, cg: int, eps: float):
    """mean, rstd [N, g, Ho, Wo] of the windows, from the channel-sum planes [N, 2g, Hp, Wp]."""
    g = sums.shape[1] // 2
    count = cg * kernel_size[0] * kernel_size[1]
    s = window_sum(sums, kernel_size, stride, dilation)  # [N, 2g, Ho, Wo]
    mean = s[:, :g] / count
    var = (s[:, g:] / count - mean.square()).clamp_min(0)
    return mean.contiguous(), torch.sqrt(var + eps).reciprocal().contiguous()


def _per_channel(t: torch.Tensor, o: int) -> torch.Tensor:
    """[N, g, H, W] -> [N, O, H, W]: output channel o uses group o // (O / g)."""
    return t.repeat_interleave(o // t.shape[1], 1)


def _like(ref: torch.Tensor, value: torch.Tensor, dtype=None) -> torch.Tensor:
    """value copied into a new tensor with ref's dtype (or `dtype`) and memory format (value's shape)."""
    out = torch.empty(value.shape, dtype=dtype or ref.dtype, device=ref.device, memory_format=memory_format_of(ref))
    return out.copy_(value)


def window_epilogue(y, sums, S, bias, kernel_size: Pair, stride: Pair, dilation: Pair, cg: int, eps: float):
    """(out, mean, rstd): out = (y - mean * S[o]) * rstd + bias[o] in acc, y's dtype and memory format."""
    mean, rstd = window_moments(sums, kernel_size, stride, dilation, cg, eps)
    o, acc = y.shape[1], mean.dtype
    out = (y.to(acc) - _per_channel(mean, o) * S.to(acc).view(1, -1, 1, 1)) * _per_channel(rstd, o)
    if bias is not None:
        out = out + bias.to(acc).view(1, -1, 1, 1)
    return _like(y, out), mean, rstd


# ---- 3. window_epilogue_backward ---------------------------------------------------------------


def window_epilogue_backward(grad_out, y, mean, rstd, S, cg: int, kernel_size: Pair):
    """(grad_y, grad_window, grad_S, grad_bias) of `window_epilogue` (grad_window: of the two window sums)."""
    n, o = y.shape[:2]
    g, acc = mean.shape[1], mean.dtype
    count = cg * kernel_size[0] * kernel_size[1]
    go = grad_out.to(acc).unflatten(1, (g, o // g))  # [N, g, O/g, Ho, Wo]
    ya = y.to(acc).unflatten(1, (g, o // g))
    Sg = S.to(acc).view(1, g, o // g, 1, 1)
    rs, mu = rstd[:, :, None], mean[:, :, None]
    grad_y = _like(y, (go * rs).flatten(1, 2))
    gm = -rstd * (go * Sg).sum(2)  # [N, g, Ho, Wo]
    gr = (go * (ya - mu * Sg)).sum(2)
    gvar = -0.5 * gr * rstd.pow(3)
    grad_window = torch.cat([(gm - 2 * mean * gvar) / count, gvar / count], 1).contiguous()
    grad_S = -(go * rs * mu).sum((0, 3, 4)).flatten()
    grad_bias = go.sum((0, 3, 4)).flatten()
    return grad_y, grad_window, grad_S, grad_bias


# ---- 4. pad_center_sums_backward ---------------------------------------------------------------


def pad_center_sums_backward(grad_xc, xc, grad_window, kernel_size: Pair, stride: Pair, dilation: Pair,
                             padding, mode: str, groups: int):
    """grad_x [N, C, H, W]: the padding's adjoint of grad_xc + G1 + 2 * xc * G2 (G: transposed window sums)."""
    n, c, hp, wp = xc.shape
    acc = grad_window.dtype
    both = window_sum_transposed(grad_window, (hp, wp), kernel_size, stride, dilation)  # [N, 2g, Hp, Wp]
    g1, g2 = both[:, :groups, None], both[:, groups:, None]  # [N, g, 1, Hp, Wp]
    total = grad_xc.to(acc).unflatten(1, (groups, c // groups)) + g1 + 2 * xc.to(acc).unflatten(1, (groups, c // groups)) * g2
    grad_x = pad_adjoint(total.flatten(1, 2), padding, mode)
    return _like(xc, grad_x)


# ---- 5. patch_moments_backward (patch_moments' forward kernel is patch_moments_ref) -----------


def patch_moments_backward(grad_mean, grad_rstd, x, mean, rstd, kernel_size: Pair, stride: Pair, dilation: Pair, groups: int):
    """Gradient of `patch_moments` with respect to x. grads, mean, rstd [N, g, Ho, Wo] -> [N, C, Hp, Wp]."""
    n, c, hp, wp = x.shape
    count = (c // groups) * kernel_size[0] * kernel_size[1]
    grad_var = -0.5 * grad_rstd * rstd.pow(3)  # d rstd / d var = -rstd^3 / 2
    grad_s1 = (grad_mean - 2 * mean * grad_var) / count  # var = E[x^2] - mean^2
    grad_s2 = grad_var / count
    both = window_sum_transposed(torch.cat([grad_s1, grad_s2], 1), (hp, wp), kernel_size, stride, dilation)
    g1, g2 = both[:, :groups, None], both[:, groups:, None]  # [N, g, 1, Hp, Wp]
    xa = x.to(mean.dtype).unflatten(1, (groups, c // groups))
    return (g1 + 2 * xa * g2).flatten(1, 2).to(x.dtype)
