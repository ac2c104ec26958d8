"""`gennorm bench profile`: where the time of one ResNet residual block goes, kernel by kernel.

One CycleGAN ResNet block (reflect-pad, 3x3 conv + norm, ReLU, reflect-pad, 3x3 conv + norm,
+ x; gennorm.networks.resnet.ResnetBlock) at 256 x 64 x 64, batch 1 by default, forward +
backward under torch.profiler: on CUDA a table of the GPU kernels by total CUDA time (what the
device spends on each kernel name, summed over the profiled steps) and of the operators that
launched them; on the CPU the operators by self CPU time. Also the median step time without the
profiler (CUDA events / wall time) and each kernel's share of the kernel time.

This module is the command's torch-free half (description, options), which `gennorm bench
--help` imports; the profiling itself, which imports torch, is in profile_run.py.

Run: gennorm bench profile --device cuda --norms nc instance --dtype float32 bfloat16
"""
from __future__ import annotations

DESCRIPTION = """\
Per-kernel profiler table of one ResNet residual block (256 x 64 x 64, batch 1) forward +
backward for each --norms and --dtype: GPU kernels by CUDA time on CUDA, operators by self CPU
time on the CPU; median step time without the profiler.

examples:
  gennorm bench profile --device cuda --norms nc instance --json profile.json
  gennorm bench profile --device cpu --channels 16 --size 16 --steps 2
"""


def add_arguments(parser) -> None:
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--norms", nargs="+", default=["nc", "instance"], help="block norms (default: nc instance)")
    parser.add_argument("--dtype", nargs="+", default=["float32"], choices=("float32", "bfloat16", "float16"),
                        help="float32 and/or bfloat16/float16 autocast (default float32)")
    parser.add_argument("--channels", type=int, default=256, help="block width (default 256, ResNet-9 ngf 64)")
    parser.add_argument("--size", type=int, default=64, help="feature map side (default 64: a 256x256 image)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    parser.add_argument("--steps", type=int, default=5, help="profiled (and separately timed) steps (default 5)")
    parser.add_argument("--rows", type=int, default=20, help="table rows per norm (default 20)")
    parser.add_argument("--json", default=None, metavar="FILE", help="write every row, device, versions, date")


def run(args) -> int:
    from gennorm.bench import profile_run  # imports torch: this module must not (`gennorm bench --help` imports it)

    return profile_run.run(args)
