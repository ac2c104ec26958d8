"""Unaligned (unpaired) dataset: `ROOT/{phase}A` and `ROOT/{phase}B`, any sizes and counts.

The CycleGAN layout. Length is max(len A, len B); item i takes A[i % len A] and, with
`serial_batches`, B[i % len B], otherwise a B index drawn from `item_rng(seed, epoch, i,
"B-index")` (classic draws it from the global RNG; here it repeats exactly on resume). A and
B get independent crops/flips (streams "A" and "B"). `direction="BtoA"` swaps the folders, so
"A" is always the network input with `input_nc` channels.
"""
from __future__ import annotations

from pathlib import Path

from gennorm.data import layouts
from gennorm.data.base import EpochDataset
from gennorm.data.images import require_images
from gennorm.data.transforms import PreprocessOptions, apply_transform, sample_params, to_tensor
from gennorm.errors import DataError


class UnalignedDataset(EpochDataset):
    def __init__(self, root: str | Path, phase: str = "train", opts: PreprocessOptions | None = None,
                 direction: str = "AtoB", input_nc: int = 3, output_nc: int = 3,
                 serial_batches: bool = False, max_size: int | None = None,
                 skip_corrupt: bool = False, seed: int = 0) -> None:
        super().__init__(opts or PreprocessOptions(), seed=seed, skip_corrupt=skip_corrupt)
        self.root, self.phase = Path(root), phase
        self.serial_batches = bool(serial_batches)
        self.input_nc, self.output_nc = input_nc, output_nc
        expected = layouts.expected(layouts.UNALIGNED, self.root)
        if not self.root.is_dir():
            what = "does not exist" if not self.root.exists() else "is not a folder"
            raise DataError(f"dataset root {self.root} {what}; expected {expected}")
        dir_a, dir_b = self.root / f"{phase}A", self.root / f"{phase}B"
        if direction == "BtoA":
            dir_a, dir_b = dir_b, dir_a
        self.dir_A, self.dir_B = dir_a, dir_b
        self.A_paths = self.scan(require_images(dir_a, expected, max_size), dir_a, expected)
        self.B_paths = self.scan(require_images(dir_b, expected, max_size), dir_b, expected)

    def __len__(self) -> int:
        return max(len(self.A_paths), len(self.B_paths))

    def __getitem__(self, index: int) -> dict:
        a_path = self.A_paths[index % len(self.A_paths)]
        if self.serial_batches:
            b_path = self.B_paths[index % len(self.B_paths)]
        else:
            b_path = self.B_paths[self.rng(index, "B-index").randrange(len(self.B_paths))]
        a = self.load(a_path, grayscale=self.input_nc == 1)
        b = self.load(b_path, grayscale=self.output_nc == 1)
        a = apply_transform(a, self.opts, sample_params(a.size, self.opts, self.rng(index, "A")))
        b = apply_transform(b, self.opts, sample_params(b.size, self.opts, self.rng(index, "B")))
        return {"A": to_tensor(a), "B": to_tensor(b), "A_paths": str(a_path), "B_paths": str(b_path)}
