"""`gennorm bench train`: training-step time and peak memory, CycleGAN and pix2pix, per norm.

Each configuration builds the full task (generators, discriminators, Adam, losses) and runs
whole training steps on synthetic batches (no data loading, so the number is the model's):
warm-up steps first, then the median of the timed steps. CUDA: ResNet-9, ngf/ndf 64, 256x256,
batch 1 (the papers' setting; --amp bf16 for bfloat16 autocast), peak memory from
torch.cuda.max_memory_allocated. CPU: a small setting (ResNet-6, ngf 16, 64x64; --quick: ngf 8,
32x32), peak memory as the growth of the process's peak RSS (an upper bound that only grows; the
CUDA number is the exact one). --arch picks another generator (e.g. unet_256 for pix2pix).

This module is the command's torch-free half (description, options), which `gennorm bench
--help` imports; the benchmark itself, which imports torch, is in train_run.py.

Run: gennorm bench train --device cpu --quick --json bench_train.json
"""
from __future__ import annotations

DESCRIPTION = """\
Training-step benchmark: median step time and peak memory of CycleGAN and pix2pix for each
generator norm (instance, pono-ms, nc, kn). CUDA: ResNet-9 at 256x256 (batch 1); CPU: a small
setting. Synthetic batches; full steps (G and D updates).

examples:
  gennorm bench train --device cpu --quick
  gennorm bench train --device cuda --json bench_train.json
  gennorm bench train --device cuda --amp bf16 --norms instance nc --tasks cyclegan
  gennorm bench train --device cuda --amp bf16 --tasks pix2pix --arch unet_256
"""

NORMS = ("instance", "pono-ms", "nc", "kn")
TASKS = ("cyclegan", "pix2pix")
ARCHS = ("resnet_9blocks", "resnet_6blocks", "unet_256", "unet_128")


def add_arguments(parser) -> None:
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--json", default=None, metavar="FILE", help="write all numbers and the setting")
    parser.add_argument("--quick", action="store_true", help="few steps, small shapes (CPU: seconds per config)")
    parser.add_argument("--norms", nargs="+", default=list(NORMS), help=f"generator norms (default: {' '.join(NORMS)})")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--d-norm", default="instance", help="discriminator norm (default instance)")
    parser.add_argument("--amp", default="none", choices=("none", "bf16", "fp16"))
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 10 CUDA, 5 CPU, 3 quick)")
    parser.add_argument("--size", type=int, default=None, help="image size (default 256 CUDA, 64 CPU, 32 quick)")
    parser.add_argument("--ngf", type=int, default=None, help="generator/discriminator width")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--arch", default=None, choices=ARCHS,
                        help="generator (default resnet_9blocks on CUDA, resnet_6blocks on the CPU)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 3 CUDA, 2 CPU, 1 quick)")


def run(args) -> int:
    from gennorm.bench import train_run  # imports torch: this module must not (`gennorm bench --help` imports it)

    return train_run.run(args)
