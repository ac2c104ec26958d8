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


STATUS = """\
List each weight file the metrics need: the metrics that use it, its size and sha256, where it
was found (--weights-dir, then $GENNORM_WEIGHTS, then the torch hub cache), and whether it is
the official file. Exit code 0 even when files are missing; nothing is downloaded.

examples:
  gennorm weights status
  gennorm weights status --no-verify                # skip hashing (fast)
  gennorm weights status --weights-dir /data/weights --json weights.json
"""

FETCH = """\
Download the missing weight files from their official URLs into the first folder searched
(--weights-dir, else $GENNORM_WEIGHTS, else the torch hub cache) and check each sha256; an
official file already there is kept. Needs internet: offline it stops with exit code 2, naming the
URL; copying the files into that folder by hand works as well (`gennorm weights status` lists them).

examples:
  gennorm weights fetch                            # everything FID, KID and LPIPS need
  gennorm weights fetch --only inception           # just what FID and KID need
  gennorm weights fetch --weights-dir /data/weights
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="{status,fetch}", required=True)
    for name, summary, text in (("status", "where each weight file is, and whether it is the official one", STATUS),
                                ("fetch", "download the missing weight files and verify them", FETCH)):
        child = sub.add_parser(name, help=summary, description=text,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
        child.add_argument("--weights-dir", metavar="DIR", help="folder searched first (and fetch's target)")
        if name == "fetch":
            child.add_argument("--only", metavar="KEYS", help="comma list of inception,alexnet,vgg16,squeezenet1_1")
        else:
            child.add_argument("--no-verify", action="store_true", help="skip hashing present files (fast)")
            child.add_argument("--json", metavar="FILE", help="also write the rows as JSON")


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
