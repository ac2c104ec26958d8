"""Preprocessing in the classic CycleGAN/pix2pix modes, driven by explicit per-item randomness.

Modes (as in `data/base_dataset.py` of the classic code):

    resize_and_crop       resize to load_size x load_size, then crop crop_size x crop_size
    crop                  crop crop_size x crop_size from the image as it is
    scale_width           resize to width load_size (height keeps the aspect, >= crop_size)
    scale_width_and_crop  scale_width, then crop crop_size x crop_size
    none                  only round each side to a multiple of 4 (resize), as classic
                          `__make_power_2(base=4)` does, so U-Nets/strided nets fit

then a horizontal flip with probability 1/2 unless `no_flip`. Differences from classic, each
for robustness: the crop position is drawn from the size the image has *after* the resize
(classic computes it from a formula that can disagree with `__scale_width`); an image smaller
than the crop is first scaled up (aspect kept) so every item has the crop size; `none` never
rounds a side down to 0.

Randomness never comes from a global RNG: `sample_params(size, opts, rng)` takes the
`random.Random` that `item_rng(seed, epoch, index, stream)` builds, so an item is a pure
function of (seed, epoch, index) whatever process or worker computes it. Aligned datasets
pass the same params to A and B, so both halves get the same crop and flip.
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

PREPROCESS_MODES = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")


@dataclass(frozen=True)
class PreprocessOptions:
    """What `apply_transform` does; validated on construction (ValueError naming the field)."""

    preprocess: str = "resize_and_crop"
    load_size: int = 286
    crop_size: int = 256
    no_flip: bool = False

    def __post_init__(self) -> None:
        if self.preprocess not in PREPROCESS_MODES:
            raise ValueError(f"preprocess must be one of {', '.join(PREPROCESS_MODES)}; got {self.preprocess!r}")
        if int(self.load_size) < 1 or int(self.crop_size) < 1:
            raise ValueError(f"load_size and crop_size must be >= 1; got {self.load_size}, {self.crop_size}")
        if self.preprocess in ("resize_and_crop", "scale_width_and_crop") and self.load_size < self.crop_size:
            raise ValueError(
                f"preprocess={self.preprocess!r} needs load_size >= crop_size; got {self.load_size} < {self.crop_size}"
            )


@dataclass(frozen=True)
class TransformParams:
    """One item's random choices: top-left corner of the crop (after resizing) and the flip."""

    crop_pos: tuple[int, int] = (0, 0)
    flip: bool = False


def item_rng(seed: int, epoch: int, index: int, stream: str = "") -> random.Random:
    """A `random.Random` that depends only on (seed, epoch, index, stream).

    Seeded from a SHA-256 of the tuple (not Python's salted `hash`), so it is the same in
    every process; `stream` separates independent draws of one item (e.g. "A", "B", "B-index").
    """
    key = f"gennorm.data:{int(seed)}:{int(epoch)}:{int(index)}:{stream}".encode()
    return random.Random(int.from_bytes(hashlib.sha256(key).digest()[:8], "big"))


def resized_size(size: tuple[int, int], opts: PreprocessOptions) -> tuple[int, int]:
    """(width, height) after the resize step of `opts.preprocess`, before any crop."""
    w, h = size
    if opts.preprocess == "resize_and_crop":
        w, h = opts.load_size, opts.load_size
    elif opts.preprocess.startswith("scale_width"):
        if not (w == opts.load_size and h >= opts.crop_size):
            w, h = opts.load_size, int(max(opts.load_size * h / w, opts.crop_size))
    elif opts.preprocess == "none":
        w, h = (max(4, int(round(v / 4)) * 4) for v in (w, h))
    if opts.preprocess.endswith("crop") and min(w, h) < opts.crop_size:
        scale = opts.crop_size / min(w, h)  # too small to crop: scale up, aspect kept
        w, h = max(opts.crop_size, int(round(w * scale))), max(opts.crop_size, int(round(h * scale)))
    return w, h


def sample_params(size: tuple[int, int], opts: PreprocessOptions, rng: random.Random) -> TransformParams:
    """Draw the crop position and flip for an image of `size` (width, height) from `rng`.

    Always draws the same number of values (x, y, flip) so streams stay aligned across modes.
    """
    w, h = resized_size(size, opts)
    x = rng.randint(0, max(0, w - opts.crop_size))
    y = rng.randint(0, max(0, h - opts.crop_size))
    flip = rng.random() < 0.5
    if not opts.preprocess.endswith("crop"):
        x = y = 0
    return TransformParams(crop_pos=(x, y), flip=flip and not opts.no_flip)


def apply_transform(img: Image.Image, opts: PreprocessOptions, params: TransformParams,
                    method: int = Image.BICUBIC) -> Image.Image:
    """Resize, crop and flip `img` as `opts` and `params` say; returns a new PIL image."""
    w, h = resized_size(img.size, opts)
    if (w, h) != img.size:
        img = img.resize((w, h), method)
    if opts.preprocess.endswith("crop"):
        x, y = params.crop_pos
        c = opts.crop_size
        img = img.crop((x, y, x + c, y + c))
    if params.flip:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    return img


def to_tensor(img: Image.Image) -> torch.Tensor:
    """8-bit PIL image (RGB or L) -> float32 tensor [C, H, W] in [-1, 1]."""
    arr = np.asarray(img, dtype=np.float32)  # [H, W] or [H, W, C]
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))) / 127.5 - 1.0  # [C, H, W]


QUANTIZE = ("round", "floor")


def to_image(tensor: torch.Tensor, quantize: str = "round") -> Image.Image:
    """Inverse of `to_tensor`: [C, H, W] in [-1, 1] (C = 1 or 3) -> 8-bit PIL image (see to_uint8)."""
    arr = to_uint8(tensor, quantize)  # [H, W, C]
    return Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)


def to_uint8(tensor: torch.Tensor, quantize: str = "round") -> np.ndarray:
    """[C, H, W] in [-1, 1] -> uint8 [H, W, C].

    quantize "round": the nearest 8-bit level, (t + 1) * 127.5 rounded (gennorm's default: the
    inverse of to_tensor to within half a level). "floor": pytorch-CycleGAN-and-pix2pix's
    tensor2im, (t + 1) / 2 * 255 truncated in float32 (about half the pixels one level lower),
    for files that must match that project's."""
    t = tensor.detach().float().cpu().clamp(-1, 1)
    if quantize == "round":
        arr = ((t + 1.0) * 127.5).round().to(torch.uint8)
    elif quantize == "floor":
        arr = ((t + 1.0) / 2.0 * 255.0).floor().to(torch.uint8)
    else:
        raise ValueError(f"quantize must be one of {QUANTIZE}, got {quantize!r}")
    return arr.permute(1, 2, 0).numpy()  # [H, W, C]
