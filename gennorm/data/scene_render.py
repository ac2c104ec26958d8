"""Render a "photo" (B) from a scene label map: textures per class, tint, lighting, noise.

Textures come from scikit-image's *bundled* sample images (`skimage.data.brick`, `grass`,
`gravel`: 512x512 grayscale, shipped inside the package, so nothing is downloaded); sky and
water are procedural. Each class present gets a random window of its texture (random offset,
scale and 90-degree rotation/flip, resized with bilinear filtering), contrast-normalised and
multiplied into a per-class colour with a random tint. The whole image then gets a smooth
lighting gradient (random direction and strength) and Gaussian noise. All randomness comes
from the `numpy.random.Generator` passed in.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image

from gennorm.data.scene_layout import BUILDING, GRASS, ROAD, ROCK, SAND, SKY, TREE, WATER

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
    import skimage.data

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
