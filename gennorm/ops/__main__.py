"""Build or inspect the compiled shared-op library.

    python -m gennorm.ops build                  # CPU + CUDA kernels when nvcc is found
    python -m gennorm.ops build --cpu-only       # CPU kernels only (no nvcc needed)
    python -m gennorm.ops build --arch 9.0       # TORCH_CUDA_ARCH_LIST for the CUDA kernels
    python -m gennorm.ops status                 # loaded? from where? with CUDA?
"""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gennorm.ops", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="compile cuda/ into the cache and print where it went")
    build.add_argument("--cpu-only", action="store_true", help="skip the CUDA kernels (no nvcc needed)")
    build.add_argument("--arch", default=None, help="TORCH_CUDA_ARCH_LIST, e.g. '9.0' or '8.0;9.0+PTX'")
    build.add_argument("--quiet", action="store_true", help="hide the compiler output unless it fails")
    sub.add_parser("status", help="print whether the compiled library is loaded, its path, with CUDA or not")
    args = parser.parse_args(argv)

    from gennorm.ops import extension

    if args.command == "build":
        try:
            path = extension.build(verbose=not args.quiet, with_cuda=False if args.cpu_only else None,
                                   arch_list=args.arch)
        except extension.BuildError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        meta = extension._built(path.parent) or {}
        kind = f"CPU + CUDA kernels (arch {meta.get('arch_list') or 'visible GPUs'})" if meta.get("with_cuda") else "CPU kernels"
        print(f"built {kind} in {meta.get('seconds', '?')} s: {path}")
        print("it is loaded the next time gennorm is imported")
        return 0

    import gennorm.ops  # noqa: F401  (imports try to load the library)

    info = extension.info()
    state = "loaded" if info["loaded"] else ("disabled (GENNORM_EXTENSION=0)" if info["disabled"] else "not loaded")
    print(f"compiled library: {state}")
    print(f"  path:      {info['path'] or '-'}")
    print(f"  with CUDA: {'yes' if info['with_cuda'] else 'no'}   (GPU visible: {'yes' if info['gpu'] else 'no'}; "
          f"gennorm.ops.has_cuda(): {gennorm.ops.has_cuda()})")
    print(f"  sources:   {info['sources']}")
    print(f"  cache:     {info['cache']}")
    print(f"  CUDA home: {info['cuda_home']}")
    if info["error"]:
        print(f"  last error: {info['error'].splitlines()[0]}")
    if not info["loaded"]:
        print("  kernels:   the PyTorch reference (build with: python -m gennorm.ops build)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
