"""The on-disk layouts gennorm reads, as the sentences error messages end with.

One place for them so every "no images in X" message says the same thing, and suggests the
right `mode` when the folder holds the *other* layout (a common mix-up).
"""
from __future__ import annotations

from pathlib import Path

from gennorm.errors import DataError

ALIGNED = "an aligned dataset: ROOT/train, ROOT/test, ROOT/val holding images with A and B side by side (A|B)"
UNALIGNED = "an unaligned dataset: ROOT/trainA, ROOT/trainB, ROOT/testA, ROOT/testB"
SINGLE = "a folder of images (png, jpg, jpeg, bmp, tif, tiff, webp)"


def expected(layout: str, root: Path) -> str:
    """`layout` plus a hint when `root` looks like another layout."""
    root = Path(root)
    hint = ""
    if layout == ALIGNED and (root / "trainA").is_dir():
        hint = " (ROOT has trainA/: use mode 'unaligned')"
    elif layout == UNALIGNED and any((root / p).is_dir() for p in ("train", "test", "val")) \
            and not (root / "trainA").is_dir():
        hint = " (ROOT has train/ or test/: use mode 'aligned')"
    return layout + hint


def ab_folders(root: Path) -> tuple[Path, Path]:
    """The A and B image folders of a CycleGAN test set: ROOT/testA and ROOT/testB, or ROOT/A and ROOT/B."""
    root = Path(root)
    for a, b in (("testA", "testB"), ("A", "B")):
        if (root / a).is_dir() and (root / b).is_dir():
            return root / a, root / b
    raise DataError(f"{root}: --direction both needs testA/ and testB/ (or A/ and B/) in INPUT")
