"""One autograd unit per NC / KN layer call (docs/SPEC.md sections 1, 3 and 5).

    out = (conv(x~ - c, W) - mu * S) * rstd + b,   mu, rstd: moments of each window of x~ - c

Two implementations of the same unit, chosen per call by `impl` (see `nc_conv2d`):

"op" (the CUDA path; docs/SPEC.md section 5.1): forward = pad_center_sums + conv2d + window_epilogue,
backward = window_epilogue_backward + aten.convolution_backward (input and weight grads) +
pad_center_sums_backward, grad_W += grad_S. With the compiled library these are its CUDA kernels;
elsewhere the ops' Python kernels (gennorm.ops.reference).

"torch" (the default wherever there are no CUDA kernels; on the CPU faster than "op"): the same
function in plain PyTorch, with fewer full-size passes:
  - xc = pad(x) - c in one pass, c one element of the input (the centre pixel of each group's
    first channel), so float32 stays exact at x = 300 +- 0.01; the window moments come from
    per-pixel channel sums of xc and xc^2 ([2, N g, Hp, Wp] planes, averaged over each window and
    its Cg channels by avg_pool2d or by strided adds, whichever is faster at the size: _pooled);
  - symmetric zero padding (every NC conv of the networks but the reflect-padded ones): the conv
    pads x - c itself, as Conv2d does, in forward and backward (oneDNN runs a stride-2 conv
    ~25% faster on 256^2 with its own padding than on the padded 258^2), and _ZeroBorder puts
    back what the border's -c adds: the window moments by each window's share of border taps, the
    conv output and the weight gradient at the border pixels only;
  - the conv runs on the centred weight W' = W - mean_k W (each filter's mean over its
    C/g x kh x kw taps removed). Every window of xc then gives conv(xc, W') = conv(xc, W) - mu * S
    exactly, for any xc (sum_k (W_k - m)(x_k - mu) = sum_k W_k x_k - mu S, as sum_k (x_k - mu) = 0
    over the window mu is the mean of), so the S term costs nothing: out = y' * rstd + b in one
    pass; backward: grad_W = grad_W' - mean_k grad_W' (the centring is a symmetric projection),
    and the rstd gradient is sum_o grad_out * y' alone. Centring costs four weight-sized passes
    per step, the S term about three output-sized ones and more ops; measured, centring is as
    fast or faster at every shape tried (CENTRE_MIN_RATIO, below). Where the statistics do not
    come from exactly the windows the conv sees (KN with dropout, KN's one statistics group under
    a grouped conv), the S term is applied: y -= S[o] * mean in place as one batched K=1 product,
    then out = y * rstd + b;
  - xc = pad(x) - c and xc^2 side by side in one [2, N, C, Hp, Wp] buffer, so one reduction over
    the channels gives both per-pixel planes; on the CPU in training that pair and grad_out * y live
    in two reused per-thread workspaces (see "CPU workspaces" below) and xc is recomputed in
    backward, so a call allocates its outputs only;
  - backward: sum_o grad_out * y per pixel, grad_y = grad_out * rstd (into the same buffer), the
    conv's two grads, and the statistics' gradient B - A2 * xc (A2, B per pixel) added into the
    conv's input gradient in place. Zero padding: one convolution_backward on the unpadded x - c
    with the conv's own padding, as Conv2d's, so the input gradient is grad_x's own [N, C, H, W]
    buffer; the weight gradient's border taps (there x~ - c is -c, not the conv's 0) come from the
    border pixels of grad_y (_ZeroBorder.taps_grad). Measured on 2 CPU threads (fwd+bwd, 3x3 64->64
    at 128^2, interleaved): 0.92-1.07x Conv+IN against 1.30-1.39x with a fresh padded xc and padded
    input gradient per call.
  - where x is near 0 against its spread (every window's |mean| * rstd <= RAW_MAX_RATIO; CPU
    training), the conv with its own zero padding and the whole backward read x~ itself: exact with
    the centred weight (docs/SPEC.md section 1), and backward's x~ - c pass is saved;
  On the CPU every op on more than 32768 elements is a parallel region, and on a VM every op (and
  every Python line) right after a conv runs cold: a tiny mul was measured at 57-79 us there
  against 4-5 us warm. The unit keeps its op count and per-call checks low (decided once per call).

Both: float64 exact; autocast-aware (the conv runs in the autocast dtype, statistics accumulate in
float32, outputs stay in the conv's dtype); no host syncs; torch.compile(fullgraph=True) traces
them. Double backward (create_graph=True) recomputes the unit with plain autograd (`composed`) and
differentiates that, so gradient penalties work too.

KN with dropout: the statistics come from dropout(x~) - c while the conv sees the clean input. The
caller passes `stats` = dropout(x~) (padded, [N, C, Hp, Wp]); only the "torch" unit takes it.
"""
from __future__ import annotations

import math
import mmap
import threading

import torch
import torch.nn.functional as F
import torch.utils._python_dispatch

from gennorm.ops import extension, library, reference
from gennorm.ops.reference import accumulation_dtype, pad, pad_adjoint, window_sum, window_sum_transposed

IMPLS = ("auto", "cuda", "op", "torch")

# cfg (a plain tuple, so torch.compile treats it as a constant):
#   (pad (l, r, t, b), mode, kernel_size, stride, dilation, conv groups, statistics groups, eps)


def _compute_dtype(x: torch.Tensor, device: str) -> torch.dtype:
    """Under autocast on x's device: the conv's dtype, the autocast dtype (float64 stays x's)."""
    return x.dtype if x.dtype == torch.float64 else torch.get_autocast_dtype(device)


# ---- the plain-autograd composition: double backward, and the tests' oracle -------------------


def composed(x, weight, bias, stats, cfg, dtype=None):
    """The unit in differentiable PyTorch ops (autograd all the way; slow, exact)."""
    pad4, mode, kernel_size, stride, dilation, groups, stat_groups, eps = cfg
    dtype = dtype or x.dtype
    xp = pad(x.to(dtype), pad4, mode)  # x~ [N, C, Hp, Wp]
    src = xp if stats is None else stats
    c = x.shape[1]
    shift = reference.center_shift(src, stat_groups).repeat_interleave(c // stat_groups, 1)[:, :, None, None]
    w = weight.to(dtype)
    y = F.conv2d(xp - shift.to(dtype), w, None, stride, 0, dilation, groups)  # [N, O, Ho, Wo]
    mean, rstd = reference.patch_moments(src - shift.to(src.dtype), kernel_size, stride, dilation, stat_groups, eps)
    o = y.shape[1]
    S = w.sum((1, 2, 3), dtype=mean.dtype).view(1, -1, 1, 1)
    out = (y.to(mean.dtype) - mean.repeat_interleave(o // stat_groups, 1) * S) * rstd.repeat_interleave(o // stat_groups, 1)
    if bias is not None:
        out = out + bias.to(mean.dtype).view(1, -1, 1, 1)
    return out.to(y.dtype)


def _double_backward(ctx, grad_out, originals):
    """Gradients that are themselves differentiable: recompute with `composed`, differentiate it."""
    x, weight, bias, stats = originals
    inputs = [(i, t) for i, t in enumerate((x, weight, bias, stats)) if t is not None and ctx.needs_input_grad[i]]
    with torch.enable_grad():
        out = composed(x, weight, bias, stats, ctx.cfg, ctx.dtype)
        grads = torch.autograd.grad(out, [t for _, t in inputs], grad_out, create_graph=True, allow_unused=True)
    result = [None] * 7
    for (i, _), g in zip(inputs, grads):
        result[i] = g
    return tuple(result)


# ---- "torch": the fused plain-PyTorch unit -----------------------------------------------------


# aten's padding ops with an out= form: reflect / replicate pad straight into a workspace, and their
# adjoints in one op each (reference.pad_adjoint is the literal form)
_PAD_OUT = {"reflect": torch._C._nn.reflection_pad2d, "replicate": torch._C._nn.replication_pad2d}  # out= forms
_PAD_ADJOINT = {"reflect": torch.ops.aten.reflection_pad2d_backward.default,
                "replicate": torch.ops.aten.replication_pad2d_backward.default}


def _pad_center(x: torch.Tensor, shift: torch.Tensor, pad4, mode: str, out: torch.Tensor | None = None) -> torch.Tensor:
    """xc = pad(x) - c in x's dtype (computed in acc); shift c [N, C, 1, 1]. Eager zeros: one pass;
    into `out` if given (a workspace buffer of xc's shape, plain layout; zeros, reflect, replicate)."""
    if out is not None and not any(pad4):  # eager, x's dtype = acc
        return torch.sub(x, shift, out=out)
    if out is not None and mode in _PAD_OUT:
        _PAD_OUT[mode](x, pad4, out=out)
        return out.sub_(shift)
    if torch.compiler.is_compiling() or any(pad4) and mode != "zeros":
        return (pad(x, pad4, mode).to(shift.dtype) - shift).to(x.dtype)  # inductor fuses it
    left, right, top, bottom = pad4
    n, c, h, w = x.shape
    xc = out if out is not None else torch.empty((n, c, h + top + bottom, w + left + right), dtype=x.dtype,
                                                 device=x.device, memory_format=reference.memory_format_of(x))
    if any(pad4):
        border = (-shift).to(x.dtype)
        if pad4 == (1, 1, 1, 1):  # the 3x3 convs: both border rows, then both border columns, as one strided view each
            parts = (xc[:, :, ::h + 1], xc[:, :, :, ::w + 1])
        else:
            parts = (xc[:, :, :top], xc[:, :, top + h:], xc[:, :, top:top + h, :left], xc[:, :, top:top + h, left + w:])
        for part in parts:
            part.copy_(border.expand(part.shape))
    torch.sub(x, shift, out=xc[:, :, top:top + h, left:left + w])
    return xc


def _shift(x: torch.Tensor, g: int, acc: torch.dtype, eager: bool) -> torch.Tensor:
    """c [N, 1, 1, 1] (g = 1) or [N, C, 1, 1] (acc): one element per (sample, group), the centre pixel of
    the group's first channel. Any per-(sample, group) constant near the data keeps E[d^2] - E[d]^2
    exact in float32 (x = 300 +- 0.01); the output does not depend on it. One load, where
    reference.center_shift's channel mean (the CUDA op's contract) reads C values a plane apart:
    C TLB and cache misses, measured ~170 us per call cold on 2 CPU threads at 64 x 128^2."""
    n, ch, h, w = x.shape
    cg = ch // g
    if not eager:  # dynamo does not trace storage_offset
        c = x.detach()[:, ::cg, h // 2, w // 2].to(acc)  # [N, g]
    else:  # one view op (indexing is four)
        s0, s1, s2, s3 = x.stride()
        offset = x.storage_offset() + (h // 2) * s2 + (w // 2) * s3
        if g == 1:  # the unit's forward runs without grad: no detach needed
            c = x.as_strided((n, 1, 1, 1), (s0, 1, 1, 1), offset)
            return c if c.dtype == acc else c.to(acc)
        c = x.as_strided((n, g), (s0, cg * s1), offset)
        c = c if c.dtype == acc else c.to(acc)
    return c.view(n, 1, 1, 1) if g == 1 else c.repeat_interleave(cg, 1)[:, :, None, None]


# Grouped views: [N, C, ...] as [N, g, C/g, ...], with per-group planes [N, g, 1, ...] broadcast
# against them. For g = 1 (every NC layer) the plain 4D tensors broadcast the same way with planes
# [N, 1, ...], so no views are made (each is a call, and the unit's calls add up on small layers).
def _grouped(t: torch.Tensor, g: int) -> torch.Tensor:
    return t if g == 1 else t.unflatten(1, (g, -1))


def _per_group(planes: torch.Tensor, g: int) -> torch.Tensor:
    return planes if g == 1 else planes[:, :, None]


def _ungrouped(t: torch.Tensor, g: int) -> torch.Tensor:
    return t if g == 1 else t.flatten(1, 2)


def _group_dim(g: int) -> dict:
    """sum(**_group_dim(g)) over a _grouped tensor: [N, g, ...] per group."""
    return {"dim": 1, "keepdim": True} if g == 1 else {"dim": 2}


def _pixel_planes(d: torch.Tensor, groups: int, parts: tuple | None = None, keep: bool = False) -> torch.Tensor:
    """[2, N g, H, W] (acc): per-pixel sums over each group's channels of d (plane 0) and of d^2
    (plane 1). Sums, not means: torch.mean is a sum and a division; the window means divide once,
    by K * Cg.

    parts: _pair_parts of a [2, N, C, H, W] buffer (d's dtype = acc, plain layout) whose [0] is d:
    d^2 goes into [1] and one reduction makes both planes (no other temporary).
    """
    n, c, h, w = d.shape
    if parts is not None:
        torch.mul(d, d, out=parts[1])
        return _channel_sums(parts[2], keep).view(2, n * groups, h, w)
    acc = accumulation_dtype(d.dtype)
    dv, dims = _grouped(d, groups), _group_dim(groups)  # [N, g, Cg, H, W]
    square = dv * dv if acc == d.dtype else dv.to(acc).square_()
    return torch.stack([dv.sum(**dims, dtype=acc), square.sum(**dims)]).view(2, n * groups, h, w)


def _channel_sums(t: torch.Tensor, keep: bool) -> torch.Tensor:
    """[B, K, P] -> [B, 1, P]: sums over K as a batched product with ones. Measured on 2 CPU threads:
    as fast as sum(1) while the tensor fits in cache, 1.4 ms against 2.7 ms at 2 x 64 x 258^2 (the
    BLAS kernel streams memory better than the strided reduction)."""
    b, k = t.shape[:2]
    return torch.bmm(_kept(("ones", b, k), t, lambda: t.new_ones((1, 1, k)).expand(b, 1, k), keep), t)


def _pair_parts(pair: torch.Tensor, g: int) -> tuple:
    """(pair[0], pair[1], pair as [2 N g, C/g, H W]) of a [2, N, C, H, W] buffer."""
    n, c, h, w = pair.shape[1:]
    return pair[0], pair[1], pair.view(2 * n * g, c // g, h * w)


_KEPT: dict = {}


def _kept(key, like: torch.Tensor, make, keep: bool = True):
    """make(), kept per (key, like's dtype and device) where `keep` (the caller's _keepable: eager,
    real tensors, so not under FakeTensorMode): the unit's per-geometry constants, a dict lookup per
    call."""
    if not keep:
        return make()
    key = key + (like.dtype, like.device)
    value = _KEPT.get(key)
    if value is None:
        if len(_KEPT) >= 256:
            _KEPT.clear()
        value = _KEPT[key] = make()
    return value


def _window_mean(planes: torch.Tensor, kernel_size, stride, dilation, cg: int, padding=(0, 0)) -> torch.Tensor:
    """Window means from the channel sums: [B, G, Hp, Wp] -> [B, G, Ho, Wo], each / (kh kw Cg).
    padding (zeros, (top, left) = (bottom, right)): planes of the unpadded input."""
    count = kernel_size[0] * kernel_size[1] * cg
    ho = reference.output_size(planes.shape[2] + 2 * padding[0], kernel_size[0], stride[0], dilation[0])
    wo = reference.output_size(planes.shape[3] + 2 * padding[1], kernel_size[1], stride[1], dilation[1])
    outputs = planes.shape[0] * planes.shape[1] * ho * wo
    if _pooled(outputs, kernel_size, stride, dilation, padding):
        return F.avg_pool2d(planes, kernel_size, stride, padding, divisor_override=count)
    if any(padding):
        planes = F.pad(planes, (padding[1], padding[1], padding[0], padding[0]))
    return window_sum(planes, kernel_size, stride, dilation).mul_(1.0 / count)


def _pooled(outputs: int, kernel_size, stride, dilation, padding) -> bool:
    """avg_pool2d (and its backward) for the window sums where it is faster than reference.window_sum's
    strided adds (and their adjoint): one op, but ~7 ns
    per output on the CPU (2 threads; 3x3: 215 against 137 us at 2 x 128^2 outputs, 19 against 29
    at 2 x 32^2; 7x7: 2422 against 230 at 2 x 256^2); strided views cost more at stride 2 (61
    against 93 at 2 x 64^2, 217 against 183 at 2 x 128^2). No dilation, padding at most half the
    kernel (avg_pool2d's own limits)."""
    return (tuple(dilation) == (1, 1) and padding[0] <= kernel_size[0] // 2 and padding[1] <= kernel_size[1] // 2
            and outputs * kernel_size[0] * kernel_size[1] < 9 * 8192 * stride[0] * stride[1])


def _window_mean_transposed(grad: torch.Tensor, size, kernel_size, stride, dilation, cg: int, padding=(0, 0),
                            keep: bool = False) -> torch.Tensor:
    """Adjoint of `_window_mean`: [B, G, Ho, Wo] -> [B, G, Hp, Wp] (nothing past the last window;
    with padding: [B, G, H, W], the padding's share dropped). avg_pool2d_backward, or
    reference.window_sum_transposed (`_pooled` says which)."""
    count = kernel_size[0] * kernel_size[1] * cg
    if _pooled(grad.numel(), kernel_size, stride, dilation, padding):
        shape = grad.shape[:2] + tuple(size)
        like = _kept(("like", shape), grad, lambda: grad.new_empty(shape), keep)  # its shape is all avg_pool2d_backward reads
        return torch.ops.aten.avg_pool2d_backward(grad, like, list(kernel_size), list(stride), list(padding), False, True,
                                                  count)
    padded = (size[0] + 2 * padding[0], size[1] + 2 * padding[1])
    grad = window_sum_transposed(grad * (1.0 / count), padded, kernel_size, stride, dilation)
    if any(padding):  # the interior, as a view
        grad = grad[..., padding[0]:padding[0] + size[0], padding[1]:padding[1] + size[1]]
    return grad


def _s_batched(S: torch.Tensor, n: int, g: int, column: bool) -> torch.Tensor:
    """S [O] per (sample, group) for batched products: [N g, O/g, 1] (column) or [N g, 1, O/g]."""
    if g == 1:
        s = S.view(1, -1, 1) if column else S.view(1, 1, -1)
        return s if n == 1 else s.expand(n, -1, -1)  # a view
    s = S.view(1, g, -1, 1) if column else S.view(1, g, 1, -1)
    return s.expand(n, -1, -1, -1).reshape((n * g,) + s.shape[2:])


# ---- CPU workspaces ----------------------------------------------------------------------------
# The full-size temporaries of a training call (d = x~ - c and d^2 as one pair, grad_out * y and
# then grad_y; slot 2: the backward's plane-sized gradient pair) live in flat buffers per thread
# (one per slot), reused by every call and kept between calls (each as large as the largest use so far, at most WORKSPACE_MAX_BYTES; release_workspace() frees
# them). Why: on the CPU a fresh large buffer can be fresh pages (malloc hands big freed blocks back
# to the OS), and faulting them in costs more than the pass that fills them (a 4 MB tensor: ~1000
# faults, ~1.5 ms on a 2-core VM, against ~0.1 ms to write it); a reused buffer is also still in
# cache. Where Linux allows it (transparent huge pages, "madvise" or "always") the buffers are
# backed by 2 MB pages: a pass over a 1 MB buffer then costs one TLB entry instead of 256, and on a
# VM (nested page tables) each 4 kB page's first touch after a conv was measured at ~1-2 us, more
# than writing it. Eager CPU float32 / float64 in plain layout only (CUDA's caching allocator
# already reuses memory; compile plans its own buffers). A buffer never escapes the function that
# filled it: forward saves x, not d, and backward recomputes d (one pass), so retain_graph,
# checkpointing and reentrant calls stay exact.
_WORKSPACE = threading.local()
_dispatch_mode = getattr(torch.utils._python_dispatch, "_get_current_dispatch_mode", lambda: None)
WORKSPACE_MAX_BYTES = 128 << 20  # per buffer; larger temporaries are allocated per call


def _plain(t: torch.Tensor) -> bool:
    """Float32 / float64 in plain layout (eager): where the unit writes into buffers of its own."""
    return t.dtype in (torch.float32, torch.float64) and t.is_contiguous()


def _keepable(t: torch.Tensor) -> bool:
    """Eager, a real tensor outside any dispatch mode (no FakeTensorMode, no tensor subclass): where
    constants and buffers may be kept between calls. Decided once per call (each check costs)."""
    return type(t) is torch.Tensor and not torch.compiler.is_compiling() and _dispatch_mode() is None


def _workspace_ok(like: torch.Tensor, keep: bool) -> bool:
    """Where the reused workspaces apply: keepable (`keep`), on the CPU, _plain."""
    return keep and like.device.type == "cpu" and _plain(like)


def _workspace(slot: int, shape, like: torch.Tensor, parts: int | None = None):
    """A reused per-thread buffer of `shape` (slot 0, 1 or 2; where _workspace_ok, which the caller
    checks), or None above WORKSPACE_MAX_BYTES. The view of each shape is kept too (a dict lookup
    per call instead of a slice and a view); with parts = g, its _pair_parts instead."""
    state = _WORKSPACE.__dict__
    key = (slot, like.dtype, tuple(shape), parts)
    view = state.get("views", {}).get(key)
    if view is not None:
        return view
    numel = math.prod(shape)
    if numel * like.element_size() > WORKSPACE_MAX_BYTES:
        return None
    buffers, views = state.setdefault("buffers", {}), state.setdefault("views", {})
    buf = buffers.get(key[:2])
    if buf is None or buf.numel() < numel:
        buf = buffers[key[:2]] = _cpu_buffer(numel, like.dtype)
        views.clear()  # views of the replaced buffer would keep it alive
    elif len(views) >= 64:
        views.clear()  # many shapes stay few
    view = buf[:numel].view(shape)
    view = views[key] = view if parts is None else _pair_parts(view, parts)
    return view


_HUGE_PAGE = 2 << 20


def _cpu_buffer(numel: int, dtype: torch.dtype) -> torch.Tensor:
    """A flat CPU buffer of at least `numel` elements: huge-page backed where the OS offers it (an
    anonymous private mapping, madvise(MADV_HUGEPAGE), whole 2 MB pages), else torch.empty. Always
    on the CPU, whatever torch.set_default_device says."""
    if not hasattr(mmap, "MADV_HUGEPAGE"):
        return torch.empty(numel, dtype=dtype, device="cpu")
    size = -(-numel * dtype.itemsize // _HUGE_PAGE) * _HUGE_PAGE
    try:
        mapping = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    except OSError:  # no address space for a mapping: the allocator's memory
        return torch.empty(numel, dtype=dtype, device="cpu")
    try:
        mapping.madvise(mmap.MADV_HUGEPAGE)
    except OSError:  # THP compiled out: normal pages
        pass
    return torch.frombuffer(mapping, dtype=dtype)  # the tensor keeps the mapping alive


def release_workspace() -> None:
    """Free this thread's workspace buffers (they are otherwise kept for the next call)."""
    _WORKSPACE.__dict__.pop("buffers", None)
    _WORKSPACE.__dict__.pop("views", None)


# Centre the weight (4 weight-sized passes per fwd + bwd) or apply the S term (~3 output-sized
# passes, 4 more ops) where one sample's output has fewer than CENTRE_MIN_RATIO times the weight's
# elements (per sample, so that a sample's result never depends on the batch it came in).
# Measured (2 CPU threads, fwd + bwd, interleaved with Conv+IN, this unit): ratio 0.9 (128->128 at
# 32^2) centred 1.119-1.178x against S term 1.145-1.212x; 1.8 (64->128 /2 at 64^2) 1.363 against
# 1.437 (another run 1.481 against 1.427); 1.8 (256->256 at 64^2) 1.004-1.010 against 1.016-1.031;
# whole generator (resnet_6blocks ngf 32, 128 px) 1.146 / 1.185 against 1.152 / 1.188 with 3. The
# ratio stays a setting for the tests (both paths) and for re-measuring on other machines.
CENTRE_MIN_RATIO = 0

# Backward from x (x~: x padded) instead of x~ - c, where every window's |mean| * rstd (its mean
# relative to 0, in its own standard deviations) is at most RAW_MAX_RATIO (CPU training): the x~ - c
# pass of backward (one read of x, one write of an input-sized buffer) is then saved, exactly,
# because the weight is centred (sum_k W'_k = 0); with the conv's own zero padding the forward conv
# reads x too (conv(x, W', padding) = conv(x~ - c, W'): no border correction):
#   the weight gradient: dL/dW' from x~ differs from the one from x~ - c by c * sum_p grad_y[o, p]
#     for every tap of filter o, a constant that the centring's adjoint removes (and with the conv's
#     own zero padding, x~ is what the conv sees: no border taps to put back);
#   the statistics' gradient: B - A2 * (x~ - c) = (B + c A2) - A2 * x~, and B + c A2 is the adjoint
#     window mean of gmean + c H (linear, c constant per sample and group): one plane op more.
# Float32 rounding of x~ against x~ - c is then within a factor ~RAW_MAX_RATIO of the data's spread;
# x = 300 +- 0.01 (ratio 3e4) keeps x~ - c. Measured (2 CPU threads, fwd + bwd, interleaved with
# Conv+IN and the x~ - c route, one process): 64->128 /2 at 256^2 1.074x -> 0.996x, 128->256 /2 at
# 128^2 1.039x -> 1.001x, 128->128 reflect at 32^2 1.154x -> 1.096x.
RAW_MAX_RATIO = 8.0


def _shift_per_group(shift: torch.Tensor, g: int) -> torch.Tensor:
    """c [N, g, 1, 1] of the shift [N, 1 or C, 1, 1] (one per sample and statistics group)."""
    n, ch = shift.shape[:2]
    return shift.view(n, 1, 1, 1) if ch == 1 else shift[:, ::ch // g]


def _offset_ratio(mean_s: torch.Tensor, cg: torch.Tensor, rstd: torch.Tensor) -> float:
    """max over windows of |mean_s + c| * rstd: each window's mean (mean_s is relative to c) in its
    standard deviations. mean_s, rstd [N, g, Ho, Wo]; cg [N, g, 1, 1]."""
    return torch.linalg.vector_norm(torch.add(mean_s, cg).mul_(rstd), math.inf).item()


class _TorchUnit(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stats, cfg, dtype, train=False):
        pad4, mode, kernel_size, stride, dilation, groups, g, eps = cfg
        acc = accumulation_dtype(dtype)
        xl = x if x.dtype == dtype else x.to(dtype)
        wl = weight if weight.dtype == dtype else weight.to(dtype)
        n, ch = x.shape[:2]
        keep = _keepable(xl)  # eager, real tensors: kept constants (and on the CPU workspaces) apply
        eager = keep or not torch.compiler.is_compiling()
        plain = eager and _plain(xl)
        shift = _shift(xl, g, acc, eager)  # c [N, 1 or C, 1, 1]
        size = (x.shape[2] + pad4[2] + pad4[3], x.shape[3] + pad4[0] + pad4[1])  # (Hp, Wp)
        ho, wo = (reference.output_size(size[a], kernel_size[a], stride[a], dilation[a]) for a in (0, 1))
        # x~ - c and its square side by side in one [2, N, C, Hp, Wp] buffer (eager, plain layout,
        # statistics of x~ itself, any padding but circular), so one reduction makes both channel
        # sums. Training: the thread's workspace, and backward recomputes x~ - c (where no workspace
        # applies, the general path: a fresh x~ - c kept for backward, not a pair twice its size).
        # Inference (no backward to serve; a server's many threads would each keep buffers): one
        # fresh flat buffer, which then holds the output too (no more memory than x~ - c and its
        # square: tiled translation keeps its bound).
        parts = flat = None  # parts: _pair_parts of the pair buffer
        own = False
        fast = _workspace_ok(xl, keep)
        if stats is None and plain and (mode != "circular" or not any(pad4)):
            # zero padding the conv can do itself (eager, plain): x - c unpadded, the conv pads it
            # with zeros, and what the border's -c would have added is put back after (_ZeroBorder)
            own = _own_zero_padding(pad4, mode, groups, g)
            held = tuple(x.shape[2:]) if own else size  # the pair's planes: (H, W) or (Hp, Wp)
            if train:
                parts = _workspace(0, (2, n, ch) + held, xl, g) if fast else None
            else:
                numel = 2 * n * ch * held[0] * held[1]
                flat = xl.new_empty(max(numel, n * weight.shape[0] * ho * wo))
                parts = _pair_parts(flat[:numel].view((2, n, ch) + held), g)
            own = own and parts is not None
        xc_out = None if parts is None else parts[0]
        if stats is not None and train and fast and _plain(stats) and stats.dtype == xl.dtype and mode != "circular":
            # KN with dropout: dropout(x~) - c and its square in the pair, x~ - c in the backward's
            # workspace (free during a forward; backward recomputes x~ - c, as without dropout)
            parts = _workspace(0, (2, n, ch) + size, xl, g)
            xc_out = None if parts is None else _workspace(1, (n, ch) + size, xl)
        border = _zero_border(kernel_size, stride, dilation, pad4, x.shape[2:], (ho, wo), xl, keep) if own else None
        xc = _pad_center(xl, shift, (0, 0, 0, 0) if own else pad4, mode, xc_out)
        if stats is None:
            d = xc  # the statistics' input: x~ - c
        else:  # dropout(x~) - c
            d = stats.to(acc) - shift if parts is None else torch.sub(stats, shift, out=parts[0])
        planes = _pixel_planes(d, g, parts, keep)  # [2, N g, Hp, Wp] ((H, W) if own)
        del d
        # window moments: mean_s [N, g, Ho, Wo] relative to c, and E[d^2] turned into rstd in place
        mean_s, rstd = _window_mean(planes, kernel_size, stride, dilation, ch // g, (pad4[2], pad4[0]) if own else (0, 0)
                                    ).view(2, n, g, ho, wo).unbind(0)
        cg = _shift_per_group(shift, g)  # [N, g, 1, 1]
        if own:  # the border taps' part: each is -c, so nb / (kh kw) * (-c) and * c^2 per window
            mean_s.addcmul_(border.fraction, cg, value=-1)
            rstd.addcmul_(border.fraction, cg * cg)
        rstd.addcmul_(mean_s, mean_s, value=-1).clamp_min_(0).add_(eps).rsqrt_()
        if stats is None and g == groups and weight.shape[0] * ho * wo >= CENTRE_MIN_RATIO * weight.numel():
            # the centred weight: conv(xc, W') = conv(xc, W) - mu * S (doc)
            wc = wl - wl.mean((1, 2, 3), keepdim=True) if wl.dtype == acc else \
                (wl.to(acc) - wl.mean((1, 2, 3), keepdim=True, dtype=acc)).to(wl.dtype)
            S = None
        else:
            wc, S = wl, wl.sum((1, 2, 3), dtype=acc)
        # zero padding (symmetric, as conv2d pads): backward takes both conv gradients from x - c
        # with the conv's own padding (_torch_unit_backward), so no padded x~ - c is kept for it
        split = own or ctx.needs_input_grad[0] and eager and _own_zero_padding(pad4, mode, groups, g)
        recompute = train and parts is not None
        # from x itself instead of x~ - c (see RAW_MAX_RATIO): centred weight, backward recomputes, a
        # real CPU tensor (the check reads one number), x's offset small. The conv with its own zero
        # padding then runs on x as well: conv(x, W', padding) = conv(x~ - c, W'), no border to correct.
        raw = (train and S is None and keep and x.device.type == "cpu" and (split or recompute and (
            mode in _PAD_OUT or not any(pad4))) and _offset_ratio(mean_s, cg, rstd) <= RAW_MAX_RATIO)
        y = F.conv2d(xl if own and raw else xc, wc, None, stride, (pad4[2], pad4[0]) if own else 0, dilation,
                     groups)  # [N, O, Ho, Wo]
        o = y.shape[1]
        if own and not raw:  # the conv saw 0 where x~ - c is -c: y -= c * (the border taps' weight sums)
            border.correct(y, wc, shift, groups)
        yv, rv = _grouped(y, g), _per_group(rstd, g)  # [N, g, O/g, Ho, Wo], [N, g, 1, Ho, Wo]
        b = None if bias is None else _grouped((bias if bias.dtype == acc else bias.to(acc)).view(1, o, 1, 1), g)
        # the output is a base tensor, never a view (in-place ops such as ReLU(inplace=True) may follow)
        ctx.folded = eager and y.dtype == acc and y.is_contiguous()
        if ctx.folded:
            # eager: y -= S[o] * mean in place (one batched K=1 product; y then is conv(xc, W')'s
            # equal, for backward too), then out = y * rstd + b in one pass
            if S is not None:
                p = ho * wo
                y.view(n * g, o // g, p).baddbmm_(_s_batched(S, n, g, column=True), mean_s.view(n * g, 1, p), alpha=-1)
            if flat is None and g == 1:  # a fresh base tensor
                out = torch.mul(y, rstd) if b is None else torch.addcmul(b, y, rstd)
            else:
                out = torch.empty_like(y) if flat is None else flat.resize_(y.shape)  # a base tensor either way
                ov = _grouped(out, g)
                torch.mul(yv, rv, out=ov) if b is None else torch.addcmul(b, yv, rv, out=ov)
        else:  # functional (half dtypes, channels_last, torch.compile), computed in acc; a base tensor
            value = yv.to(acc) * rv if S is None else \
                (yv.to(acc) - _per_group(mean_s, g) * _grouped(S.view(1, o, 1, 1), g)) * rv
            out = torch.empty_like(y).copy_(_ungrouped(value if b is None else value + b, g))
        ctx.cfg, ctx.dtype, ctx.device_type = cfg, dtype, x.device.type
        ctx.has_bias, ctx.has_stats, ctx.centred = bias is not None, stats is not None, S is None
        ctx.size, ctx.recompute, ctx.own, ctx.keep, ctx.fast = size, recompute, own, keep, fast
        ctx.split, ctx.raw = split, raw
        ctx.save_for_backward(x, weight, bias, stats, None if ctx.recompute or ctx.split else xc, wc, y, rstd, mean_s,
                              shift, S)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, weight, bias, stats, xc, wc, y, rstd, mean_s, shift, S = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True
            return _double_backward(ctx, grad_out, (x, weight, bias, stats))
        if torch.is_autocast_enabled(ctx.device_type):  # the backward casts explicitly
            with torch.autocast(ctx.device_type, enabled=False):
                return _torch_unit_backward(ctx, grad_out, x, weight, stats, xc, wc, y, rstd, mean_s, shift, S)
        return _torch_unit_backward(ctx, grad_out, x, weight, stats, xc, wc, y, rstd, mean_s, shift, S)


def _torch_unit_backward(ctx, grad_out, x, weight, stats, xc, wc, y, rstd, mean_s, shift, S):
    pad4, mode, kernel_size, stride, dilation, groups, g, eps = ctx.cfg
    need_x, need_w, need_b, need_stats = ctx.needs_input_grad[:4]
    need_moments = need_x or (ctx.has_stats and need_stats)  # the statistics' gradient is wanted
    eager = not torch.compiler.is_compiling()
    keep = ctx.keep and eager
    acc = rstd.dtype
    n, o = y.shape[:2]
    go = grad_out if grad_out.dtype == y.dtype else grad_out.to(y.dtype)
    gov, yv, rv = _grouped(go, g), _grouped(y, g), _per_group(rstd, g)
    grad_b = None
    if need_b and ctx.has_bias:
        grad_b = go.sum((0, 2, 3), dtype=acc)
        grad_b = grad_b if grad_b.dtype == weight.dtype else grad_b.to(weight.dtype)
    xl = x if x.dtype == ctx.dtype else x.to(ctx.dtype)
    fast = ctx.fast and eager  # the forward's _workspace_ok (go has y's dtype)
    buf = _workspace(1, gov.shape, go) if fast and go.is_contiguous() else None  # grad_out * y, then grad_y
    # h [N, g, Ho, Wo] = sum_o grad_out * (y - mean_s * S[o]) (y' = conv(xc, W') has no S term, and
    # an eager forward folded it into y already): the rstd gradient's sum, needed only for the
    # statistics' gradient
    h = g_s = None
    if need_moments:
        if buf is None:
            h = (gov * yv).sum(**_group_dim(g), dtype=acc)
        else:
            h = _channel_sums(torch.mul(gov, yv, out=buf).view(n * g, o // g, -1), keep).view(rstd.shape)
    if ctx.centred:
        minus_grad_S = None
    elif go.dtype == acc and eager:  # batched products, no temporaries
        p = y.shape[2] * y.shape[3]
        go3 = go.reshape(n * g, o // g, p)
        if need_moments:
            g_s = torch.bmm(_s_batched(S, n, g, column=False), go3).view(mean_s.shape)  # sum_o grad_out * S[o]
            if not ctx.folded:
                h.addcmul_(mean_s, g_s, value=-1)
        minus_grad_S = torch.bmm(go3, (rstd * mean_s).view(n * g, p, 1)).view(n, o)  # -dL/dS per sample
        minus_grad_S = minus_grad_S[0] if n == 1 else minus_grad_S.sum(0)
    else:
        Sv = _grouped(S.view(1, o, 1, 1), g)
        if need_moments:
            g_s = (gov.to(acc) * Sv).sum(**_group_dim(g))  # sum_o grad_out * S[o]
            h = h if ctx.folded else h - mean_s * g_s
        minus_grad_S = _ungrouped(gov.to(acc) * rv * _per_group(mean_s, g), g).sum((0, 2, 3))
    grad_y = _ungrouped((gov * rv).to(y.dtype) if buf is None else torch.mul(gov, rv, out=buf), g)  # buf reused
    del buf
    # zero padding (ctx.split): one conv backward on the unpadded x - c with the conv's own zero
    # padding, as Conv2d's own backward: the input gradient lands on [N, C, H, W] (no padded
    # gradient) and the weight gradient, which saw 0 instead of -c at the border taps, gets that part
    # added (_ZeroBorder.taps_grad). Measured on 2 CPU threads: 65.2 ms against 72.7 ms for a weight
    # gradient from the padded xc plus a second conv backward for the input (64->128 /2 at 256^2);
    # 33.4 against 35.5 (128->256 /2 at 128^2).
    split = ctx.split
    raw = ctx.raw
    if split:
        xc = xl if raw else _pad_center(xl, shift, (0, 0, 0, 0), "zeros",
                                        _workspace(0, tuple(x.shape), xl) if ctx.fast else None)
        grad_xc, grad_wc, _ = torch.ops.aten.convolution_backward(
            grad_y, xc, wc, None, list(stride), [pad4[2], pad4[0]], list(dilation), False, [0, 0], groups,
            [need_x, need_w, False])
    else:
        if ctx.recompute:  # x~ - c again (raw: x~), into the workspace forward used
            ws = _workspace(0, (2,) + x.shape[:2] + ctx.size, xl, g)[0]
            if not raw:
                xc = _pad_center(xl, shift, pad4, mode, ws)
            else:
                xc = _PAD_OUT[mode](xl, pad4, out=ws) if any(pad4) else xl
        grad_xc, grad_wc, _ = torch.ops.aten.convolution_backward(
            grad_y, xc, wc, None, list(stride), [0, 0], list(dilation), False, [0, 0], groups, [need_x, need_w, False])
    grad_w = None
    if need_w:
        gw = grad_wc if grad_wc.dtype == acc else grad_wc.to(acc)  # the conv's fresh gradient (or its copy): ours to change in place
        if split and not raw:  # raw: x~ is what the conv saw
            border = _zero_border(kernel_size, stride, dilation, pad4, x.shape[2:], grad_y.shape[2:], shift, keep)
            border.taps_grad(gw, grad_y, shift, groups)
        if ctx.centred:  # W' = W - mean_k W: its adjoint centres the gradient the same way
            gw = gw.sub_(gw.mean((1, 2, 3), keepdim=True))
        else:
            gw = gw.sub_(minus_grad_S.view(o, 1, 1, 1))
        grad_w = gw if gw.dtype == weight.dtype else gw.to(weight.dtype)
    grad_x = grad_stats = None
    if need_moments:
        # the statistics' gradient w.r.t. d = xc (or dropout(x~) - c), per pixel: B - A2 * d, with B, A2
        # the adjoint window means of gmean = dL/dmean_s and of H = h * rstd^3 = -2 dL/dE[d^2]
        # (dL/drstd = h, drstd/dvar = -rstd^3 / 2, dvar/dmean = -2 mean: gmean = mean_s * H - rstd * g_s)
        if eager:  # written in place: no stack
            parts = _workspace(2, (2,) + h.shape, h, 1) if fast else None  # halves of a reused [2, N, g, Ho, Wo]
            if parts is None:
                grads = h.new_empty((2,) + h.shape)
                parts = tuple(grads.unbind(0)) + (grads,)
            gmean, hh, grads = parts
            torch.mul(h, rstd.pow(3), out=hh)
            torch.mul(mean_s, hh, out=gmean)
            if g_s is not None:
                gmean.addcmul_(rstd, g_s, value=-1)
            if raw:  # B + c A2, the statistics' gradient against x~ (RAW_MAX_RATIO)
                gmean.addcmul_(hh, _shift_per_group(shift, g))
        else:  # dynamo refuses out= on views
            hh = h * rstd.pow(3)
            gmean = mean_s * hh if g_s is None else mean_s * hh - rstd * g_s
            gmean = gmean + hh * _shift_per_group(shift, g) if raw else gmean
            grads = torch.stack([gmean, hh])
        # B, A2 [N, g, (1,) Hp, Wp]; with the forward's own zero padding [.., H, W] (the interior)
        size, padding = (tuple(x.shape[2:]), (pad4[2], pad4[0])) if ctx.own else (ctx.size, (0, 0))
        planes = _window_mean_transposed(grads.view((2, n * g) + h.shape[2:]), size, kernel_size, stride, dilation,
                                         x.shape[1] // g, padding, keep)
        B, A2 = (_per_group(t, g) for t in planes.view((2, n, g) + size).unbind(0))
        if need_x and not ctx.has_stats:
            if split and not ctx.own:  # the interior's planes
                inner = (..., slice(pad4[2], pad4[2] + x.shape[2]), slice(pad4[0], pad4[0] + x.shape[3]))
                A2, B = A2[inner], B[inner]
            grad_x = _add_statistics_grad(grad_xc, xc, x, A2, B, g, pad4, mode, split)
        if ctx.has_stats and need_stats:
            d = _grouped(stats.to(acc), g) - _grouped(shift, g)
            grad_stats = _ungrouped(torch.addcmul(B, d, A2, value=-1), g).to(stats.dtype)
    if need_x:
        if grad_x is None:
            grad_x = grad_xc if split else _pad_adjoint(grad_xc, x, pad4, mode)  # [N, C, H, W]
        grad_x = grad_x if grad_x.dtype == x.dtype else grad_x.to(x.dtype)
    return grad_x, grad_w, grad_b, grad_stats, None, None, None


def _add_statistics_grad(grad_xc, xc, x, A2, B, g, pad4, mode, interior=False):
    """grad_x = pad_adjoint(grad_xc - A2 * xc + B) [N, C, H, W]; A2, B per group (_per_group).

    Zero padding only needs the interior: added in place when grad_xc already is the interior's
    gradient (`interior`: the split backward), else written straight into a new contiguous grad_x
    (a strided view would cost a copy later, e.g. in AccumulateGrad). Else in place, then the adjoint.
    """
    if interior:  # grad_xc, xc [N, C, H, W]; A2, B the interior's [N, g, (1,) H, W]
        return _ungrouped(_grouped(grad_xc, g).addcmul_(_grouped(xc, g), A2, value=-1).add_(B), g)
    if torch.compiler.is_compiling():
        total = _grouped(grad_xc, g) - _grouped(xc, g) * A2 + B
        return pad_adjoint(_ungrouped(total, g), pad4, mode)
    if mode == "zeros" and any(pad4):
        def inner(t):
            return pad_adjoint(t, pad4, "zeros")  # a view of the interior

        gx = torch.empty(inner(grad_xc).shape, dtype=grad_xc.dtype, device=grad_xc.device,
                         memory_format=reference.memory_format_of(xc))
        gxv = _grouped(gx, g)
        torch.addcmul(_grouped(inner(grad_xc), g), _grouped(inner(xc), g), inner(A2), value=-1, out=gxv)
        gxv.add_(inner(B))
        return gx
    _grouped(grad_xc, g).addcmul_(_grouped(xc, g), A2, value=-1).add_(B)
    return _pad_adjoint(grad_xc, x, pad4, mode)


def _own_zero_padding(pad4, mode: str, groups: int, g: int) -> bool:
    """Zero padding the conv applies itself (eager; the caller checks): symmetric (as
    conv2d pads), one shift per conv group (so that one c per output channel fixes its border taps)."""
    return mode == "zeros" and any(pad4) and pad4[0] == pad4[1] and pad4[2] == pad4[3] and g in (1, groups)


class _ZeroBorder:
    """Where the conv zero-pads x - c itself, its border taps read 0 where x~ - c is -c.

    The output pixels with any border tap are the outer rows and columns: `regions`, rectangles
    of them as views, each with beta [kh kw, rh rw] (0 / 1: tap t of pixel p lands in the border);
    fraction [Ho, Wo]: each window's share of border taps (0 inside). Only border-sized work, and
    no cancellation (the interior is never touched):
      forward: the window moments add fraction * (-c) and fraction * c^2 (see the unit), and
        y[o, p] -= c * sum_t T[o, t] beta[t, p] (`correct`; T: the weight's tap sums over its input
        channels);
      backward: the weight gradient's border taps, dW[o, i, t] -= sum_n c * sum_p grad_y[o, p] beta[t, p]
        (`taps_grad`, the same for every input channel i).
    Measured on 2 CPU threads: a stride-2 3x3 conv 64->128 at 256^2 with its own padding took
    14.7-15.2 ms against 19.5-20.6 ms on the padded 258^2 input (oneDNN; other runs even), 1.85
    against 2.6 ms at 32->64 at 128^2; at stride 1 even or slightly faster.
    """

    def __init__(self, kernel_size, stride, dilation, pad4, hw, out_hw, like):
        (kh, kw), (ho, wo) = kernel_size, out_hw

        def outside(k, s, d, before, size, out):  # [k][out]: tap a of window i lands in the border
            return [[not 0 <= i * s + a * d - before < size for i in range(out)] for a in range(k)]

        # the geometry in Python (static shapes: also under FakeTensorMode, where nonzero is refused)
        rows = outside(kh, stride[0], dilation[0], pad4[2], hw[0], ho)
        cols = outside(kw, stride[1], dilation[1], pad4[0], hw[1], wo)
        rows_t, cols_t = (torch.tensor(m, dtype=like.dtype, device=like.device) for m in (rows, cols))  # [kh, Ho], [kw, Wo]
        both = torch.maximum(rows_t[:, None, :, None], cols_t[None, :, None, :])  # [kh, kw, Ho, Wo]
        self.fraction = both.sum((0, 1)) / (kh * kw)
        self.kernel_size = (kh, kw)
        # the border pixels as rectangles of output pixels (views, no gather: index_add_ / index_select
        # over the pixels were measured 5-15x slower): the edge rows (a prefix and a suffix, as a tap's
        # position grows with the row), then the edge columns of the rows between
        top, bottom = _edge_run(any(r[i] for r in rows) for i in range(ho)), \
            _edge_run(any(r[i] for r in rows) for i in reversed(range(ho)))
        left, right = _edge_run(any(c[j] for c in cols) for j in range(wo)), \
            _edge_run(any(c[j] for c in cols) for j in reversed(range(wo)))
        middle = slice(top, ho - bottom)
        regions = [(r, slice(None)) for r in _edge_slices(top, bottom, ho)]
        if top + bottom < ho:
            regions += [(middle, c) for c in _edge_slices(left, right, wo)]
        # per region: (row slice, column slice, beta [kh kw, rh rw] 0 / 1 (tap t of pixel p lands in
        # the border), its transpose, (rh, rw))
        self.regions = []
        for rs, cs in regions:
            beta = both[:, :, rs, cs].reshape(kh * kw, -1)
            shape = tuple(both[0, 0, rs, cs].shape)
            self.regions.append((rs, cs, beta, beta.t().contiguous(), shape))

    @staticmethod
    def _shift_per_output(shift: torch.Tensor, o: int, groups: int) -> torch.Tensor:
        """c [N, 1] (one per sample) or [N, O] (o's conv group's; shift [N, C, 1, 1] has one per group)."""
        c = _shift_per_group(shift, groups).view(shift.shape[0], -1)
        return c if c.shape[1] == 1 else c.repeat_interleave(o // groups, 1)

    def correct(self, y: torch.Tensor, wc: torch.Tensor, shift: torch.Tensor, groups: int) -> None:
        """y [N, O, Ho, Wo] -= c[n, o] * sum_t T[o, t] beta[t, p] at the border pixels, in place."""
        n, o = y.shape[:2]
        taps = wc.sum(1).view(o, -1)  # T [O, kh kw]
        c = shift.view(n, 1, 1, 1) if shift.shape[1] == 1 else self._shift_per_output(shift, o, groups)[:, :, None, None]
        for rs, cs, beta, _, shape in self.regions:
            y[:, :, rs, cs].addcmul_(torch.mm(taps, beta).view((1, o) + shape), c, value=-1)

    def taps_grad(self, grad_w: torch.Tensor, grad_y: torch.Tensor, shift: torch.Tensor, groups: int) -> None:
        """grad_w [O, C/groups, kh, kw] (acc) -= what the border taps add, in place."""
        n, o = grad_y.shape[:2]
        per_tap = None  # [N, O, kh kw]: sum_p grad_y * beta over the border pixels
        for rs, cs, _, beta_t, _ in self.regions:
            edge = grad_y[:, :, rs, cs].reshape(n, o, -1)
            part = torch.matmul(edge if edge.dtype == shift.dtype else edge.to(shift.dtype), beta_t)
            per_tap = part if per_tap is None else per_tap.add_(part)
        c = self._shift_per_output(shift, o, groups)
        if n == 1:  # c a [1, 1] or [1, O] factor
            grad_w.addcmul_(per_tap.view(o, 1, *self.kernel_size), c.view(-1, 1, 1, 1), value=-1)
        elif c.shape[1] == 1:  # sum_n c[n] * per_tap[n], one product
            grad_w.sub_(torch.mm(c.t(), per_tap.view(n, -1)).view(o, 1, *self.kernel_size))
        else:
            grad_w.sub_((per_tap * c[:, :, None]).sum(0).view(o, 1, *self.kernel_size))


def _edge_run(flags) -> int:
    """How many of the first flags are true in a row."""
    count = 0
    for flag in flags:
        if not flag:
            break
        count += 1
    return count


def _edge_slices(before: int, after: int, size: int) -> list:
    """The first `before` and last `after` of `size` indices as slices: one (all of them) where they
    meet, one strided view where each is a single index, else two (none where both are 0)."""
    if before + after >= size:
        return [slice(None)]
    if before == after == 1:
        return [slice(0, size, size - 1)]
    return [s for s, k in ((slice(0, before), before), (slice(size - after, size), after)) if k]


def _zero_border(kernel_size, stride, dilation, pad4, hw, out_hw, like, keep: bool) -> _ZeroBorder:
    """_ZeroBorder of this geometry (kept where `keep`)."""
    key = ("zero border", tuple(kernel_size), tuple(stride), tuple(dilation), tuple(pad4), tuple(hw))
    return _kept(key, like, lambda: _ZeroBorder(kernel_size, stride, dilation, pad4, hw, out_hw, like), keep)


def _pad_adjoint(grad: torch.Tensor, x: torch.Tensor, pad4, mode: str) -> torch.Tensor:
    """reference.pad_adjoint, as one aten op for reflect / replicate in eager mode; x: the unpadded input."""
    if any(pad4) and mode in _PAD_ADJOINT and grad.dtype == x.dtype and not torch.compiler.is_compiling():
        return _PAD_ADJOINT[mode](grad, x, list(pad4))
    return pad_adjoint(grad, pad4, mode)


# ---- "op": the unit from the four registered ops (the CUDA kernels where loaded) --------------


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
            return _double_backward(ctx, grad_out, (x, weight, bias, None))[:5]
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


# ---- choosing -------------------------------------------------------------------------------------

_READY: dict[str, bool] = {}


def _cuda_ready() -> bool:
    """The compiled CUDA kernels of all four fused ops are loaded (loading / building them once)."""
    if "cuda" not in _READY:
        _READY["cuda"] = (torch.cuda.is_available() and extension.ensure_loaded()
                          and all(extension.has_cuda_kernel(op) for op in library.FUSED_OPS))
    return _READY["cuda"]


_cuda_ready._dynamo_marked_constant = True  # = torch.compiler.assume_constant_result, without importing dynamo


def has_cuda() -> bool:
    """True when the compiled CUDA kernels serve CUDA tensors (loads or builds them on first call)."""
    return _cuda_ready()


def resolve_impl(x: torch.Tensor, impl: str) -> str:
    """"torch" or "op" for this call. auto: the CUDA kernels for CUDA tensors when available, else torch."""
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    if impl == "cuda":
        if not x.is_cuda:
            raise RuntimeError("impl='cuda' requested but the tensor is on the CPU")
        if not _cuda_ready():
            raise RuntimeError("impl='cuda' requested but the CUDA kernels are not available "
                               f"(python -m gennorm.ops status; {extension.info()['error'] or 'no build loaded'})")
        return "op"
    if impl == "auto":
        return "op" if x.is_cuda and _cuda_ready() else "torch"
    return impl


def nc_conv2d(x, weight, bias=None, pad4=(0, 0, 0, 0), mode="zeros", stride=(1, 1), dilation=(1, 1), groups=1,
              eps=1e-5, stat_groups=None, stats=None, impl="auto"):
    """The NC / KN unit: (conv(x~ - c, W) - mu * S) * rstd + b, x [N, C, H, W] -> [N, O, Ho, Wo].

    pad4 = (left, right, top, bottom), mode zeros | reflect | replicate | circular, as nn.Conv2d pads.
    stat_groups: the statistics' groups (default: the conv's; KN: 1). stats: for KN with dropout,
    the padded tensor the statistics come from (dropout(x~)); the "torch" unit serves it.
    Arguments are checked by the layers (gennorm.layers); this is the hot path.
    """
    stat_groups = groups if stat_groups is None else stat_groups
    cfg = (tuple(pad4), mode, tuple(stride), tuple(dilation), groups, stat_groups, float(eps))
    cfg = (cfg[0], cfg[1], tuple(weight.shape[2:]), *cfg[2:])
    which = resolve_impl(x, impl)
    device = x.device.type
    if torch.is_autocast_enabled(device):  # the units cast explicitly, to the autocast dtype
        with torch.autocast(device, enabled=False):
            return _unit(which, x, weight, bias, stats, cfg, _compute_dtype(x, device))
    return _unit(which, x, weight, bias, stats, cfg, x.dtype)


def _unit(which, x, weight, bias, stats, cfg, dtype):
    if torch.compiler.is_exporting():  # torch.export / ONNX (gennorm.inference): plain ops only
        return composed(x, weight, bias, stats, cfg, dtype)
    if which == "torch" or stats is not None:  # KN with active dropout: the torch unit, any impl
        train = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, weight, bias, stats))
        return _TorchUnit.apply(x, weight, bias, stats, cfg, dtype, train)
    return _OpUnit.apply(x, weight, bias, cfg, dtype)
