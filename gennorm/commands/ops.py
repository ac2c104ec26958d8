"""`gennorm ops build | status` (also `python -m gennorm.ops ...`): the compiled CUDA kernels of the
shared op (gennorm.ops.extension).
"""
from __future__ import annotations

import sys

DESCRIPTION = """\
Build or inspect the compiled CUDA kernels of the shared op (cuda/; docs/SPEC.md section 5).

examples:
  gennorm ops build                  # compile cuda/ into the cache (nvcc needed, no GPU needed)
  gennorm ops build --arch 9.0       # TORCH_CUDA_ARCH_LIST (default: the visible GPUs, else 9.0+PTX)
  gennorm ops build --quiet          # compiler output only when it fails
  gennorm ops status                 # a cached build? loaded? which ops have CUDA kernels?
  gennorm ops check                  # every op's compiled kernel against its Python kernel, a table

On a GPU, the first NC call runs the same check once before the compiled kernels serve; a
mismatch or a CUDA error warns once, naming the op, and the PyTorch path serves.

Without a build, gennorm builds once on the first CUDA call (and says so); the PyTorch kernels
serve wherever the CUDA kernels are missing. `python -m gennorm.ops ...` is the same command.
"""


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="compile cuda/ into the cache and print where it went")
    build.add_argument("--arch", default=None, help="TORCH_CUDA_ARCH_LIST, e.g. '9.0' or '8.0;9.0+PTX'")
    build.add_argument("--quiet", action="store_true", help="hide the compiler output unless it fails")
    sub.add_parser("status", help="print whether a build is cached and loadable, its path, and its kernels")
    check = sub.add_parser("check", help="run every op on the device against its Python kernel (exit 1 on a mismatch)")
    check.add_argument("--device", default=None, help="cuda (default when a GPU is visible) or cpu")


def run(args) -> int:
    from gennorm.ops import extension

    if args.command == "build":
        try:
            path = extension.build(verbose=not args.quiet, arch_list=args.arch)
        except extension.BuildError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        meta = extension._built(path.parent) or {}
        print(f"built the CUDA kernels (arch {meta.get('arch_list') or 'visible GPUs'}) in {meta.get('seconds', '?')} s: {path}")
        print("gennorm loads them on its first CUDA call")
        return 0

    if args.command == "check":
        return _check(args.device)

    import torch

    from gennorm.ops import library

    path, meta = extension.cached_build()
    loaded = extension.load_cached()
    info = extension.info()
    state = "disabled (GENNORM_EXTENSION=0)" if info["disabled"] else ("loaded" if loaded else "not loaded")
    print(f"compiled library: {state}")
    print(f"  cached build: {path or '-'}" + (f"  (arch {meta.get('arch_list') or 'visible GPUs'})" if meta else ""))
    print(f"  GPU visible:  {'yes' if info['gpu'] else 'no'};  nvcc: {info['cuda_home']}")
    print(f"  sources:      {info['sources']}")
    print(f"  cache:        {info['cache']}")
    if info["error"]:
        print(f"  last error:   {info['error'].splitlines()[0]}")
    if loaded:
        served = [op for op in library.SCHEMAS if extension.has_cuda_kernel(op)]
        print(f"  CUDA kernels: {', '.join(served) or 'none'}")
    else:
        print("  kernels:      the PyTorch ones (build with: python -m gennorm.ops build)")
    del torch
    return 0


def _check(device: str | None) -> int:
    import torch

    from gennorm.errors import ConfigError
    from gennorm.ops import extension, selfcheck

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: no CUDA device is visible")
        if not extension.load_cached() and not extension.ensure_loaded():
            print(f"no compiled kernels loaded ({extension.info()['error'] or 'no build'}): checking the Python "
                  "kernels on the GPU", file=sys.stderr)
    elif device != "cpu":
        raise ConfigError(f"--device {device}: expected cpu or cuda")
    else:
        print("on the CPU the registered ops run their Python kernels: this checks the harness, not CUDA",
              file=sys.stderr)
    rows = selfcheck.self_check(device)
    width = max(len(r.op) for r in rows)
    for r in rows:
        err = "-" if r.error is None else f"{r.error:.2e}"
        print(f"{r.op:<{width}}  {r.case:<32} {err:>9} <= {r.tolerance:g}  {r.status}")
    bad = [r for r in rows if r.status != "ok"]
    print(f"{len(rows) - len(bad)} of {len(rows)} checks passed on {device}")
    return 1 if bad else 0
