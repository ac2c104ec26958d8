"""The compiled library (cuda/): the nvcc build for sm_90, its registrations, and the kernels' code
run on the CPU by the emulation harness (cuda/emulate.h). No GPU needed.

* Build: `python -m gennorm.ops build --arch 9.0 --quiet` into a temporary GENNORM_CACHE (measured
  on 2 shared cores: 1.5-4 min). Then, in a subprocess, `import gennorm.ops` (which defines the
  schemas in Python), `torch.ops.load_library(the .so)` and `torch._C._dispatch_dump`: every op has a
  CUDA kernel from cuda/gennorm_ops.cpp, and the C++ signatures fit the contract's schemas.
* Emulation: the .cu files compiled as C++ with -DGENNORM_EMULATE (each block's threads are fibers:
  shared memory, __syncthreads and warp shuffles behave as on a GPU; a barrier that not every
  thread reaches is an error), registered as torch.ops.gennorm_emu.* with the contract's schemas.
  They are checked against a float64 oracle written here from the contract's formulas with plain
  torch ops (independent of gennorm.ops): every padding mode, odd widths, 256 / 512 channels,
  channel chunks, grids that wrap (tiny grid caps), 32- and 64-bit indexing, NCHW / NHWC / strided,
  float32 / float64 / bfloat16 / float16, forward and backward of all six ops, bit-reproducibility.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
CUDA_DIR = ROOT / "cuda"


def _cuda_home() -> Path | None:
    for c in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if c and (Path(c) / "bin" / "nvcc").is_file():
            return Path(c)
    return None


needs_nvcc = pytest.mark.skipif(torch.version.cuda is None or _cuda_home() is None,
                                reason="nvcc (CUDA_HOME) or a CUDA-enabled torch is missing")

# The contract's schemas (docs/SPEC.md section 5.1) and the two kept ops (gennorm/ops/library.py).
SCHEMAS = {
    "pad_center_sums": "pad_center_sums(Tensor x, int[4] pad, str mode, int groups) -> (Tensor xc, Tensor sums)",
    "window_epilogue": "window_epilogue(Tensor y, Tensor sums, Tensor S, Tensor? bias, int[2] kernel_size, int[2] stride, int[2] dilation, int cg, float eps) -> (Tensor out, Tensor mean, Tensor rstd)",
    "window_epilogue_backward": "window_epilogue_backward(Tensor grad_out, Tensor y, Tensor mean, Tensor rstd, Tensor S, int cg, int[2] kernel_size) -> (Tensor grad_y, Tensor grad_window, Tensor grad_S, Tensor grad_bias)",
    "pad_center_sums_backward": "pad_center_sums_backward(Tensor grad_xc, Tensor xc, Tensor grad_window, int[2] kernel_size, int[2] stride, int[2] dilation, int[4] pad, str mode, int groups) -> Tensor grad_x",
    "patch_moments": "patch_moments(Tensor x, int[2] kernel_size, int[2] stride, int[2] dilation, int groups, float eps) -> (Tensor, Tensor)",
    "patch_moments_backward": "patch_moments_backward(Tensor grad_mean, Tensor grad_rstd, Tensor x, Tensor mean, Tensor rstd, int[2] kernel_size, int[2] stride, int[2] dilation, int groups) -> Tensor",
}

# ---- the nvcc build ------------------------------------------------------------------------------

# Fallback when the build command is broken: the same torch.utils.cpp_extension.load call.
DIRECT_BUILD = r"""
import json, os, sys
from torch.utils.cpp_extension import load
src, out = sys.argv[1], sys.argv[2]
sources = sorted(os.path.join(src, f) for f in os.listdir(src) if f.endswith((".cpp", ".cu")))
load(name="gennorm_ops", sources=sources, build_directory=out, extra_cflags=["-O3"], extra_cuda_cflags=["-O3"],
     extra_include_paths=[src], with_cuda=True, is_python_module=False, verbose=True)
"""

# In a subprocess: define the schemas the way gennorm.ops does, load the .so, dump the dispatcher.
CHECK_SCRIPT = r"""
import json, sys, torch
schemas = json.loads(sys.argv[2])
import gennorm.ops  # defines the schemas in Python
from_python = {name: hasattr(torch.ops.gennorm, name) for name in schemas}
lib = torch.library.Library("gennorm", "FRAGMENT")  # ops gennorm.ops does not (yet) define
for name, schema in schemas.items():
    if not from_python[name]:
        lib.define(schema)
torch.ops.load_library(sys.argv[1])  # raises if a C++ signature does not fit its schema
dumps = {name: torch._C._dispatch_dump("gennorm::" + name) for name in schemas}
print(json.dumps({
    "from_python": from_python,
    "schemas": {name: str(getattr(torch.ops.gennorm, name).default._schema) for name in schemas},
    "cuda": {name: [line for line in d.splitlines() if line.startswith("CUDA:")] for name, d in dumps.items()},
}))
"""


@pytest.fixture(scope="module")
def cuda_build(tmp_path_factory):
    """(path of the built .so, build directory, how it was built)."""
    cache = tmp_path_factory.mktemp("gennorm-cache")
    env = dict(os.environ, GENNORM_CACHE=str(cache), GENNORM_EXTENSION="0", PYTHONPATH=str(ROOT),
               CUDA_HOME=str(_cuda_home()), TORCH_CUDA_ARCH_LIST="9.0")
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "gennorm.ops", "build", "--arch", "9.0", "--quiet"], env=env,
                          cwd=ROOT, capture_output=True, text=True)
    found = sorted(cache.rglob("gennorm_ops.so"))
    how = "python -m gennorm.ops build"
    if done.returncode != 0 or not found:
        command_error = (done.stdout + done.stderr)[-3000:]
        out = cache / "direct"
        out.mkdir()
        direct = subprocess.run([sys.executable, "-c", DIRECT_BUILD, str(CUDA_DIR), str(out)], env=env, cwd=ROOT,
                                capture_output=True, text=True)
        assert direct.returncode == 0, direct.stdout[-6000:] + direct.stderr[-6000:]
        found = [out / "gennorm_ops.so"]
        how = f"torch.utils.cpp_extension.load (the build command failed: {command_error})"
    print(f"nvcc build for sm_90: {time.monotonic() - start:.0f} s via {how[:200]}")
    return found[0], found[0].parent, how


@needs_nvcc
def test_cuda_build_for_sm90(cuda_build):
    library, directory, how = cuda_build
    ninja = (directory / "build.ninja").read_text()
    assert "code=sm_90" in ninja  # what nvcc was asked to emit
    assert "GENNORM_EMULATE" not in ninja
    cuobjdump = _cuda_home() / "bin" / "cuobjdump"
    if cuobjdump.is_file():
        listing = subprocess.run([str(cuobjdump), "--list-elf", str(library)], capture_output=True, text=True).stdout
        assert "sm_90" in listing, listing


@needs_nvcc
def test_cuda_build_command_works(cuda_build):
    assert cuda_build[2] == "python -m gennorm.ops build", cuda_build[2]


@needs_nvcc
def test_cuda_library_registers_a_cuda_kernel_for_every_op(cuda_build):
    library = cuda_build[0]
    env = dict(os.environ, GENNORM_EXTENSION="0", PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", CHECK_SCRIPT, str(library), json.dumps(SCHEMAS)], env=env, cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    for name in SCHEMAS:
        lines = result["cuda"][name]
        assert lines and "gennorm_ops.cpp" in lines[0], (name, lines)
        if result["from_python"][name]:  # gennorm.ops defines it: with exactly the contract's schema
            assert result["schemas"][name] == f"gennorm::{SCHEMAS[name]}", (name, result["schemas"][name])


def test_no_cpu_kernels_or_library_definition_in_cpp():
    text = "\n".join(p.read_text() for p in CUDA_DIR.iterdir() if p.suffix in (".cpp", ".cu", ".cuh", ".h"))
    assert "TORCH_LIBRARY(" not in text and "TORCH_LIBRARY_IMPL(gennorm, CPU" not in text
    assert "TORCH_LIBRARY_IMPL(gennorm, CUDA, m)" in text


# ---- the kernels' code, emulated on CPU fibers (cuda/emulate.h) ---------------------------------

EMULATION_SOURCE = r"""
// cuda/*.cu compiled as C++ (cuda/emulate.h): the host functions and kernels as ops gennorm_emu::*.
#include "pad_center_sums.cu"
#include "window_epilogue.cu"
#include <torch/library.h>

namespace {
void set_tuning(int64_t max_blocks, int64_t target_blocks, int64_t min_chunk, bool force_int64) {
  gennorm::tuning().max_blocks = max_blocks;
  gennorm::tuning().target_blocks = target_blocks;
  gennorm::tuning().min_chunk = min_chunk;
  gennorm::tuning().force_int64 = force_int64;
}
std::vector<int64_t> counters(bool reset) {
  auto& c = gennorm::emu::counters();
  std::vector<int64_t> out{c.launches, c.blocks, c.vector_runs, c.scalar_runs};
  if (reset) c = gennorm::emu::Counters();
  return out;
}
}  // namespace

TORCH_LIBRARY(gennorm_emu, m) {
  m.def("@pad_center_sums@", &gennorm::pad_center_sums_cuda);
  m.def("@window_epilogue@", &gennorm::window_epilogue_cuda);
  m.def("@window_epilogue_backward@", &gennorm::window_epilogue_backward_cuda);
  m.def("@pad_center_sums_backward@", &gennorm::pad_center_sums_backward_cuda);
  m.def("@patch_moments@", &gennorm::patch_moments_cuda);
  m.def("@patch_moments_backward@", &gennorm::patch_moments_backward_cuda);
  m.def("set_tuning(int max_blocks, int target_blocks, int min_chunk, bool force_int64) -> ()", &set_tuning);
  m.def("counters(bool reset) -> int[]", &counters);
}
"""


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    """torch.ops.gennorm_emu: the exact .cu code, each block's threads as fibers.

    GENNORM_EMU_LIBRARY=path loads a prebuilt one instead (e.g. built with -fsanitize=address and run
    under LD_PRELOAD=libasan.so: out-of-bounds accesses of the kernels then stop the test)."""
    from torch.utils.cpp_extension import load

    prebuilt = os.environ.get("GENNORM_EMU_LIBRARY")
    if prebuilt:
        torch.ops.load_library(prebuilt)
        yield torch.ops.gennorm_emu
        return
    directory = tmp_path_factory.mktemp("gennorm-emulation")
    source = EMULATION_SOURCE
    for name, schema in SCHEMAS.items():
        source = source.replace(f'"@{name}@"', json.dumps(schema))
    (directory / "emulated_kernels.cpp").write_text(source)
    start = time.monotonic()
    load(name="gennorm_emu", sources=[str(directory / "emulated_kernels.cpp")], build_directory=str(directory),
         extra_include_paths=[str(CUDA_DIR)], extra_cflags=["-DGENNORM_EMULATE", "-O1"], is_python_module=False,
         with_cuda=False)
    print(f"emulation build: {time.monotonic() - start:.0f} s")
    ops = torch.ops.gennorm_emu
    yield ops
    ops.set_tuning(1 << 20, 0, 32, False)


# Launch configurations: the defaults (emulated GPU of 4 SMs: target 16 blocks), and tiny ones that
# make every grid wrap (at most 2-3 blocks), split channels into chunks of 8, and use 64-bit indexing.
TUNINGS = {
    "default": (1 << 20, 0, 32, False),
    "wrap-chunks-int64": (2, 4096, 8, True),
    "wrap3-int32": (3, 64, 16, False),
}


DTYPES = {"float64": torch.float64, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
TOL = {torch.float64: 1e-12, torch.float32: 2e-5, torch.bfloat16: 2e-2, torch.float16: 3e-3}
MODES = ["zeros", "reflect", "replicate", "circular"]

# (dtype, layout, tuning): every dtype x layout with the default launch configuration, and the tiny
# grids / many chunks / 64-bit indexing on a spread of them (each emulated call costs CPU time).
COMBOS = [(dt, kind, "default") for dt in DTYPES for kind in ("contiguous", "channels_last", "strided")] + [
    ("float32", "contiguous", "wrap-chunks-int64"),
    ("float32", "channels_last", "wrap-chunks-int64"),
    ("float32", "strided", "wrap3-int32"),
    ("bfloat16", "contiguous", "wrap3-int32"),
    ("float16", "channels_last", "wrap3-int32"),
    ("float64", "strided", "wrap-chunks-int64"),
]
combos = pytest.mark.parametrize("dtype,kind,tuning", COMBOS, ids=["-".join(c) for c in COMBOS])


@pytest.fixture
def tuned(request, emu):
    emu.set_tuning(*TUNINGS[request.node.callspec.params["tuning"]])
    yield emu
    emu.set_tuning(*TUNINGS["default"])


def acc_of(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


def layout(t: torch.Tensor, kind: str) -> torch.Tensor:
    """The same values as NCHW-contiguous, channels_last, or a strided (non-dense) view."""
    if kind == "channels_last":
        return t.contiguous(memory_format=torch.channels_last)
    if kind == "strided":
        return torch.cat([t, t], 3)[..., ::2]  # every other column of a wider tensor
    return t.contiguous()


def close(got, want, tol, name, scale=None):
    got, want = got.double(), want.double()
    scale = max(want.abs().max().item() if want.numel() else 1.0, 1e-30) if scale is None else scale
    err = (got - want).abs().max().item() if want.numel() else 0.0
    assert err <= tol * scale, f"{name}: max error {err:.3g} > {tol:.1g} x scale {scale:.3g}"


# ---- the float64 oracle, from docs/SPEC.md section 5.1 ----------------------------------------------


def o_pad(x, pad, mode):
    return F.pad(x, tuple(pad)) if mode == "zeros" else F.pad(x, tuple(pad), mode=mode)


def o_shift(x, g):
    n, c, h, w = x.shape
    return x.double()[:, :, h // 2, w // 2].reshape(n, g, c // g).mean(-1)  # [N, g]


def o_centered(x, pad, mode, g):
    """pad(x) - c in float64 (section 1), before rounding to x's dtype."""
    c = o_shift(x, g).repeat_interleave(x.shape[1] // g, 1)[:, :, None, None]
    return o_pad(x.double(), pad, mode) - c


def o_channel_sums(xc, g):
    n, c, hp, wp = xc.shape
    v = xc.double().reshape(n, g, c // g, hp, wp)
    return torch.cat([v.sum(2), (v * v).sum(2)], 1)  # [N, 2g, Hp, Wp]


def o_window_sum(t, k, s, d):
    ones = t.new_ones(t.shape[1], 1, *k)
    return F.conv2d(t, ones, None, s, 0, d, groups=t.shape[1])


def o_window_sum_t(t, size, k, s, d):
    """Transposed window sums onto a [.., Hp, Wp] grid; 0 past the last window."""
    ones = t.new_ones(t.shape[1], 1, *k)
    out = F.conv_transpose2d(t, ones, None, s, 0, 0, groups=t.shape[1], dilation=d)
    return F.pad(out, (0, size[1] - out.shape[3], 0, size[0] - out.shape[2]))


def o_stats(sums, k, s, d, count, eps):
    g = sums.shape[1] // 2
    ws = o_window_sum(sums.double(), k, s, d)
    mean = ws[:, :g] / count
    var = (ws[:, g:] / count - mean ** 2).clamp_min(0)
    return mean, 1 / torch.sqrt(var + eps)


def o_epilogue(y, mean, rstd, S, bias):
    n, o, ho, wo = y.shape
    g = mean.shape[1]
    rep = lambda t: t.repeat_interleave(o // g, 1)  # noqa: E731
    out = (y.double() - rep(mean) * S.double()[None, :, None, None]) * rep(rstd)
    return out if bias is None else out + bias.double()[None, :, None, None]


def o_epilogue_backward(grad_out, y, mean, rstd, S, count):
    n, o, ho, wo = y.shape
    g = mean.shape[1]
    go = grad_out.double().reshape(n, g, o // g, ho, wo)
    yg = y.double().reshape(n, g, o // g, ho, wo)
    Sg = S.double().reshape(1, g, o // g, 1, 1)
    mu, rs = mean.double()[:, :, None], rstd.double()[:, :, None]
    grad_y = (go * rs).reshape(n, o, ho, wo)
    gm = -rstd.double() * (go * Sg).sum(2)
    gr = (go * (yg - mu * Sg)).sum(2)
    gvar = -0.5 * gr * rstd.double() ** 3
    grad_window = torch.cat([(gm - 2 * mean.double() * gvar) / count, gvar / count], 1)
    grad_S = -(go * rs * mu).sum((0, 3, 4)).reshape(o)
    grad_bias = go.sum((0, 3, 4)).reshape(o)
    return grad_y, grad_window, grad_S, grad_bias


def o_pad_adjoint(total, shape, pad, mode):
    x = torch.zeros(shape, dtype=torch.float64, requires_grad=True)
    (o_pad(x, pad, mode) * total).sum().backward()
    return x.grad


def o_pad_center_sums_backward(grad_xc, xc, grad_window, k, s, d, pad, mode, g):
    n, c, hp, wp = xc.shape
    G = o_window_sum_t(grad_window.double(), (hp, wp), k, s, d)
    rep = lambda t: t.repeat_interleave(c // g, 1)  # noqa: E731
    total = grad_xc.double() + rep(G[:, :g]) + 2 * xc.double() * rep(G[:, g:])
    h, w = hp - pad[2] - pad[3], wp - pad[0] - pad[1]
    return o_pad_adjoint(total, (n, c, h, w), pad, mode)


def o_patch_moments(x, k, s, d, g, eps):
    count = x.shape[1] // g * k[0] * k[1]
    return o_stats(o_channel_sums(x, g), k, s, d, count, eps)


def expected_format(x):
    cl = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return torch.channels_last if cl else torch.contiguous_format


# ---- cases -----------------------------------------------------------------------------------------

# (N, C, H, W), groups, pad (left, right, top, bottom), window (kernel, stride, dilation)
CASES = [
    ((2, 6, 9, 8), 2, (1, 1, 1, 1), ((3, 3), (1, 1), (1, 1))),
    ((1, 8, 7, 13), 4, (2, 1, 0, 3), ((2, 3), (2, 1), (2, 2))),  # odd width, asymmetric pad, dilation
    ((2, 3, 6, 5), 1, (3, 3, 3, 2), ((7, 7), (1, 1), (1, 1))),   # the 3-channel stem: 7x7, pad 3
    ((1, 4, 8, 16), 1, (4, 4, 1, 1), ((3, 3), (2, 2), (1, 1))),  # aligned rows: whole vectors
    ((1, 256, 4, 6), 1, (1, 1, 1, 1), ((3, 3), (1, 1), (1, 1))),  # 256 channels: chunks
    ((1, 512, 3, 5), 2, (1, 0, 2, 1), ((3, 2), (2, 2), (1, 1))),  # 512 channels, 2 groups
    ((1, 5, 1, 1), 1, (1, 1, 1, 1), ((2, 2), (1, 1), (1, 1))),   # a 1x1 input
]


def case_id(case):
    (n, c, h, w), g, pad, win = case
    return f"{n}x{c}x{h}x{w}-g{g}-p{''.join(map(str, pad))}"


def mode_ok(mode, shape, pad):
    h, w = shape[2], shape[3]
    if mode == "reflect":
        return max(pad[0], pad[1]) < w and max(pad[2], pad[3]) < h
    if mode == "circular":
        return max(pad[0], pad[1]) <= w and max(pad[2], pad[3]) <= h
    return True


def make(shape, dtype, kind, seed, scale=2.0, offset=0.5):
    gen = torch.Generator().manual_seed(seed)
    t = torch.randn(shape, generator=gen, dtype=torch.float64) * scale + offset
    return layout(t.to(dtype), kind)


# ---- pad_center_sums + pad_center_sums_backward ---------------------------------------------------


@combos
def test_emulated_pad_center_sums(tuned, dtype, kind, tuning):
    dtype = DTYPES[dtype]
    tol = TOL[dtype]
    for i, case in enumerate(CASES):
        shape, g, pad, (k, s, d) = case
        for mode in MODES:
            if not mode_ok(mode, shape, pad):
                continue
            x = make(shape, dtype, kind, i)
            where = f"{case_id(case)} {mode}"
            xc, sums = tuned.pad_center_sums(x, list(pad), mode, g)
            hp, wp = shape[2] + pad[2] + pad[3], shape[3] + pad[0] + pad[1]
            assert xc.shape == (shape[0], shape[1], hp, wp) and xc.dtype == dtype
            assert xc.is_contiguous(memory_format=expected_format(x)), where
            assert sums.shape == (shape[0], 2 * g, hp, wp) and sums.dtype == acc_of(dtype) and sums.is_contiguous()
            want = o_centered(x, pad, mode, g)
            close(xc, want, tol, f"xc {where}", scale=max(want.abs().max().item(), 1.0))
            # sums are of the rounded xc (section 1)
            close(sums, o_channel_sums(xc, g), TOL[acc_of(dtype)] * 4, f"sums {where}")

            # backward, with the forward's xc
            gen = torch.Generator().manual_seed(100 + i)
            ho = (hp - d[0] * (k[0] - 1) - 1) // s[0] + 1
            wo = (wp - d[1] * (k[1] - 1) - 1) // s[1] + 1
            grad_xc = layout(torch.randn(xc.shape, generator=gen, dtype=torch.float64).to(dtype), kind)
            grad_window = torch.randn(shape[0], 2 * g, ho, wo, generator=gen, dtype=torch.float64).to(acc_of(dtype))
            grad_x = tuned.pad_center_sums_backward(grad_xc, xc, grad_window, list(k), list(s), list(d), list(pad),
                                                    mode, g)
            assert grad_x.shape == shape and grad_x.dtype == dtype
            assert grad_x.is_contiguous(memory_format=expected_format(xc)), where
            want = o_pad_center_sums_backward(grad_xc, xc, grad_window, k, s, d, pad, mode, g)
            close(grad_x, want, tol * 2, f"grad_x {where}")


# ---- window_epilogue + window_epilogue_backward ---------------------------------------------------

# (N, O, Ho, Wo), groups, cg, window
EPILOGUE_CASES = [
    ((2, 6, 5, 7), 2, 3, ((3, 3), (1, 1), (1, 1))),
    ((1, 8, 4, 9), 4, 2, ((2, 3), (2, 1), (2, 2))),
    ((2, 64, 3, 5), 1, 3, ((7, 7), (1, 1), (1, 1))),
    ((1, 256, 4, 16), 1, 256, ((3, 3), (2, 2), (1, 1))),  # aligned rows, chunks
    ((1, 512, 3, 3), 2, 256, ((3, 3), (1, 1), (1, 1))),   # 512 channels, odd width
    ((1, 3, 1, 1), 1, 3, ((1, 1), (1, 1), (1, 1))),
]


def epilogue_inputs(case, dtype, kind, seed):
    (n, o, ho, wo), g, cg, (k, s, d) = case
    # padded sizes with the rows / columns a stride leaves past the last window
    hp, wp = ((ho - 1) * s[0] + d[0] * (k[0] - 1) + s[0], (wo - 1) * s[1] + d[1] * (k[1] - 1) + s[1])
    gen = torch.Generator().manual_seed(seed)
    acc = acc_of(dtype)
    # realistic sums: channel sums of a centred cg-channel input per group
    xc = torch.randn(n, g * cg, hp, wp, generator=gen, dtype=torch.float64) * 1.5 + 0.2
    sums = o_channel_sums(xc, g).to(acc)
    y = layout((torch.randn(n, o, ho, wo, generator=gen, dtype=torch.float64) * 3).to(dtype), kind)
    S = torch.randn(o, generator=gen, dtype=torch.float64).to(acc)
    bias = torch.randn(o, generator=gen, dtype=torch.float64).to(acc)
    return y, sums, S, bias, cg * k[0] * k[1]


@combos
def test_emulated_window_epilogue(tuned, dtype, kind, tuning):
    dtype = DTYPES[dtype]
    tol = TOL[dtype]
    acc = acc_of(dtype)
    for i, case in enumerate(EPILOGUE_CASES):
        (n, o, ho, wo), g, cg, (k, s, d) = case
        y, sums, S, bias, count = epilogue_inputs(case, dtype, kind, i)
        where = f"case {i} {case[0]} g{g}"
        mean_w, rstd_w = o_stats(sums, k, s, d, count, 1e-5)
        for b in (bias, None):
            out, mean, rstd = tuned.window_epilogue(y, sums, S, b, list(k), list(s), list(d), cg, 1e-5)
            assert out.dtype == dtype and out.is_contiguous(memory_format=expected_format(y)), where
            assert mean.shape == (n, g, ho, wo) and mean.dtype == acc and mean.is_contiguous() and rstd.is_contiguous()
            close(mean, mean_w, TOL[acc] * 4, f"mean {where}")
            close(rstd, rstd_w, TOL[acc] * 20, f"rstd {where}")
            close(out, o_epilogue(y, mean, rstd, S, b), tol * 2, f"out {where} bias={b is not None}")

        grad_out = layout(make((n, o, ho, wo), dtype, "contiguous", 50 + i), kind)
        gy, gw, gS, gb = tuned.window_epilogue_backward(grad_out, y, mean, rstd, S, cg, list(k))
        want = o_epilogue_backward(grad_out, y, mean, rstd, S, count)
        assert gy.dtype == dtype and gy.is_contiguous(memory_format=expected_format(y)), where
        assert gw.shape == (n, 2 * g, ho, wo) and gw.dtype == acc and gw.is_contiguous()
        assert gS.shape == (o,) and gS.dtype == acc and gb.dtype == acc
        close(gy, want[0], tol * 2, f"grad_y {where}")
        # reductions over the group's channels / over N*H*W: relative to the terms' magnitude
        close(gw, want[1], TOL[acc] * 20, f"grad_window {where}")
        close(gS, want[2], TOL[acc] * 20, f"grad_S {where}")
        close(gb, want[3], TOL[acc] * 20, f"grad_bias {where}")


# ---- patch_moments + patch_moments_backward (PONO, KernelNorm2d) -----------------------------------

PATCH_CASES = [  # (shape of the padded x, kernel_size, stride, dilation, groups)
    ((2, 6, 9, 8), (3, 3), (1, 1), (1, 1), 2),
    ((1, 8, 11, 7), (2, 3), (2, 1), (2, 2), 4),
    ((2, 3, 5, 6), (1, 1), (2, 2), (1, 1), 1),
    ((1, 256, 6, 9), (2, 2), (2, 2), (1, 1), 1),
    ((1, 512, 3, 4), (1, 1), (1, 1), (1, 1), 1),
]


@combos
def test_emulated_patch_moments(tuned, dtype, kind, tuning):
    dtype = DTYPES[dtype]
    acc = acc_of(dtype)
    for i, (shape, k, s, d, g) in enumerate(PATCH_CASES):
        x = make(shape, dtype, kind, i)
        mean, rstd = tuned.patch_moments(x, list(k), list(s), list(d), g, 1e-5)
        want_mean, want_rstd = o_patch_moments(x.double(), k, s, d, g, 1e-5)
        assert mean.dtype == acc and mean.is_contiguous()
        close(mean, want_mean, TOL[acc] * 4, f"mean {shape}", scale=max(want_mean.abs().max().item(), 1.0))
        close(rstd, want_rstd, TOL[acc] * 20, f"rstd {shape}")
        gen = torch.Generator().manual_seed(7 + i)
        gm = torch.randn(mean.shape, generator=gen, dtype=torch.float64)
        gr = torch.randn(mean.shape, generator=gen, dtype=torch.float64)
        grad_x = tuned.patch_moments_backward(gm.to(acc), gr.to(acc), x, mean, rstd, list(k), list(s), list(d), g)
        assert grad_x.dtype == dtype and grad_x.stride() == torch.empty_like(x).stride()
        # the oracle: autograd through the float64 forward, at the kernel's statistics' inputs
        xd = x.double().requires_grad_()
        m64, r64 = o_patch_moments(xd, k, s, d, g, 1e-5)
        (want_x,) = torch.autograd.grad((m64 * gm).sum() + (r64 * gr).sum(), xd)
        close(grad_x, want_x, {torch.float64: 1e-9}.get(dtype, TOL[dtype] * 5), f"grad_x {shape}")


# ---- numerics and reproducibility ------------------------------------------------------------------


def test_emulated_shift_keeps_float32_exact_far_from_zero(emu):
    """x = 300 +- 0.01 (docs/SPEC.md section 1): the shift keeps the float32 variance right."""
    gen = torch.Generator().manual_seed(3)
    x64 = 300 + 0.01 * torch.randn(2, 16, 9, 9, generator=gen, dtype=torch.float64)
    x = x64.float()
    k, s, d, pad = (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)
    for mode in ("reflect", "replicate"):
        xc, sums = emu.pad_center_sums(x, list(pad), mode, 1)
        y = torch.zeros(2, 4, 9, 9)
        _, mean, rstd = emu.window_epilogue(y, sums, torch.ones(4), None, list(k), list(s), list(d), 16, 1e-5)
        # exact statistics of the padded float32 input, in float64
        want_mean, want_rstd = o_patch_moments(o_pad(x.double(), pad, mode), k, s, d, 1, 1e-5)
        c = x.double()[:, :, 4, 4].mean(1)[:, None, None, None]
        close(mean.double() + c, want_mean, 1e-6, f"mean {mode}")
        close(rstd, want_rstd, 1e-4, f"rstd {mode}")
        assert (rstd > 50).all()  # var ~1e-4: nowhere near the eps floor a cancelled variance gives


def test_emulated_results_are_bit_reproducible_across_grids(emu):
    """The same chunking with different grid caps (wrapping or not) gives identical bits."""
    x = make((2, 64, 6, 7), torch.float32, "contiguous", 11)
    xcl = x.contiguous(memory_format=torch.channels_last)
    k, s, d, pad = [3, 3], [1, 1], [1, 1], [1, 1, 1, 1]
    results = []
    for max_blocks in (1 << 20, 3, 1):
        emu.set_tuning(max_blocks, 4096, 8, False)
        run = []
        for inp in (x, xcl):
            xc, sums = emu.pad_center_sums(inp, pad, "reflect", 2)
            y = make((2, 32, 6, 7), torch.float32, "contiguous", 12)
            y = y if inp is x else y.contiguous(memory_format=torch.channels_last)
            out, mean, rstd = emu.window_epilogue(y, sums, torch.randn(32, generator=torch.Generator().manual_seed(1)),
                                                  None, k, s, d, 32, 1e-5)
            grads = emu.window_epilogue_backward(out, y, mean, rstd, torch.linspace(-1, 1, 32), 32, k)
            gx = emu.pad_center_sums_backward(xc, xc, grads[1], k, s, d, pad, "reflect", 2)
            run += [xc, sums, out, mean, rstd, *grads, gx]
        results.append(run)
    emu.set_tuning(*TUNINGS["default"])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert torch.equal(a, b)


def test_emulated_checks_name_the_op_and_the_problem(emu):
    x = torch.randn(1, 4, 5, 5)
    with pytest.raises(RuntimeError, match="gennorm::pad_center_sums: mode must be one of"):
        emu.pad_center_sums(x, [1, 1, 1, 1], "mirror", 1)
    with pytest.raises(RuntimeError, match="gennorm::pad_center_sums: reflect padding"):
        emu.pad_center_sums(x, [5, 1, 1, 1], "reflect", 1)
    with pytest.raises(RuntimeError, match=r"gennorm::pad_center_sums: channels \(4\) must be divisible by groups \(3\)"):
        emu.pad_center_sums(x, [1, 1, 1, 1], "zeros", 3)
    xc, sums = emu.pad_center_sums(x, [1, 1, 1, 1], "zeros", 1)
    with pytest.raises(RuntimeError, match="gennorm::window_epilogue: y .* must have the window grid"):
        emu.window_epilogue(torch.randn(1, 2, 4, 4), sums, torch.ones(2), None, [3, 3], [1, 1], [1, 1], 4, 1e-5)
    with pytest.raises(RuntimeError, match=r"gennorm::window_epilogue: S must have shape \[2\]"):
        emu.window_epilogue(torch.randn(1, 2, 5, 5), sums, torch.ones(3), None, [3, 3], [1, 1], [1, 1], 4, 1e-5)
    with pytest.raises(RuntimeError, match="gennorm::window_epilogue_backward: mean must have shape"):
        emu.window_epilogue_backward(torch.randn(1, 2, 5, 5), torch.randn(1, 2, 5, 5), torch.randn(1, 1, 4, 5),
                                     torch.randn(1, 1, 4, 5), torch.ones(2), 4, [3, 3])
    with pytest.raises(RuntimeError, match="gennorm::pad_center_sums_backward: grad_window must have shape"):
        emu.pad_center_sums_backward(xc, xc, torch.randn(1, 2, 4, 4), [3, 3], [1, 1], [1, 1], [1, 1, 1, 1], "zeros", 1)
    with pytest.raises(RuntimeError, match="gennorm::patch_moments: kernel size"):
        emu.patch_moments(x, [7, 7], [1, 1], [1, 1], 1, 1e-5)


def test_emulated_launch_counts_and_vector_runs(emu):
    """Launches per op (contract: forward = conv + 2 kernels, backward = 2 kernels + tiny folds) and
    16-byte vector accesses on aligned rows / channels (element-wise runs elsewhere)."""
    k, s, d, pad = [3, 3], [1, 1], [1, 1], [4, 4, 1, 1]  # left pad 4: float32 rows stay 16-byte aligned

    def run(fn, *args):
        emu.counters(True)
        out = fn(*args)
        launches, blocks, vector, scalar = emu.counters(True)
        return out, launches, vector, scalar

    try:
        for fmt in (torch.contiguous_format, torch.channels_last):
            emu.set_tuning(1 << 20, 1, 32, False)  # enough blocks: no channel chunks
            x = make((2, 64, 6, 16), torch.float32, "contiguous", 5).contiguous(memory_format=fmt)
            (xc, sums), n, vec, _ = run(emu.pad_center_sums, x, pad, "reflect", 1)
            assert n == 1 and vec > 0, (fmt, n, vec)
            y = make((2, 32, 6, 22), torch.float32, "contiguous", 6).contiguous(memory_format=fmt)
            S = torch.linspace(-1, 1, 32)
            (out, mean, rstd), n, vec, _ = run(emu.window_epilogue, y, sums, S, S, k, s, d, 64, 1e-5)
            assert n == 1 and vec > 0, (fmt, n, vec)
            grads, n, vec, _ = run(emu.window_epilogue_backward, out, y, mean, rstd, S, 64, k)
            assert n == 2 and vec > 0, (fmt, n, vec)
            _, n, vec, _ = run(emu.pad_center_sums_backward, xc, xc, grads[1], k, s, d, pad, "reflect", 1)
            assert n == 2 and vec > 0, (fmt, n, vec)
            (m, r), n, _, _ = run(emu.patch_moments, xc, k, s, d, 1, 1e-5)
            assert n == 2
            _, n, _, _ = run(emu.patch_moments_backward, m, r, xc, m, r, k, s, d, 1)
            assert n == 3
        emu.set_tuning(1 << 20, 4096, 8, False)  # few pixels: channels in chunks, folded by a second kernel
        x = make((1, 64, 3, 5), torch.float32, "contiguous", 7)
        _, n, _, scalar = run(emu.pad_center_sums, x, [1, 1, 1, 1], "zeros", 1)
        assert n == 2 and scalar > 0
        y = make((1, 64, 3, 5), torch.float32, "contiguous", 8)
        _, sums = emu.pad_center_sums(x, [1, 1, 1, 1], "zeros", 1)
        (out, mean, rstd), n, _, _ = run(emu.window_epilogue, y, sums, torch.ones(64), None, k, s, d, 64, 1e-5)
        assert n == 1
        _, n, _, _ = run(emu.window_epilogue_backward, out, y, mean, rstd, torch.ones(64), 64, k)
        assert n == 2  # chunked pixel partials fold in the same tiny kernel as the channel partials
    finally:
        emu.set_tuning(*TUNINGS["default"])


def test_emulated_output_dtypes_follow_the_fake_kernels(emu):
    """Statistics follow sums' dtype and window gradients mean's (acc in the layer; the fakes' rule)."""
    y = torch.randn(1, 4, 3, 3)
    sums = torch.cat([torch.randn(1, 1, 5, 5), torch.rand(1, 1, 5, 5) + 2], 1).double()
    out, mean, rstd = emu.window_epilogue(y, sums, torch.ones(4), None, [3, 3], [1, 1], [1, 1], 1, 1e-5)
    assert out.dtype == torch.float32 and mean.dtype == rstd.dtype == torch.float64
    grads = emu.window_epilogue_backward(y, y, mean, rstd, torch.ones(4), 1, [3, 3])
    assert grads[0].dtype == torch.float32 and all(g.dtype == torch.float64 for g in grads[1:])


def test_emulated_broadcast_gradients(emu):
    """Gradients autograd hands over expanded (stride 0, e.g. from out.sum().backward())."""
    k, s, d, pad = (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)
    x = make((2, 8, 5, 6), torch.float32, "contiguous", 21)
    xc, sums = emu.pad_center_sums(x, list(pad), "reflect", 2)
    y = make((2, 4, 5, 6), torch.float32, "contiguous", 22)
    S = torch.linspace(-1, 1, 4)
    out, mean, rstd = emu.window_epilogue(y, sums, S, None, list(k), list(s), list(d), 4, 1e-5)
    grad_out = torch.ones(1).expand(y.shape)
    got = emu.window_epilogue_backward(grad_out, y, mean, rstd, S, 4, list(k))
    for name, a, e in zip(("grad_y", "grad_window", "grad_S", "grad_bias"), got,
                          o_epilogue_backward(grad_out, y, mean, rstd, S, 4 * 9)):
        close(a, e, 2e-4, name)
    grad_xc = torch.full((1,), 0.5).expand(xc.shape)
    grad_x = emu.pad_center_sums_backward(grad_xc, xc, got[1], list(k), list(s), list(d), list(pad), "reflect", 2)
    close(grad_x, o_pad_center_sums_backward(grad_xc, xc, got[1], k, s, d, pad, "reflect", 2), 1e-4, "grad_x")
