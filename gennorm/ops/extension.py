"""Building and loading the compiled library in cuda/ (the `torch.ops.gennorm` kernels in C++/CUDA).

Builds live in a cache keyed by a hash of the sources, the torch and Python versions and
whether CUDA is compiled in: `~/.cache/gennorm/ext/<hash>/` (`$GENNORM_CACHE/ext/<hash>/` when
GENNORM_CACHE is set). Each holds `gennorm_ops.so` and `build.json` (what was built, for whom).

Policy of `try_load()`, run once when `gennorm.ops` is imported:
  GENNORM_EXTENSION=0                 -> nothing is loaded (pure PyTorch kernels);
  a GPU is visible and nvcc is found  -> load the cached CUDA build, building it now on first use;
  otherwise                           -> load a cached build if there is one (no compiling at import).
A build or load that fails warns once and returns False: CPU users are never broken, they get the
Python-registered reference kernels. `python -m gennorm.ops build` builds ahead of time.
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
SOURCE_SUFFIXES = (".cpp", ".cu", ".cuh", ".h")
DEFAULT_ARCH_NO_GPU = "9.0+PTX"  # building where no GPU is visible (CI): sm_90 + PTX for newer GPUs

_STATE = {"tried": False, "loaded": False, "path": None, "with_cuda": False, "error": None}
_WARNED = False


class BuildError(RuntimeError):
    """The compiler (or loading the built library) failed; the message ends with its last lines."""


# ---- where things are ----------------------------------------------------------------------


def source_dir() -> Path | None:
    """The C++/CUDA sources: gennorm/_csrc inside an installed package, else the repo's cuda/."""
    here = Path(__file__).resolve().parent  # gennorm/ops
    for candidate in (here.parent / "_csrc", here.parents[1] / "cuda"):
        if (candidate / f"{NAME}.cpp").is_file():
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


def build_key(with_cuda: bool, src: Path | None = None) -> str:
    """Hash of the sources + torch/Python/CUDA versions + CUDA-or-not."""
    h = hashlib.sha256()
    for path in sources(src):
        if not with_cuda and path.suffix in (".cu", ".cuh"):
            continue  # a CPU-only build compiles only the .cpp (and its header)
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    meta = [torch.__version__, str(torch.version.cuda), "%d.%d" % sys.version_info[:2], platform.machine(),
            "cuda" if with_cuda else "cpu"]
    h.update("|".join(meta).encode())
    return h.hexdigest()[:16]


def build_dir(with_cuda: bool) -> Path:
    return cache_root() / build_key(with_cuda)


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


# ---- building --------------------------------------------------------------------------------

# Runs in a fresh interpreter: compiling loads the library, and the calling process may already have
# defined the gennorm namespace in Python (a second TORCH_LIBRARY(gennorm) would be an error there).
_BUILD_SCRIPT = """
import json, sys
from torch.utils.cpp_extension import load
a = json.loads(sys.argv[1])
load(name=a["name"], sources=a["sources"], build_directory=a["dir"], extra_cflags=a["cflags"],
     extra_cuda_cflags=a["cuda_cflags"], extra_include_paths=[a["include"]], with_cuda=a["with_cuda"],
     is_python_module=False, verbose=a["verbose"])
"""


def _arch_default() -> str | None:
    if os.environ.get("TORCH_CUDA_ARCH_LIST"):
        return os.environ["TORCH_CUDA_ARCH_LIST"]
    if torch.cuda.is_available():
        return None  # torch compiles for the visible GPUs
    return DEFAULT_ARCH_NO_GPU


def build(verbose: bool = True, with_cuda: bool | None = None, arch_list: str | None = None) -> Path:
    """Compile cuda/ into the cache (CPU kernels, plus CUDA kernels when `with_cuda`); return the .so.

    with_cuda=None means "when nvcc and a CUDA-enabled torch are present". arch_list is
    TORCH_CUDA_ARCH_LIST syntax ("9.0", "8.0;9.0+PTX"); default: the visible GPUs, or sm_90 + PTX
    where none is visible. Raises BuildError with the compiler's last lines on failure.
    """
    src = source_dir()
    if src is None:
        raise BuildError("the gennorm C++/CUDA sources are missing (neither gennorm/_csrc nor cuda/ was found)")
    with_cuda = can_build_cuda() if with_cuda is None else bool(with_cuda)
    if with_cuda and not can_build_cuda():
        raise BuildError("a CUDA build needs nvcc (set CUDA_HOME) and a CUDA-enabled torch "
                         f"(torch.version.cuda is {torch.version.cuda})")
    directory = cache_root() / build_key(with_cuda, src)
    directory.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    arch = arch_list or _arch_default()
    if with_cuda:
        env["CUDA_HOME"] = str(cuda_home())
        if arch:
            env["TORCH_CUDA_ARCH_LIST"] = arch
    args = {
        "name": NAME, "dir": str(directory), "include": str(src), "with_cuda": with_cuda, "verbose": verbose,
        "sources": [str(p) for p in sources(src) if p.suffix == ".cpp" or (with_cuda and p.suffix == ".cu")],
        "cflags": ["-O3"] + (["-DGENNORM_WITH_CUDA"] if with_cuda else []),
        "cuda_cflags": ["-O3", "-DGENNORM_WITH_CUDA"],
    }
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", _BUILD_SCRIPT, json.dumps(args)], env=env, text=True,
                          capture_output=not verbose)
    if done.returncode != 0 or not _library_file(directory).is_file():
        tail = "\n".join(((done.stdout or "") + (done.stderr or "")).strip().splitlines()[-25:])
        raise BuildError(f"building the gennorm extension in {directory} failed (exit {done.returncode})"
                         + (f":\n{tail}" if tail else "; see the compiler output above"))
    meta = {"with_cuda": with_cuda, "arch_list": arch if with_cuda else None, "torch": torch.__version__,
            "cuda": torch.version.cuda if with_cuda else None, "python": "%d.%d" % sys.version_info[:2],
            "sources": str(src), "seconds": round(time.monotonic() - start, 1)}
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
        if not base:
            continue
        try:
            value = int(round(float(base) * 10))
        except ValueError:
            continue
        if value == cap or (entry.endswith("+PTX") and value <= cap):
            return True
    return meta.get("arch_list") is None  # built for the visible GPUs


def _choose() -> tuple[Path | None, dict | None]:
    """The build to load under the policy in the module docstring, building on first use."""
    if source_dir() is None:
        return None, None
    cuda_dir, cpu_dir = build_dir(True), build_dir(False)
    cuda_meta, cpu_meta = _built(cuda_dir), _built(cpu_dir)
    if torch.cuda.is_available():
        if cuda_meta and _arch_covers_gpu(cuda_meta):
            return _library_file(cuda_dir), cuda_meta
        if can_build_cuda():  # first use on a GPU machine: compile now (minutes, once)
            print(f"gennorm: compiling the CUDA kernels into {cuda_dir} (first use; a few minutes, once)",
                  file=sys.stderr, flush=True)
            path = build(verbose=False, with_cuda=True, arch_list=os.environ.get("TORCH_CUDA_ARCH_LIST"))
            return path, _built(path.parent)
    if cuda_meta and torch.version.cuda is not None:
        return _library_file(cuda_dir), cuda_meta
    if cpu_meta:
        return _library_file(cpu_dir), cpu_meta
    return None, None


def try_load() -> bool:
    """Load the compiled gennorm library if it is available; True when its ops are registered."""
    if _STATE["tried"]:
        return _STATE["loaded"]
    _STATE["tried"] = True
    if os.environ.get("GENNORM_EXTENSION", "").strip() == "0":
        return False
    try:
        path, meta = _choose()
        if path is None:
            return False
        torch.ops.load_library(str(path))
    except Exception as exc:  # a failed build or load must never break import
        _STATE["error"] = str(exc)
        _warn_once(f"gennorm: the compiled op library could not be built or loaded: {exc}")
        return False
    _STATE.update(loaded=True, path=str(path), with_cuda=bool(meta and meta.get("with_cuda")))
    return True


def loaded_with_cuda() -> bool:
    """True when the loaded library was built with its CUDA kernels."""
    return bool(_STATE["loaded"] and _STATE["with_cuda"])


def info() -> dict:
    """What is loaded and where builds go (for `python -m gennorm.ops status`)."""
    return {
        "loaded": _STATE["loaded"], "path": _STATE["path"], "with_cuda": loaded_with_cuda(),
        "error": _STATE["error"], "disabled": os.environ.get("GENNORM_EXTENSION", "").strip() == "0",
        "sources": str(source_dir()), "cache": str(cache_root()), "cuda_home": str(cuda_home()),
        "gpu": torch.cuda.is_available(),
    }
