"""`gennorm weights status|fetch`: the metric networks' weight files, where they are, checksums."""
from __future__ import annotations

import argparse
import json

DESCRIPTION = """\
The weight files the metrics need, and where gennorm looks for them (first match wins):
--weights-dir, then $GENNORM_WEIGHTS, then the torch hub cache (~/.cache/torch/hub/checkpoints,
or $TORCH_HOME/hub/checkpoints). The LPIPS linear heads ship inside torchmetrics.

  status   list each file: metric, size, sha256, where it was found, present, verified
  fetch    download missing files from their official URLs into the first folder above and
           verify their sha256 (needs internet; offline it stops with exit code 2)

examples:
  gennorm weights status
  gennorm weights status --weights-dir /data/weights --json weights.json
  gennorm weights fetch --only inception          # just what FID and KID need
  GENNORM_WEIGHTS=/data/weights gennorm weights fetch
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("status", "fetch"), help="status or fetch")
    parser.add_argument("--weights-dir", metavar="DIR", help="folder searched first (and fetch's target)")
    parser.add_argument("--only", metavar="KEYS", help="fetch: comma list of inception,alexnet,vgg16,squeezenet1_1")
    parser.add_argument("--no-verify", action="store_true", help="status: skip hashing present files (fast)")
    parser.add_argument("--json", metavar="FILE", help="status: also write the rows as JSON")


def run(args: argparse.Namespace) -> int:
    from gennorm.metrics import weights

    if args.action == "fetch":
        weights.fetch(weights.parse_keys(args.only), args.weights_dir)
        return 0
    rows = weights.status(args.weights_dir, verify=not args.no_verify)
    print(weights.status_table(rows, args.weights_dir))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0
