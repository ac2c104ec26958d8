"""nc_conv2d: the NC / KN layer call as one autograd unit (docs/SPEC.md sections 1, 3 and 5).

    out = nc_conv2d(x, W, b, pad4, mode, stride, dilation, groups, eps, stat_groups, stats, impl)
    x [N, C, H, W], W [O, C/groups, kh, kw], b [O] or None -> out [N, O, Ho, Wo]

    out = (conv(x~ - c, W) - mu * S) * rstd + b

x~ is x padded as nn.Conv2d pads (pad4 = (left, right, top, bottom), mode zeros | reflect |
replicate | circular); c one constant per (sample, statistics group) near the data, so float32
stays exact at x = 300 +- 0.01 (the output does not depend on c); mu, rstd [N, g, Ho, Wo] the mean
and 1 / sqrt(var + eps) of each window of x~ - c over its C/g channels and kh x kw taps; S[o] the
sum of filter o. stat_groups g: the statistics' groups (default the conv's; KN: 1). stats: KN with
dropout, the padded tensor the statistics come from (dropout(x~), [N, C, Hp, Wp]), the conv still
seeing the clean x~.

Three implementations of the same function, side by side here:
  nc_conv2d_ref     plain autograd ops: the reference (double backward, torch.export / ONNX, the tests);
  _CpuUnit the "torch" path, any device: the formula above in PyTorch ops (window sums of the
           channel-summed planes of x~ - c and its square), with a hand-written backward that
           keeps only x~ - c, y and the [N, g, Ho, Wo] moments (docs/performance.md: what it pays);
  _OpUnit  the "op" path: the four registered ops (gennorm.ops.library), whose CUDA kernels
           (cuda/) serve CUDA tensors once loaded; docs/SPEC.md section 5.1.
`impl`: "auto" (CUDA kernels for CUDA tensors when available, else "torch"), "cuda" (error if
unavailable), "op", "torch". Autocast-aware: the conv runs in the autocast dtype, the statistics
accumulate in float32, the output stays in the conv's dtype. Arguments are checked by the layers
(gennorm.layers); this is the hot path.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from gennorm.ops.extension import resolve_impl
from gennorm.ops.kernels import accumulation_dtype, center_shift, pad, pad_adjoint, window_sum, window_sum_transposed
from gennorm.ops.patch_moments import patch_moments_ref

# cfg, a plain tuple (a constant to torch.compile):
#   (pad4, mode, kernel_size, stride, dilation, conv groups, statistics groups g, eps)


def nc_conv2d(x, weight, bias=None, pad4=(0, 0, 0, 0), mode="zeros", stride=(1, 1), dilation=(1, 1), groups=1,
              eps=1e-5, stat_groups=None, stats=None, impl="auto"):
    """The NC / KN unit (module docstring): x [N, C, H, W] -> [N, O, Ho, Wo]."""
    g = groups if stat_groups is None else stat_groups
    cfg = (tuple(pad4), mode, tuple(weight.shape[2:]), tuple(stride), tuple(dilation), groups, g, float(eps))
    which = resolve_impl(x, impl)
    device = x.device.type
    if torch.is_autocast_enabled(device):  # the units cast explicitly, to the autocast dtype
        with torch.autocast(device, enabled=False):
            dtype = x.dtype if x.dtype == torch.float64 else torch.get_autocast_dtype(device)
            return _dispatch(which, x, weight, bias, stats, cfg, dtype)
    return _dispatch(which, x, weight, bias, stats, cfg, x.dtype)


def _dispatch(which, x, weight, bias, stats, cfg, dtype):
    if torch.compiler.is_exporting():  # torch.export / ONNX: plain ops only
        return nc_conv2d_ref(x, weight, bias, stats, cfg, dtype)
    if which == "torch" or stats is not None:  # KN with active dropout: the torch unit, any impl
        return _CpuUnit.apply(x, weight, bias, stats, cfg, dtype)
    return _OpUnit.apply(x, weight, bias, cfg, dtype)


# ---- the reference: plain autograd ------------------------------------------------------------


def nc_conv2d_ref(x, weight, bias, stats, cfg, dtype=None):
    """The unit in differentiable PyTorch ops, literally (slow, exact, twice differentiable)."""
    pad4, mode, kernel_size, stride, dilation, groups, g, eps = cfg
    dtype = dtype or x.dtype
    xp = pad(x.to(dtype), pad4, mode)  # x~ [N, C, Hp, Wp]
    src = xp if stats is None else stats
    c = center_shift(src, g).repeat_interleave(x.shape[1] // g, 1)[:, :, None, None]  # [N, C, 1, 1]
    w = weight.to(dtype)
    y = F.conv2d(xp - c.to(dtype), w, None, stride, 0, dilation, groups)  # [N, O, Ho, Wo]
    mean, rstd = patch_moments_ref(src - c.to(src.dtype), kernel_size, stride, dilation, g, eps)  # [N, g, Ho, Wo]
    o = y.shape[1]
    S = w.sum((1, 2, 3), dtype=mean.dtype).view(1, -1, 1, 1)
    out = (y.to(mean.dtype) - mean.repeat_interleave(o // g, 1) * S) * rstd.repeat_interleave(o // g, 1)
    if bias is not None:
        out = out + bias.to(mean.dtype).view(1, -1, 1, 1)
    return out.to(y.dtype)


def _double_backward(ctx, grad_out, inputs):
    """Differentiable gradients (create_graph=True): nc_conv2d_ref recomputed, differentiated with respect to aliases
    of the inputs (KN's dropout statistics are made from x: with respect to x itself they would count twice)."""
    inputs = tuple(t.view_as(t) if t is not None and ctx.needs_input_grad[i] else t for i, t in enumerate(inputs))
    wanted = [(i, t) for i, t in enumerate(inputs) if t is not None and ctx.needs_input_grad[i]]
    with torch.enable_grad():
        out = nc_conv2d_ref(*inputs, ctx.cfg, ctx.dtype) if len(inputs) == 4 else nc_conv2d_ref(*inputs[:3], None, ctx.cfg, ctx.dtype)
        grads = torch.autograd.grad(out, [t for _, t in wanted], grad_out, create_graph=True, allow_unused=True)
    result = [None] * (len(inputs) + 2)
    for (i, _), grad in zip(wanted, grads):
        result[i] = grad
    return tuple(result)


# ---- "torch": the unit in PyTorch ops with its own backward ------------------------------------


def _per_output(t: torch.Tensor, o: int) -> torch.Tensor:
    """[N, g, Ho, Wo] -> broadcastable against [N, O, Ho, Wo] (output o uses group o // (O / g))."""
    return t if t.shape[1] == 1 else t.repeat_interleave(o // t.shape[1], 1)


def _group_sum(t: torch.Tensor, g: int) -> torch.Tensor:
    """[N, K, H, W] -> [N, g, H, W]: the sum over each group's K / g channels (in t's dtype)."""
    return t.sum(1, keepdim=True) if g == 1 else t.unflatten(1, (g, -1)).sum(2)


class _CpuUnit(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stats, cfg, dtype):
        pad4, mode, kernel_size, stride, dilation, groups, g, eps = cfg
        acc = accumulation_dtype(dtype)
        n, ch, h, w = x.shape
        xl, wl = x.to(dtype), weight.to(dtype)
        c = xl.detach()[:, ::ch // g, h // 2, w // 2]  # [N, g]: one element per (sample, group), near the data
        shift = c.repeat_interleave(ch // g, 1)[:, :, None, None]  # [N, C, 1, 1]
        xc = pad(xl, pad4, mode) - shift  # x~ - c [N, C, Hp, Wp]
        d = xc if stats is None else stats.to(dtype) - shift
        da = d if d.dtype == acc else d.to(acc)
        planes = torch.cat([_group_sum(da, g), _group_sum(da * da, g)], 1)  # [N, 2g, Hp, Wp]
        count = kernel_size[0] * kernel_size[1] * ch // g
        moments = window_sum(planes, kernel_size, stride, dilation).div_(count)  # [N, 2g, Ho, Wo]
        mean, rstd = moments[:, :g], moments[:, g:]  # mean relative to c
        rstd = (rstd - mean * mean).clamp_min_(0).add_(eps).rsqrt_()
        S = wl.sum((1, 2, 3), dtype=acc)  # [O]
        y = F.conv2d(xc, wl, None, stride, 0, dilation, groups)  # [N, O, Ho, Wo]
        o = y.shape[1]
        value = y - _per_output(mean, o) * S.view(1, o, 1, 1)  # conv(x~ - c, W) - mu S
        if bias is None:
            out = (value * _per_output(rstd, o)).to(dtype)
        else:
            out = torch.addcmul(bias.to(acc).view(1, o, 1, 1), value, _per_output(rstd, o)).to(dtype)
        ctx.cfg, ctx.dtype, ctx.device_type, ctx.has_bias = cfg, dtype, x.device.type, bias is not None
        ctx.x_dtype = x.dtype
        ctx.save_for_backward(x, weight, bias, stats, xc, d if stats is not None else None, wl, y, mean, rstd, S)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, weight, bias, stats, xc, d, wl, y, mean, rstd, S = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True
            return _double_backward(ctx, grad_out, (x, weight, bias, stats))
        with torch.autocast(ctx.device_type, enabled=False):
            return _cpu_backward(ctx, grad_out, xc, xc if d is None else d, wl, y, mean, rstd, S, weight)


def _cpu_backward(ctx, grad_out, xc, d, wl, y, mean, rstd, S, weight):
    """Gradients of _CpuUnit: the conv's two, the bias', and the statistics' (through mean, rstd)."""
    pad4, mode, kernel_size, stride, dilation, groups, g, eps = ctx.cfg
    need_x, need_w, need_b, need_stats = ctx.needs_input_grad[:4]  # need_stats: KN's dropout statistics
    acc = rstd.dtype
    o = y.shape[1]
    go = grad_out.to(y.dtype)
    grad_y = (go * _per_output(rstd, o)).to(y.dtype)  # [N, O, Ho, Wo]
    grad_xc, grad_wc, _ = torch.ops.aten.convolution_backward(
        grad_y, xc, wl, None, list(stride), [0, 0], list(dilation), False, [0, 0], groups, [need_x, need_w, False])
    grad_w = grad_b = grad_x = grad_stats = None
    if need_b and ctx.has_bias:
        grad_b = go.sum((0, 2, 3), dtype=acc).to(weight.dtype)
    if need_w:  # dL/dW = conv's + dL/dS[o] = -sum_{n, p} grad_out * rstd * mean, on every tap
        grad_S = (grad_y.to(acc) * _per_output(mean, o)).sum((0, 2, 3)).view(o, 1, 1, 1)
        grad_w = (grad_wc.to(acc) - grad_S).to(weight.dtype)
    if (need_x and d is xc) or need_stats:
        # h = dL/drstd = sum_o grad_out * (y - mean S); H = h rstd^3. Through var = E[d^2] - mean^2:
        # dL/dmean = mean H - rstd sum_o grad_out S[o], dL/dE[d^2] = -H / 2; per pixel of d:
        # B - A2 * d, with B, A2 the window-mean adjoints of dL/dmean and H.
        value = y.to(acc) - _per_output(mean, o) * S.view(1, o, 1, 1)
        hh = _group_sum((go * value).to(acc), g) * rstd.pow(3)  # [N, g, Ho, Wo]
        gmean = mean * hh - rstd * _group_sum(go.to(acc) * S.view(1, o, 1, 1), g)
        count = kernel_size[0] * kernel_size[1] * d.shape[1] // g
        both = window_sum_transposed(torch.cat([gmean, hh], 1) / count, d.shape[2:], kernel_size, stride, dilation)
        B, A2 = _per_output(both[:, :g], d.shape[1]), _per_output(both[:, g:], d.shape[1])  # [N, C or 1, Hp, Wp]
        if need_stats:
            grad_stats = torch.addcmul(B, d.to(acc), A2, value=-1).to(d.dtype)  # [N, C, Hp, Wp]
        else:  # d is x~ - c: the statistics' gradient joins the conv's, in place
            grad_xc = grad_xc.to(acc).addcmul_(d.to(acc), A2, value=-1).add_(B)
    if need_x:
        grad_x = pad_adjoint(grad_xc, pad4, mode).contiguous().to(ctx.x_dtype)
    return grad_x, grad_w, grad_b, grad_stats, None, None


# ---- "op": the four registered ops (the CUDA kernels where loaded) -----------------------------


class _OpUnit(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, cfg, dtype):
        pad4, mode, kernel_size, stride, dilation, groups, g, eps = cfg
        xl, wl = x.to(dtype), weight.to(dtype)
        xc, sums = torch.ops.gennorm.pad_center_sums(xl, list(pad4), mode, g)  # [N, C, Hp, Wp], [N, 2g, Hp, Wp]
        y = F.conv2d(xc, wl, None, stride, 0, dilation, groups)  # [N, O, Ho, Wo]
        S = wl.sum((1, 2, 3), dtype=sums.dtype)  # [O]
        out, mean, rstd = torch.ops.gennorm.window_epilogue(y, sums, S, bias, list(kernel_size), list(stride),
                                                            list(dilation), x.shape[1] // g, eps)
        ctx.cfg, ctx.dtype, ctx.device_type = cfg, dtype, x.device.type
        ctx.has_bias = bias is not None
        ctx.save_for_backward(x, weight, bias, xc, wl, y, mean, rstd, S)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, weight, bias, xc, wl, y, mean, rstd, S = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True
            return _double_backward(ctx, grad_out, (x, weight, bias))
        pad4, mode, kernel_size, stride, dilation, groups, g, eps = ctx.cfg
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        with torch.autocast(ctx.device_type, enabled=False):
            grad_y, grad_window, grad_S, grad_b = torch.ops.gennorm.window_epilogue_backward(
                grad_out.to(y.dtype), y, mean, rstd, S, x.shape[1] // g, list(kernel_size))
            grad_xc, grad_w, _ = torch.ops.aten.convolution_backward(
                grad_y, xc, wl, None, list(stride), [0, 0], list(dilation), False, [0, 0], groups, [need_x, need_w, False])
            grad_x = None
            if need_x:
                grad_x = torch.ops.gennorm.pad_center_sums_backward(
                    grad_xc, xc, grad_window, list(kernel_size), list(stride), list(dilation), list(pad4), mode, g
                ).to(x.dtype)
            if need_w:
                grad_w = (grad_w.to(grad_S.dtype) + grad_S[:, None, None, None]).to(weight.dtype)
        grad_b = grad_b.to(bias.dtype) if need_b and ctx.has_bias else None
        return grad_x, grad_w, grad_b, None, None
