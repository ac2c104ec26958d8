"""`gennorm eval`: FID, KID, LPIPS, PSNR, SSIM between two folders (or a run's test split).

Prints a table and optionally writes the full result (metric values, image counts, protocol,
weight files with sha256, library versions) as JSON. Heavy imports happen inside `run`.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from gennorm.metrics.protocols import DEFAULT_PROTOCOL, PROTOCOLS

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
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto (default: cuda if available)")
    parser.add_argument("--batch-size", type=int, default=16, help="images per forward pass (default 16)")
    parser.add_argument("--weights-dir", metavar="DIR", help="folder with the metric weight files (searched first; "
                                                             "then $GENNORM_WEIGHTS, then the torch hub cache)")
    parser.add_argument("--no-verify-weights", action="store_true",
                        help="use weight files whose sha256 is not the official one (recorded as verified: false)")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write cached real features")
    parser.add_argument("--kid-subset-size", type=int, default=1000, help="KID subset size (lowered to the "
                                                                          "smaller set's size, with a warning)")
    parser.add_argument("--kid-subsets", type=int, default=100, help="number of KID subsets (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the KID subset draws (default 0)")
    parser.add_argument("--max-pixels", type=float, default=100e6, metavar="N",
                        help="refuse images above N pixels before decoding any (default 100e6; 0: no limit)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from gennorm.errors import ConfigError
    from gennorm.metrics.evaluate import PAIRED, UNPAIRED, available_metrics, evaluate_folders, parse_metrics

    if args.run and (args.real or args.fake):
        raise ConfigError("give either REAL FAKE or --run RUN_DIR, not both")
    if not args.run and not (args.real and args.fake):
        raise ConfigError("give two folders, REAL and FAKE (or --run RUN_DIR); see gennorm eval --help")
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    real, fake, paired, json_path = args.real, args.fake, None, args.json
    if json_path:
        _check_writable(Path(json_path))
    if args.run:
        real, fake, paired = _translate_run(args)
        json_path = json_path or str(Path(args.run) / "eval" / "metrics.json")
    if args.metrics.strip().lower() == "auto":
        if paired is None:
            paired = _names_pair_up(real, fake)
        wanted = list(UNPAIRED) + (["lpips", "psnr", "ssim"] if paired else [])
        present = set(available_metrics(args.weights_dir))
        metrics = [m for m in wanted if m in present]
        skipped = [m for m in wanted if m not in present]
        args.skipped = {m: "weights not on disk" for m in skipped}  # recorded in the result (and cards)
        if skipped:
            print(f"note: skipping {', '.join(skipped)} (weights not on disk; see `gennorm weights status`)",
                  file=sys.stderr)
        if not metrics:
            raise ConfigError("no metric can run: the names of the two folders do not pair up (PSNR/SSIM/LPIPS) "
                              "and the Inception weights for FID/KID are missing; see `gennorm weights status`")
    else:
        metrics = parse_metrics(args.metrics)
        if paired is False and set(metrics) & set(PAIRED):
            raise ConfigError("this run's test split is unpaired (unaligned dataset): use --metrics fid,kid")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # evaluate_folders returns its warnings; we print them once below
        result = evaluate_folders(real, fake, metrics, device=args.device, batch_size=args.batch_size,
                                  weights_dir=args.weights_dir, kid_subset_size=args.kid_subset_size,
                                  kid_subsets=args.kid_subsets, seed=args.seed, use_cache=not args.no_cache,
                                  progress=False if args.quiet else None,
                                  verify_weights=not args.no_verify_weights,
                                  max_pixels=int(args.max_pixels) or None, protocol=args.protocol)
    if args.run:
        result["run"] = str(args.run)
    if getattr(args, "skipped", None):
        result["skipped"] = args.skipped
    for text in result.get("warnings", []):
        print(f"gennorm eval: warning: {text}", file=sys.stderr)
    print(format_table(result))
    if json_path:
        _write_json(Path(json_path), result)
        print(f"wrote {json_path}")
    return 0


def format_table(result: dict) -> str:
    m, c = result["metrics"], result["counts"]
    lines = [f"{'metric':<14} {'value':>12}", f"{'-' * 14} {'-' * 12}"]
    for name, value in m.items():
        if name.startswith("kid_") or name == "kid_std":
            continue
        text = f"{value:12.6f}" if name == "kid" else f"{value:12.4f}"
        if name == "kid":
            text += f"  ± {m['kid_std']:.6f} ({m['kid_subsets']} subsets of {m['kid_subset_size']})"
        lines.append(f"{name:<14} {text}")
    counts = f"real {c['real']}, fake {c['fake']}" + (f", pairs {c['pairs']}" if "pairs" in c else "")
    lines.append(f"images: {counts}; device {result['device']}")
    if "inception" in result["protocol"]:
        lines.append(f"FID/KID protocol: {result['protocol']['name']} ({result['protocol']['inception']['reference']}); "
                     f"real features cache: {result['cache'].get('real_features')}")
    for key, w in result["weights"].items():
        lines.append(f"weights {key}: {w['file']} ({'official sha256' if w['verified'] else 'NOT the official file'})")
    return "\n".join(lines)


def _names_pair_up(real, fake) -> bool:
    from gennorm.metrics import images

    r, f = images.list_folder(real, "real"), images.list_folder(fake, "fake")
    return {images.stem_key(real, p) for p in r} == {images.stem_key(fake, p) for p in f}


def _translate_run(args) -> tuple[str, str, bool]:
    """Translate the run's test split (gennorm.inference.translate_test_split): (real, fake, paired)."""
    from gennorm.errors import GennormError
    from gennorm.inference import translate_test_split

    run_dir = Path(args.run)
    if not run_dir.is_dir():
        raise GennormError(f"run directory {run_dir} does not exist")
    device = "cpu" if args.device == "auto" and not _cuda() else ("cuda" if args.device == "auto" else args.device)
    split = translate_test_split(run_dir, run_dir / "eval" / "test_fake", device=device)
    return str(split["real"]), str(split["fake"]), bool(split.get("paired", False))


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _write_json(path: Path, result: dict) -> None:
    from gennorm.atomic import atomic_write_json
    from gennorm.errors import write_error

    try:
        atomic_write_json(path, result)
    except OSError as err:
        raise write_error(f"--json {path}", err, "the values are in the table above") from None


def _check_writable(path: Path) -> None:
    """Fail before a long evaluation, not after it, when the --json file's folder cannot be written."""
    import os

    from gennorm.errors import GennormError

    folder = Path(path).resolve().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise GennormError(f"cannot write --json {path}: {folder} is not a writable folder (read-only "
                           "filesystem or no permission); choose another --json FILE")
