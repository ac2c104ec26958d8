"""Single-folder dataset: every image under ROOT (recursive), for translating or testing.

Items: {"A": [C, H, W] in [-1, 1] with `input_nc` channels, "A_paths"}. `direction` does not
apply (there is one domain); the crop/flip randomness (stream "A") follows (seed, epoch,
index) like the other datasets. For inference use preprocess "none" (or no_flip=True).
"""
from __future__ import annotations

from pathlib import Path

from gennorm.data import layouts
from gennorm.data.base import EpochDataset
from gennorm.data.images import require_images
from gennorm.data.transforms import PreprocessOptions, apply_transform, sample_params, to_tensor


class SingleDataset(EpochDataset):
    def __init__(self, root: str | Path, opts: PreprocessOptions | None = None, input_nc: int = 3,
                 max_size: int | None = None, skip_corrupt: bool = False, seed: int = 0) -> None:
        super().__init__(opts or PreprocessOptions(), seed=seed, skip_corrupt=skip_corrupt)
        self.root = Path(root)
        self.input_nc = input_nc
        self.A_paths = self.scan(require_images(self.root, layouts.SINGLE, max_size), self.root, layouts.SINGLE)

    def __len__(self) -> int:
        return len(self.A_paths)

    def __getitem__(self, index: int) -> dict:
        path = self.A_paths[index]
        a = self.load(path, grayscale=self.input_nc == 1)
        a = apply_transform(a, self.opts, sample_params(a.size, self.opts, self.rng(index, "A")))
        return {"A": to_tensor(a), "A_paths": str(path)}
