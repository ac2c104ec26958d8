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

Without a build, gennorm builds once on the first CUDA call (and says so); the PyTorch kernels
serve wherever the CUDA kernels are missing. `python -m gennorm.ops ...` is the same command.
"""


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="compile cuda/ into the cache and print where it went")
    build.add_argument("--arch", default=None, help="TORCH_CUDA_ARCH_LIST, e.g. '9.0' or '8.0;9.0+PTX'")
    build.add_argument("--quiet", action="store_true", help="hide the compiler output unless it fails")
    sub.add_parser("status", help="print whether a build is cached and loadable, its path, and its kernels")


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
