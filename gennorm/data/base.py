"""What every gennorm dataset shares: options, the epoch, per-item RNG, and the file scan.

The epoch lives on the dataset (`set_epoch(epoch)`, call it before iterating each epoch, as
with `DistributedSampler`); `__getitem__` draws all its randomness from
`item_rng(seed, epoch, index, stream)`, never from `random`/`np.random`/`torch` global state,
so an item is a pure function of (seed, epoch, index). DataLoader workers get a copy of the
dataset when the iterator starts, so with `persistent_workers=True` create a new loader (or
iterator) after `set_epoch`.

The scan at construction reads every file's header (cheap; catches non-images, wrong
layouts). With `skip_corrupt=True` it also decodes every file and drops the unreadable ones
with a warning naming each; without it, a file that fails to decode later raises `DataError`
naming it from `__getitem__`.
"""
from __future__ import annotations

import random
import warnings
from pathlib import Path
from typing import Callable

from PIL import Image
from torch.utils.data import Dataset

from gennorm.data.images import check_image, load_image, verify_image
from gennorm.data.transforms import PreprocessOptions, item_rng
from gennorm.errors import DataError


class EpochDataset(Dataset):
    """Base class: holds `opts`, `seed`, `epoch`; subclasses implement `__len__`/`__getitem__`."""

    def __init__(self, opts: PreprocessOptions, seed: int = 0, skip_corrupt: bool = False) -> None:
        self.opts = opts
        self.seed = int(seed)
        self.epoch = 0
        self.skip_corrupt = bool(skip_corrupt)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose crops/flips/pairings `__getitem__` returns."""
        self.epoch = int(epoch)

    def rng(self, index: int, stream: str) -> random.Random:
        """The RNG for one draw of item `index` in the current epoch (see `item_rng`)."""
        return item_rng(self.seed, self.epoch, index, stream)

    def scan(self, paths: list[Path], folder: Path, expected: str,
             check: Callable[[Path, tuple[int, int]], None] | None = None) -> list[Path]:
        """Check each file (header, or full decode with skip_corrupt); return the usable ones.

        `check(path, (w, h))` may raise `DataError` for a layout problem (e.g. odd width).
        Without skip_corrupt the first bad file raises; with it, bad files are skipped with a
        warning, and a folder left with no usable image raises `DataError` naming it.
        """
        good, skipped = [], []
        for path in paths:
            try:
                size = verify_image(path) if self.skip_corrupt else check_image(path)
                if check is not None:
                    check(path, size)
            except DataError as err:
                if not self.skip_corrupt:
                    raise
                warnings.warn(f"skipping {path}: {err}", stacklevel=3)
                skipped.append(path)
                continue
            good.append(path)
        if not good:
            raise DataError(f"no readable images in {folder} ({len(skipped)} skipped as corrupt); expected {expected}")
        return good

    def load(self, path: Path, grayscale: bool) -> Image.Image:
        """Decode one file as 8-bit L (grayscale) or RGB; `DataError` naming it if it fails."""
        return load_image(path, "L" if grayscale else "RGB")
