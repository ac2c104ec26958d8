"""The built-in labels -> photo dataset, `gennorm data scenes OUT`, written in the standard layouts.

    gennorm data scenes data/scenes --size 128 --count 400 --seed 0

Scene i is drawn from `numpy.random.default_rng([seed, i])` (layout in `scene_layout`,
rendering in `scene_render`), so it is the same whatever `count` is, and the files are
byte-identical across runs with the same arguments. A is the colour-coded label image, B the
photo. The last `test_count` scenes are the test split (default `round(count * 0.15)`, at
least 2: 400 -> 340 train / 60 test). Written:

    OUT/paired/train/NNNN.png, OUT/paired/test/NNNN.png      A|B side by side (width 2*size)
    OUT/unpaired/trainA, trainB, testA, testB/NNNN.png       A from even scene numbers, B
                                                              from odd ones: never the same pair
    OUT/scenes.json (parameters, splits, class legend), OUT/README.txt

NNNN is the scene number. Everything is written into a temporary sibling folder that is moved
to OUT at the end, so an interrupted run never leaves a half dataset at OUT.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from gennorm.data.scene_layout import CLASSES, colorize, draw_label_map
from gennorm.data.scene_render import render_photo
from gennorm.errors import DataError

FORMAT_VERSION = 1
DEFAULT_TEST_FRACTION = 0.15


def render_scene(index: int, size: int = 128, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Scene `index`: (A label image, B photo), each uint8 [size, size, 3]."""
    rng = np.random.default_rng([int(seed), int(index)])
    labels, horizon = draw_label_map(size, rng)  # [S, S] class ids
    return colorize(labels), render_photo(labels, horizon, rng)


def split_counts(count: int, test_fraction: float = DEFAULT_TEST_FRACTION,
                 test_count: int | None = None) -> tuple[int, int]:
    """(train, test) sizes; both >= 2 so every unpaired folder gets at least one image."""
    if count < 4:
        raise ValueError(f"count must be >= 4 (2 train + 2 test scenes); got {count}")
    if test_count is None:
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1); got {test_fraction}")
        test_count = min(max(2, int(round(count * test_fraction))), count - 2)
    if not 2 <= test_count <= count - 2:
        raise ValueError(f"test count must be between 2 and count - 2 = {count - 2}; got {test_count}")
    return count - test_count, test_count


def generate_scenes(out: str | os.PathLike, size: int = 128, count: int = 400, seed: int = 0,
                    test_fraction: float = DEFAULT_TEST_FRACTION, test_count: int | None = None,
                    overwrite: bool = False) -> dict:
    """Write the scenes dataset to `out` (see module doc); return the metadata in scenes.json.

    If `out` already holds a scenes dataset with the same parameters, nothing is written and
    its metadata is returned (generation is deterministic). A different scenes dataset there
    is replaced only with `overwrite=True`; any other non-empty folder, or a file, at `out` is
    a `DataError` (never deleted).
    """
    if size < 16:
        raise ValueError(f"size must be >= 16; got {size}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0; got {seed}")
    train, test = split_counts(count, test_fraction, test_count)
    out = Path(out)
    meta = _metadata(size, count, seed, train, test)
    existing = _check_out(out, meta, overwrite)
    if existing is not None:
        return existing
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        _write_all(tmp, meta)
        if out.exists():
            shutil.rmtree(out) if any(out.iterdir()) else out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


def _metadata(size: int, count: int, seed: int, train: int, test: int) -> dict:
    width = max(4, len(str(count - 1)))
    return {
        "dataset": "gennorm scenes", "format_version": FORMAT_VERSION,
        "size": size, "count": count, "seed": seed, "train_count": train, "test_count": test,
        "file_name": f"scene number, zero-padded to {width} digits",
        "A": "colour-coded label image", "B": "rendered photo",
        "paired": {"train": f"scenes 0..{train - 1}", "test": f"scenes {train}..{count - 1}",
                   "layout": "A|B side by side, width 2*size (pix2pix aligned)"},
        "unpaired": {"trainA": "even train scenes", "trainB": "odd train scenes",
                     "testA": "even test scenes", "testB": "odd test scenes"},
        "classes": [{"id": c.id, "name": c.name, "color": list(c.color), "texture": c.texture} for c in CLASSES],
    }


def _check_out(out: Path, meta: dict, overwrite: bool) -> dict | None:
    """Existing metadata if `out` already holds this exact dataset; raise if `out` is unusable."""
    if out.exists() and not out.is_dir():
        raise DataError(f"{out} exists and is not a folder; give a new or empty folder for the scenes dataset")
    if not out.exists() or not any(out.iterdir()):
        return None
    try:
        old = json.loads((out / "scenes.json").read_text())
    except (OSError, ValueError):
        raise DataError(f"{out} is not empty and holds no scenes dataset (no readable scenes.json); "
                        "give a new or empty folder") from None
    if old == meta:
        return old
    if not overwrite:
        raise DataError(f"{out} holds a scenes dataset with other parameters (see {out / 'scenes.json'}); "
                        "pass --overwrite (overwrite=True) to replace it, or give a new folder")
    return None


def _write_all(root: Path, meta: dict) -> None:
    train, count = meta["train_count"], meta["count"]
    width = max(4, len(str(count - 1)))
    folders = {k: root / k for k in ("paired/train", "paired/test", "unpaired/trainA", "unpaired/trainB",
                                      "unpaired/testA", "unpaired/testB")}
    for folder in folders.values():
        folder.mkdir(parents=True)
    for i in range(count):
        a, b = render_scene(i, meta["size"], meta["seed"])  # [S, S, 3] each
        split = "train" if i < train else "test"
        name = f"{i:0{width}d}.png"
        _save(np.concatenate([a, b], axis=1), folders[f"paired/{split}"] / name)
        if i % 2 == 0:
            _save(a, folders[f"unpaired/{split}A"] / name)
        else:
            _save(b, folders[f"unpaired/{split}B"] / name)
    (root / "scenes.json").write_text(json.dumps(meta, indent=2) + "\n")
    (root / "README.txt").write_text(_readme(meta))


def _save(arr: np.ndarray, path: Path) -> None:
    Image.fromarray(arr).save(path, format="PNG", compress_level=6)


def _readme(meta: dict) -> str:
    legend = "\n".join(f"  {c['id']}  {c['name']:<9} RGB {tuple(c['color'])!s:<16} {c['texture']}"
                       for c in meta["classes"])
    return (
        f"gennorm scenes: a built-in labels -> photo translation dataset\n\n"
        f"generated by: gennorm data scenes OUT --size {meta['size']} --count {meta['count']} "
        f"--test-count {meta['test_count']} --seed {meta['seed']}\n"
        f"{meta['count']} scenes of {meta['size']}x{meta['size']} px: {meta['train_count']} train "
        f"(scenes 0..{meta['train_count'] - 1}), {meta['test_count']} test (the rest).\n"
        f"A = colour-coded label image, B = rendered photo (skimage bundled textures, tint, light, noise).\n\n"
        f"paired/train, paired/test        A|B side by side (pix2pix aligned layout): "
        f"create_dataset('aligned', OUT/paired)\n"
        f"unpaired/trainA ... testB        A from even scene numbers, B from odd ones (CycleGAN layout): "
        f"create_dataset('unaligned', OUT/unpaired)\n\n"
        f"class legend (id, name, label colour, photo texture):\n{legend}\n"
    )
