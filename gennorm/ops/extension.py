"""Building and loading the compiled CUDA kernels in cuda/ — lazily, on the first CUDA dispatch.

The op schemas are defined in Python (gennorm/ops/library.py); the library only adds CUDA kernels
to them (`TORCH_LIBRARY_IMPL(gennorm, CUDA, m)`), so loading it at any time just adds kernels.
Importing gennorm or gennorm.ops never compiles or loads anything. The first time a gennorm op
(or an NC/KN layer with impl "auto" / "cuda") meets a CUDA tensor, `ensure_loaded()`:

  GENNORM_EXTENSION=0                -> loads nothing (the PyTorch kernels serve);
  no GPU visible                     -> loads nothing;
  a cached build for this GPU        -> loads it;
  else, nvcc found                   -> builds once (a one-line message says so and how long it
                                        takes), then loads it;
  a failed build or load             -> warns once; the PyTorch kernels serve from then on.

Builds live in a cache keyed by a hash of the sources and the torch / CUDA / Python versions:
`~/.cache/gennorm/ext/<hash>/` (`$GENNORM_CACHE/ext/<hash>/` when GENNORM_CACHE is set), each
with `gennorm_ops.so` and `build.json`. `python -m gennorm.ops build` builds ahead of time.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch

NAME = "gennorm_ops"
IMPLS = ("auto", "cuda", "op", "torch")  # the implementations a gennorm op call may ask for
FUSED_OPS = ("pad_center_sums", "window_epilogue", "window_epilogue_backward", "pad_center_sums_backward")
SOURCE_SUFFIXES = (".cpp", ".cu", ".cuh", ".h")
DEFAULT_ARCH_NO_GPU = "9.0+PTX"  # building where no GPU is visible (CI): sm_90 + PTX for newer GPUs
TYPICAL_BUILD = "about 2-5 minutes"  # measured: ~3-4 min for sm_90 on 2 shared cores

_STATE = {"tried": False, "loaded": False, "path": None, "with_cuda": False, "error": None}
_WARNED = False


class BuildError(RuntimeError):
    """The compiler (or loading the built library) failed; the message ends with its last lines."""


# ---- where things are ----------------------------------------------------------------------


def source_dir() -> Path | None:
    """The C++/CUDA sources: gennorm/_csrc inside an installed package, else the repo's cuda/."""
    here = Path(__file__).resolve().parent  # gennorm/ops
    for candidate in (here.parent / "_csrc", here.parents[1] / "cuda"):
        if candidate.is_dir() and any(p.suffix == ".cu" for p in candidate.iterdir()):
            return candidate
    return None


def sources(src: Path | None = None) -> list[Path]:
    src = src or source_dir()
    return sorted(p for p in src.iterdir() if p.suffix in SOURCE_SUFFIXES) if src else []


def cache_root() -> Path:
    root = os.environ.get("GENNORM_CACHE")
    if root:
        return Path(root).expanduser() / "ext"
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg) / "gennorm" / "ext"


def build_key(src: Path | None = None) -> str:
    """Hash of the sources + torch/CUDA/Python versions + machine."""
    h = hashlib.sha256()
    for path in sources(src):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    meta = [torch.__version__, str(torch.version.cuda), "%d.%d" % sys.version_info[:2], platform.machine(), "cuda"]
    h.update("|".join(meta).encode())
    return h.hexdigest()[:16]


def build_dir(src: Path | None = None) -> Path:
    return cache_root() / build_key(src)


def _library_file(directory: Path) -> Path:
    return directory / f"{NAME}.so"


def _built(directory: Path) -> dict | None:
    """build.json of a finished build in `directory` (written last), else None."""
    try:
        meta = json.loads((directory / "build.json").read_text())
    except (OSError, ValueError):
        return None
    return meta if _library_file(directory).is_file() else None


def cuda_home() -> Path | None:
    """The CUDA toolkit with nvcc: $CUDA_HOME / $CUDA_PATH, /usr/local/cuda, or nvcc on PATH."""
    candidates = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"]
    nvcc = shutil.which("nvcc")
    if nvcc:  # may be a wrapper script outside the toolkit; the real toolkit also has include/
        candidates.append(str(Path(nvcc).resolve().parents[1]))
    for c in candidates:
        if c and (Path(c) / "bin" / "nvcc").is_file() and (Path(c) / "include").is_dir():
            return Path(c)
    return None


def can_build_cuda() -> bool:
    """This torch has CUDA and a CUDA toolkit (nvcc) is installed; no GPU needed to compile."""
    return torch.version.cuda is not None and cuda_home() is not None


def disabled() -> bool:
    return os.environ.get("GENNORM_EXTENSION", "").strip() == "0"


# ---- building --------------------------------------------------------------------------------

# Runs in a fresh interpreter, so that compiling never loads anything into the calling process.
_BUILD_SCRIPT = """
import json, sys
from torch.utils.cpp_extension import load
a = json.loads(sys.argv[1])
load(name=a["name"], sources=a["sources"], build_directory=a["dir"], extra_cflags=a["cflags"],
     extra_cuda_cflags=a["cuda_cflags"], extra_include_paths=[a["include"]], with_cuda=True,
     is_python_module=False, verbose=a["verbose"])
"""


def _arch_default() -> str | None:
    if os.environ.get("TORCH_CUDA_ARCH_LIST"):
        return os.environ["TORCH_CUDA_ARCH_LIST"]
    if torch.cuda.is_available():
        return None  # torch compiles for the visible GPUs
    return DEFAULT_ARCH_NO_GPU


def build(verbose: bool = True, arch_list: str | None = None) -> Path:
    """Compile cuda/ into the cache; return the .so. Raises BuildError (with the compiler's last lines).

    arch_list is TORCH_CUDA_ARCH_LIST syntax ("9.0", "8.0;9.0+PTX"); default: the visible GPUs, or
    sm_90 + PTX where none is visible.
    """
    src = source_dir()
    if src is None:
        raise BuildError("the gennorm CUDA sources are missing (neither gennorm/_csrc nor cuda/ was found)")
    if not can_build_cuda():
        raise BuildError("building the CUDA kernels needs nvcc (set CUDA_HOME) and a CUDA-enabled torch "
                         f"(torch.version.cuda is {torch.version.cuda})")
    directory = build_dir(src)
    directory.mkdir(parents=True, exist_ok=True)
    arch = arch_list or _arch_default()
    env = dict(os.environ, CUDA_HOME=str(cuda_home()))
    if arch:
        env["TORCH_CUDA_ARCH_LIST"] = arch
    args = {
        "name": NAME, "dir": str(directory), "include": str(src), "verbose": verbose,
        "sources": [str(p) for p in sources(src) if p.suffix in (".cpp", ".cu")],
        "cflags": ["-O3", "-DGENNORM_WITH_CUDA"], "cuda_cflags": ["-O3", "-DGENNORM_WITH_CUDA"],
    }
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", _BUILD_SCRIPT, json.dumps(args)], env=env, text=True,
                          capture_output=not verbose)
    if done.returncode != 0 or not _library_file(directory).is_file():
        tail = "\n".join(((done.stdout or "") + (done.stderr or "")).strip().splitlines()[-25:])
        raise BuildError(f"building the gennorm CUDA kernels in {directory} failed (exit {done.returncode})"
                         + (f":\n{tail}" if tail else "; see the compiler output above"))
    meta = {"with_cuda": True, "arch_list": arch, "torch": torch.__version__, "cuda": torch.version.cuda,
            "python": "%d.%d" % sys.version_info[:2], "sources": str(src),
            "seconds": round(time.monotonic() - start, 1)}
    tmp = directory / f"build.json.{os.getpid()}.tmp"  # several processes may finish the same build
    tmp.write_text(json.dumps(meta, indent=1))
    os.replace(tmp, directory / "build.json")
    return _library_file(directory)


# ---- loading -----------------------------------------------------------------------------------


def _warn_once(message: str) -> None:
    global _WARNED
    if not _WARNED:
        _WARNED = True
        warnings.warn(message + "\ngennorm falls back to its PyTorch kernels.", RuntimeWarning, stacklevel=3)


def _arch_covers_gpu(meta: dict) -> bool:
    """The build has SASS for the visible GPU, or PTX of an older arch it can JIT."""
    major, minor = torch.cuda.get_device_capability()
    cap = major * 10 + minor
    for entry in (meta.get("arch_list") or "").replace(",", ";").replace(" ", ";").split(";"):
        base = entry.split("+")[0].strip()
        try:
            value = int(round(float(base) * 10))
        except ValueError:
            continue
        if value == cap or (entry.endswith("+PTX") and value <= cap):
            return True
    return meta.get("arch_list") is None  # built for the visible GPUs


def cached_build() -> tuple[Path | None, dict | None]:
    """The finished build for these sources and this torch, if any (no compiling)."""
    if source_dir() is None:
        return None, None
    directory = build_dir()
    meta = _built(directory)
    return (_library_file(directory), meta) if meta else (None, None)


def _choose() -> tuple[Path | None, dict | None]:
    """The build to load under the policy in the module docstring, building it on first use."""
    if not torch.cuda.is_available():
        return None, None
    path, meta = cached_build()
    if meta and _arch_covers_gpu(meta):
        return path, meta
    if source_dir() is None or not can_build_cuda():
        return None, None
    print(f"gennorm: building the CUDA kernels into {build_dir()} (first CUDA use; {TYPICAL_BUILD}, once)",
          file=sys.stderr, flush=True)
    path = build(verbose=False, arch_list=os.environ.get("TORCH_CUDA_ARCH_LIST"))
    meta = _built(path.parent)
    print(f"gennorm: CUDA kernels built in {meta.get('seconds', '?')} s", file=sys.stderr, flush=True)
    return path, meta


def _load(path: Path, meta: dict | None) -> None:
    torch.ops.load_library(str(path))
    _STATE.update(loaded=True, path=str(path), with_cuda=True, error=None)


def ensure_loaded() -> bool:
    """Load (building once if needed) the CUDA kernels; True when they are loaded. Tries once per process."""
    if _STATE["tried"]:
        return _STATE["loaded"]
    _STATE["tried"] = True
    if disabled():
        return False
    try:
        path, meta = _choose()
        if path is None:
            return False
        _load(path, meta)
    except Exception as exc:  # a failed build or load must never break the caller
        _STATE["error"] = str(exc)
        _warn_once(f"gennorm: the CUDA kernels could not be built or loaded: {exc}")
        return False
    return True


def load_cached() -> bool:
    """Load a finished cached build without ever compiling (`python -m gennorm.ops status`)."""
    if _STATE["loaded"] or disabled():
        return _STATE["loaded"]
    path, meta = cached_build()
    if path is None:
        return False
    try:
        _load(path, meta)
    except Exception as exc:
        _STATE["error"] = str(exc)
        return False
    return True


def loaded_with_cuda() -> bool:
    """True when the compiled CUDA kernels are loaded into this process."""
    return bool(_STATE["loaded"] and _STATE["with_cuda"])


def has_cuda_kernel(op: str) -> bool:
    """True when torch.ops.gennorm.<op> has a CUDA kernel from the compiled library (not the Python one)."""
    return torch._C._dispatch_has_kernel_for_dispatch_key(f"gennorm::{op}", "CUDA")


def info() -> dict:
    """What is loaded and where builds go (for `python -m gennorm.ops status`)."""
    return {
        "loaded": _STATE["loaded"], "path": _STATE["path"], "with_cuda": loaded_with_cuda(),
        "error": _STATE["error"], "disabled": disabled(), "tried": _STATE["tried"],
        "sources": str(source_dir()), "cache": str(cache_root()), "cuda_home": str(cuda_home()),
        "gpu": torch.cuda.is_available(),
    }


# ---- which implementation serves a call -------------------------------------------------------


def has_cuda() -> bool:
    """True when the compiled CUDA kernels of the four fused ops serve CUDA tensors: loaded (or
    built) once, and passing the self-check against the Python kernels on this device."""
    if _STATE.get("ready") is None:
        _STATE["ready"] = (torch.cuda.is_available() and ensure_loaded()
                           and all(has_cuda_kernel(op) for op in FUSED_OPS) and _trusted())
    return _STATE["ready"]


def _trusted() -> bool:
    """gennorm.ops.selfcheck on the current CUDA device, once per process; a failure warns naming the op."""
    from gennorm.ops.selfcheck import self_check  # it imports library, which imports this module

    bad = [row for row in self_check("cuda") if row.status != "ok"]
    if bad:
        row = bad[0]
        detail = row.status if row.error is None else f"off by {row.error:.2g} (tolerance {row.tolerance:g})"
        _STATE["error"] = (f"self-check: the CUDA kernel of {row.op} failed on {row.case}: {detail}"
                           f" ({len(bad)} of the checks failed; gennorm ops check shows them)")
        _warn_once(f"gennorm: {_STATE['error']}.")
    return not bad


has_cuda._dynamo_marked_constant = True  # = torch.compiler.assume_constant_result, without importing dynamo


def resolve_impl(x: torch.Tensor, impl: str) -> str:
    """"torch" or "op" for this call. auto: the CUDA kernels for CUDA tensors when available, else torch."""
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    if impl == "cuda":
        if not x.is_cuda:
            raise RuntimeError("impl='cuda' requested but the tensor is on the CPU")
        if not has_cuda():
            raise RuntimeError("impl='cuda' requested but the CUDA kernels are not available "
                               f"(python -m gennorm.ops status; {info()['error'] or 'no build loaded'})")
        return "op"
    if impl == "auto":
        return "op" if x.is_cuda and has_cuda() else "torch"
    return impl
