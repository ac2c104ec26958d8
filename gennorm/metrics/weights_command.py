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
    from gennorm.errors import ConfigError
    from gennorm.metrics import weights

    if args.action == "fetch":
        keys = None
        if args.only:
            keys = {k.strip() for k in args.only.split(",") if k.strip()}
            unknown = keys - {k for k, w in weights.WEIGHT_FILES.items() if not w.bundled}
            if unknown:
                raise ConfigError(f"--only: unknown weight file key(s) {', '.join(sorted(unknown))}")
        weights.fetch(keys, args.weights_dir)
        return 0
    rows = weights.status(args.weights_dir, verify=not args.no_verify)
    print(f"searched: {', '.join(map(str, weights.search_dirs(args.weights_dir)))}")
    for r in rows:
        state = "missing" if not r["present"] else (
            "present" if r["verified"] is None else ("verified" if r["verified"] else "CHECKSUM MISMATCH"))
        print(f"{state:<17} {r['file']:<44} {r['size'] / 1e6:8.2f} MB  for {','.join(r['used_by']):<14} "
              f"sha256 {r['sha256'][:16]}...  {r['path'] or ''}")
    missing = [r for r in rows if not r["present"]]
    if missing:
        print(f"{len(missing)} missing: run `gennorm weights fetch` when online, or copy the files into "
              f"{weights.search_dirs(args.weights_dir)[0]} (psnr and ssim need none)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0
