"""`gennorm bench SUBCOMMAND`: every benchmark in one place, one subcommand per gennorm/bench/ module.

This module is the whole command line of `gennorm bench`: for each subcommand (one section
below, in the order of `gennorm bench --help`) its help text, its options, and a run that imports
the benchmark (gennorm.bench.NAME, torch at its top) and calls its run(args) once. The benchmark
modules are imported only inside those runs, so `gennorm bench --help` imports no torch; the
options of `bench layers` are built from gennorm.bench.specs (layer shapes, candidate names),
which is torch-free.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import NamedTuple

from gennorm.bench.specs import BASELINE, CANDIDATES, COMPILED, DTYPES, MODES, QUICK_LAYERS, RESNET9_LAYERS
from gennorm.commands._types import device, nonneg_int, positive_int


class Subcommand(NamedTuple):
    summary: str  # one line in `gennorm bench --help`
    description: str  # `gennorm bench NAME --help`
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int | None]


# ---- bench layers --------------------------------------------------------------------------

LAYERS = """\
Forward and forward + backward median time of one conv + norm layer per normalization
(Conv2d+InstanceNorm2d baseline, Conv2d+GroupNorm, NC torch path, NC torch path under
torch.compile, NC CUDA op, NC literal im2col, Conv2d+PONO, KNConv, ConvNorm) at the ResNet-9
CycleGAN layer shapes for a 256x256 image, batch 1 and 8 (CPU default: batch 1); then the bytes
moved and the GB/s (% of copy bandwidth) of each shared-op kernel at each shape.

layers (--layers): res 256->256 3x3 reflect at 64², down2 128->256 3x3/2 at 128²,
down1 64->128 3x3/2 at 256², stem 3->64 7x7 reflect at 256².

examples:
  gennorm bench layers --quick --json bench.json         # seconds; tiny shapes, CPU
  gennorm bench layers --device cuda --dtype float32 bfloat16 --json docs/bench_layers_cuda.json
  gennorm bench layers --device cuda --layers res --batch 8 --modes fwdbwd --repeats 50
  gennorm bench layers --device cpu --shapes 64x128x128:1 64x64x64:4 256x64x64:1 --no-kernels
"""


def layers_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", type=device, default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--dtype", nargs="+", default=["float32"], choices=DTYPES,
                        help="float32, and/or bfloat16/float16 under torch.autocast with float32 parameters (AMP)")
    parser.add_argument("--layers", nargs="+", default=None, metavar="NAME",
                        help=f"ResNet-9 layers to run (default all: {' '.join(RESNET9_LAYERS)}; "
                             f"--quick: {' '.join(QUICK_LAYERS)})")
    parser.add_argument("--shapes", nargs="+", default=None, metavar="CxHxW[:B]",
                        help="instead of --layers: 3x3 C->C zero-padded convs, e.g. 64x128x128 (crossed with "
                             "--batch) or 64x64x64:4 (batch 4 only)")
    parser.add_argument("--batch", type=positive_int, nargs="+", default=None,
                        help="batch sizes (default: 1 8 on CUDA, 1 on the CPU and with --quick)")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES,
                        help="fwd (training forward) and/or fwdbwd (forward + backward); default both")
    parser.add_argument("--candidates", nargs="+", default=None, metavar="NAME",
                        help=f"subset to time (default all): {', '.join(repr(c) for c in CANDIDATES)}; "
                             f"{BASELINE!r} is always timed")
    parser.add_argument("--no-compile", action="store_true",
                        help=f"skip {COMPILED!r} (torch.compile takes ~10-30 s per shape; --quick skips it "
                             "unless --candidates names it)")
    parser.add_argument("--no-kernels", action="store_true", help="skip the per-kernel bandwidth rows")
    parser.add_argument("--repeats", type=positive_int, default=None, help="timed rounds (default 10; 3 with --quick)")
    parser.add_argument("--warmup", type=nonneg_int, default=None, help="untimed rounds first (default 2; 1 with --quick)")
    parser.add_argument("--json", default=None, metavar="FILE",
                        help="write every number, device, torch and CUDA versions, dtypes, date (rewritten after "
                             "each shape, so a run cut short keeps what it measured)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny versions of the layers "
                             f"({', '.join(s.label() for s in QUICK_LAYERS.values())}): seconds")
    parser.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: PyTorch's choice)")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")


def layers_run(args: argparse.Namespace) -> int:
    from gennorm.bench import layers

    return layers.run(args)


# ---- bench train ---------------------------------------------------------------------------

TRAIN = """\
Training-step benchmark: median step time and peak memory of CycleGAN and pix2pix for each
generator norm (instance, pono-ms, nc, kn). CUDA: ResNet-9 at 256x256 (batch 1); CPU: a small
setting. Synthetic batches; full steps (G and D updates).

examples:
  gennorm bench train --device cpu --quick
  gennorm bench train --device cuda --json bench_train.json
  gennorm bench train --device cuda --amp bf16 --norms instance nc --tasks cyclegan
  gennorm bench train --device cuda --amp bf16 --tasks pix2pix --arch unet_256
"""

TRAIN_NORMS = ("instance", "pono-ms", "nc", "kn")
TRAIN_TASKS = ("cyclegan", "pix2pix")
TRAIN_ARCHS = ("resnet_9blocks", "resnet_6blocks", "unet_256", "unet_128")


def train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", type=device, default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--json", default=None, metavar="FILE", help="write all numbers and the setting")
    parser.add_argument("--quick", action="store_true", help="few steps, small shapes (CPU: seconds per config)")
    parser.add_argument("--norms", nargs="+", default=list(TRAIN_NORMS),
                        help=f"generator norms (default: {' '.join(TRAIN_NORMS)})")
    parser.add_argument("--tasks", nargs="+", default=list(TRAIN_TASKS), choices=TRAIN_TASKS)
    parser.add_argument("--d-norm", default="instance", help="discriminator norm (default instance)")
    parser.add_argument("--amp", default="none", choices=("none", "bf16", "fp16"))
    parser.add_argument("--steps", type=positive_int, default=None, help="timed steps (default 10 CUDA, 5 CPU, 3 quick)")
    parser.add_argument("--size", type=positive_int, default=None, help="image size (default 256 CUDA, 64 CPU, 32 quick)")
    parser.add_argument("--ngf", type=positive_int, default=None, help="generator/discriminator width")
    parser.add_argument("--batch", type=positive_int, default=1)
    parser.add_argument("--arch", default=None, choices=TRAIN_ARCHS,
                        help="generator (default resnet_9blocks on CUDA, resnet_6blocks on the CPU)")
    parser.add_argument("--warmup", type=nonneg_int, default=None, help="untimed steps first (default 3 CUDA, 2 CPU, 1 quick)")


def train_run(args: argparse.Namespace) -> int:
    from gennorm.bench import train

    return train.run(args)


# ---- bench generator -----------------------------------------------------------------------

GENERATOR = """\
Median forward + backward time of one generator per norm (--mode inference: the forward alone,
eval mode under torch.inference_mode, as `gennorm translate` runs it), interleaved rounds in one
process, the same decoder for every norm; ratio to the first --norms entry (default instance).

examples:
  gennorm bench generator --device cpu --norms instance nc --json gen.json
  gennorm bench generator --device cpu --norms instance nc --mode inference
  gennorm bench generator --device cuda --arch resnet_9blocks --ngf 64 --size 256 --dtype bfloat16
"""


def generator_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", type=device, default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--arch", default="resnet_6blocks",
                        choices=("resnet_9blocks", "resnet_6blocks", "unet_256", "unet_128"))
    parser.add_argument("--norms", nargs="+", default=["instance", "nc"],
                        help="generator norms; the first is the baseline (default: instance nc)")
    parser.add_argument("--ngf", type=positive_int, default=32)
    parser.add_argument("--size", type=positive_int, default=128, help="image side (default 128)")
    parser.add_argument("--batch", type=positive_int, default=1)
    parser.add_argument("--upsample", default="resize", choices=("resize", "transpose"),
                        help="decoder for every norm (default resize: the one fused norms need)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"),
                        help="float32, or bfloat16/float16 under torch.autocast")
    parser.add_argument("--mode", default="train", choices=("train", "inference"),
                        help="train: forward + backward (default); inference: the forward alone")
    parser.add_argument("--repeats", type=positive_int, default=10, help="timed rounds (default 10)")
    parser.add_argument("--warmup", type=nonneg_int, default=2, help="untimed rounds after the first call (default 2)")
    parser.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: PyTorch's choice)")
    parser.add_argument("--json", default=None, metavar="FILE", help="write every number, device, versions, date")


def generator_run(args: argparse.Namespace) -> int:
    from gennorm.bench import generator

    return generator.run(args)


# ---- bench profile -------------------------------------------------------------------------

PROFILE = """\
Per-kernel profiler table of one ResNet residual block (256 x 64 x 64, batch 1) forward +
backward for each --norms and --dtype: GPU kernels by CUDA time on CUDA, operators by self CPU
time on the CPU; median step time without the profiler.

examples:
  gennorm bench profile --device cuda --norms nc instance --json profile.json
  gennorm bench profile --device cpu --channels 16 --size 16 --steps 2
"""


def profile_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", type=device, default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--norms", nargs="+", default=["nc", "instance"], help="block norms (default: nc instance)")
    parser.add_argument("--dtype", nargs="+", default=["float32"], choices=("float32", "bfloat16", "float16"),
                        help="float32 and/or bfloat16/float16 autocast (default float32)")
    parser.add_argument("--channels", type=positive_int, default=256, help="block width (default 256, ResNet-9 ngf 64)")
    parser.add_argument("--size", type=positive_int, default=64, help="feature map side (default 64: a 256x256 image)")
    parser.add_argument("--batch", type=positive_int, default=1)
    parser.add_argument("--warmup", type=nonneg_int, default=3, help="untimed steps first (default 3)")
    parser.add_argument("--steps", type=positive_int, default=5, help="profiled (and separately timed) steps (default 5)")
    parser.add_argument("--rows", type=positive_int, default=20, help="table rows per norm (default 20)")
    parser.add_argument("--json", default=None, metavar="FILE", help="write every row, device, versions, date")


def profile_run(args: argparse.Namespace) -> int:
    from gennorm.bench import profile

    return profile.run(args)


# ---- bench metrics -------------------------------------------------------------------------

METRICS = """\
Throughput of FID/KID feature extraction: random uint8 images resized to 299 and run through
InceptionV3 up to pool3 (the official weight file when present, else random values: same speed).

examples:
  gennorm bench metrics --images 50 --batch-size 16 --device cpu
  gennorm bench metrics --images 500 --batch-size 64 --device cuda
"""


def metrics_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", type=positive_int, default=50, help="images to push through (default 50)")
    parser.add_argument("--batch-size", type=positive_int, default=16)
    parser.add_argument("--size", type=positive_int, default=256, help="input image side (default 256)")
    parser.add_argument("--device", type=device, default="cpu")


def metrics_run(args: argparse.Namespace) -> int:
    from gennorm.bench import metrics

    return metrics.run(args)


# ---- bench report --------------------------------------------------------------------------

REPORT = """\
Markdown tables (ratios to Conv2d+InstanceNorm2d of the same run; kernels' % of copy bandwidth)
from one or more `gennorm bench layers --json` files; --merge writes them as one JSON file.

examples:
  gennorm bench report bench_layers_fp32.json bench_layers_bf16.json
  gennorm bench report $OUT/bench_layers_*.json --merge docs/bench_layers_cuda.json --mode fwd
"""


def report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="gennorm bench layers --json outputs")
    parser.add_argument("--merge", default=None, metavar="FILE", help="write all results as one JSON file")
    parser.add_argument("--mode", default="fwdbwd", choices=("fwd", "fwdbwd"), help="timed mode to tabulate")


def report_run(args: argparse.Namespace) -> int:
    from gennorm.bench import report

    return report.run(args)


# ---- the verb ------------------------------------------------------------------------------

# Order is the order of `gennorm bench --help`.
SUBCOMMANDS: dict[str, Subcommand] = {
    "layers": Subcommand("time of each normalization layer at ResNet-9 shapes; kernel bandwidth",
                         LAYERS, layers_arguments, layers_run),
    "train": Subcommand("training-step time and peak memory, CycleGAN and pix2pix, per norm",
                        TRAIN, train_arguments, train_run),
    "generator": Subcommand("generator forward+backward per norm, interleaved, same decoder",
                            GENERATOR, generator_arguments, generator_run),
    "profile": Subcommand("per-kernel profiler table of one ResNet residual block fwd+bwd",
                          PROFILE, profile_arguments, profile_run),
    "metrics": Subcommand("FID/KID feature-extraction throughput (images/s)", METRICS, metrics_arguments, metrics_run),
    "report": Subcommand("Markdown ratio / bandwidth tables from bench layers JSON; merge files",
                         REPORT, report_arguments, report_run),
}

DESCRIPTION = """\
Benchmarks, one subcommand each (gennorm bench SUBCOMMAND --help for its options):
""" + "\n".join(f"  {name:<8} {sub.summary}" for name, sub in SUBCOMMANDS.items()) + """

examples:
  gennorm bench layers --quick --json bench.json
  gennorm bench layers --device cuda --dtype float32 bfloat16 --json docs/bench_layers_cuda.json
  gennorm bench train --device cuda --amp bf16 --tasks cyclegan --norms instance nc
  gennorm bench generator --device cpu --norms instance nc --repeats 10
  gennorm bench profile --device cuda --norms nc instance
  gennorm bench metrics --images 50 --device cpu
  gennorm bench report bench_layers_fp32.json bench_layers_bf16.json --merge docs/bench_layers_cuda.json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="what", metavar="{" + ",".join(SUBCOMMANDS) + "}", required=True)
    for name, command in SUBCOMMANDS.items():
        child = sub.add_parser(name, help=command.summary, description=command.description,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
        command.add_arguments(child)


def run(args: argparse.Namespace) -> int | None:
    return SUBCOMMANDS[args.what].run(args)
