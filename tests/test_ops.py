"""The shared op (docs/SPEC.md section 5): the registered ops against literal definitions, opcheck,
the NC/KN autograd units (gradcheck, double backward, torch.compile, autocast), lazy loading.

These run against whatever `torch.ops.gennorm` kernels this process has: on the CPU always the
Python kernels of gennorm/ops/library.py (tests/test_cuda.py checks the CUDA kernels).
"""
from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close
from torch.utils._python_dispatch import TorchDispatchMode

import literal
from gennorm import PONO, KernelNorm2d, KNConv2d, NCConv2d
from gennorm.ops import extension, kernels, library, nc_conv2d, patch_moments, selfcheck
from gennorm.ops.nc_conv2d import nc_conv2d_ref

ROOT = Path(__file__).resolve().parents[1]
f64 = torch.float64
MODES = ["zeros", "reflect", "replicate", "circular"]

# (kernel_size, stride, dilation, groups): strides 1-2, dilations 1-2, groups 1/2/4, rectangular and 1x1.
WINDOWS = [
    ((3, 3), (1, 1), (1, 1), 1),
    ((3, 3), (2, 2), (1, 1), 2),
    ((2, 3), (1, 2), (2, 1), 4),
    ((3, 2), (2, 1), (2, 2), 2),
    ((1, 1), (1, 1), (1, 1), 4),
    ((1, 1), (2, 2), (1, 1), 1),
    ((1, 3), (1, 1), (1, 2), 1),
]
PADS = [(1, 1, 1, 1), (0, 2, 1, 0), (0, 0, 0, 0), (2, 1, 0, 2)]  # (left, right, top, bottom)


def _x(shape=(2, 4, 7, 8), dtype=f64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=dtype) * 2 + 0.5


def _literal_pad(x, pad4, mode):
    return F.pad(x, pad4, mode="constant" if mode == "zeros" else mode) if any(pad4) else x


def _literal_centre(x, groups):
    """c [N, C, 1, 1]: mean over each group's channels of the centre pixel."""
    n, c, h, w = x.shape
    centre = x[:, :, h // 2, w // 2].reshape(n, groups, c // groups).mean(2)
    return centre.repeat_interleave(c // groups, 1)[:, :, None, None]


def _literal_window_sums(sums, kernel_size, stride, dilation):
    """Window sums with F.unfold (the im2col form): [N, G, Hp, Wp] -> [N, G, Ho, Wo]."""
    n, g, hp, wp = sums.shape
    ho = (hp - dilation[0] * (kernel_size[0] - 1) - 1) // stride[0] + 1
    wo = (wp - dilation[1] * (kernel_size[1] - 1) - 1) // stride[1] + 1
    cols = F.unfold(sums, kernel_size, dilation=dilation, stride=stride)  # [N, G*kh*kw, L]
    return cols.view(n, g, -1, ho * wo).sum(2).view(n, g, ho, wo)


def _literal_sums(xc, groups):
    xg = xc.unflatten(1, (groups, -1))
    return torch.cat([xg.sum(2), xg.square().sum(2)], 1)


def _literal_epilogue(y, s, S, bias, cg, kernel_size, eps, clamp=True):
    """out, mean, rstd from the window sums s [N, 2g, Ho, Wo] (the contract's formulas).

    The contract's backward differentiates var = s2 / count - mean^2 without the clamp at 0.
    """
    g = s.shape[1] // 2
    count = cg * kernel_size[0] * kernel_size[1]
    mean = s[:, :g] / count
    var = s[:, g:] / count - mean ** 2
    rstd = 1 / torch.sqrt((var.clamp_min(0) if clamp else var.detach().clamp_min(0) - var.detach() + var) + eps)
    rep = y.shape[1] // g
    out = (y - mean.repeat_interleave(rep, 1) * S.view(1, -1, 1, 1)) * rstd.repeat_interleave(rep, 1)
    return (out if bias is None else out + bias.view(1, -1, 1, 1)), mean, rstd


# ---- the four fused ops against their literal definitions (float64) --------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("pad4", PADS, ids=str)
@pytest.mark.parametrize("groups", [1, 2])
def test_pad_center_sums_is_pad_minus_centre_and_channel_sums(mode, pad4, groups):
    x = _x((2, 4, 5, 6))
    xc, sums = torch.ops.gennorm.pad_center_sums(x, list(pad4), mode, groups)
    want = _literal_pad(x, pad4, mode) - _literal_centre(x, groups)
    assert_close(xc, want, rtol=1e-12, atol=1e-12)
    assert sums.dtype == f64 and sums.is_contiguous()
    assert_close(sums, _literal_sums(want, groups), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("window", WINDOWS, ids=str)
def test_window_epilogue_and_backward_match_the_literal_formulas(window, bias):
    kernel_size, stride, dilation, g = window
    x = _x((2, 4, 8, 7))
    xc, sums = torch.ops.gennorm.pad_center_sums(x, [1, 1, 1, 1], "zeros", g)
    w = _x((8, 4 // g) + kernel_size, seed=2) * 0.3
    b = _x((8,), seed=3) if bias else None
    y = F.conv2d(xc, w, None, stride, 0, dilation, g)
    S = w.sum((1, 2, 3))
    out, mean, rstd = torch.ops.gennorm.window_epilogue(y, sums, S, b, list(kernel_size), list(stride), list(dilation), 4 // g, 1e-5)
    s = _literal_window_sums(sums, kernel_size, stride, dilation).requires_grad_()
    yl, Sl = y.clone().requires_grad_(), S.clone().requires_grad_()
    bl = None if b is None else b.clone().requires_grad_()
    want, want_mean, want_rstd = _literal_epilogue(yl, s, Sl, bl, 4 // g, kernel_size, 1e-5)
    assert_close((out, mean, rstd), (want, want_mean, want_rstd), rtol=1e-12, atol=1e-12)
    # the output equals NC by its im2col definition
    ref = literal.nc_conv(F.pad(x, (1, 1, 1, 1)), w, b, stride, dilation, g, 1e-5)
    assert_close(out, ref, rtol=1e-10, atol=1e-10)
    # backward: the gradients of y, of the window sums, of S and of the bias
    go = _x(out.shape, seed=4)
    grad_y, grad_window, grad_S, grad_bias = torch.ops.gennorm.window_epilogue_backward(go, y, mean, rstd, S, 4 // g, list(kernel_size))
    unclamped = _literal_epilogue(yl, s, Sl, bl, 4 // g, kernel_size, 1e-5, clamp=False)[0]
    wants = torch.autograd.grad(unclamped, [yl, s, Sl] + ([bl] if bias else []), go)
    assert_close(grad_y, wants[0], rtol=1e-10, atol=1e-10)
    assert_close(grad_window, wants[1], rtol=1e-10, atol=1e-10)
    assert_close(grad_S, wants[2], rtol=1e-10, atol=1e-10)
    assert_close(grad_bias, go.sum((0, 2, 3)) if not bias else wants[3], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("window,pad4", [(WINDOWS[0], PADS[0]), (WINDOWS[2], PADS[1]), (WINDOWS[3], PADS[3]),
                                         (WINDOWS[5], PADS[2])], ids=str)
def test_pad_center_sums_backward_is_the_adjoint(window, pad4, mode):
    kernel_size, stride, dilation, g = window
    x = _x((2, 4, 6, 7)).requires_grad_()
    xc = _literal_pad(x, pad4, mode) - _literal_centre(x.detach(), g)  # c carries no gradient
    s = _literal_window_sums(_literal_sums(xc, g), kernel_size, stride, dilation)
    grad_xc, grad_window = _x(xc.shape, seed=5), _x(s.shape, seed=6)
    (want,) = torch.autograd.grad((xc * grad_xc).sum() + (s * grad_window).sum(), x)
    got = torch.ops.gennorm.pad_center_sums_backward(grad_xc, xc.detach(), grad_window, list(kernel_size), list(stride),
                                                     list(dilation), list(pad4), mode, g)
    assert got.shape == x.shape
    assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_shift_keeps_float32_exact_far_from_zero():
    """x = 300 +- 0.01: the centre-pixel shift leaves sums that give the true variance in float32."""
    x = torch.randn(2, 8, 9, 9, generator=torch.Generator().manual_seed(0)) * 0.01 + 300
    xc, sums = torch.ops.gennorm.pad_center_sums(x, [1, 1, 1, 1], "reflect", 2)
    y = torch.zeros(2, 4, 9, 9)
    _, mean, rstd = torch.ops.gennorm.window_epilogue(y, sums, torch.zeros(4), None, [3, 3], [1, 1], [1, 1], 4, 1e-8)
    want = literal.window_moments(_literal_pad(x.double(), (1, 1, 1, 1), "reflect"), (3, 3), (1, 1), (1, 1), 2, 1e-8)[1]
    assert_close(rstd.double(), want, rtol=1e-3, atol=0)


# ---- patch_moments (PONO, KernelNorm2d) ----------------------------------------------------------


@pytest.mark.parametrize("impl", ["op", "torch"])
@pytest.mark.parametrize("window", WINDOWS, ids=str)
def test_patch_moments_equals_window_definition(window, impl):
    kernel_size, stride, dilation, groups = window
    x = _x()
    mean, rstd = patch_moments(x, kernel_size, stride, dilation, groups, 1e-5, impl=impl)
    want_mean, want_rstd = literal.window_moments(x, kernel_size, stride, dilation, groups, 1e-5)
    assert mean.shape == want_mean.shape and mean.dtype == torch.float64
    assert_close(mean, want_mean, rtol=1e-10, atol=1e-12)
    assert_close(rstd, want_rstd, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_half_inputs_give_float32_statistics(dtype):
    x = _x(dtype=torch.float32).to(dtype)
    mean, rstd = torch.ops.gennorm.patch_moments(x, [3, 3], [1, 1], [1, 1], 2, 1e-5)
    assert mean.dtype == rstd.dtype == torch.float32
    want_mean, want_rstd = literal.window_moments(x.double(), (3, 3), (1, 1), (1, 1), 2, 1e-5)
    assert_close(mean.double(), want_mean, rtol=1e-5, atol=1e-5)
    assert_close(rstd.double(), want_rstd, rtol=1e-4, atol=1e-5)
    xc, sums = torch.ops.gennorm.pad_center_sums(x, [1, 1, 1, 1], "zeros", 2)
    assert xc.dtype == dtype and sums.dtype == torch.float32
    y = F.conv2d(xc, torch.ones(4, 2, 3, 3, dtype=dtype), None, 1, 0, 1, 2)
    out, m, r = torch.ops.gennorm.window_epilogue(y, sums, torch.ones(4), None, [3, 3], [1, 1], [1, 1], 2, 1e-5)
    assert out.dtype == dtype and m.dtype == r.dtype == torch.float32


def test_channels_last_inputs_keep_their_layout():
    cl = torch.channels_last
    x = _x((2, 4, 6, 5)).to(memory_format=cl)
    mean, rstd = torch.ops.gennorm.patch_moments(x, [3, 3], [1, 1], [1, 1], 2, 1e-5)
    assert_close((mean, rstd), literal.window_moments(x.contiguous(), (3, 3), (1, 1), (1, 1), 2, 1e-5), rtol=1e-10, atol=1e-12)
    xc, sums = torch.ops.gennorm.pad_center_sums(x, [1, 1, 1, 1], "reflect", 2)
    assert xc.is_contiguous(memory_format=cl) and sums.is_contiguous()
    y = F.conv2d(xc, _x((6, 2, 3, 3), seed=1), None, 1, 0, 1, 2).to(memory_format=cl)
    out, mean, rstd = torch.ops.gennorm.window_epilogue(y, sums, torch.ones(6, dtype=f64), None, [3, 3], [1, 1], [1, 1], 2, 1e-5)
    assert out.is_contiguous(memory_format=cl)
    grad_y, *_ = torch.ops.gennorm.window_epilogue_backward(torch.ones_like(out), y, mean, rstd, torch.ones(6, dtype=f64), 2, [3, 3])
    assert grad_y.is_contiguous(memory_format=cl)
    grad_x = torch.ops.gennorm.pad_center_sums_backward(torch.ones_like(xc), xc, torch.zeros(2, 4, 6, 5, dtype=f64), [3, 3],
                                                        [1, 1], [1, 1], [1, 1, 1, 1], "reflect", 2)
    assert grad_x.shape == x.shape and grad_x.is_contiguous(memory_format=cl)


# ---- registration: schemas, opcheck ----------------------------------------------------------


def test_schemas_are_the_documented_ones():
    for name, schema in library.SCHEMAS.items():
        assert str(getattr(torch.ops.gennorm, name).default._schema) == f"gennorm::{schema}"
    assert not hasattr(torch.ops.gennorm, "moment_epilogue")  # dropped: nothing uses it


def _opcheck_cases():
    cl = torch.channels_last
    x = _x((2, 4, 6, 5))
    grad = torch.randn(2, 2, 4, 3, dtype=f64)
    mean, rstd = torch.ops.gennorm.patch_moments(x, [3, 3], [1, 1], [1, 1], 2, 1e-5)
    xc, sums = torch.ops.gennorm.pad_center_sums(x, [1, 1, 1, 1], "reflect", 2)
    w = _x((6, 2, 3, 3), seed=1)
    y = F.conv2d(xc, w, None, 1, 0, 1, 2)
    S, b = w.sum((1, 2, 3)), _x((6,), seed=2)
    out, m, r = torch.ops.gennorm.window_epilogue(y, sums, S, b, [3, 3], [1, 1], [1, 1], 2, 1e-5)
    gw = torch.randn(2, 4, 6, 5, dtype=f64)
    xb = x.bfloat16()
    xcb, sumsb = torch.ops.gennorm.pad_center_sums(xb, [0, 1, 2, 0], "zeros", 1)
    yb = F.conv2d(xcb, w.bfloat16(), None, (2, 1), 0, 1, 2)
    return [
        ("pad_center_sums", (x, [1, 1, 1, 1], "zeros", 2)),
        ("pad_center_sums", (x.to(memory_format=cl), [0, 2, 1, 0], "circular", 4)),
        ("pad_center_sums", (xb, [1, 1, 1, 1], "replicate", 1)),
        ("window_epilogue", (y, sums, S, b, [3, 3], [1, 1], [1, 1], 2, 1e-5)),
        ("window_epilogue", (y.to(memory_format=cl), sums, S.float(), None, [3, 3], [1, 1], [1, 1], 2, 1e-3)),
        ("window_epilogue", (yb, sumsb, S.float(), b.float(), [3, 3], [2, 1], [1, 1], 4, 1e-5)),
        ("window_epilogue_backward", (torch.randn_like(out), y, m, r, S, 2, [3, 3])),
        ("window_epilogue_backward", (torch.randn_like(out).to(memory_format=cl), y.to(memory_format=cl), m, r, S, 2, [3, 3])),
        ("window_epilogue_backward", (torch.randn_like(yb), yb, *torch.ops.gennorm.window_epilogue(
            yb, sumsb, S.float(), None, [3, 3], [2, 1], [1, 1], 4, 1e-5)[1:], S.float(), 4, [3, 3])),
        ("pad_center_sums_backward", (torch.randn_like(xc), xc, gw, [3, 3], [1, 1], [1, 1], [1, 1, 1, 1], "reflect", 2)),
        ("pad_center_sums_backward", (torch.randn_like(xc).to(memory_format=cl), xc.to(memory_format=cl), gw, [3, 3],
                                      [1, 1], [1, 1], [1, 1, 1, 1], "zeros", 2)),
        ("pad_center_sums_backward", (torch.randn_like(xcb), xcb, torch.randn(2, 2, 3, 4), [3, 3], [2, 1], [1, 1],
                                      [0, 1, 2, 0], "zeros", 1)),
        ("patch_moments", (x.clone().requires_grad_(), [3, 3], [1, 1], [1, 1], 2, 1e-5)),
        ("patch_moments", (x.to(memory_format=cl).requires_grad_(), [2, 3], [2, 1], [1, 2], 4, 1e-3)),
        ("patch_moments", (x.float().requires_grad_(), [1, 1], [1, 1], [1, 1], 1, 1e-5)),
        ("patch_moments_backward", (grad, grad.flip(0), x, mean, rstd, [3, 3], [1, 1], [1, 1], 2)),
        ("patch_moments_backward", (grad, grad, x.to(memory_format=cl), mean, rstd, [3, 3], [1, 1], [1, 1], 2)),
    ]


@pytest.mark.parametrize("case", range(len(_opcheck_cases())))
def test_opcheck(case):
    name, args = _opcheck_cases()[case]
    torch.library.opcheck(getattr(torch.ops.gennorm, name).default, args)


# ---- gradients --------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", ["op", "torch"])
@pytest.mark.parametrize("window", [WINDOWS[1], WINDOWS[2], WINDOWS[5]], ids=str)
def test_gradcheck_patch_moments(window, impl):
    kernel_size, stride, dilation, groups = window
    x = _x((1, 4, 6, 5)).requires_grad_()
    torch.autograd.gradcheck(lambda t: patch_moments(t, kernel_size, stride, dilation, groups, 1e-3, impl=impl), (x,))


def _units(x, w, b, cfg, stats=None):
    return {impl: nc_conv2d(x, w, b, cfg[0], cfg[1], cfg[3], cfg[4], cfg[5], cfg[7], cfg[6], stats, impl)
            for impl in ("op", "torch")}


@pytest.mark.parametrize("impl", ["op", "torch"])
@pytest.mark.parametrize("mode,pad4,stride,dilation,groups,stat_groups", [
    ("zeros", (1, 1, 1, 1), (2, 2), (1, 1), 2, 2),
    ("reflect", (0, 2, 1, 1), (1, 2), (2, 1), 1, 1),
    ("circular", (1, 1, 2, 0), (1, 1), (1, 1), 2, 1),  # KN-style: statistics over all channels, grouped conv
])
def test_gradcheck_units(impl, mode, pad4, stride, dilation, groups, stat_groups):
    x = _x((1, 4, 5, 4)).requires_grad_()
    w = (_x((4, 4 // groups, 3, 2), seed=1) * 0.3).requires_grad_()
    b = _x((4,), seed=2).requires_grad_()
    call = lambda x, w, b: nc_conv2d(x, w, b, pad4, mode, stride, dilation, groups, 1e-3, stat_groups, impl=impl)  # noqa: E731
    assert torch.autograd.gradcheck(call, (x, w, b))
    assert torch.autograd.gradgradcheck(call, (x, w, b))  # double backward recomputes with plain autograd


def test_gradcheck_unit_with_dropout_statistics():
    """KN with dropout: statistics from dropout(x~) - c, the conv on the clean input."""
    x = _x((1, 3, 5, 4)).requires_grad_()
    w = (_x((2, 3, 3, 3), seed=1) * 0.3).requires_grad_()
    mask = (torch.rand(1, 3, 7, 6, generator=torch.Generator().manual_seed(3)) > 0.3).double() / 0.7

    def call(x, w):
        stats = F.pad(x, (1, 1, 1, 1)) * mask
        return nc_conv2d(x, w, None, (1, 1, 1, 1), "zeros", (1, 1), (1, 1), 1, 1e-3, 1, stats, "torch")

    assert torch.autograd.gradcheck(call, (x, w))
    stats = F.pad(x, (1, 1, 1, 1)) * mask
    want = nc_conv2d_ref(x, w, None, stats, ((1, 1, 1, 1), "zeros", (3, 3), (1, 1), (1, 1), 1, 1, 1e-3))
    assert_close(call(x, w), want, rtol=1e-12, atol=1e-12)


def test_nc_conv_op_matches_torch_in_values_and_gradients():
    torch.manual_seed(0)
    layers = {impl: NCConv2d(4, 6, 3, stride=2, padding=1, groups=2, impl=impl).double() for impl in ("op", "torch")}
    layers["torch"].load_state_dict(layers["op"].state_dict())
    x = _x((2, 4, 7, 6))
    outs, grads = {}, {}
    for impl, layer in layers.items():
        xi = x.clone().requires_grad_()
        outs[impl] = layer(xi)
        outs[impl].square().sum().backward()
        grads[impl] = (xi.grad, layer.weight.grad, layer.bias.grad)
    assert_close(outs["op"], outs["torch"], rtol=1e-10, atol=1e-10)
    assert_close(grads["op"], grads["torch"], rtol=1e-9, atol=1e-9)


def test_units_agree_in_float32_with_channels_last_and_without_x_grad():
    x = _x((2, 8, 9, 7), torch.float32).to(memory_format=torch.channels_last)
    w = (_x((6, 4, 3, 3), torch.float32, seed=1) * 0.2).requires_grad_()
    cfg = ((1, 1, 1, 1), "replicate", (3, 3), (1, 1), (1, 1), 2, 2, 1e-5)
    outs = _units(x, w, None, cfg)
    assert_close(outs["op"], outs["torch"], rtol=1e-4, atol=1e-4)
    grads = {k: torch.autograd.grad(v.square().sum(), w)[0] for k, v in outs.items()}
    assert_close(grads["op"], grads["torch"], rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("impl", ["op", "torch"])
@pytest.mark.parametrize("layer", ["nc", "nc-pad", "kn", "kn-grouped", "kn-dropout"])
def test_unit_output_takes_inplace_ops(impl, layer):
    """The output is a plain tensor (not a view of a scratch buffer): nn.ReLU(inplace=True) may follow."""
    m = {"nc": NCConv2d(4, 4, 3, impl=impl), "nc-pad": NCConv2d(4, 4, 3, padding=1, impl=impl),
         "kn": KNConv2d(4, 4, 3, padding=1, dropout_p=0.0, impl=impl),
         "kn-grouped": KNConv2d(4, 4, 3, padding=1, groups=2, dropout_p=0.0, impl=impl),
         "kn-dropout": KNConv2d(4, 4, 3, padding=1, dropout_p=0.2, dropout_in_eval=True, impl=impl)}[layer].double()
    if layer == "kn-dropout":
        torch.manual_seed(0)
    x = _x((1, 4, 6, 6)).requires_grad_()
    out = m(x)
    assert out._base is None
    if layer == "kn-dropout":
        torch.manual_seed(0)
    want = torch.relu(m(x))
    torch.relu_(out)
    assert_close(out, want)
    out.sum().backward()
    (want_grad,) = torch.autograd.grad(want.sum(), x)
    assert_close(x.grad, want_grad)
    with torch.no_grad():  # inference: the output shares its buffer with d^2 (resized), still a base tensor
        if layer == "kn-dropout":
            torch.manual_seed(0)
        plain = m(x)
        assert plain._base is None
        assert_close(torch.relu_(plain), want.detach())


# ---- autocast -------------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", ["op", "torch"])
def test_autocast_bf16_conv_low_precision_statistics_float32(impl):
    torch.manual_seed(0)
    m = NCConv2d(8, 8, 3, padding=1, padding_mode="reflect", impl=impl)
    x = torch.randn(2, 8, 10, 10).bfloat16().requires_grad_()  # an activation from a previous autocast layer
    saved = []

    def pack(t):
        saved.append((t.dtype, t.numel()))
        return t

    with torch.autocast("cpu", dtype=torch.bfloat16), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = m(x)
    assert out.dtype == torch.bfloat16
    big = [dtype for dtype, numel in saved if numel >= x.numel()]
    assert big and torch.float32 not in big, saved  # no float32 copy of an activation is kept
    out.float().square().sum().backward()
    assert x.grad.dtype == torch.bfloat16 and m.weight.grad.dtype == torch.float32
    assert torch.isfinite(x.grad.float()).all() and torch.isfinite(m.weight.grad).all()
    assert_close(out.float(), m(x.float()), rtol=0.05, atol=0.05)


# ---- torch.compile -------------------------------------------------------------------------------


@pytest.mark.parametrize("layer", ["nc", "kn", "nc-torch"])
def test_compile_fullgraph_matches_eager(layer):
    torch._dynamo.reset()
    torch.manual_seed(0)
    if layer == "nc":
        module = NCConv2d(4, 6, 3, padding=1, groups=2, impl="op")
    elif layer == "nc-torch":
        module = NCConv2d(4, 6, 3, padding=1, padding_mode="reflect", groups=2, impl="torch")
    else:
        module = KNConv2d(4, 6, 3, padding=1, dropout_p=0.0, impl="op")
    compiled = torch.compile(module, fullgraph=True, backend="aot_eager")
    x = torch.randn(2, 4, 6, 5)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    eager, out = module(x1), compiled(x2)
    assert_close(out, eager, rtol=1e-5, atol=1e-5)
    eager.square().sum().backward()
    w_eager = module.weight.grad.clone()
    module.zero_grad()
    out.square().sum().backward()
    assert_close(x2.grad, x1.grad, rtol=1e-5, atol=1e-5)
    assert_close(module.weight.grad, w_eager, rtol=1e-5, atol=1e-5)


# ---- lazy loading --------------------------------------------------------------------------------


def test_import_and_cpu_forward_build_and_load_nothing(monkeypatch):
    from gennorm.ops import extension

    def refuse(*args, **kwargs):
        raise AssertionError("a CPU forward must not build or load the compiled library")

    monkeypatch.setattr(extension, "build", refuse)
    monkeypatch.setattr(extension, "_load", refuse)
    monkeypatch.setattr(torch.ops, "load_library", refuse)
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    for layer in [NCConv2d(4, 4, 3, padding=1), KNConv2d(4, 4, 3, padding=1), KernelNorm2d(3, padding=1), PONO()]:
        out = layer(x)
        (out[0] if isinstance(out, tuple) else out).sum().backward()
    patch_moments(x, 3)
    assert not extension.loaded_with_cuda()


def test_import_gennorm_loads_no_library():
    script = ("import gennorm, gennorm.ops, torch, sys; from gennorm.ops import extension; "
              "gennorm.NCConv2d(2, 2, 1)(torch.randn(1, 2, 3, 3)); "
              "assert not extension.info()['tried'] and not extension.loaded_with_cuda(), extension.info(); "
              "assert 'torch.utils.cpp_extension' not in sys.modules; print('ok')")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stdout + done.stderr


# ---- errors ---------------------------------------------------------------------------------------


def test_bad_inputs_give_clear_errors():
    x = _x((1, 4, 5, 5))
    pm = torch.ops.gennorm.patch_moments
    with pytest.raises(RuntimeError, match="4 dims"):
        pm(x[0], [3, 3], [1, 1], [1, 1], 1, 1e-5)
    with pytest.raises(RuntimeError, match=r"channels \(4\) must be divisible by groups \(3\)"):
        pm(x, [3, 3], [1, 1], [1, 1], 3, 1e-5)
    with pytest.raises(RuntimeError, match="larger than the padded input"):
        pm(x, [3, 3], [1, 1], [3, 1], 1, 1e-5)
    with pytest.raises(RuntimeError, match="floating-point"):
        pm(x.long(), [3, 3], [1, 1], [1, 1], 1, 1e-5)
    with pytest.raises(RuntimeError, match="stride must be"):
        pm(x, [3, 3], [0, 1], [1, 1], 1, 1e-5)
    pcs = torch.ops.gennorm.pad_center_sums
    with pytest.raises(RuntimeError, match="reflect padding .* too large"):
        pcs(x, [5, 0, 0, 0], "reflect", 1)
    with pytest.raises(RuntimeError, match="mode must be one of"):
        pcs(x, [1, 1, 1, 1], "constant", 1)
    xc, sums = pcs(x, [1, 1, 1, 1], "zeros", 2)
    we = torch.ops.gennorm.window_epilogue
    y = torch.zeros(1, 6, 5, 5, dtype=f64)
    with pytest.raises(RuntimeError, match=r"S must be a floating-point tensor of shape \[6\]"):
        we(y, sums, torch.ones(5, dtype=f64), None, [3, 3], [1, 1], [1, 1], 2, 1e-5)
    with pytest.raises(RuntimeError, match="windows of sums"):
        we(y[:, :, :4], sums, torch.ones(6, dtype=f64), None, [3, 3], [1, 1], [1, 1], 2, 1e-5)
    with pytest.raises(RuntimeError, match="divisible by the groups of sums"):
        we(y[:, :5], sums, torch.ones(5, dtype=f64), None, [3, 3], [1, 1], [1, 1], 2, 1e-5)
    with pytest.raises(RuntimeError, match="grad_window must have shape"):
        torch.ops.gennorm.pad_center_sums_backward(xc, xc, sums, [3, 3], [1, 1], [1, 1], [1, 1, 1, 1], "zeros", 2)
    # The public functions check before dispatching (ValueError / TypeError, as in the layers).
    with pytest.raises(ValueError, match="divisible by groups"):
        patch_moments(x, 3, groups=3)
    with pytest.raises(ValueError, match="impl must be one of"):
        patch_moments(x, 3, impl="fast")
    with pytest.raises(RuntimeError, match="impl='cuda' requested but the tensor is on the CPU"):
        patch_moments(x, 3, impl="cuda")
    with pytest.raises(RuntimeError, match="impl='cuda' requested but the tensor is on the CPU"):
        NCConv2d(4, 4, 3, impl="cuda").double()(x)


def test_reference_window_sums_match_unfold():
    t = _x((2, 3, 9, 8))
    for kernel_size, stride, dilation, _ in WINDOWS:
        got = kernels.window_sum(t, kernel_size, stride, dilation)
        assert_close(got, _literal_window_sums(t, kernel_size, stride, dilation), rtol=1e-12, atol=1e-12)
        g = _x(got.shape, seed=1)
        tt = t.clone().requires_grad_()
        (want,) = torch.autograd.grad((_literal_window_sums(tt, kernel_size, stride, dilation) * g).sum(), tt)
        assert_close(kernels.window_sum_transposed(g, t.shape[2:], kernel_size, stride, dilation), want)


# ---- the torch unit's CPU fast paths: the input gradient onto the interior, workspaces -----------

# (kernel, stride, dilation, pad (left, right, top, bottom), size): windows near every border, stride
# past the padding, dilation skipping border rows, windows covering the whole image, asymmetric pads
SPLIT = [((3, 3), (1, 1), (1, 1), (1, 1, 1, 1), (7, 8)), ((3, 3), (2, 2), (1, 1), (1, 1, 1, 1), (8, 7)),
         ((5, 3), (1, 2), (2, 1), (1, 1, 3, 3), (9, 6)), ((7, 7), (1, 1), (1, 1), (3, 3, 3, 3), (5, 5)),
         ((2, 4), (3, 1), (1, 1), (2, 2, 1, 1), (7, 9)), ((3, 3), (1, 1), (1, 1), (0, 0, 2, 2), (4, 4)),
         ((1, 1), (2, 2), (1, 1), (1, 1, 1, 1), (5, 6)), ((3, 3), (1, 1), (1, 1), (0, 2, 1, 0), (6, 6))]


@pytest.mark.parametrize("groups,stat_groups,n", [(1, 1, 2), (2, 2, 2), (2, 1, 2), (1, 1, 1), (2, 2, 1)])
@pytest.mark.parametrize("case", SPLIT, ids=str)
def test_zero_padding_geometries(case, groups, stat_groups, n):
    """Zero padding of every geometry (symmetric and asymmetric pads, windows past the padding or
    over the whole image, dilation, batch 1): values and all gradients of the torch unit equal the
    reference, in training, with x not needing a gradient (a first layer), and in inference."""
    kernel, stride, dilation, pad4, size = case
    x = _x((n, 4) + size).requires_grad_()
    w = (_x((6, 4 // groups) + kernel, seed=1) * 0.3).requires_grad_()
    b = _x((6,), seed=2).requires_grad_()
    cfg = (pad4, "zeros", kernel, stride, dilation, groups, stat_groups, 1e-3)

    def unit(x):
        return nc_conv2d(x, w, b, pad4, "zeros", stride, dilation, groups, 1e-3, stat_groups, impl="torch")

    got, want = unit(x), nc_conv2d_ref(x, w, b, None, cfg)
    assert_close(got, want, rtol=1e-11, atol=1e-11)
    g = torch.randn(got.shape, generator=torch.Generator().manual_seed(5), dtype=f64)
    assert_close(torch.autograd.grad(got, (x, w, b), g), torch.autograd.grad(want, (x, w, b), g, retain_graph=True),
                 rtol=1e-10, atol=1e-10)
    assert_close(torch.autograd.grad(unit(x.detach()), (w, b), g), torch.autograd.grad(want, (w, b), g),
                 rtol=1e-10, atol=1e-10)
    with torch.no_grad():
        assert_close(unit(x), want, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("mode,pad4,stride,groups,bias", [
    ("zeros", (1, 1, 1, 1), (1, 1), 1, True), ("zeros", (1, 1, 1, 1), (2, 2), 2, False),
    ("reflect", (1, 1, 1, 1), (1, 1), 1, True), ("replicate", (2, 1, 0, 2), (2, 1), 1, True),
    ("circular", (1, 1, 1, 1), (1, 1), 2, True), ("zeros", (0, 0, 0, 0), (1, 1), 1, True),
])
def test_torch_unit_matches_the_reference(mode, pad4, stride, groups, bias):
    """The torch unit in training and in inference, with and without bias, every padding mode:
    values and all gradients equal the reference (stat_groups 1 under conv groups: the KN tests)."""
    x = _x((2, 4, 7, 6)).requires_grad_()
    w = (_x((6, 4 // groups, 3, 3), seed=1) * 0.3).requires_grad_()
    b = _x((6,), seed=2).requires_grad_() if bias else None
    cfg = (pad4, mode, (3, 3), stride, (1, 1), groups, groups, 1e-3)
    want = nc_conv2d_ref(x, w, b, None, cfg)
    got = nc_conv2d(x, w, b, pad4, mode, stride, (1, 1), groups, 1e-3, impl="torch")
    assert_close(got, want, rtol=1e-11, atol=1e-11)
    inputs = [t for t in (x, w, b) if t is not None]
    g = torch.randn(got.shape, generator=torch.Generator().manual_seed(5), dtype=f64)
    assert_close(torch.autograd.grad(got, inputs, g), torch.autograd.grad(want, inputs, g, retain_graph=True),
                 rtol=1e-10, atol=1e-10)
    # x without a gradient (a first layer): the statistics' gradient is skipped, the others stay exact
    got = nc_conv2d(x.detach(), w, b, pad4, mode, stride, (1, 1), groups, 1e-3, impl="torch")
    assert_close(torch.autograd.grad(got, inputs[1:], g), torch.autograd.grad(want, inputs[1:], g), rtol=1e-10, atol=1e-10)
    with torch.no_grad():
        assert_close(nc_conv2d(x, w, b, pad4, mode, stride, (1, 1), groups, 1e-3, impl="torch"), want,
                     rtol=1e-11, atol=1e-11)


def test_float32_gradients_near_and_far_from_zero():
    """x near 0 and far from 0 against its spread (x = 300 +- 0.01): the float32 gradients stay
    within 1e-5 of float64 (the statistics and the conv both read x~ - c)."""
    w = torch.randn(6, 4, 3, 3, generator=torch.Generator().manual_seed(1)) * 0.3

    def grads(x, w, pad4, mode, stride):
        x, w = x.clone().requires_grad_(), w.clone().requires_grad_()
        out = nc_conv2d(x, w, None, pad4, mode, stride, (1, 1), 1, 1e-5, impl="torch")
        g = torch.randn(out.shape, generator=torch.Generator().manual_seed(2), dtype=f64).to(out.dtype)
        return torch.autograd.grad(out, (x, w), g)

    for pad4, mode, stride in [((1, 1, 1, 1), "zeros", (2, 2)), ((1, 1, 1, 1), "reflect", (1, 1)),
                               ((0, 0, 0, 0), "zeros", (1, 1))]:
        for x in [torch.randn(2, 4, 10, 9, generator=torch.Generator().manual_seed(0)),
                  torch.randn(2, 4, 10, 9, generator=torch.Generator().manual_seed(0)) * 0.01 + 300]:
            got = grads(x, w, pad4, mode, stride)
            want = grads(x.double(), w.double(), pad4, mode, stride)
            for a, b in zip(got, want):
                assert (a.double() - b).norm() / b.norm() < 1e-5


def test_every_call_exact_in_a_graph():
    """Layers of different sizes in one graph, a second backward (retain_graph), activation
    checkpointing, a forward in inference mode, a meta default device and FakeTensorMode all give
    the reference's values and gradients."""
    import threading

    from torch.utils.checkpoint import checkpoint

    def net(x, ws, unit):
        h = x
        for w, pad4, stride in ws:
            h = torch.relu(unit(h, w, pad4, stride))
        return h

    def fast(h, w, pad4, stride):
        return nc_conv2d(h, w, None, pad4, "zeros", stride, (1, 1), 1, 1e-3, impl="torch")

    def slow(h, w, pad4, stride):
        return nc_conv2d_ref(h, w, None, None, (pad4, "zeros", tuple(w.shape[2:]), stride, (1, 1), 1, 1, 1e-3))

    x = _x((2, 3, 12, 11)).requires_grad_()
    ws = [((_x((c_out, c_in, 3, 3), seed=s) * 0.3).requires_grad_(), pad4, stride)
          for s, (c_in, c_out, pad4, stride) in enumerate([(3, 8, (1, 1, 1, 1), (1, 1)), (8, 5, (0, 0, 0, 0), (2, 2)),
                                                          (5, 6, (1, 1, 1, 1), (1, 1))])]
    params = [x] + [w for w, _, _ in ws]
    want = net(x, ws, slow)
    want_grads = torch.autograd.grad(want.sum(), params)

    out = net(x, ws, fast)
    assert_close(out, want, rtol=1e-11, atol=1e-11)
    first = torch.autograd.grad(out.sum(), params, retain_graph=True)
    net(x.detach() + 1, ws, fast)  # another forward refills the workspaces in between
    second = torch.autograd.grad(out.sum(), params)
    assert_close(first, want_grads, rtol=1e-10, atol=1e-10)
    assert_close(second, want_grads, rtol=1e-10, atol=1e-10)

    out = checkpoint(net, x, ws, fast, use_reentrant=False)  # forward recomputed inside backward
    assert_close(torch.autograd.grad(out.sum(), params), want_grads, rtol=1e-10, atol=1e-10)

    with torch.inference_mode():
        assert_close(net(x.detach(), ws, fast), want.detach(), rtol=1e-11, atol=1e-11)
    assert_close(torch.autograd.grad(net(x, ws, fast).sum(), params), want_grads, rtol=1e-10, atol=1e-10)

    # a default device or a FakeTensorMode at one call leaves the next calls exact
    torch.set_default_device("meta")
    try:
        assert_close(net(x, ws, fast), want, rtol=1e-11, atol=1e-11)
    finally:
        torch.set_default_device(None)
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        fake_x = torch.empty(x.shape, dtype=f64, requires_grad=True)
        fake_ws = [(torch.empty(w.shape, dtype=f64, requires_grad=True), p, s) for w, p, s in ws]
        net(fake_x, fake_ws, fast).sum().backward()
    assert_close(torch.autograd.grad(net(x, ws, fast).sum(), params), want_grads, rtol=1e-10, atol=1e-10)

    results = {}

    def worker(i):
        xi = (x.detach() * (1 + i)).requires_grad_()
        results[i] = (net(xi, ws, fast), xi)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, (out, xi) in results.items():
        assert_close(out, net(xi, ws, slow), rtol=1e-11, atol=1e-11)


# ---- the self-check of the compiled kernels (gennorm.ops.selfcheck) ------------------------------


def _wrong(name, scale=1.001):
    """The op's Python kernel with its first output scaled: a kernel that is slightly wrong."""
    def kernel(*args):
        out = library.PYTHON_KERNELS[name](*args)
        return out * scale if isinstance(out, torch.Tensor) else (out[0] * scale, *out[1:])
    return kernel


def test_self_check_passes_on_the_python_kernels():
    rows = selfcheck.self_check("cpu")
    assert {r.op for r in rows} == set(library.SCHEMAS)
    assert {r.case.split()[0] for r in rows} == {"zeros", "reflect", "replicate", "circular"}
    assert {r.case.split()[-1] for r in rows} == {"float32", "bfloat16"}
    assert all(r.status == "ok" for r in rows), [r for r in rows if r.status != "ok"]


@pytest.mark.parametrize("name", sorted(library.SCHEMAS))
def test_self_check_names_a_wrong_or_failing_kernel(name):
    """A kernel 0.1% off fails in float32 (tolerance 1e-4) and only that op fails; a raising one reports its error."""
    rows = selfcheck.self_check("cpu", ops={name: _wrong(name)})
    bad = {(r.op, r.case.split()[-1]) for r in rows if r.status != "ok"}
    assert (name, "float32") in bad and {op for op, _ in bad} == {name}

    def broken(*args):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")
    rows = selfcheck.self_check("cpu", ops={name: broken})
    assert all(r.status.startswith("error: CUDA error: an illegal") for r in rows if r.op == name)


def test_a_failed_self_check_warns_once_and_the_pytorch_path_serves(monkeypatch):
    """has_cuda() runs the check once before the CUDA kernels serve: a failure warns once naming the op and
    has_cuda() stays False (impl auto then takes the torch path); a pass lets them serve."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(extension, "ensure_loaded", lambda: True)
    monkeypatch.setattr(extension, "has_cuda_kernel", lambda op: True)
    monkeypatch.setattr(extension, "_WARNED", False)
    monkeypatch.setitem(extension._STATE, "ready", None)
    monkeypatch.setitem(extension._STATE, "error", None)
    real = selfcheck.self_check
    monkeypatch.setattr(selfcheck, "self_check", lambda device: real("cpu", ops={"window_epilogue": _wrong("window_epilogue")}))
    with pytest.warns(RuntimeWarning, match="window_epilogue"):
        assert extension.has_cuda() is False
    assert "window_epilogue" in extension._STATE["error"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert extension.has_cuda() is False  # decided once: no second check, no second warning
    monkeypatch.setitem(extension._STATE, "ready", None)
    monkeypatch.setattr(selfcheck, "self_check", lambda device: real("cpu"))
    assert extension.has_cuda() is True


def test_ops_check_command(monkeypatch, capsys):
    from gennorm import cli

    assert cli.main(["ops", "check", "--device", "cpu"]) == 0
    assert "48 of 48 checks passed on cpu" in capsys.readouterr().out
    real = selfcheck.self_check
    monkeypatch.setattr(selfcheck, "self_check", lambda device: real(device, ops={"patch_moments": _wrong("patch_moments")}))
    assert cli.main(["ops", "check", "--device", "cpu"]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH" in out and "patch_moments " in out
    assert cli.main(["ops", "check", "--device", "tpu"]) == 2
    assert "--device tpu" in capsys.readouterr().err


# ---- pins found by mutation testing (docs/mutation.md): impl routing, argument errors, ... ---------


class _GennormOps(TorchDispatchMode):
    """Records the names of the `torch.ops.gennorm.*` ops dispatched (forward and backward)."""

    def __init__(self):
        super().__init__()
        self.names = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.namespace == "gennorm":
            self.names.add(func.__name__.split(".")[0])
        return func(*args, **(kwargs or {}))


def test_impl_routes_to_the_registered_ops_or_to_plain_pytorch():
    """impl="op" runs the registered ops (forward and backward), "torch" and "auto" on the CPU none of them.

    On the CPU both routes give the same numbers (the ops' CPU kernels are the plain-PyTorch
    functions), so only the dispatched ops tell a swapped route (`!= "op"`) apart."""
    x = _x((1, 4, 5, 5)).requires_grad_()
    w = (_x((3, 4, 3, 3), seed=1) * 0.3).requires_grad_()
    for impl, want in [("op", {"patch_moments", "patch_moments_backward"}), ("torch", set()), ("auto", set())]:
        with _GennormOps() as spy:
            mean, rstd = patch_moments(x, 3, impl=impl)
            (mean.sum() + rstd.sum()).backward()
        assert spy.names == want, impl
    fused = {"pad_center_sums", "window_epilogue", "window_epilogue_backward", "pad_center_sums_backward"}
    for impl, want in [("op", fused), ("torch", set()), ("auto", set())]:
        with _GennormOps() as spy:
            nc_conv2d(x, w, None, (1, 1, 1, 1), impl=impl).sum().backward()
        assert spy.names == want, impl


def test_patch_moments_argument_errors_name_the_function_and_the_argument():
    """patch_moments' own checks: ValueError / TypeError (not the ops' RuntimeError), each message
    starting with the function's or the argument's name."""
    x = _x((1, 4, 5, 5))
    with pytest.raises(ValueError, match=r"^patch_moments: x must have shape \[N, C, H, W\] \(4 dims\)"):
        patch_moments(x[0], 3)
    with pytest.raises(TypeError, match="^patch_moments: x must be a floating-point tensor"):
        patch_moments(x.long(), 3)
    for kwargs, name in [({"kernel_size": (0, 3)}, "kernel_size"), ({"stride": 0}, "stride"), ({"dilation": (1, 0)}, "dilation")]:
        with pytest.raises(ValueError, match=f"^{name} must be a positive int or a pair of positive ints"):
            patch_moments(x, **{"kernel_size": 3, **kwargs})
    with pytest.raises(ValueError, match=r"^patch_moments: channels \(4\) must be divisible by groups \(3\)$"):
        patch_moments(x, 3, groups=3)
    with pytest.raises(ValueError, match=r"^patch_moments: kernel size \(3, 3\) \(dilation \(3, 3\)\) is larger than"):
        patch_moments(x, 3, dilation=3)


def test_patch_moments_defaults():
    """patch_moments(x, k) is stride 1, dilation 1, one group, eps 1e-5 (the layers pass all of them)."""
    x = _x((1, 4, 6, 5))
    want = literal.window_moments(x, (3, 3), (1, 1), (1, 1), 1, 1e-5)
    assert_close(patch_moments(x, 3), want, rtol=1e-12, atol=1e-12)


def test_memory_format_follows_the_input_else_contiguous():
    """Outputs are channels_last only for a channels_last input: a strided view (neither format) and a
    tensor that is both (one channel) give contiguous outputs."""
    x = _x((2, 4, 5, 6)).transpose(2, 3)  # neither contiguous nor channels_last
    xc, sums = torch.ops.gennorm.pad_center_sums(x, [1, 1, 1, 1], "zeros", 2)
    assert xc.is_contiguous() and not xc.is_contiguous(memory_format=torch.channels_last)
    assert_close(xc, torch.ops.gennorm.pad_center_sums(x.contiguous(), [1, 1, 1, 1], "zeros", 2)[0], rtol=0, atol=0)
    y = _x((2, 6, 6, 5), seed=1).transpose(2, 3).contiguous().transpose(2, 3)  # strided like x
    out = torch.ops.gennorm.window_epilogue(y, sums, torch.ones(6, dtype=f64), None, [3, 3], [1, 1], [1, 1], 2, 1e-5)[0]
    assert out.is_contiguous() and not out.is_contiguous(memory_format=torch.channels_last)
    one = _x((2, 1, 5, 6))  # contiguous and channels_last at once
    xc1, _ = torch.ops.gennorm.pad_center_sums(one, [1, 1, 1, 1], "zeros", 1)
    assert xc1.stride() == xc1.contiguous().stride()


def test_window_sums_over_the_last_two_dims_of_any_rank_into_a_new_tensor():
    """window_sum and its adjoint take [.., Hp, Wp] of any rank (3-D and 5-D equal the 4-D rows), and
    window_sum returns a new tensor even for a 1 x 1 window (a caller may write into it)."""
    t = _x((2, 3, 9, 8))
    for kernel_size, stride, dilation, _ in WINDOWS:
        got = kernels.window_sum(t, kernel_size, stride, dilation)
        assert_close(kernels.window_sum(t[0], kernel_size, stride, dilation), got[0], rtol=0, atol=0)
        assert_close(kernels.window_sum(t[None], kernel_size, stride, dilation), got[None], rtol=0, atol=0)
        g = _x(got.shape, seed=1)
        back = kernels.window_sum_transposed(g, t.shape[2:], kernel_size, stride, dilation)
        assert_close(kernels.window_sum_transposed(g[0], t.shape[2:], kernel_size, stride, dilation), back[0], rtol=0, atol=0)
    before = t.clone()
    kernels.window_sum(t, (1, 1), (1, 1), (1, 1)).add_(1)
    assert torch.equal(t, before)


def test_pad_adjoint_names_an_unknown_mode():
    """The padding's adjoint refuses a mode it does not know, naming it (not a silent zeros adjoint)."""
    with pytest.raises(ValueError, match="^unknown padding mode 'constant'$"):
        kernels.pad_adjoint(_x((1, 2, 5, 5)), (1, 1, 1, 1), "constant")


def test_nc_conv2d_defaults():
    """nc_conv2d(x, W) is no bias, no padding, zeros mode (for a given pad4), stride and dilation 1, one
    group, eps 1e-5, statistics over the conv's groups; values and the input gradient as the reference."""
    x = _x((1, 4, 6, 5)).requires_grad_()
    w = _x((3, 4, 3, 3), seed=1) * 0.3
    w2 = _x((4, 2, 3, 3), seed=2) * 0.3
    for got, cfg, wi in [(nc_conv2d(x, w), ((0, 0, 0, 0), "zeros", (3, 3), (1, 1), (1, 1), 1, 1, 1e-5), w),
                         (nc_conv2d(x, w, None, (1, 2, 1, 0)), ((1, 2, 1, 0), "zeros", (3, 3), (1, 1), (1, 1), 1, 1, 1e-5), w),
                         (nc_conv2d(x, w2, None, (1, 1, 1, 1), "reflect", (1, 1), (1, 1), 2),
                          ((1, 1, 1, 1), "reflect", (3, 3), (1, 1), (1, 1), 2, 2, 1e-5), w2)]:
        want = nc_conv2d_ref(x, wi, None, None, cfg)
        assert_close(got, want, rtol=1e-12, atol=1e-12)
        g = _x(got.shape, seed=3)
        assert_close(torch.autograd.grad(got, x, g)[0], torch.autograd.grad(want, x, g)[0], rtol=1e-10, atol=1e-10)


def test_autocast_leaves_float64_alone_and_casts_float32():
    """Under a bfloat16 autocast a float64 unit computes in float64 (the same values as without
    autocast, with KN's dropout statistics too) and a float32 one returns the autocast dtype."""
    x, w, b = _x((1, 4, 6, 5)), _x((3, 4, 3, 3), seed=1) * 0.3, _x((3,), seed=2)
    mask = (torch.rand(1, 4, 8, 7, generator=torch.Generator().manual_seed(3)) > 0.3).double() / 0.7
    stats = F.pad(x, (1, 1, 1, 1)) * mask
    args = ((1, 1, 1, 1), "zeros", (1, 1), (1, 1), 1, 1e-3, 1)
    want = {impl: nc_conv2d(x, w, b, *args, None, impl) for impl in ("op", "torch")}
    want_stats = nc_conv2d(x, w, None, *args, stats, "torch")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for impl in ("op", "torch"):
            assert_close(nc_conv2d(x, w, b, *args, None, impl), want[impl], rtol=0, atol=0)
            assert nc_conv2d(x.float(), w.float(), b.float(), *args, None, impl).dtype == torch.bfloat16
        assert_close(nc_conv2d(x, w, None, *args, stats, "torch"), want_stats, rtol=0, atol=0)


def test_epilogue_computes_in_the_statistics_dtype_whatever_y_s_and_bias_are():
    """window_epilogue and its backward compute in acc (the dtype of sums / mean): S, bias or y given in
    float64 next to float32 statistics give bit for bit what their float32 roundings give (docs/SPEC.md:
    "out = (y - mu * S) * rstd + b, in acc"), and the gradients come out in acc."""
    x = _x((2, 4, 7, 6), torch.float32)
    xc, sums = torch.ops.gennorm.pad_center_sums(x, [1, 1, 1, 1], "zeros", 2)
    w = _x((6, 2, 3, 3), torch.float32, seed=1) * 0.3
    y = F.conv2d(xc, w, None, 1, 0, 1, 2)
    S, b = _x((6,), seed=2), _x((6,), seed=3)  # float64
    args = ([3, 3], [1, 1], [1, 1], 2, 1e-5)
    out, mean, rstd = torch.ops.gennorm.window_epilogue(y, sums, S, b, *args)
    want, want_mean, want_rstd = torch.ops.gennorm.window_epilogue(y, sums, S.float(), b.float(), *args)
    assert out.dtype == torch.float32 and torch.equal(out, want) and torch.equal(rstd, want_rstd)
    out = torch.ops.gennorm.window_epilogue(y.double(), sums, S, b, *args)[0]
    assert out.dtype == f64 and torch.equal(out.float(), want)
    go = _x(y.shape, seed=4)
    got = torch.ops.gennorm.window_epilogue_backward(go, y.double(), mean, rstd, S, 2, [3, 3])
    wants = torch.ops.gennorm.window_epilogue_backward(go.float(), y, mean, rstd, S.float(), 2, [3, 3])
    assert [t.dtype for t in got[1:]] == [torch.float32] * 3
    assert torch.equal(got[0].float(), wants[0]) and all(torch.equal(a, b) for a, b in zip(got[1:], wants[1:]))


def test_autocast_unit_equals_the_unit_on_inputs_cast_to_the_autocast_dtype():
    """Under a bfloat16 autocast, float32 x, W and KN's dropout statistics are cast to bfloat16 first:
    bit for bit the unit called on bfloat16 inputs without autocast (the statistics too)."""
    x, w = _x((1, 4, 6, 5), torch.float32), _x((3, 4, 3, 3), torch.float32, seed=1) * 0.3
    mask = (torch.rand(1, 4, 8, 7, generator=torch.Generator().manual_seed(3)) > 0.3).float() / 0.7
    stats = F.pad(x, (1, 1, 1, 1)) * mask
    args = ((1, 1, 1, 1), "zeros", (1, 1), (1, 1), 1, 1e-3, 1)
    bf = torch.bfloat16
    for st, impls in [(None, ("op", "torch")), (stats, ("torch",))]:
        for impl in impls:
            want = nc_conv2d(x.to(bf), w.to(bf), None, *args, None if st is None else st.to(bf), impl)
            with torch.autocast("cpu", dtype=bf):
                got = nc_conv2d(x, w, None, *args, st, impl)
            assert got.dtype == bf and torch.equal(got, want), (impl, st is None)


@pytest.mark.parametrize("impl", ["op", "torch"])
def test_filter_sums_accumulate_in_float32_for_half_units(impl):
    """S (the filter sums) is summed in the statistics' float32, not in the conv's float16: filters
    whose sums (~88000) pass float16's range (65504) still give a finite float16 output."""
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(1, 4, 6, 5, generator=g) * 0.01).half()
    w = (torch.rand(3, 4, 3, 3, generator=g) * 100 + 1900).half()
    assert w.float().sum((1, 2, 3)).min() > 65504
    out = nc_conv2d(x, w, None, (1, 1, 1, 1), "zeros", (1, 1), (1, 1), 1, 1e-8, impl=impl)
    assert out.dtype == torch.float16 and torch.isfinite(out).all()


def test_patch_moments_backward_computes_in_the_statistics_dtype():
    """patch_moments_backward computes in mean's dtype: a float64 x next to float32 statistics gives bit
    for bit the float32 x's gradient (docs/SPEC.md: every implementation computes in acc)."""
    x = _x((1, 4, 6, 5), torch.float32)
    mean, rstd = torch.ops.gennorm.patch_moments(x, [3, 3], [1, 1], [1, 1], 2, 1e-5)
    grad = _x(mean.shape, torch.float32, seed=1)
    want = torch.ops.gennorm.patch_moments_backward(grad, grad.flip(0), x, mean, rstd, [3, 3], [1, 1], [1, 1], 2)
    got = torch.ops.gennorm.patch_moments_backward(grad, grad.flip(0), x.double(), mean, rstd, [3, 3], [1, 1], [1, 1], 2)
    assert got.dtype == f64 and torch.equal(got.float(), want)


@pytest.mark.parametrize("impl", ["op", "torch"])
def test_bias_gradient_sums_in_float32_under_autocast(impl):
    """Under a bfloat16 autocast the float32 bias' gradient is the float32 sum of the bfloat16 output
    gradient (not a sum rounded to bfloat16)."""
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(2, 4, 6, 5, generator=g), torch.randn(3, 4, 3, 3, generator=g) * 0.3
    b = torch.randn(3, generator=g).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = nc_conv2d(x, w, b, (1, 1, 1, 1), impl=impl)
    go = torch.randn(out.shape, generator=g).bfloat16()
    (grad_b,) = torch.autograd.grad(out, b, go)
    assert grad_b.dtype == torch.float32
    assert_close(grad_b, go.float().sum((0, 2, 3)), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("impl", ["op", "torch"])
def test_units_add_the_bias_in_the_statistics_dtype(impl):
    """A float64 bias on a float32 unit is added in float32 (acc): bit for bit the float32 bias' output."""
    x, w, b = _x((1, 4, 6, 5), torch.float32), _x((3, 4, 3, 3), torch.float32, seed=1) * 0.3, _x((3,), seed=2)
    want = nc_conv2d(x, w, b.float(), (1, 1, 1, 1), impl=impl)
    got = nc_conv2d(x, w, b, (1, 1, 1, 1), impl=impl)
    assert got.dtype == torch.float32 and torch.equal(got, want)


@pytest.mark.parametrize("impl,dropout", [("op", False), ("torch", False), ("torch", True)])
def test_create_graph_gradients_equal_the_plain_ones(impl, dropout):
    """With create_graph=True (double backward recomputes with the reference) the gradients of x, W and
    the bias are those of the plain backward: the bias and KN's dropout statistics are carried along.
    (gradgradcheck drops a gradient that comes back None, so it cannot see a missing one.) The
    statistics here need no gradient: see the next test for ones that do."""
    x = _x((1, 4, 6, 5)).requires_grad_()
    w = (_x((3, 4, 3, 3), seed=1) * 0.3).requires_grad_()
    b = _x((3,), seed=2).requires_grad_()
    mask = (torch.rand(1, 4, 8, 7, generator=torch.Generator().manual_seed(3)) > 0.3).double() / 0.7
    stats = (F.pad(x, (1, 1, 1, 1)) * mask).detach() if dropout else None
    go = _x((1, 3, 6, 5), seed=4)
    grads = {create: torch.autograd.grad(nc_conv2d(x, w, b, (1, 1, 1, 1), "zeros", (1, 1), (1, 1), 1, 1e-3, 1, stats, impl),
                                         (x, w, b), go, create_graph=create) for create in (False, True)}
    assert_close(grads[True], grads[False], rtol=1e-10, atol=1e-10)


def test_create_graph_x_gradient_with_dropout_statistics_that_need_a_gradient():
    """KN with dropout in training, double backward (e.g. a WGAN-GP penalty): x's gradient with
    create_graph=True equals the plain one (found by the mutation run: double backward once counted the
    statistics' path into x twice, differentiating through the saved statistics' own graph)."""
    x = _x((1, 4, 6, 5)).requires_grad_()
    w = (_x((3, 4, 3, 3), seed=1) * 0.3).requires_grad_()
    mask = (torch.rand(1, 4, 8, 7, generator=torch.Generator().manual_seed(3)) > 0.3).double() / 0.7
    go = _x((1, 3, 6, 5), seed=4)

    def unit():
        return nc_conv2d(x, w, None, (1, 1, 1, 1), "zeros", (1, 1), (1, 1), 1, 1e-3, 1, F.pad(x, (1, 1, 1, 1)) * mask, "torch")

    want = torch.autograd.grad(unit(), x, go)[0]
    assert_close(torch.autograd.grad(unit(), x, go, create_graph=True)[0], want, rtol=1e-10, atol=1e-10)


def test_pad_center_sums_backward_computes_in_the_statistics_dtype():
    """pad_center_sums_backward computes in grad_window's dtype (acc): a float64 grad_xc or xc next to
    float32 statistics gives bit for bit the float32 one's result (docs/SPEC.md: every implementation
    computes in acc), returned in xc's dtype."""
    x = _x((2, 4, 6, 5), torch.float32)
    xc, sums = torch.ops.gennorm.pad_center_sums(x, [1, 1, 1, 1], "reflect", 2)
    grad_xc, grad_window = _x(xc.shape, seed=1), _x((2, 4, 6, 5), torch.float32, seed=2)
    args = ([3, 3], [1, 1], [1, 1], [1, 1, 1, 1], "reflect", 2)
    want = torch.ops.gennorm.pad_center_sums_backward(grad_xc.float(), xc, grad_window, *args)
    assert torch.equal(torch.ops.gennorm.pad_center_sums_backward(grad_xc, xc, grad_window, *args), want)
    got = torch.ops.gennorm.pad_center_sums_backward(grad_xc.float(), xc.double(), grad_window, *args)
    assert got.dtype == f64 and torch.equal(got.float(), want)


def test_export_traces_the_reference_with_every_argument():
    """torch.export traces the plain-op reference (no autograd.Function, no gennorm op in the graph)
    with x, W, the bias and the configuration: the exported program equals the eager layer."""
    torch.manual_seed(0)
    m = NCConv2d(4, 3, 3, stride=2, padding=1, padding_mode="reflect").double().eval()
    x = _x((1, 4, 6, 5))
    exported = torch.export.export(m, (x,))
    assert not [n for n in exported.graph.nodes if n.op == "call_function" and "gennorm" in str(n.target)]
    assert_close(exported.module()(x), m(x), rtol=1e-12, atol=1e-12)


def test_torch_unit_with_one_output_row_and_grouped_statistics():
    """Output height 1 with 2 statistics groups for 4 outputs: the per-group moments still expand to
    their outputs (values and gradients as the reference)."""
    x = _x((2, 4, 3, 6)).requires_grad_()
    w = (_x((4, 2, 3, 3), seed=1) * 0.3).requires_grad_()
    cfg = ((0, 0, 0, 0), "zeros", (3, 3), (1, 1), (1, 1), 2, 2, 1e-3)
    got = nc_conv2d(x, w, None, *cfg[:2], cfg[3], cfg[4], 2, 1e-3, 2, None, "torch")
    want = nc_conv2d_ref(x, w, None, None, cfg)
    assert got.shape[2] == 1
    assert_close(got, want, rtol=1e-12, atol=1e-12)
    g = _x(got.shape, seed=2)
    assert_close(torch.autograd.grad(got, (x, w), g), torch.autograd.grad(want, (x, w), g), rtol=1e-10, atol=1e-10)


def test_torch_unit_input_gradient_keeps_float32_under_autocast():
    """Under a bfloat16 autocast, the torch unit adds the statistics' part of a float32 x's gradient in
    float32 onto the bfloat16 conv gradient (the result is not rounded to bfloat16 numbers)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 6, 5, generator=g).requires_grad_()
    w = torch.randn(3, 4, 3, 3, generator=g) * 0.3
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = nc_conv2d(x, w, None, (1, 1, 1, 1), impl="torch")
    (grad_x,) = torch.autograd.grad(out, x, torch.randn(out.shape, generator=g).bfloat16())
    assert grad_x.dtype == torch.float32
    assert not torch.equal(grad_x, grad_x.bfloat16().float())


@pytest.mark.parametrize("impl", ["op", "torch"])
def test_create_graph_under_autocast_recomputes_in_the_autocast_dtype(impl):
    """Double backward of a unit run under a bfloat16 autocast recomputes the reference in bfloat16 (the
    unit's dtype, not x's float32), and skips inputs that need no gradient (a frozen bias)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 6, 5, generator=g).requires_grad_()
    w = (torch.randn(3, 4, 3, 3, generator=g) * 0.3).requires_grad_()
    b = torch.randn(3, generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = nc_conv2d(x, w, b, (1, 1, 1, 1), impl=impl)
    go = torch.randn(out.shape, generator=g).bfloat16()
    got = torch.autograd.grad(out, (x, w), go, create_graph=True)
    cfg = ((1, 1, 1, 1), "zeros", (3, 3), (1, 1), (1, 1), 1, 1, 1e-5)
    want = torch.autograd.grad(nc_conv2d_ref(x.bfloat16(), w.bfloat16(), b, None, cfg), (x, w), go)
    assert all(torch.equal(a, c) for a, c in zip(got, want))
