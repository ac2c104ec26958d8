"""Aligned (paired) dataset: `ROOT/{phase}/*.png`, each image A and B side by side (A|B).

The pix2pix layout. Each file is split at width/2 (an odd width is a `DataError` naming the
file: the halves would differ in size); A and B get the *same* resize, crop and flip, drawn
from `item_rng(seed, epoch, index, "AB")`. `direction="BtoA"` swaps the halves, so the item's
"A" is always the network input (with `input_nc` channels) and "B" the target (`output_nc`);
models must not swap again. Items: {"A": [C, H, W], "B": [C, H, W] in [-1, 1], "A_paths",
"B_paths"} (both paths are the one file).
"""
from __future__ import annotations

from pathlib import Path

from gennorm.data import layouts
from gennorm.data.base import EpochDataset
from gennorm.data.images import require_images
from gennorm.data.transforms import PreprocessOptions, apply_transform, sample_params, to_tensor
from gennorm.errors import DataError


class AlignedDataset(EpochDataset):
    def __init__(self, root: str | Path, phase: str = "train", opts: PreprocessOptions | None = None,
                 direction: str = "AtoB", input_nc: int = 3, output_nc: int = 3,
                 max_size: int | None = None, skip_corrupt: bool = False, seed: int = 0) -> None:
        super().__init__(opts or PreprocessOptions(), seed=seed, skip_corrupt=skip_corrupt)
        self.root, self.phase = Path(root), phase
        self.dir = self.root / phase
        self.swap = direction == "BtoA"
        self.input_nc, self.output_nc = input_nc, output_nc
        expected = layouts.expected(layouts.ALIGNED, self.root)
        paths = require_images(self.dir, expected, max_size)
        self.paths = self.scan(paths, self.dir, expected, check=_check_even_width)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        path = self.paths[index]
        ab = self.load(path, grayscale=False)
        _check_even_width(path, ab.size)
        w, h = ab.size
        left, right = ab.crop((0, 0, w // 2, h)), ab.crop((w // 2, 0, w, h))
        a, b = (right, left) if self.swap else (left, right)
        params = sample_params(a.size, self.opts, self.rng(index, "AB"))  # one draw for both halves
        a = apply_transform(a.convert("L") if self.input_nc == 1 else a, self.opts, params)
        b = apply_transform(b.convert("L") if self.output_nc == 1 else b, self.opts, params)
        return {"A": to_tensor(a), "B": to_tensor(b), "A_paths": str(path), "B_paths": str(path)}


def _check_even_width(path: Path, size: tuple[int, int]) -> None:
    w, h = size
    if w % 2 or w < 2:
        raise DataError(
            f"aligned image {path} has odd width {w} (height {h}); expected A and B side by side, "
            f"each half the same width (total width 2*W)"
        )
