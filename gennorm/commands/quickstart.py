"""`gennorm quickstart`: the main job end to end on the built-in data (gennorm.study.quickstart)."""
from __future__ import annotations

from gennorm.commands._types import DEVICE_HELP, device, nonneg_int, positive_int

DESCRIPTION = """\
Train and evaluate a small pix2pix-NC model on the built-in scenes data, on the CPU, in a few
minutes; write OUT/report.html (images side by side + PSNR/SSIM of the trained vs the
untrained model) and OUT/report.json. Running it again reuses the data and a finished run (an
interrupted run is resumed).

examples:
  gennorm quickstart
  gennorm quickstart --out /tmp/qs --steps 400
  gennorm quickstart --size 32 --steps 100        # a smoke run in well under a minute
"""

# Tuned on a busy 2-core CPU: see the measured wall time and PSNR gain in the report.
DEFAULT_STEPS = 160
DEFAULT_SIZE = 64
DEFAULT_COUNT = 160


def add_arguments(parser) -> None:
    parser.add_argument("--out", default="quickstart", help="output folder (default: quickstart)")
    parser.add_argument("--steps", type=positive_int, default=DEFAULT_STEPS, help=f"training steps (default {DEFAULT_STEPS})")
    parser.add_argument("--size", type=positive_int, default=DEFAULT_SIZE, help=f"image size (default {DEFAULT_SIZE})")
    parser.add_argument("--count", type=positive_int, default=DEFAULT_COUNT, help=f"scenes to generate (default {DEFAULT_COUNT})")
    parser.add_argument("--ngf", type=positive_int, default=16, help="generator width (default 16)")
    parser.add_argument("--norm", default="nc", help="generator norm (default nc)")
    parser.add_argument("--seed", type=nonneg_int, default=0)
    parser.add_argument("--device", type=device, default="cpu", help=f"{DEVICE_HELP} (default cpu)")


def run(args) -> int:
    from gennorm.devices import require_device
    from gennorm.study.quickstart import run_quickstart, summary

    require_device(args.device)

    report = run_quickstart(args.out, steps=args.steps, size=args.size, count=args.count, ngf=args.ngf,
                            norm=args.norm, seed=args.seed, device=args.device)
    print(summary(report, args.out))
    return 0
