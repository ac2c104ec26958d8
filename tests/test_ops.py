"""The shared op (SPEC.md section 5): literal window definitions, custom-op registration, autograd.

These run against whatever `torch.ops.gennorm` kernels this process has: the Python-registered
reference kernels (the usual case in CI), or the compiled CPU kernels when a build is cached.
tests/test_cuda_build.py runs the same checks against a fresh compiled build in a subprocess.
"""
from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

import literal
from gennorm import KNConv2d, NCConv2d
from gennorm.ops import library, moment_epilogue, patch_moments

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


def _x(shape=(2, 4, 7, 8), dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=dtype) * 2 + 0.5


def _epilogue_inputs(n=2, o=6, g=2, h=3, w=4, dtype=torch.float64, bias=True, seed=1):
    gen = torch.Generator().manual_seed(seed)
    y = torch.randn(n, o, h, w, generator=gen, dtype=dtype)
    mean = torch.randn(n, g, h, w, generator=gen, dtype=dtype)
    rstd = torch.rand(n, g, h, w, generator=gen, dtype=dtype) + 0.5
    S = torch.randn(o, generator=gen, dtype=dtype)
    b = torch.randn(o, generator=gen, dtype=dtype) if bias else None
    return y, mean, rstd, S, b


def _epilogue_literal(y, mean, rstd, S, bias):
    rep = y.shape[1] // mean.shape[1]  # channel o uses group o // (O/g)
    out = (y - mean.repeat_interleave(rep, 1) * S.view(1, -1, 1, 1)) * rstd.repeat_interleave(rep, 1)
    return out if bias is None else out + bias.view(1, -1, 1, 1)


# ---- values against the literal definitions ------------------------------------------------


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


@pytest.mark.parametrize("impl", ["op", "torch"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("groups", [1, 2, 3])
def test_moment_epilogue_equals_definition(groups, bias, impl):
    y, mean, rstd, S, b = _epilogue_inputs(g=groups, bias=bias)
    out = moment_epilogue(y, mean, rstd, S, b, impl=impl)
    assert_close(out, _epilogue_literal(y, mean, rstd, S, b), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_half_inputs_give_float32_statistics(dtype):
    x = _x(dtype=torch.float32).to(dtype)
    mean, rstd = torch.ops.gennorm.patch_moments(x, [3, 3], [1, 1], [1, 1], 2, 1e-5)
    assert mean.dtype == rstd.dtype == torch.float32
    want_mean, want_rstd = literal.window_moments(x.double(), (3, 3), (1, 1), (1, 1), 2, 1e-5)
    assert_close(mean.double(), want_mean, rtol=1e-5, atol=1e-5)
    assert_close(rstd.double(), want_rstd, rtol=1e-4, atol=1e-5)
    y = _x((2, 4, 5, 6), dtype=torch.float32, seed=3).to(dtype)
    out = torch.ops.gennorm.moment_epilogue(y, mean, rstd, torch.ones(4), None)
    assert out.dtype == dtype


def test_channels_last_inputs_keep_their_layout():
    x = _x((2, 4, 6, 5)).to(memory_format=torch.channels_last)
    mean, rstd = torch.ops.gennorm.patch_moments(x, [3, 3], [1, 1], [1, 1], 2, 1e-5)
    want = literal.window_moments(x.contiguous(), (3, 3), (1, 1), (1, 1), 2, 1e-5)
    assert_close((mean, rstd), want, rtol=1e-10, atol=1e-12)
    y, m, r, S, b = _epilogue_inputs()
    out = torch.ops.gennorm.moment_epilogue(y.to(memory_format=torch.channels_last), m, r, S, b)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert_close(out, _epilogue_literal(y, m, r, S, b), rtol=1e-12, atol=1e-12)


# ---- registration: schemas, opcheck ----------------------------------------------------------


def test_schemas_are_the_documented_ones():
    for name, schema in library.SCHEMAS.items():
        assert str(getattr(torch.ops.gennorm, name).default._schema) == f"gennorm::{schema}"


def _opcheck_cases():
    x = _x((2, 4, 6, 5))
    grad = torch.randn(2, 2, 4, 3, dtype=torch.float64)
    mean, rstd = torch.ops.gennorm.patch_moments(x, [3, 3], [1, 1], [1, 1], 2, 1e-5)
    y, m, r, S, b = _epilogue_inputs()
    cl = torch.channels_last
    return [
        ("patch_moments", (x.clone().requires_grad_(), [3, 3], [1, 1], [1, 1], 2, 1e-5)),
        ("patch_moments", (x.to(memory_format=cl).requires_grad_(), [2, 3], [2, 1], [1, 2], 4, 1e-3)),
        ("patch_moments", (x.float().requires_grad_(), [1, 1], [1, 1], [1, 1], 1, 1e-5)),
        ("patch_moments_backward", (grad, grad.flip(0), x, mean, rstd, [3, 3], [1, 1], [1, 1], 2)),
        ("patch_moments_backward", (grad, grad, x.to(memory_format=cl), mean, rstd, [3, 3], [1, 1], [1, 1], 2)),
        ("moment_epilogue", tuple(t.clone().requires_grad_() for t in (y, m, r, S, b))),
        ("moment_epilogue", (y.to(memory_format=cl).requires_grad_(), m, r, S.clone().requires_grad_(), None)),
        ("moment_epilogue", (y.bfloat16(), m.float(), r.float(), S.float(), b.float())),
        ("moment_epilogue_backward", (torch.randn_like(y), y, m, r, S)),
        ("moment_epilogue_backward", (torch.randn_like(y), y.to(memory_format=cl), m, r, S)),
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


@pytest.mark.parametrize("impl", ["op", "torch"])
def test_gradcheck_moment_epilogue(impl):
    args = [t.requires_grad_() for t in _epilogue_inputs(n=1, o=4, g=2, h=2, w=3)]
    torch.autograd.gradcheck(lambda *a: moment_epilogue(*a, impl=impl), args)
    y, m, r, S, _ = (t.detach().requires_grad_() for t in _epilogue_inputs(n=1, o=3, g=1, h=2, w=2))
    torch.autograd.gradcheck(lambda *a: moment_epilogue(*a, None, impl=impl), (y, m, r, S))


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


# ---- torch.compile -------------------------------------------------------------------------------


@pytest.mark.parametrize("layer", ["nc", "kn"])
def test_compile_fullgraph_matches_eager(layer):
    torch._dynamo.reset()
    torch.manual_seed(0)
    if layer == "nc":
        module = NCConv2d(4, 6, 3, padding=1, groups=2, impl="op")
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
    y, m, r, S, b = _epilogue_inputs()
    me = torch.ops.gennorm.moment_epilogue
    with pytest.raises(RuntimeError, match=r"S must have shape \[6\]"):
        me(y, m, r, S[:5], b)
    with pytest.raises(RuntimeError, match=r"bias must have shape \[6\]"):
        me(y, m, r, S, b[:2])
    with pytest.raises(RuntimeError, match="does not fit y"):
        me(y, m[:, :, :2], r[:, :, :2], S, b)
    with pytest.raises(RuntimeError, match="same shape"):
        me(y, m, r[:, :1], S, b)
    # The public functions check before dispatching (ValueError / TypeError, as in the layers).
    with pytest.raises(ValueError, match="divisible by groups"):
        patch_moments(x, 3, groups=3)
    with pytest.raises(ValueError, match="impl must be one of"):
        patch_moments(x, 3, impl="fast")
    with pytest.raises(RuntimeError, match="impl='cuda' requested but the tensor is on the CPU"):
        patch_moments(x, 3, impl="cuda")
