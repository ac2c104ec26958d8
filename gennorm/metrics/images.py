"""Image folders for the metrics: listing, pairing by name, and batched reading as tensors.

Reading goes through `gennorm.data.images.load_image` (8-bit RGB from any mode: grayscale,
RGBA/palette composited onto white, 16-bit scaled, EXIF orientation applied; a corrupt file is
a `DataError` naming it). Only the images directly in a folder count (see `list_folder`),
sorted by name, hidden files skipped.

Paired metrics match files by their path relative to the folder without the extension
("stem"), so `real/0001.png` pairs with `fake/0001.jpg`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from gennorm.data.images import DEFAULT_MAX_PIXELS, IMG_EXTENSIONS, check_size, is_image_file, load_image  # noqa: F401
from gennorm.errors import DataError


def list_folder(folder: str | os.PathLike, role: str) -> list[Path]:
    """Sorted image files directly in `folder` (not in subfolders); `DataError` if missing or empty.

    Not recursive on purpose: `gennorm translate` writes its outputs at the top of the output
    folder and the inputs/ and targets/ it shows next to them in subfolders, and none of those
    may count as generated images. `role` ("real"/"fake") goes into the error message.
    """
    folder = Path(folder)
    expected = f"a folder of {role} images ({', '.join(e[1:] for e in IMG_EXTENSIONS)}), not in subfolders"
    if not folder.is_dir():
        what = f"folder {folder} does not exist" if not folder.exists() else f"{folder} is not a folder"
        raise DataError(f"{what}; expected {expected}")
    paths = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and is_image_file(p))
    if not paths:
        raise DataError(f"no images in {folder}; expected {expected}")
    return paths


def stem_key(folder: str | os.PathLike, path: Path) -> str:
    """'0001' for FOLDER/0001.png: the name paired metrics match on."""
    return path.relative_to(folder).with_suffix("").as_posix()


def pair_by_name(real_dir, fake_dir, real: list[Path], fake: list[Path], show: int = 5) -> list[tuple[Path, Path]]:
    """[(real_path, fake_path)] matched by stem; `DataError` naming a few unmatched files."""
    r = {stem_key(real_dir, p): p for p in real}
    f = {stem_key(fake_dir, p): p for p in fake}
    if len(r) != len(real) or len(f) != len(fake):
        raise DataError(f"two files share a name (stem) in {real_dir if len(r) != len(real) else fake_dir}; "
                        "paired metrics match real and fake images by file name without extension")
    only_real, only_fake = sorted(r.keys() - f.keys()), sorted(f.keys() - r.keys())
    if only_real or only_fake:
        def few(names):
            return ", ".join(names[:show]) + (f" and {len(names) - show} more" if len(names) > show else "")
        parts = [f"{len(real)} real vs {len(fake)} fake images"]
        if only_real:
            parts.append(f"only in {real_dir}: {few(only_real)}")
        if only_fake:
            parts.append(f"only in {fake_dir}: {few(only_fake)}")
        raise DataError("paired metrics (lpips, psnr, ssim) need the same file names in both folders; "
                        + "; ".join(parts))
    return [(r[k], f[k]) for k in sorted(r)]


def read_uint8(path: Path) -> torch.Tensor:
    """One image as uint8 [3, H, W] (RGB)."""
    arr = np.asarray(load_image(path, mode="RGB"), dtype=np.uint8)  # [H, W, 3]
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)


def iter_batches(paths: list[Path], batch_size: int) -> Iterator[list[torch.Tensor]]:
    """Lists of uint8 [3, H, W] tensors, `batch_size` at a time (sizes may differ)."""
    for i in range(0, len(paths), batch_size):
        yield [read_uint8(p) for p in paths[i:i + batch_size]]


def progress_bar(total: int, desc: str, enabled: bool | None):
    """A tqdm bar on stderr (`enabled=None`: only when stderr is a terminal)."""
    return tqdm(total=total, desc=desc, unit="img", disable=(None if enabled is None else not enabled),
                leave=False, dynamic_ncols=True)
