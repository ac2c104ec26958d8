"""The built-in labels -> photo dataset, `gennorm data scenes OUT`, written in the standard layouts.

    gennorm data scenes data/scenes --size 128 --count 400 --seed 0

Scene i is drawn from `numpy.random.default_rng([seed, i])` (the label map, then the photo
rendered from it), so it is the same whatever `count` is, and the files are
byte-identical across runs with the same arguments. A is the colour-coded label image, B the
photo. The last `test_count` scenes are the test split (default `round(count * 0.15)`, at
least 2: 400 -> 340 train / 60 test). Written:

    OUT/paired/train/NNNN.png, OUT/paired/test/NNNN.png      A|B side by side (width 2*size)
    OUT/unpaired/trainA, trainB, testA, testB/NNNN.png       A from even scene numbers, B
                                                              from odd ones: never the same pair
    OUT/scenes.json (parameters, splits, class legend), OUT/README.txt

NNNN is the scene number. Everything is written into a temporary sibling folder that is moved
to OUT at the end (an old dataset at OUT is moved aside whole first), so an interrupted run
never leaves a half dataset at OUT; one writer at a time (the lock PARENT/.OUT.lock), and the
leftovers of killed writers are removed by the next run (gennorm.locks).

The file reads top to bottom: the classes and how a label map is drawn, how a photo is
rendered from it, then writing the dataset.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image, ImageDraw

from gennorm.atomic import writer_tag
from gennorm.errors import DataError
from gennorm.locks import FolderLock, sweep_leftovers, write_marker


# ----------------------------------------------------------------------------------------------
# label maps
#
# Random label maps for the built-in scenes task: the classes and how a scene is drawn.
#
# A scene is a landscape: a wavy horizon splits sky from ground (grass or sand); then, each with
# some probability, distant rock mountains, buildings standing on the horizon, tree crowns
# (ellipses), a lake (ellipse), a road (a trapezoid towards a vanishing point) and boulders
# (polygons), drawn in that order so later ones occlude earlier ones. Shapes are rasterised by
# PIL without anti-aliasing, so every pixel holds exactly one class id. Everything is drawn from
# the `numpy.random.Generator` passed in, so a scene is a pure function of its RNG state.
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SceneClass:
    id: int
    name: str
    color: tuple[int, int, int]  # colour in the label image (A)
    texture: str  # what the photo (B) is made of (see the photos section)


CLASSES: tuple[SceneClass, ...] = (
    SceneClass(0, "sky", (70, 130, 180), "vertical gradient + procedural clouds"),
    SceneClass(1, "grass", (152, 251, 152), "skimage.data.grass, green tint"),
    SceneClass(2, "sand", (244, 164, 96), "skimage.data.gravel (fine), sand tint"),
    SceneClass(3, "water", (0, 0, 230), "procedural ripples + sky reflection, blue tint"),
    SceneClass(4, "road", (128, 64, 128), "skimage.data.gravel (very fine), asphalt grey"),
    SceneClass(5, "building", (220, 20, 60), "skimage.data.brick, brick/stone tint"),
    SceneClass(6, "tree", (0, 100, 0), "skimage.data.grass (coarse, blotchy), dark green"),
    SceneClass(7, "rock", (139, 119, 101), "skimage.data.gravel (coarse), grey-brown"),
)
SKY, GRASS, SAND, WATER, ROAD, BUILDING, TREE, ROCK = range(len(CLASSES))


def draw_label_map(size: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """A [size, size] uint8 map of class ids, and the horizon's mean row (for rendering)."""
    s = size
    img = Image.new("L", (s, s), SKY)
    draw = ImageDraw.Draw(img)
    xs = np.linspace(0, s, 33)
    horizon = s * rng.uniform(0.3, 0.6)
    hill = s * rng.uniform(0.0, 0.08) * np.sin(xs / s * rng.uniform(2, 9) + rng.uniform(0, 6.3))
    ys = horizon + rng.uniform(-0.15, 0.15) * (xs - s / 2) + hill  # [33] horizon row per x
    ground = GRASS if rng.random() < 0.7 else SAND
    draw.polygon(_pts(list(zip(xs, ys)) + [(s, s), (0, s)]), fill=ground)

    def horizon_at(x: float) -> float:
        return float(np.interp(x, xs, ys))

    if rng.random() < 0.4:  # distant mountains: a jagged band above the horizon
        mx = np.linspace(0, s, int(rng.integers(4, 9)))
        my = [horizon_at(x) - s * rng.uniform(0.05, 0.25) for x in mx]
        draw.polygon(_pts(list(zip(mx, my)) + [(s, horizon_at(s) + 1), (0, horizon_at(0) + 1)]), fill=ROCK)
    if rng.random() < 0.6:  # buildings standing on the horizon
        for _ in range(int(rng.integers(1, 5))):
            w, h = s * rng.uniform(0.08, 0.25), s * rng.uniform(0.1, 0.4)
            x0 = rng.uniform(-0.05, 0.95) * s
            base = horizon_at(x0 + w / 2) + s * rng.uniform(0.0, 0.05)
            draw.rectangle(_pts([(x0, base - h), (x0 + w, base)]), fill=BUILDING)
    if rng.random() < 0.7:  # tree crowns around the horizon
        for _ in range(int(rng.integers(1, 6))):
            cx = rng.uniform(0, s)
            cy = horizon_at(cx) + s * rng.uniform(-0.1, 0.1)
            rx, ry = s * rng.uniform(0.04, 0.12), s * rng.uniform(0.05, 0.16)
            draw.ellipse(_pts([(cx - rx, cy - ry), (cx + rx, cy + ry)]), fill=TREE)
    if rng.random() < 0.5:  # a lake in the ground
        cx, cy = rng.uniform(0.2, 0.8) * s, rng.uniform(horizon + 0.1 * s, s)
        rx, ry = s * rng.uniform(0.15, 0.45), s * rng.uniform(0.05, 0.15)
        draw.ellipse(_pts([(cx - rx, cy - ry), (cx + rx, cy + ry)]), fill=WATER)
    if rng.random() < 0.5:  # a road from the bottom edge to a vanishing point on the horizon
        vx = rng.uniform(0.2, 0.8) * s
        bx, bw = rng.uniform(0.1, 0.9) * s, s * rng.uniform(0.2, 0.6)
        draw.polygon(_pts([(vx - 1, horizon_at(vx)), (vx + 1, horizon_at(vx)), (bx + bw / 2, s), (bx - bw / 2, s)]),
                     fill=ROAD)
    if rng.random() < 0.6:  # boulders: irregular polygons on the ground
        for _ in range(int(rng.integers(1, 5))):
            cx = rng.uniform(0, s)
            cy = rng.uniform(horizon_at(cx), s)
            r = s * rng.uniform(0.03, 0.1)
            angles = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(5, 9))))
            radii = r * rng.uniform(0.6, 1.0, angles.size)
            draw.polygon(_pts(zip(cx + radii * np.cos(angles), cy + radii * np.sin(angles) * 0.7)), fill=ROCK)
    return np.asarray(img, dtype=np.uint8), int(round(horizon))


def colorize(labels: np.ndarray) -> np.ndarray:
    """[H, W] class ids -> [H, W, 3] uint8 label image (A) in the legend colours."""
    palette = np.array([c.color for c in CLASSES], dtype=np.uint8)  # [K, 3]
    return palette[labels]


def _pts(points) -> list[tuple[float, float]]:
    # Rounded to 1/16 px so rasterisation never depends on float noise in the last bits.
    return [(round(float(x) * 16) / 16, round(float(y) * 16) / 16) for x, y in points]


# ----------------------------------------------------------------------------------------------
# photos
#
# Render a "photo" (B) from a scene label map: textures per class, tint, lighting, noise.
#
# Textures come from scikit-image's *bundled* sample images (`skimage.data.brick`, `grass`,
# `gravel`: 512x512 grayscale, shipped inside the package, so nothing is downloaded); sky and
# water are procedural. Each class present gets a random window of its texture (random offset,
# scale and 90-degree rotation/flip, resized with bilinear filtering), contrast-normalised and
# multiplied into a per-class colour with a random tint. The whole image then gets a smooth
# lighting gradient (random direction and strength) and Gaussian noise. All randomness comes
# from the `numpy.random.Generator` passed in.
# ----------------------------------------------------------------------------------------------


# class -> (texture source, (min, max) window side as a fraction of the output size,
#           contrast, base RGB colour in [0, 1])
_MATERIALS = {
    GRASS: ("grass", (0.8, 2.5), 0.45, (0.30, 0.55, 0.18)),
    SAND: ("gravel", (0.2, 0.45), 0.25, (0.85, 0.74, 0.52)),
    ROAD: ("gravel", (0.3, 0.7), 0.20, (0.33, 0.33, 0.35)),
    BUILDING: ("brick", (0.8, 2.0), 0.40, (0.62, 0.32, 0.24)),
    TREE: ("grass", (1.5, 4.0), 0.60, (0.12, 0.33, 0.10)),
    ROCK: ("gravel", (1.5, 4.0), 0.55, (0.50, 0.47, 0.43)),
}


@lru_cache(maxsize=None)
def texture_source(name: str) -> np.ndarray:
    """A bundled skimage sample image as float32 [H, W] in [0, 1] (cached per process)."""
    img = np.asarray(getattr(skimage.data, name)(), dtype=np.float32)
    if img.ndim == 3:
        img = img[..., :3].mean(axis=2)
    return img / 255.0


def render_photo(labels: np.ndarray, horizon: int, rng: np.random.Generator) -> np.ndarray:
    """[S, S] class ids -> [S, S, 3] uint8 photo."""
    s = labels.shape[0]
    photo = np.zeros((s, s, 3), dtype=np.float32)  # [S, S, 3]
    sky = _sky(s, horizon, rng)
    for cls in np.unique(labels):  # sorted, so the RNG is consumed in a fixed order
        mask = labels == cls
        if cls == SKY:
            layer = sky
        elif cls == WATER:
            layer = _water(s, sky, rng)
        else:
            layer = _material(s, *_MATERIALS[int(cls)], rng)
        photo[mask] = layer[mask]
    photo *= _lighting(s, rng)[:, :, None]
    photo += rng.normal(0.0, rng.uniform(0.005, 0.025), photo.shape).astype(np.float32)
    return np.clip(np.rint(photo * 255.0), 0, 255).astype(np.uint8)


def _material(s: int, source: str, side: tuple[float, float], contrast: float,
              color: tuple[float, float, float], rng: np.random.Generator) -> np.ndarray:
    """A textured, tinted [S, S, 3] layer from a random window of `source`."""
    tex = texture_source(source)
    side_px = int(np.clip(s * rng.uniform(*side), 8, min(tex.shape)))
    y = int(rng.integers(0, tex.shape[0] - side_px + 1))
    x = int(rng.integers(0, tex.shape[1] - side_px + 1))
    window = np.rot90(tex[y:y + side_px, x:x + side_px], k=int(rng.integers(0, 4)))
    if rng.random() < 0.5:
        window = window[:, ::-1]
    g = _resize(np.ascontiguousarray(window), s)  # [S, S]
    g = (g - g.mean()) / (g.std() + 1e-6)
    tint = np.asarray(color, dtype=np.float32) * rng.uniform(0.85, 1.15, 3).astype(np.float32)
    shade = 1.0 + contrast * 0.5 * np.clip(g, -2.5, 2.5)
    return tint[None, None, :] * shade[:, :, None]


def _sky(s: int, horizon: int, rng: np.random.Generator) -> np.ndarray:
    """Blue at the top, pale at the horizon, with soft clouds from upsampled noise."""
    top = np.array([0.20, 0.42, 0.80], np.float32) * rng.uniform(0.85, 1.1, 3).astype(np.float32)
    low = np.array([0.75, 0.85, 0.95], np.float32)
    t = np.clip(np.arange(s, dtype=np.float32) / max(horizon, 1), 0, 1)[:, None, None]  # [S, 1, 1]
    sky = np.broadcast_to(top * (1 - t) + low * t, (s, s, 3)).copy()
    coarse = rng.normal(0, 1, (int(rng.integers(3, 7)),) * 2).astype(np.float32)
    clouds = np.clip(_resize(coarse, s) - rng.uniform(0.0, 1.0), 0, 1)[:, :, None] * rng.uniform(0.3, 0.9)
    return sky * (1 - clouds) + clouds


def _water(s: int, sky: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Horizontal ripples over a blue that reflects the sky colour."""
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) / s
    freq, slant, phase = rng.uniform(20, 45), rng.uniform(-3, 3), rng.uniform(0, 2 * np.pi)
    ripples = np.sin(2 * np.pi * freq * yy + slant * np.sin(2 * np.pi * 3 * xx) + phase)  # [S, S]
    base = 0.5 * np.array([0.10, 0.25, 0.55], np.float32) + 0.5 * sky.mean(axis=(0, 1)) * 0.6
    return base[None, None, :] * (1.0 + 0.18 * ripples[:, :, None])


def _lighting(s: int, rng: np.random.Generator) -> np.ndarray:
    """[S, S] multiplicative light: a linear gradient in a random direction, mean ~1."""
    angle, strength = rng.uniform(0, 2 * np.pi), rng.uniform(0.1, 0.45)
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) / s - 0.5
    return (rng.uniform(0.9, 1.1) + strength * (np.cos(angle) * xx + np.sin(angle) * yy)).astype(np.float32)


def _resize(arr: np.ndarray, s: int) -> np.ndarray:
    """float32 [h, w] -> [S, S], bilinear (PIL "F" mode: exact and deterministic)."""
    return np.asarray(Image.fromarray(arr.astype(np.float32)).resize((s, s), Image.BILINEAR))


# ----------------------------------------------------------------------------------------------
# the dataset on disk
#
# Scene i from numpy.random.default_rng([seed, i]); the standard layouts, written atomically.
# ----------------------------------------------------------------------------------------------


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
        sweep_leftovers(out.parent, prefix=f".{out.name}.")
        return existing
    out.parent.mkdir(parents=True, exist_ok=True)
    with FolderLock(out.parent / f".{out.name}.lock", f"the dataset {out}"):  # one writer of OUT
        # .OUT.partial-PID-HOST-*, .OUT.old-PID-HOST-* of dead writers (every writer of OUT holds this lock)
        sweep_leftovers(out.parent, prefix=f".{out.name}.", locked=True)
        existing = _check_out(out, meta, overwrite)  # again: another writer may have finished meanwhile
        if existing is not None:
            return existing
        _replace(out, meta)
    return meta


def _replace(out: Path, meta: dict) -> None:
    """Write the dataset into .OUT.partial-PID-*, then move it to OUT; an old OUT is first moved
    aside whole (.OUT.old-PID-*) and removed after, so OUT is never a half dataset."""
    prefix = f".{out.name}.%s-{writer_tag()}-"
    tmp = Path(tempfile.mkdtemp(prefix=prefix % "partial", dir=out.parent))
    old = None
    try:
        _write_all(tmp, meta)
        if out.exists() and not any(out.iterdir()):
            out.rmdir()
        elif out.exists():
            old = Path(tempfile.mkdtemp(prefix=prefix % "old", dir=out.parent))
            os.replace(out, old)  # onto the empty folder just made: a rename of the whole dataset
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not out.exists():
            os.replace(old, out)
        raise
    if old is not None:
        shutil.rmtree(old)


def write_scenes(out: str | os.PathLike, size: int = 128, count: int = 400, seed: int = 0,
                 test_count: int | None = None, overwrite: bool = False) -> tuple[dict, float | None]:
    """generate_scenes, timed: (its metadata, the seconds writing took, or None when the same
    dataset was already there and nothing was written). `gennorm data scenes`."""
    before = _stamp(Path(out))
    start = time.perf_counter()
    meta = generate_scenes(out, size=size, count=count, seed=seed, test_count=test_count, overwrite=overwrite)
    seconds = time.perf_counter() - start
    return meta, (None if before is not None and before == _stamp(Path(out)) else seconds)


def _stamp(out: Path) -> int | None:
    """scenes.json's modification time, to tell "written now" from "already there"."""
    try:
        return os.stat(out / "scenes.json").st_mtime_ns
    except OSError:
        return None


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
    write_marker(root, "scenes")
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
