"""`gennorm eval`: FID, KID, LPIPS, PSNR, SSIM between two folders (or a run's test split).

Prints a table and optionally writes the full result (metric values, image counts, protocol,
weight files with sha256, library versions) as JSON (gennorm.study.evaluate).
"""
from __future__ import annotations

import argparse

from gennorm.commands._types import device_or_auto, int_at_least, nonneg_int, pixel_limit, positive_int
from gennorm.metrics.protocols import DEFAULT_PROTOCOL, PROTOCOLS  # torch-free: names and their preprocessing

DESCRIPTION = """\
Evaluate generated images against real ones.

  FID, KID   compare the two sets as distributions (any file names, any counts)
  LPIPS      learned perceptual distance per pair (AlexNet; lpips-vgg, lpips-squeeze too)
  PSNR, SSIM per pair; pairs are matched by file name without extension

--metrics auto (the default) = fid,kid plus lpips,psnr,ssim when the file names pair up.
--protocol sets the FID/KID preprocessing, recorded in every result; compare a FID only with
FIDs of the same protocol:
  clean    clean-fid's (PIL bicubic on the 8-bit image; the default)
  legacy   pytorch-fid's (bilinear without antialiasing: the CycleGAN/CUT/PONO-era numbers)
  gennorm  antialiased bilinear in float (gennorm's first protocol; torchmetrics antialias=True)
Nothing is downloaded: a missing weight file stops with its name and where to put it
(see `gennorm weights status`). Real-image features are cached under $GENNORM_CACHE
(default ~/.cache/gennorm/fid_stats), so re-evaluating against the same real folder is fast.

examples:
  gennorm eval data/scenes/testB out/fakeB
  gennorm eval data/scenes/testB out/fakeB --metrics fid,kid --json eval.json
  gennorm eval data/scenes/testB out/fakeB --protocol legacy    # next to pytorch-fid numbers
  gennorm eval real/ fake/ --metrics psnr,ssim          # no weight files needed
  gennorm eval real/ fake/ --device cuda --batch-size 64 --weights-dir /data/weights
  gennorm eval --run runs/scenes_nc                      # translate the run's test split, evaluate it
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("real", nargs="?", help="folder of real images")
    parser.add_argument("fake", nargs="?", help="folder of generated images")
    parser.add_argument("--run", metavar="RUN_DIR", help="translate RUN_DIR's test split and evaluate it "
                                                         "(instead of REAL FAKE)")
    parser.add_argument("--metrics", default="auto",
                        help="comma list of fid,kid,lpips,lpips-vgg,lpips-squeeze,psnr,ssim, or auto (default)")
    parser.add_argument("--protocol", default=DEFAULT_PROTOCOL, choices=list(PROTOCOLS),
                        help="FID/KID preprocessing: clean (clean-fid, default), legacy (pytorch-fid), gennorm")
    parser.add_argument("--json", metavar="FILE", help="write the full result here (with --run: default "
                                                       "RUN_DIR/eval/metrics.json)")
    parser.add_argument("--device", type=device_or_auto, default="auto", help="cpu, cuda, cuda:1 or auto (default: cuda if available)")
    parser.add_argument("--batch-size", type=positive_int, default=16, help="images per forward pass (default 16)")
    parser.add_argument("--weights-dir", metavar="DIR", help="folder with the metric weight files (searched first; "
                                                             "then $GENNORM_WEIGHTS, then the torch hub cache)")
    parser.add_argument("--no-verify-weights", action="store_true",
                        help="use weight files whose sha256 is not the official one (recorded as verified: false)")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write cached real features")
    parser.add_argument("--kid-subset-size", type=int_at_least(2), default=1000, help="KID subset size (lowered to the "
                                                                          "smaller set's size, with a warning)")
    parser.add_argument("--kid-subsets", type=positive_int, default=100, help="number of KID subsets (default 100)")
    parser.add_argument("--seed", type=nonneg_int, default=0, help="seed of the KID subset draws (default 0)")
    parser.add_argument("--max-pixels", type=pixel_limit, default=int(100e6), metavar="N",
                        help="refuse images above N pixels before decoding any (default 100e6; 0: no limit)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from gennorm.errors import ConfigError
    from gennorm.study.evaluate import evaluate

    if args.run and (args.real or args.fake):
        raise ConfigError("give either REAL FAKE or --run RUN_DIR, not both")
    if not args.run and not (args.real and args.fake):
        raise ConfigError("give two folders, REAL and FAKE (or --run RUN_DIR); see gennorm eval --help")
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    evaluate(args.real, args.fake, run=args.run, metrics=args.metrics, json_path=args.json, device=args.device,
             batch_size=args.batch_size, weights_dir=args.weights_dir, kid_subset_size=args.kid_subset_size,
             kid_subsets=args.kid_subsets, seed=args.seed, use_cache=not args.no_cache,
             progress=False if args.quiet else None, verify_weights=not args.no_verify_weights,
             max_pixels=args.max_pixels, protocol=args.protocol)
    return 0
