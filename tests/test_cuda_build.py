"""Building the compiled library (cuda/) and loading it: runs in CI, no GPU needed.

The compile tests build into a fresh temporary cache (GENNORM_CACHE) and check the result in
subprocesses, so this test process keeps the kernels it started with. Compiling is slow on
small machines (measured on 2 shared cores: CPU-only ~45 s, CPU + CUDA for sm_90 ~3-4 min).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from gennorm.ops import extension

ROOT = Path(__file__).resolve().parents[1]
needs_nvcc = pytest.mark.skipif(not extension.can_build_cuda(), reason="nvcc (CUDA_HOME) or a CUDA-enabled torch is missing")
needs_cxx = pytest.mark.skipif(shutil.which("c++") is None, reason="no C++ compiler")

# Run in a subprocess against a given cache: what got loaded and which kernels it registered.
CHECK_SCRIPT = r"""
import json, torch
from gennorm.ops import extension, library, reference
assert library.COMPILED, extension.info()
dumps = {name: torch._C._dispatch_dump("gennorm::" + name) for name in library.SCHEMAS}
print(json.dumps({
    "info": extension.info(),
    "schemas": {name: str(getattr(torch.ops.gennorm, name).default._schema) for name in library.SCHEMAS},
    "cpu_from_cpp": all("CPU: registered at" in d and "gennorm_ops.cpp" in d.split("CPU: registered at")[1].splitlines()[0] for d in dumps.values()),
    "cuda_kernels": all("\nCUDA: registered at" in d for d in dumps.values()),
}))
"""


def _env(cache: Path) -> dict:
    env = dict(os.environ, GENNORM_CACHE=str(cache), PYTHONPATH=str(ROOT))
    env.pop("GENNORM_EXTENSION", None)
    return env


def _build(cache: Path, *flags: str) -> tuple[dict, float]:
    env = dict(_env(cache), GENNORM_EXTENSION="0")  # the build command itself must not load or build at import
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "gennorm.ops", "build", "--quiet", *flags], env=env, cwd=ROOT,
                          capture_output=True, text=True)
    seconds = time.monotonic() - start
    assert done.returncode == 0, done.stdout + done.stderr
    (directory,) = [p for p in (cache / "ext").iterdir() if (p / "build.json").is_file()]
    print(f"build {' '.join(flags) or '(default)'}: {seconds:.0f} s -> {directory}")
    return json.loads((directory / "build.json").read_text()) | {"dir": str(directory)}, seconds


def _check(cache: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", CHECK_SCRIPT], env=_env(cache), cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _op_tests(cache: Path) -> None:
    """tests/test_ops.py (literal definitions, opcheck, gradcheck, compile, errors) on the compiled CPU kernels."""
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "tests/test_ops.py"],
                          env=_env(cache), cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


@pytest.fixture(scope="module")
def cuda_build(tmp_path_factory):
    cache = tmp_path_factory.mktemp("gennorm-cache")
    meta, _ = _build(cache, "--arch", "9.0")
    return cache, meta


@needs_nvcc
def test_cuda_build_for_sm90(cuda_build):
    cache, meta = cuda_build
    assert meta["with_cuda"] and meta["arch_list"] == "9.0"
    library = Path(meta["dir"]) / "gennorm_ops.so"
    assert "code=sm_90" in (Path(meta["dir"]) / "build.ninja").read_text()  # what nvcc was asked to emit
    cuobjdump = Path(str(extension.cuda_home())) / "bin" / "cuobjdump"
    if cuobjdump.is_file():
        listing = subprocess.run([str(cuobjdump), "--list-elf", str(library)], capture_output=True, text=True).stdout
        assert "sm_90" in listing, listing


@needs_nvcc
def test_cuda_build_loads_and_registers_its_kernels(cuda_build):
    cache, _ = cuda_build
    result = _check(cache)
    assert result["info"]["loaded"] and result["info"]["with_cuda"], result["info"]
    assert Path(result["info"]["path"]).parent.parent == cache / "ext"
    assert result["cpu_from_cpp"] and result["cuda_kernels"]
    from gennorm.ops import library

    assert result["schemas"] == {name: f"gennorm::{schema}" for name, schema in library.SCHEMAS.items()}


@needs_nvcc
def test_cuda_build_cpu_kernels_match_the_reference(cuda_build):
    _op_tests(cuda_build[0])


@needs_cxx
def test_cpu_only_build(tmp_path):
    meta, _ = _build(tmp_path, "--cpu-only")
    assert not meta["with_cuda"]
    result = _check(tmp_path)
    assert result["info"]["loaded"] and not result["info"]["with_cuda"]
    assert result["cpu_from_cpp"] and not result["cuda_kernels"]
    # CUDA tensors (where there is a GPU) fall back to the Python-registered reference kernels.


def test_status_command_runs():
    done = subprocess.run([sys.executable, "-m", "gennorm.ops", "status"], env=dict(os.environ, GENNORM_EXTENSION="0"),
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0 and "compiled library: disabled" in done.stdout, done.stdout + done.stderr


# ---- load policy (no compiling) -----------------------------------------------------------------


@pytest.fixture
def fresh_state(monkeypatch):
    monkeypatch.setattr(extension, "_STATE", dict(tried=False, loaded=False, path=None, with_cuda=False, error=None))
    monkeypatch.setattr(extension, "_WARNED", False)


def test_disabled_by_environment(fresh_state, monkeypatch):
    monkeypatch.setenv("GENNORM_EXTENSION", "0")
    monkeypatch.setattr(extension, "_choose", lambda: pytest.fail("must not look for builds"))
    assert extension.try_load() is False


def test_failed_build_warns_once_and_falls_back(fresh_state, monkeypatch):
    monkeypatch.delenv("GENNORM_EXTENSION", raising=False)

    def fail():
        raise extension.BuildError("building failed:\nerror: something the compiler said")

    monkeypatch.setattr(extension, "_choose", fail)
    with pytest.warns(RuntimeWarning, match="something the compiler said"):
        assert extension.try_load() is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert extension.try_load() is False  # tried once; no second warning
    assert not extension.loaded_with_cuda()


def test_no_build_and_no_gpu_loads_nothing(fresh_state, monkeypatch, tmp_path):
    monkeypatch.delenv("GENNORM_EXTENSION", raising=False)
    monkeypatch.setenv("GENNORM_CACHE", str(tmp_path))
    monkeypatch.setattr(extension.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(extension, "build", lambda *a, **k: pytest.fail("must not compile at import without a GPU"))
    assert extension.try_load() is False
    assert not list(tmp_path.iterdir())


def test_cache_key_depends_on_cuda_and_sources():
    assert extension.build_key(True) != extension.build_key(False)
    assert extension.build_dir(False).parent == extension.cache_root()
    assert {p.name for p in extension.sources()} >= {"gennorm_ops.cpp", "gennorm_ops.h", "patch_moments.cu", "moment_epilogue.cu"}


# ---- the CUDA kernels' code, emulated on CPU threads (cuda/emulate.h) --------------------------

EMULATION_SOURCE = r"""
// The CUDA host functions and kernels of cuda/*.cu compiled as C++ (cuda/emulate.h), as ops gennorm_emu::*.
#include "patch_moments.cu"
#include "moment_epilogue.cu"
#include <torch/library.h>

TORCH_LIBRARY(gennorm_emu, m) {
  m.def("patch_moments", &gennorm::patch_moments_cuda);
  m.def("patch_moments_backward", &gennorm::patch_moments_backward_cuda);
  m.def("moment_epilogue", &gennorm::moment_epilogue_cuda);
  m.def("moment_epilogue_backward", &gennorm::moment_epilogue_backward_cuda);
}
"""


@pytest.fixture(scope="module")
def emulated(tmp_path_factory):
    """torch.ops.gennorm_emu: the exact .cu code with each block's threads as std::threads."""
    import torch
    from torch.utils.cpp_extension import load

    directory = tmp_path_factory.mktemp("gennorm-emulation")
    source = directory / "emulated_kernels.cpp"
    source.write_text(EMULATION_SOURCE)
    start = time.monotonic()
    load(name="gennorm_emu", sources=[str(source)], build_directory=str(directory), extra_include_paths=[str(extension.source_dir())],
         extra_cflags=["-DGENNORM_EMULATE", "-O1"], is_python_module=False, with_cuda=False)
    print(f"emulation build: {time.monotonic() - start:.0f} s")
    return torch.ops.gennorm_emu


EMULATED_WINDOWS = [  # (shape, kernel_size, stride, dilation, groups)
    ((2, 6, 9, 8), (3, 3), (1, 1), (1, 1), 2),
    ((1, 8, 11, 7), (2, 3), (2, 1), (2, 2), 4),
    ((2, 3, 5, 6), (1, 1), (2, 2), (1, 1), 1),
    ((1, 4, 12, 13), (4, 3), (3, 2), (1, 2), 1),
]


@needs_cxx
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "strided"])
@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16", "float16"])
def test_emulated_patch_moments_kernels(emulated, dtype, layout):
    import torch
    from torch.testing import assert_close

    from gennorm.ops import reference

    dtype = getattr(torch, dtype)
    for shape, k, s, d, g in EMULATED_WINDOWS:
        gen = torch.Generator().manual_seed(0)
        x = (torch.randn(shape, generator=gen, dtype=torch.float64) * 2 + 0.5).to(dtype)
        if layout == "channels_last":
            x = x.to(memory_format=torch.channels_last)
        elif layout == "strided":
            x = torch.cat([x, x], 3)[..., ::2]  # non-contiguous view with the same values
        ref_x = x.double()
        mean, rstd = emulated.patch_moments(x, list(k), list(s), list(d), g, 1e-5)
        want = reference.patch_moments(ref_x, k, s, d, g, 1e-5)
        tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=2e-5, atol=2e-5)
        assert mean.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
        assert_close((mean.double(), rstd.double()), want, **tol)
        gm, gr = torch.randn(mean.shape, generator=gen, dtype=torch.float64), torch.randn(mean.shape, generator=gen, dtype=torch.float64)
        grad_x = emulated.patch_moments_backward(gm.to(mean.dtype), gr.to(mean.dtype), x, mean, rstd, list(k), list(s), list(d), g)
        want_x = reference.patch_moments_backward(gm, gr, ref_x, mean.double(), rstd.double(), k, s, d, g)
        assert grad_x.dtype == dtype and grad_x.stride() == torch.empty_like(x).stride()
        scale = want_x.abs().max().item()
        gtol = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2}[dtype]
        assert_close(grad_x.double(), want_x, rtol=gtol, atol=gtol * scale)


@needs_cxx
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16"])
@pytest.mark.parametrize("dims", [(2, 6, 2, 5, 4), (1, 9, 3, 3, 2), (2, 3, 1, 48, 48)], ids=str)
def test_emulated_moment_epilogue_kernels(emulated, dims, dtype, layout):
    import torch
    from torch.testing import assert_close

    from gennorm.ops import reference

    dtype = getattr(torch, dtype)
    stats = torch.float64 if dtype == torch.float64 else torch.float32
    n, o, g, h, w = dims
    gen = torch.Generator().manual_seed(1)
    y = torch.randn(n, o, h, w, generator=gen, dtype=torch.float64).to(dtype)
    if layout == "channels_last":
        y = y.to(memory_format=torch.channels_last)
    mean = torch.randn(n, g, h, w, generator=gen, dtype=torch.float64).to(stats)
    rstd = (torch.rand(n, g, h, w, generator=gen, dtype=torch.float64) + 0.5).to(stats)
    S, b = (torch.randn(o, generator=gen, dtype=torch.float64).to(stats) for _ in range(2))
    ref = [t.double() for t in (y, mean, rstd, S, b)]
    tol = {torch.float64: 1e-12, torch.float32: 1e-5, torch.bfloat16: 1e-2}[dtype]
    for bias, ref_bias in ((b, ref[4]), (None, None)):
        out = emulated.moment_epilogue(y, mean, rstd, S, bias)
        assert out.dtype == dtype and out.stride() == y.stride()
        assert_close(out.double(), reference.moment_epilogue(*ref[:4], ref_bias), rtol=tol, atol=tol * 4)
    grad_out = torch.randn(y.shape, generator=gen, dtype=torch.float64).to(dtype)
    got = emulated.moment_epilogue_backward(grad_out, y, mean, rstd, S)
    want = reference.moment_epilogue_backward(grad_out.double(), *ref[:4])
    for name, a, e in zip(("y", "mean", "rstd", "S", "bias"), got, want):
        scale = max(e.abs().max().item(), 1.0)
        assert_close(a.double(), e, rtol=tol, atol=tol * scale, msg=lambda m: f"grad_{name}: {m}")
