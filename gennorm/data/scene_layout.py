"""Random label maps for the built-in scenes task: the classes and how a scene is drawn.

A scene is a landscape: a wavy horizon splits sky from ground (grass or sand); then, each with
some probability, distant rock mountains, buildings standing on the horizon, tree crowns
(ellipses), a lake (ellipse), a road (a trapezoid towards a vanishing point) and boulders
(polygons), drawn in that order so later ones occlude earlier ones. Shapes are rasterised by
PIL without anti-aliasing, so every pixel holds exactly one class id. Everything is drawn from
the `numpy.random.Generator` passed in, so a scene is a pure function of its RNG state.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw


@dataclass(frozen=True)
class SceneClass:
    id: int
    name: str
    color: tuple[int, int, int]  # colour in the label image (A)
    texture: str  # what the photo (B) is made of (see scene_render)


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
