"""`create_dataset`: one call from options (config values) to a torch Dataset.

Argument errors (unknown mode/phase/direction/preprocess, channels not 1 or 3) raise
`ValueError` naming the argument; data problems raise `gennorm.errors.DataError` naming the
file or folder and the expected layout. `serial_batches` only changes the unaligned B
pairing; shuffling is the DataLoader's job.
"""
from __future__ import annotations

from pathlib import Path

from gennorm.data.aligned import AlignedDataset
from gennorm.data.single import SingleDataset
from gennorm.data.transforms import PreprocessOptions
from gennorm.data.unaligned import UnalignedDataset

DATASET_MODES = ("aligned", "unaligned", "single")
DIRECTIONS = ("AtoB", "BtoA")


def create_dataset(mode: str, root: str | Path, phase: str = "train", direction: str = "AtoB",
                   load_size: int = 286, crop_size: int = 256, preprocess: str = "resize_and_crop",
                   no_flip: bool = False, input_nc: int = 3, output_nc: int = 3,
                   serial_batches: bool = False, max_size: int | None = None,
                   skip_corrupt: bool = False, seed: int = 0):
    """A dataset of `mode` ("aligned" | "unaligned" | "single") over `root`.

    Items are dicts with "A" ([input_nc, H, W], float32 in [-1, 1]) and "A_paths" (str), plus
    "B" ([output_nc, H, W]) and "B_paths" for aligned/unaligned. `direction="BtoA"` swaps A
    and B. Call `dataset.set_epoch(epoch)` each epoch; items depend only on (seed, epoch, index).
    """
    if mode not in DATASET_MODES:
        raise ValueError(f"dataset mode must be one of {', '.join(DATASET_MODES)}; got {mode!r}")
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be 'AtoB' or 'BtoA'; got {direction!r}")
    for name, nc in (("input_nc", input_nc), ("output_nc", output_nc)):
        if nc not in (1, 3):
            raise ValueError(f"{name} must be 1 (grayscale) or 3 (RGB) for image datasets; got {nc!r}")
    if not isinstance(phase, str) or not phase or "/" in phase or "\\" in phase:
        raise ValueError(f"phase must be a folder name such as 'train', 'test' or 'val'; got {phase!r}")
    if max_size is not None and int(max_size) < 1:
        raise ValueError(f"max_size must be >= 1 or None; got {max_size!r}")
    opts = PreprocessOptions(preprocess=preprocess, load_size=int(load_size), crop_size=int(crop_size),
                             no_flip=bool(no_flip))
    common = dict(opts=opts, max_size=max_size, skip_corrupt=skip_corrupt, seed=seed)
    if mode == "aligned":
        return AlignedDataset(root, phase, direction=direction, input_nc=input_nc, output_nc=output_nc, **common)
    if mode == "unaligned":
        return UnalignedDataset(root, phase, direction=direction, input_nc=input_nc, output_nc=output_nc,
                                serial_batches=serial_batches, **common)
    return SingleDataset(root, input_nc=input_nc, **common)
