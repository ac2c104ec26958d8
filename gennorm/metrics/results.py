"""An evaluation's result for people and files: which metrics `--metrics auto` picks, the table
`gennorm eval` prints, and the JSON file it writes (checked writable before a long evaluation).
"""
from __future__ import annotations

import os
from pathlib import Path

from gennorm.atomic import atomic_write_json
from gennorm.errors import GennormError, write_error
from gennorm.metrics import images
from gennorm.metrics.evaluate import UNPAIRED, available_metrics


def names_pair_up(real, fake) -> bool:
    """Whether the two folders hold the same file names (without extension): PSNR/SSIM/LPIPS can pair them."""
    r, f = images.list_folder(real, "real"), images.list_folder(fake, "fake")
    return {images.stem_key(real, p) for p in r} == {images.stem_key(fake, p) for p in f}


def auto_metrics(paired: bool, weights_dir=None, verify: bool = True) -> tuple[list[str], dict[str, str]]:
    """`--metrics auto`: (fid, kid, plus lpips, psnr, ssim when paired, of those whose weights are on
    disk (verify=False: any file of the right name); {skipped metric: why})."""
    wanted = list(UNPAIRED) + (["lpips", "psnr", "ssim"] if paired else [])
    present = set(available_metrics(weights_dir, verify))
    return [m for m in wanted if m in present], {m: "weights not on disk" for m in wanted if m not in present}


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
    lines += [f"note: {name}: {text}" for name, text in result.get("notes", {}).items()]
    if "inception" in result["protocol"]:
        lines.append(f"FID/KID protocol: {result['protocol']['name']} ({result['protocol']['inception']['reference']}); "
                     f"real features cache: {result['cache'].get('real_features')}")
    for key, w in result["weights"].items():
        lines.append(f"weights {key}: {w['file']} ({'official sha256' if w['verified'] else 'NOT the official file'})")
    return "\n".join(lines)


def write_json(path: Path, result: dict) -> None:
    try:
        atomic_write_json(path, result)
    except OSError as err:
        raise write_error(f"--json {path}", err, "the values are in the table above") from None


def check_writable(path: Path) -> None:
    """Fail before a long evaluation, not after it, when the --json file's folder cannot be written."""
    folder = Path(path).resolve().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise GennormError(f"cannot write --json {path}: {folder} is not a writable folder (read-only "
                           "filesystem or no permission); choose another --json FILE")
