"""`gennorm bench generator`: forward + backward of a whole generator per norm, interleaved, same decoder.

Issue 14's network-level check: a generator forward + backward (default resnet_6blocks, ngf 32,
128 px, batch 1) with norm=nc against norm=instance, both with the same upsampling decoder
(--upsample resize by default, so the only difference is the normalization). Like `bench
layers`: one untimed call each, then round after round over all norms (interleaved), medians,
and the ratio to the first norm (instance by default) of the same rounds; no discriminator, no
optimizer (that is `bench train`). CUDA events on a GPU, wall time on the CPU.

This module is the command's torch-free half (description, options), which `gennorm bench
--help` imports; the benchmark itself, which imports torch, is in generator_run.py.

Run: gennorm bench generator --device cpu --norms instance nc --repeats 10
"""
from __future__ import annotations

DESCRIPTION = """\
Median forward + backward time of one generator per norm, interleaved rounds in one process,
the same decoder for every norm; ratio to the first --norms entry (default instance).

examples:
  gennorm bench generator --device cpu --norms instance nc --json gen.json
  gennorm bench generator --device cuda --arch resnet_9blocks --ngf 64 --size 256 --dtype bfloat16
"""


def add_arguments(parser) -> None:
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--arch", default="resnet_6blocks",
                        choices=("resnet_9blocks", "resnet_6blocks", "unet_256", "unet_128"))
    parser.add_argument("--norms", nargs="+", default=["instance", "nc"],
                        help="generator norms; the first is the baseline (default: instance nc)")
    parser.add_argument("--ngf", type=int, default=32)
    parser.add_argument("--size", type=int, default=128, help="image side (default 128)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--upsample", default="resize", choices=("resize", "transpose"),
                        help="decoder for every norm (default resize: the one fused norms need)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"),
                        help="float32, or bfloat16/float16 under torch.autocast")
    parser.add_argument("--repeats", type=int, default=10, help="timed rounds (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds after the first call (default 2)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: PyTorch's choice)")
    parser.add_argument("--json", default=None, metavar="FILE", help="write every number, device, versions, date")


def run(args) -> int:
    from gennorm.bench import generator_run  # imports torch: this module must not (`gennorm bench --help` imports it)

    return generator_run.run(args)
