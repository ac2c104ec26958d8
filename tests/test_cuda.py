"""The CUDA kernels against the reference (SPEC.md section 5). Skipped without a GPU (conftest.py).

On a GPU machine with nvcc, importing gennorm builds the library on first use; a missing or failed
build is a failure here, not a skip, unless nvcc itself is missing.
"""
from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from gennorm import PONO, KNConv2d, NCConv2d
from gennorm.ops import extension, has_cuda, moment_epilogue, patch_moments, reference

pytestmark = pytest.mark.cuda

# (shape, kernel_size, stride, dilation, groups): odd sizes, every option.
CASES = [
    ((2, 6, 13, 11), (3, 3), (1, 1), (1, 1), 1),
    ((3, 8, 17, 9), (3, 3), (2, 2), (1, 1), 2),
    ((1, 12, 10, 15), (2, 3), (1, 2), (2, 1), 4),
    ((2, 4, 9, 12), (3, 2), (2, 1), (2, 2), 2),
    ((2, 5, 7, 7), (1, 1), (1, 1), (1, 1), 1),
    ((1, 16, 31, 29), (5, 5), (3, 2), (1, 1), 8),
    ((4, 3, 8, 8), (4, 4), (2, 2), (1, 1), 3),
]


@pytest.fixture(scope="module", autouse=True)
def library_with_cuda():
    if not has_cuda():
        if not extension.can_build_cuda():
            pytest.skip("nvcc is missing: the CUDA kernels cannot be built here")
        pytest.fail(f"the CUDA kernels are not loaded: {extension.info()}")


def _rand(shape, dtype=torch.float32, seed=0, offset=0.5):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g, dtype=torch.float64) * 2 + offset).to(dtype)


def _grads(mean):
    g = torch.Generator().manual_seed(7)
    return torch.randn(mean.shape, generator=g, dtype=torch.float64), torch.randn(mean.shape, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "strided"])
def test_patch_moments_float32_matches_reference(case, layout):
    shape, k, s, d, g = case
    x64 = _rand(shape, torch.float64)
    x = x64.float().cuda()
    if layout == "channels_last":
        x = x.to(memory_format=torch.channels_last)
    elif layout == "strided":  # a non-contiguous view: every other column of a wider tensor
        wide = torch.zeros(*shape[:3], 2 * shape[3], device="cuda")
        wide[..., ::2] = x
        x = wide[..., ::2]
    mean, rstd = torch.ops.gennorm.patch_moments(x, list(k), list(s), list(d), g, 1e-5)
    want_mean, want_rstd = reference.patch_moments(x64.float().double(), k, s, d, g, 1e-5)
    assert mean.dtype == torch.float32 and mean.is_contiguous()
    assert_close(mean.double().cpu(), want_mean, rtol=1e-5, atol=1e-5)
    assert_close(rstd.double().cpu(), want_rstd, rtol=1e-5, atol=1e-6)
    # backward
    gm, gr = _grads(mean)
    grad_x = torch.ops.gennorm.patch_moments_backward(gm.float().cuda(), gr.float().cuda(), x, mean, rstd, list(k), list(s), list(d), g)
    want = reference.patch_moments_backward(gm, gr, x64.float().double(), mean.double().cpu(), rstd.double().cpu(), k, s, d, g)
    assert grad_x.shape == x.shape and grad_x.dtype == x.dtype and grad_x.stride() == torch.empty_like(x).stride()
    assert_close(grad_x.double().cpu(), want, rtol=1e-5, atol=1e-5 * want.abs().max().item())


@pytest.mark.parametrize("case", CASES[:4], ids=str)
def test_patch_moments_float64_gradcheck(case):
    shape, k, s, d, g = case
    x = _rand((1,) + shape[1:3] + (7,), torch.float64).cuda().requires_grad_()
    torch.autograd.gradcheck(lambda t: patch_moments(t, k, s, d, g, 1e-3, impl="cuda"), (x,))
    mean, rstd = patch_moments(x, k, s, d, g, 1e-5, impl="cuda")
    want = reference.patch_moments(x.detach().cpu(), k, s, d, g, 1e-5)
    assert_close((mean.cpu(), rstd.cpu()), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("case", CASES[:3], ids=str)
def test_patch_moments_half(case, dtype):
    shape, k, s, d, g = case
    x = _rand(shape, dtype).cuda()
    mean, rstd = torch.ops.gennorm.patch_moments(x, list(k), list(s), list(d), g, 1e-5)
    assert mean.dtype == torch.float32
    want_mean, want_rstd = reference.patch_moments(x.double().cpu(), k, s, d, g, 1e-5)  # same rounded input
    assert_close(mean.double().cpu(), want_mean, rtol=1e-5, atol=1e-5)
    assert_close(rstd.double().cpu(), want_rstd, rtol=1e-4, atol=1e-5)
    x.requires_grad_()
    m, r = patch_moments(x, k, s, d, g, 1e-5, impl="cuda")
    (m.sum() + r.sum()).backward()
    xr = x.detach().double().cpu().requires_grad_()
    m2, r2 = reference.patch_moments(xr, k, s, d, g, 1e-5)
    (m2.sum() + r2.sum()).backward()
    tol = 1e-2 if dtype == torch.bfloat16 else 2e-3
    assert x.grad.dtype == dtype
    assert_close(x.grad.double().cpu(), xr.grad, rtol=tol, atol=tol * xr.grad.abs().max().item())


def _epilogue(n, o, g, h, w, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    y = torch.randn(n, o, h, w, generator=gen, dtype=torch.float64).to(dtype)
    mean = torch.randn(n, g, h, w, generator=gen, dtype=torch.float64)
    rstd = torch.rand(n, g, h, w, generator=gen, dtype=torch.float64) + 0.5
    S = torch.randn(o, generator=gen, dtype=torch.float64)
    b = torch.randn(o, generator=gen, dtype=torch.float64)
    return y, mean, rstd, S, b


@pytest.mark.parametrize("dims", [(2, 6, 1, 5, 7), (3, 12, 4, 9, 11), (1, 9, 3, 1, 1), (2, 256, 2, 33, 17)], ids=str)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("bias", [True, False])
def test_moment_epilogue_float32_matches_reference(dims, layout, bias):
    y64, m64, r64, S64, b64 = _epilogue(*dims, torch.float64)
    b64 = b64 if bias else None
    args64 = [t if t is None else t.float().double() for t in (y64, m64, r64, S64, b64)]
    y, m, r, S, b = [t if t is None else t.float().cuda() for t in args64]
    if layout == "channels_last":
        y = y.to(memory_format=torch.channels_last)
    out = torch.ops.gennorm.moment_epilogue(y, m, r, S, b)
    assert out.dtype == torch.float32 and out.stride() == y.stride()
    assert_close(out.double().cpu(), reference.moment_epilogue(*args64), rtol=1e-5, atol=1e-5)
    go64 = torch.randn(y.shape, dtype=torch.float64).float().double()
    go = go64.float().cuda()
    if layout == "channels_last":
        go = go.to(memory_format=torch.channels_last)
    got = torch.ops.gennorm.moment_epilogue_backward(go, y, m, r, S)
    want = reference.moment_epilogue_backward(go64, *args64[:4])
    for name, a, e in zip(("y", "mean", "rstd", "S", "bias"), got, want):
        scale = max(e.abs().max().item(), 1.0)
        assert_close(a.double().cpu(), e, rtol=1e-5, atol=1e-5 * scale, msg=lambda m: f"grad_{name}: {m}")


def test_moment_epilogue_float64_gradcheck_and_half_output():
    args = [t.cuda().requires_grad_() for t in _epilogue(1, 4, 2, 3, 2, torch.float64)]
    torch.autograd.gradcheck(lambda *a: moment_epilogue(*a, impl="cuda"), args)
    for dtype in (torch.float16, torch.bfloat16):
        y, m, r, S, b = [t.cuda() for t in _epilogue(2, 8, 2, 5, 3, dtype)]
        out = moment_epilogue(y, m.float(), r.float(), S.float(), b.float(), impl="cuda")
        want = reference.moment_epilogue(y.double(), m.double(), r.double(), S.double(), b.double())
        assert out.dtype == dtype
        assert_close(out.double(), want, rtol=1e-2, atol=1e-2 * want.abs().max().item())


def test_no_nan_on_constant_and_far_from_zero_inputs():
    x = torch.full((2, 4, 9, 9), 3.0, device="cuda")
    mean, rstd = torch.ops.gennorm.patch_moments(x, [3, 3], [1, 1], [1, 1], 2, 1e-5)
    assert torch.isfinite(rstd).all() and torch.allclose(rstd, torch.full_like(rstd, 1e-5 ** -0.5), rtol=1e-3)
    x = 300 + 0.01 * torch.randn(2, 4, 9, 9, device="cuda")  # cancels in float32: var clamps at 0, no NaN
    mean, rstd = torch.ops.gennorm.patch_moments(x, [3, 3], [1, 1], [1, 1], 1, 1e-5)
    assert torch.isfinite(mean).all() and torch.isfinite(rstd).all()
    x.requires_grad_()
    m, r = patch_moments(x, 3, impl="cuda")
    (m.sum() + r.sum()).backward()
    assert torch.isfinite(x.grad).all()


def test_opcheck_on_cuda():
    x = _rand((2, 4, 6, 5), torch.float64).cuda()
    mean, rstd = torch.ops.gennorm.patch_moments(x, [3, 3], [1, 1], [1, 1], 2, 1e-5)
    g = torch.randn_like(mean)
    y, m, r, S, b = [t.cuda() for t in _epilogue(2, 6, 2, 4, 3, torch.float64)]
    cl = torch.channels_last
    cases = [
        ("patch_moments", (x.clone().requires_grad_(), [3, 3], [1, 1], [1, 1], 2, 1e-5)),
        ("patch_moments", (x.float().to(memory_format=cl).requires_grad_(), [2, 3], [2, 1], [1, 2], 4, 1e-3)),
        ("patch_moments_backward", (g, g, x, mean, rstd, [3, 3], [1, 1], [1, 1], 2)),
        ("moment_epilogue", tuple(t.clone().requires_grad_() for t in (y, m, r, S, b))),
        ("moment_epilogue", (y.bfloat16().to(memory_format=cl), m.float(), r.float(), S.float(), None)),
        ("moment_epilogue_backward", (torch.randn_like(y), y.to(memory_format=cl), m, r, S)),
    ]
    for name, args in cases:
        torch.library.opcheck(getattr(torch.ops.gennorm, name).default, args)


def _compare_layers(make, x, dtype=torch.float32, rtol=1e-4, atol=1e-4):
    torch.manual_seed(0)
    cuda_layer, torch_layer = make("cuda").cuda().to(dtype), make("torch").cuda().to(dtype)
    torch_layer.load_state_dict(cuda_layer.state_dict())
    results = []
    for layer in (cuda_layer, torch_layer):
        xi = x.clone().cuda().to(dtype).requires_grad_()
        out = layer(xi)
        out = out[0] if isinstance(out, tuple) else out
        out.square().mean().backward()
        params = [p.grad for p in layer.parameters()]
        results.append((out.detach(), xi.grad, params))
    assert_close(results[0][0], results[1][0], rtol=rtol, atol=atol)
    assert_close(results[0][1], results[1][1], rtol=rtol, atol=atol)
    for a, b in zip(results[0][2], results[1][2]):
        assert_close(a, b, rtol=rtol, atol=atol)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_layers_cuda_vs_torch(memory_format):
    x = _rand((2, 8, 15, 13)).to(memory_format=memory_format)
    _compare_layers(lambda impl: NCConv2d(8, 6, 3, stride=2, padding=1, groups=2, impl=impl), x)
    _compare_layers(lambda impl: NCConv2d(8, 4, (3, 1), dilation=2, padding_mode="reflect", padding=2, impl=impl), x)
    _compare_layers(lambda impl: KNConv2d(8, 6, 3, padding=1, dropout_p=0.0, impl=impl), x)
    _compare_layers(lambda impl: PONO(impl=impl), x)


def test_layers_cuda_bf16_autocast_close_to_float32():
    torch.manual_seed(0)
    layer = NCConv2d(8, 6, 3, padding=1, impl="cuda").cuda()
    x = _rand((2, 8, 16, 16)).cuda()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = layer(x)
    want = layer(x)
    assert torch.isfinite(out).all()
    assert_close(out.float(), want, rtol=5e-2, atol=1e-1)
