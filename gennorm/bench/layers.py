"""`gennorm bench layers`: speed of one conv + norm layer per normalization, at the ResNet-9 shapes.

The layers are those of the CycleGAN ResNet-9 generator on a 256x256 image: the 7x7 reflect stem
3->64 at 256², the 3x3 stride-2 convs 64->128 at 256² and 128->256 at 128², the 3x3 reflect
256->256 residual conv at 64². Each candidate is timed forward (the forward of a training step:
inputs and parameters require grad) and forward + backward, interleaved in one process: a
warm-up first, then round after round over all candidates, so drift in clock speed or load hits
every candidate alike. It reports medians and the ratio to Conv2d + InstanceNorm2d (the classic
CycleGAN/pix2pix layer) measured in the same rounds. With --dtype bfloat16/float16 the layer
runs under torch.autocast, parameters float32 and the input in that dtype (as a layer inside an
AMP network receives it).

After the candidates, each shared-op kernel (gennorm/bench/kernels.py) is timed at the same
shape: the bytes it moves and its GB/s as a % of a plain copy of the same bytes.

This module is the command's torch-free half (description, options, layer shapes), which
`gennorm bench --help` imports; the benchmark itself, which imports torch, is in layers_run.py.

Run: gennorm bench layers --quick
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass

from gennorm._lazy import lazy_exports
from gennorm.errors import ConfigError

DESCRIPTION = """\
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

BASELINE = "conv+instancenorm"
CANDIDATES = ["conv+instancenorm", "conv+groupnorm", "nc (torch)", "nc (torch, compiled)", "nc (cuda)",
              "nc literal unfold", "conv+pono", "knconv", "convnorm"]
COMPILED = "nc (torch, compiled)"
MODES = ("fwd", "fwdbwd")
NO_CUDA_NC = "n/a (no CUDA build/GPU)"
NO_COMPILE = "skipped (--no-compile)"
QUICK_NO_COMPILE = "skipped (--quick: compiling takes 10-30 s; name it in --candidates to time it)"
NOT_SELECTED = "skipped (not in --candidates)"
DTYPES = ("float32", "bfloat16", "float16")

# literal_nc (NC by its definition) lives with the torch code in layers_run.py; named here as well,
# it is imported on first use (gennorm/_lazy.py), so importing this module stays torch-free.
__getattr__, __dir__, _ = lazy_exports(globals(), {"literal_nc": "gennorm.bench.layers_run"})


@dataclass(frozen=True)
class LayerSpec:
    """One conv layer: cin -> cout, kernel x kernel, stride, padding (mode) on a size x size input."""

    name: str
    cin: int
    cout: int
    kernel: int
    stride: int
    padding: int
    mode: str
    size: int

    @property
    def out_size(self) -> int:
        return (self.size + 2 * self.padding - self.kernel) // self.stride + 1

    def label(self) -> str:
        return (f"{self.name}: {self.cin}->{self.cout} {self.kernel}x{self.kernel}/{self.stride} "
                f"{self.mode} pad {self.padding} at {self.size}x{self.size}")


# The ResNet-9 generator's conv layers on 256x256 (the residual conv first: 18 of them per forward).
RESNET9_LAYERS = {
    "res": LayerSpec("res", 256, 256, 3, 1, 1, "reflect", 64),
    "down2": LayerSpec("down2", 128, 256, 3, 2, 1, "zeros", 128),
    "down1": LayerSpec("down1", 64, 128, 3, 2, 1, "zeros", 256),
    "stem": LayerSpec("stem", 3, 64, 7, 1, 3, "reflect", 256),
}
# The same kinds of layer at a few pixels and channels: --quick.
QUICK_LAYERS = {
    "res": LayerSpec("res", 16, 16, 3, 1, 1, "reflect", 8),
    "down": LayerSpec("down", 8, 16, 3, 2, 1, "zeros", 16),
    "stem": LayerSpec("stem", 3, 8, 7, 1, 3, "reflect", 16),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--dtype", nargs="+", default=["float32"], choices=DTYPES,
                        help="float32, and/or bfloat16/float16 under torch.autocast with float32 parameters (AMP)")
    parser.add_argument("--layers", nargs="+", default=None, metavar="NAME",
                        help=f"ResNet-9 layers to run (default all: {' '.join(RESNET9_LAYERS)}; "
                             f"--quick: {' '.join(QUICK_LAYERS)})")
    parser.add_argument("--shapes", nargs="+", default=None, metavar="CxHxW[:B]",
                        help="instead of --layers: 3x3 C->C zero-padded convs, e.g. 64x128x128 (crossed with "
                             "--batch) or 64x64x64:4 (batch 4 only)")
    parser.add_argument("--batch", type=int, nargs="+", default=None,
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
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default 10; 3 with --quick)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed rounds first (default 2; 1 with --quick)")
    parser.add_argument("--json", default=None, metavar="FILE",
                        help="write every number, device, torch and CUDA versions, dtypes, date (rewritten after "
                             "each shape, so a run cut short keeps what it measured)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny versions of the layers "
                             f"({', '.join(s.label() for s in QUICK_LAYERS.values())}): seconds")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: PyTorch's choice)")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")


def parse_shape(text: str, batches: list[int]) -> list[tuple[int, LayerSpec]]:
    """'64x128x128' -> [(B, 3x3 64->64 zeros conv at 128x128) for B in batches]; '64x64x64:4' -> batch 4 only."""
    spec, _, batch = text.partition(":")
    try:
        c, h, w = (int(v) for v in spec.lower().split("x"))
        sizes = [int(batch)] if batch else batches
    except ValueError:
        raise ConfigError(f"--shapes: expected CxHxW or CxHxW:B (e.g. 64x128x128:1), got {text!r}") from None
    if min(c, h, w, *sizes) < 1 or h < 3 or w < 3:
        raise ConfigError(f"--shapes: sizes must be positive and H, W >= 3 (3x3 convs), got {text!r}")
    if h != w:
        raise ConfigError(f"--shapes: square inputs only (H == W), got {text!r}")
    return [(b, LayerSpec(f"{c}x{h}x{w}", c, c, 3, 1, 1, "zeros", h)) for b in sizes]


def run(args) -> int:
    from gennorm.bench import layers_run  # imports torch: this module must not (`gennorm bench --help` imports it)

    return layers_run.run(args)
