"""`gennorm bench metrics`: throughput of FID/KID feature extraction (images/s), resize to 299 + InceptionV3 pool3.

Uses the official Inception file when present; otherwise a random-valued network of the same
architecture (the speed does not depend on the values, and nothing is downloaded). Input images
are random 256x256 uint8 tensors, so disk and PNG decoding are not included. Needs torch-fidelity
(the network's code).

This module is the command's torch-free half (description, options), which `gennorm bench
--help` imports; the benchmark itself, which imports torch, is in metrics_run.py.

Run: gennorm bench metrics --images 50 --batch-size 16 --device cpu
"""
from __future__ import annotations

DESCRIPTION = """\
Throughput of FID/KID feature extraction: random uint8 images resized to 299 and run through
InceptionV3 up to pool3 (the official weight file when present, else random values: same speed).

examples:
  gennorm bench metrics --images 50 --batch-size 16 --device cpu
  gennorm bench metrics --images 500 --batch-size 64 --device cuda
"""


def add_arguments(parser) -> None:
    parser.add_argument("--images", type=int, default=50, help="images to push through (default 50)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--size", type=int, default=256, help="input image side (default 256)")
    parser.add_argument("--device", default="cpu")


def run(args) -> int:
    from gennorm.bench import metrics_run  # imports torch: this module must not (`gennorm bench --help` imports it)

    return metrics_run.run(args)
