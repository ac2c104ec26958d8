"""The compiled CUDA kernels against the reference (docs/SPEC.md section 5). Skipped without a GPU.

On a GPU machine with nvcc the first CUDA call builds the library once (or `python -m gennorm.ops
build` did); a missing or failed build is a failure here, not a skip, unless nvcc itself is missing.
Every comparison is against the ops' Python kernels (gennorm.ops.kernels) and references in float64 on the same (rounded) inputs.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from gennorm import PONO, KNConv2d, NCConv2d
from gennorm.ops import extension, has_cuda, kernels, library, nc_conv2d, patch_moments, resolve_impl
from gennorm.ops.nc_conv2d import nc_conv2d_ref
from gennorm.ops.patch_moments import patch_moments_ref

pytestmark = pytest.mark.cuda
f64 = torch.float64
MODES = ["zeros", "reflect", "replicate", "circular"]
TOL = {torch.float32: 1e-5, torch.bfloat16: 1e-2, torch.float16: 2e-3, torch.float64: 1e-12}

# (N, C, H, W, pad (l, r, t, b), kernel, stride, dilation, groups): odd sizes, every option, wide channels.
CASES = [
    (2, 6, 13, 11, (1, 1, 1, 1), (3, 3), (1, 1), (1, 1), 1),
    (3, 8, 17, 9, (0, 1, 2, 1), (3, 3), (2, 2), (1, 1), 2),
    (1, 12, 10, 15, (2, 2, 1, 1), (2, 3), (1, 2), (2, 1), 4),
    (2, 4, 9, 12, (1, 0, 0, 1), (3, 2), (2, 1), (2, 2), 2),
    (2, 5, 7, 7, (0, 0, 0, 0), (1, 1), (1, 1), (1, 1), 1),
    (1, 16, 31, 29, (3, 3, 3, 3), (7, 7), (1, 1), (1, 1), 1),
    (1, 256, 33, 17, (1, 1, 1, 1), (3, 3), (2, 2), (1, 1), 1),
    (2, 512, 9, 13, (1, 1, 1, 1), (3, 3), (1, 1), (1, 1), 8),
]


@pytest.fixture(scope="module", autouse=True)
def library_with_cuda():
    if not has_cuda():
        if not extension.can_build_cuda():
            pytest.skip("nvcc is missing: the CUDA kernels cannot be built here")
        pytest.fail(f"the CUDA kernels are not loaded: {extension.info()}")


def _rand(shape, dtype=torch.float32, seed=0, offset=0.5, layout="contiguous"):
    g = torch.Generator().manual_seed(seed)
    t = (torch.randn(shape, generator=g, dtype=f64) * 2 + offset).to(dtype).cuda()
    if layout == "channels_last":
        return t.to(memory_format=torch.channels_last)
    if layout == "strided":  # a non-contiguous view: every other column of a wider tensor
        wide = torch.zeros(*shape[:3], 2 * shape[3], dtype=dtype, device="cuda")
        wide[..., ::2] = t
        return wide[..., ::2]
    return t


def _cpu64(*tensors):
    return [None if t is None else t.detach().double().cpu() for t in tensors]


def _close(got, want, dtype, name, scale=None):
    tol = TOL[dtype]
    scale = scale if scale is not None else max(want.abs().max().item(), 1.0)
    assert_close(got.double().cpu(), want, rtol=tol, atol=tol * scale, msg=lambda m: f"{name}: {m}")


def _forward_chain(case, dtype, layout, mode, seed=0):
    n, c, h, w, pad4, k, s, d, g = case
    x = _rand((n, c, h, w), dtype, seed, layout=layout)
    xc, sums = torch.ops.gennorm.pad_center_sums(x, list(pad4), mode, g)
    o = 2 * g if c >= 256 else 3 * g
    weight = (_rand((o, c // g) + k, torch.float32, seed + 1) * 0.1).to(dtype)
    y = F.conv2d(xc, weight, None, s, 0, d, g)
    S, b = weight.sum((1, 2, 3), dtype=torch.float32), _rand((o,), torch.float32, seed + 2)
    return x, xc, sums, weight, y, S, b


# ---- the four fused ops -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "strided"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("case", CASES, ids=str)
def test_fused_ops_match_the_reference(case, dtype, layout, mode):
    n, c, h, w, pad4, k, s, d, g = case
    if mode == "reflect" and max(pad4) >= min(h, w):
        pytest.skip("reflect padding must be smaller than the input")
    x, xc, sums, weight, y, S, b = _forward_chain(case, dtype, layout, mode)
    want_xc, want_sums = kernels.pad_center_sums(*_cpu64(x), pad4, mode, g)
    assert xc.dtype == dtype and sums.dtype == torch.float32 and sums.is_contiguous()
    assert xc.is_contiguous(memory_format=kernels.memory_format_of(x))
    _close(xc, want_xc, dtype, "xc")
    # sums of the *rounded* xc, in float32
    _close(sums, kernels.channel_sums(xc.double().cpu(), g), torch.float32, "sums")
    out, mean, rstd = torch.ops.gennorm.window_epilogue(y, sums, S, b, list(k), list(s), list(d), c // g, 1e-5)
    y64, sums64, S64, b64 = _cpu64(y, sums, S, b)
    want_out, want_mean, want_rstd = kernels.window_epilogue(y64, sums64, S64, b64, k, s, d, c // g, 1e-5)
    assert out.dtype == dtype and out.stride() == torch.empty(y.shape, device="cuda", memory_format=kernels.memory_format_of(y)).stride()
    _close(mean, want_mean, torch.float32, "mean")
    _close(rstd, want_rstd, torch.float32, "rstd", scale=want_rstd.abs().max().item())
    _close(out, want_out, dtype, "out")
    go = _rand(out.shape, dtype, 7, layout="channels_last" if layout == "channels_last" else "contiguous")
    got = torch.ops.gennorm.window_epilogue_backward(go, y, mean, rstd, S, c // g, list(k))
    want = kernels.window_epilogue_backward(*_cpu64(go, y, mean, rstd, S), c // g, k)
    for name, a, e in zip(("grad_y", "grad_window", "grad_S", "grad_bias"), got, want):
        _close(a, e, dtype if name == "grad_y" else torch.float32, name)
    grad_xc = _rand(xc.shape, dtype, 8)
    grad_x = torch.ops.gennorm.pad_center_sums_backward(grad_xc, xc, got[1], list(k), list(s), list(d), list(pad4), mode, g)
    want_x = kernels.pad_center_sums_backward(*_cpu64(grad_xc, xc, got[1]), k, s, d, pad4, mode, g)
    assert grad_x.shape == x.shape and grad_x.dtype == dtype
    assert grad_x.is_contiguous(memory_format=kernels.memory_format_of(xc))
    _close(grad_x, want_x, dtype, "grad_x")


def test_compiled_kernels_serve_the_layers(monkeypatch):
    """NC/KN on CUDA with impl auto run the compiled kernels: the Python kernels are never called."""
    assert all(extension.has_cuda_kernel(op) for op in library.SCHEMAS), extension.info()
    assert has_cuda(), extension.info()["error"]  # loaded and self-checked (with the Python kernels) first

    def python_kernel(*args, **kwargs):
        raise AssertionError("the Python kernel served a CUDA call")

    for name in ("pad_center_sums", "window_epilogue", "window_epilogue_backward", "pad_center_sums_backward",
                 "patch_moments_backward"):
        monkeypatch.setattr(kernels, name, python_kernel)
    monkeypatch.setattr(library, "patch_moments_ref", python_kernel)
    x = _rand((2, 8, 15, 13)).requires_grad_()
    for layer in (NCConv2d(8, 6, 3, padding=1, padding_mode="reflect"), KNConv2d(8, 6, 3, padding=1, dropout_p=0.0),
                  PONO()):
        out = layer.cuda()(x)
        (out[0] if isinstance(out, tuple) else out).square().sum().backward()
    assert resolve_impl(x, "auto") == "op"


def test_float64_gradcheck_and_exactness_of_the_cuda_unit():
    x = _rand((1, 4, 6, 5), f64).requires_grad_()
    w = (_rand((4, 2, 3, 3), f64, 1) * 0.3).requires_grad_()
    b = _rand((4,), f64, 2).requires_grad_()
    call = lambda x, w, b: nc_conv2d(x, w, b, (1, 0, 1, 1), "reflect", (2, 1), (1, 1), 2, 1e-3, impl="cuda")  # noqa: E731
    assert torch.autograd.gradcheck(call, (x, w, b))
    cfg = ((1, 0, 1, 1), "reflect", (3, 3), (2, 1), (1, 1), 2, 2, 1e-3)
    assert_close(call(x, w, b).cpu(), nc_conv2d_ref(*_cpu64(x, w, b), None, cfg), rtol=1e-12, atol=1e-12)


def test_deterministic_and_no_host_syncs():
    layer = NCConv2d(64, 64, 3, padding=1, padding_mode="reflect", impl="cuda").cuda()
    x = _rand((2, 64, 33, 31)).requires_grad_()
    results = []
    for _ in range(2):
        layer.zero_grad()
        x.grad = None
        torch.cuda.set_sync_debug_mode("error")
        try:
            out = layer(x)
            out.backward(torch.ones_like(out))
        finally:
            torch.cuda.set_sync_debug_mode("default")
        results.append((out.detach().clone(), x.grad.clone(), layer.weight.grad.clone()))
    for a, b in zip(*results):
        assert torch.equal(a, b)  # fixed-order reductions: bit-identical run to run


def test_cuda_graph_capture_matches_eager():
    torch.manual_seed(0)
    layer = NCConv2d(16, 16, 3, padding=1, impl="cuda").cuda()
    x = _rand((2, 16, 20, 18)).requires_grad_()
    eager = layer(x)
    graphed = torch.cuda.make_graphed_callables(layer, (x,))
    out = graphed(x)
    assert_close(out, eager, rtol=1e-5, atol=1e-5)


# ---- patch_moments (PONO, KernelNorm2d) ---------------------------------------------------------


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "strided"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("case", CASES[:6], ids=str)
def test_patch_moments_matches_reference(case, dtype, layout):
    n, c, h, w, _, k, s, d, g = case
    x = _rand((n, c, h, w), dtype, layout=layout)
    mean, rstd = torch.ops.gennorm.patch_moments(x, list(k), list(s), list(d), g, 1e-5)
    want_mean, want_rstd = patch_moments_ref(*_cpu64(x), k, s, d, g, 1e-5)
    assert mean.dtype == torch.float32 and mean.is_contiguous()
    _close(mean, want_mean, torch.float32, "mean")
    _close(rstd, want_rstd, torch.float32, "rstd", scale=want_rstd.abs().max().item())
    gm, gr = _rand(mean.shape, torch.float32, 3), _rand(mean.shape, torch.float32, 4)
    grad_x = torch.ops.gennorm.patch_moments_backward(gm, gr, x, mean, rstd, list(k), list(s), list(d), g)
    want = kernels.patch_moments_backward(*_cpu64(gm, gr, x, mean, rstd), k, s, d, g)
    assert grad_x.shape == x.shape and grad_x.dtype == x.dtype and grad_x.stride() == torch.empty_like(x).stride()
    _close(grad_x, want, dtype, "grad_x")


def test_no_nan_on_constant_and_far_from_zero_inputs():
    x = torch.full((2, 4, 9, 9), 3.0, device="cuda", requires_grad=True)
    out = NCConv2d(4, 4, 3, padding=1, impl="cuda").cuda()(x)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(x.grad).all()
    x = (300 + 0.01 * torch.randn(2, 8, 16, 16, device="cuda")).requires_grad_()
    layer = NCConv2d(8, 8, 3, padding=1, impl="cuda").cuda()
    out = layer(x)
    ref = nc_conv2d_ref(x.detach().double(), layer.weight.double(), layer.bias.double(), None,
                         ((1, 1, 1, 1), "zeros", (3, 3), (1, 1), (1, 1), 1, 1, 1e-5))
    assert ((out.double() - ref).norm() / ref.norm()) < 1e-3  # the centre-pixel shift keeps float32 exact


def test_opcheck_on_cuda():
    cl = torch.channels_last
    x = _rand((2, 4, 6, 5), f64)
    xc, sums = torch.ops.gennorm.pad_center_sums(x, [1, 1, 1, 1], "reflect", 2)
    w = _rand((6, 2, 3, 3), f64, 1)
    y = F.conv2d(xc, w, None, 1, 0, 1, 2)
    S, b = w.sum((1, 2, 3)), _rand((6,), f64, 2)
    out, m, r = torch.ops.gennorm.window_epilogue(y, sums, S, b, [3, 3], [1, 1], [1, 1], 2, 1e-5)
    xb = x.float().bfloat16().to(memory_format=cl)
    cases = [
        ("pad_center_sums", (x, [1, 1, 1, 1], "zeros", 2)),
        ("pad_center_sums", (xb, [0, 2, 1, 0], "circular", 1)),
        ("window_epilogue", (y, sums, S, b, [3, 3], [1, 1], [1, 1], 2, 1e-5)),
        ("window_epilogue", (y.float().to(memory_format=cl), sums.float(), S.float(), None, [3, 3], [1, 1], [1, 1], 2, 1e-5)),
        ("window_epilogue_backward", (torch.randn_like(out), y, m, r, S, 2, [3, 3])),
        ("pad_center_sums_backward", (torch.randn_like(xc), xc, torch.randn(2, 4, 6, 5, dtype=f64, device="cuda"), [3, 3],
                                      [1, 1], [1, 1], [1, 1, 1, 1], "reflect", 2)),
        ("patch_moments", (x.clone().requires_grad_(), [3, 3], [1, 1], [1, 1], 2, 1e-5)),
    ]
    for name, args in cases:
        torch.library.opcheck(getattr(torch.ops.gennorm, name).default, args)


# ---- the layers: CUDA kernels vs the torch unit ---------------------------------------------------


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
        results.append((out.detach(), xi.grad, [p.grad for p in layer.parameters()]))
    assert_close(results[0][0], results[1][0], rtol=rtol, atol=atol)
    assert_close(results[0][1], results[1][1], rtol=rtol, atol=atol)
    for a, b in zip(results[0][2], results[1][2]):
        assert_close(a, b, rtol=rtol, atol=atol)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_layers_cuda_vs_torch(memory_format):
    x = _rand((2, 8, 15, 13)).to(memory_format=memory_format)
    _compare_layers(lambda impl: NCConv2d(8, 6, 3, stride=2, padding=1, groups=2, impl=impl), x)
    _compare_layers(lambda impl: NCConv2d(8, 4, (3, 1), dilation=2, padding_mode="reflect", padding=2, impl=impl), x)
    _compare_layers(lambda impl: NCConv2d(8, 8, 7, padding=3, padding_mode="reflect", impl=impl), x)
    _compare_layers(lambda impl: KNConv2d(8, 6, 3, padding=1, dropout_p=0.0, impl=impl), x)
    _compare_layers(lambda impl: KNConv2d(8, 6, 3, padding=1, groups=2, dropout_p=0.0, impl=impl), x)
    _compare_layers(lambda impl: PONO(impl=impl), x)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_layers_cuda_autocast_close_to_float32(dtype):
    torch.manual_seed(0)
    layer = NCConv2d(64, 64, 3, padding=1, padding_mode="reflect", impl="cuda").cuda()
    x = _rand((2, 64, 32, 32)).requires_grad_()
    with torch.autocast("cuda", dtype=dtype):
        out = layer(x)
    assert out.dtype == dtype
    out.float().square().mean().backward()
    want = layer(x.detach())
    assert torch.isfinite(out).all() and torch.isfinite(x.grad).all()
    assert_close(out.float(), want, rtol=5e-2, atol=1e-1)
    assert patch_moments(x.to(dtype), 3)[0].dtype == torch.float32


def test_self_check_passes_on_the_gpu():
    """The check has_cuda() runs before the compiled kernels serve: every op, every case, on this GPU."""
    from gennorm.ops import selfcheck

    assert extension.ensure_loaded(), extension.info()["error"]
    rows = selfcheck.self_check("cuda")
    assert all(r.status == "ok" for r in rows), [r for r in rows if r.status != "ok"]
