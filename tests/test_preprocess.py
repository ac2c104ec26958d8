"""Preprocessing by value: the random crop is a PIL crop at the drawn position, the positions vary
over items and epochs (and cover the whole range), the flip is a PIL mirror about half the time,
and both halves of a pix2pix pair get the same crop; each mode's resized size, the per-item RNG's
derivation, and the 8-bit levels of tensors (round, or pytorch-CycleGAN-and-pix2pix's floor).
"""
from __future__ import annotations

import hashlib
import random

import numpy as np
import pytest
import torch
from PIL import Image

from gennorm.data.aligned import AlignedDataset
from gennorm.data.transforms import (PreprocessOptions, TransformParams, apply_transform, item_rng, resized_size,
                                     sample_params, to_image, to_tensor, to_uint8)


def noise_image(w: int, h: int, seed: int = 0) -> Image.Image:
    """Every pixel different enough that a crop shifted by one pixel never matches."""
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


@pytest.mark.parametrize("mode, size, resized", [("resize_and_crop", (30, 22), (20, 20)), ("crop", (24, 19), (24, 19)),
                                                 ("scale_width_and_crop", (40, 30), (20, 15))])
def test_crop_is_a_pil_crop_at_the_drawn_position_and_positions_vary(mode, size, resized):
    opts = PreprocessOptions(mode, load_size=20, crop_size=12, no_flip=True)
    img = noise_image(*size)
    full = img if img.size == resized else img.resize(resized, Image.BICUBIC)  # what the crop is taken from
    positions = []
    for index in range(60):
        params = sample_params(img.size, opts, item_rng(7, index // 20, index, "AB"))
        x, y = params.crop_pos
        out = apply_transform(img, opts, params)
        assert out.size == (12, 12)
        assert out.tobytes() == full.crop((x, y, x + 12, y + 12)).tobytes(), (index, params)
        positions.append((x, y))
    xs, ys = {x for x, _ in positions}, {y for _, y in positions}
    assert min(xs) == 0 and max(xs) == resized[0] - 12, xs  # the whole range is reached
    assert min(ys) == 0 and max(ys) == resized[1] - 12, ys
    assert len(set(positions)) > 20


def test_flip_mirrors_the_crop_about_half_the_time():
    opts = PreprocessOptions("resize_and_crop", load_size=16, crop_size=12)
    img = noise_image(16, 16, 1)
    flips = 0
    for index in range(200):
        params = sample_params(img.size, opts, item_rng(0, 0, index))
        x, y = params.crop_pos
        crop = img.crop((x, y, x + 12, y + 12))
        want = crop.transpose(Image.FLIP_LEFT_RIGHT) if params.flip else crop
        assert apply_transform(img, opts, params).tobytes() == want.tobytes()
        flips += params.flip
    assert 70 < flips < 130, flips
    assert not any(sample_params(img.size, PreprocessOptions("resize_and_crop", 16, 12, no_flip=True),
                                 item_rng(0, 0, i)).flip for i in range(50))


def test_aligned_items_are_crops_of_the_loaded_halves_at_varying_positions(tmp_path):
    a, b = noise_image(20, 20, 2), noise_image(20, 20, 3)
    pair = Image.new("RGB", (40, 20))
    pair.paste(a, (0, 0)), pair.paste(b, (20, 0))
    (tmp_path / "train").mkdir()
    pair.save(tmp_path / "train" / "0.png")
    ds = AlignedDataset(tmp_path, "train", PreprocessOptions("crop", load_size=20, crop_size=12, no_flip=True), seed=4)
    found = []
    for epoch in range(12):
        ds.set_epoch(epoch)
        item = ds[0]
        hits = []
        for x in range(9):
            for y in range(9):
                if np.allclose(item["A"].numpy(), to_tensor(a.crop((x, y, x + 12, y + 12))).numpy()):
                    hits.append((x, y))
        assert len(hits) == 1, hits  # the item is exactly one crop of A ...
        x, y = hits[0]
        assert np.allclose(item["B"].numpy(), to_tensor(b.crop((x, y, x + 12, y + 12))).numpy())  # ... B at the same place
        found.append(hits[0])
    assert len(set(found)) >= 6, found


def test_tensors_become_8_bit_levels_by_round_or_floor():
    """to_uint8 "round": (t + 1) * 127.5 to the nearest level (the inverse of to_tensor); "floor":
    pytorch-CycleGAN-and-pix2pix's tensor2im, (t + 1) / 2 * 255 truncated; both clamp to [-1, 1] first.
    to_image makes RGB from 3 channels and L from 1; an unknown quantize names the choices."""
    levels = torch.tensor([-2.0, -1.0, -0.999, 0.0, 0.2, 1 / 127.5 - 1, 0.999, 1.0, 3.0])
    t = levels.view(1, 1, -1).expand(3, 2, -1)  # [3, 2, 9]: every value in each channel and row
    want_round = [0, 0, 0, 128, 153, 1, 255, 255, 255]  # 0.1275 -> 0; 127.5 -> 128 (half to even); 153.0
    want_floor = [0, 0, 0, 127, 153, 0, 254, 255, 255]  # level 1 of to_tensor floors to 0 in float32
    for quantize, want in (("round", want_round), ("floor", want_floor)):
        arr = to_uint8(t, quantize)
        assert arr.dtype == np.uint8 and arr.shape == (2, 9, 3)  # [H, W, C]
        assert arr[:, :, 0].tolist() == [want, want] and (arr == arr[:, :, :1]).all()
    assert to_uint8(t).tolist() == to_uint8(t, "round").tolist()
    rgb = torch.stack([t[0], t[1] * 0 - 1, t[2] * 0 + 1])
    img = to_image(rgb)
    assert img.mode == "RGB" and img.size == (9, 2)
    assert np.asarray(img)[0, :, 0].tolist() == want_round and (np.asarray(img)[:, :, 1] == 0).all()
    assert (np.asarray(img)[:, :, 2] == 255).all()
    gray = to_image(t[:1], "floor")
    assert gray.mode == "L" and np.asarray(gray).tolist() == [want_floor, want_floor]
    x = noise_image(7, 5)
    assert np.array_equal(np.asarray(to_image(to_tensor(x))), np.asarray(x))  # the inverse of to_tensor
    with pytest.raises(ValueError, match=r"^quantize must be one of \('round', 'floor'\), got 'up'$"):
        to_uint8(t, "up")


def test_item_rng_is_seeded_by_the_sha256_of_seed_epoch_index_and_stream():
    """The derivation is a contract (an item is the same in every process and in every gennorm version that
    resumes a run): the first 8 bytes of SHA-256("gennorm.data:SEED:EPOCH:INDEX:STREAM"), big-endian."""
    for args, text in (((1, 2, 3, "A"), "1:2:3:A"), ((0, 0, 0), "0:0:0:"), ((2**40, 7, 123456, "B-index"), f"{2**40}:7:123456:B-index")):
        seed = int.from_bytes(hashlib.sha256(f"gennorm.data:{text}".encode()).digest()[:8], "big")
        assert item_rng(*args).getrandbits(64) == random.Random(seed).getrandbits(64)


@pytest.mark.parametrize("mode, load, crop, size, want", [
    ("resize_and_crop", 20, 16, (30, 22), (20, 20)),
    ("scale_width", 20, 12, (40, 30), (20, 15)),  # aspect kept
    ("scale_width", 20, 16, (40, 10), (20, 16)),  # height at least the crop
    ("scale_width", 20, 16, (20, 16), (20, 16)),  # already there
    ("scale_width", 20, 16, (20, 12), (20, 16)),
    ("none", 20, 16, (30, 21), (32, 20)),  # each side to the nearest multiple of 4
    ("none", 20, 16, (1, 9), (4, 8)),  # never below 4
    ("none", 20, 16, (2, 2), (4, 4)),
    ("crop", 20, 16, (24, 19), (24, 19)),
    ("crop", 20, 16, (10, 20), (16, 32)),  # too small to crop: scaled up, aspect kept
    ("crop", 20, 16, (20, 10), (32, 16)),
    ("crop", 20, 16, (16, 40), (16, 40)),
    ("scale_width_and_crop", 20, 16, (40, 10), (20, 16)),
])
def test_resized_size_of_each_mode(mode, load, crop, size, want):
    assert resized_size(size, PreprocessOptions(mode, load, crop)) == want


def test_crops_stay_inside_and_modes_without_a_crop_draw_the_origin():
    """An image exactly the crop size has one crop position (0, 0); modes without a crop always report (0, 0)
    (the draws still happen, so the streams stay aligned); the flip is drawn in every mode."""
    for mode, size in (("crop", (16, 16)), ("resize_and_crop", (40, 30)), ("scale_width_and_crop", (16, 16))):
        opts = PreprocessOptions(mode, 16, 16)
        assert {sample_params(size, opts, item_rng(0, 0, i)).crop_pos for i in range(64)} == {(0, 0)}
    for mode in ("scale_width", "none"):
        params = [sample_params((40, 30), PreprocessOptions(mode, 20, 16), item_rng(0, 0, i)) for i in range(64)]
        assert {p.crop_pos for p in params} == {(0, 0)} and {p.flip for p in params} == {False, True}


def test_apply_transform_resizes_with_the_given_method():
    img = noise_image(30, 22)
    opts, params = PreprocessOptions("resize_and_crop", 20, 16), TransformParams((3, 2), False)
    for method in (Image.NEAREST, Image.BILINEAR, Image.BICUBIC):
        got = apply_transform(img, opts, params, method)
        assert np.array_equal(np.asarray(got), np.asarray(img.resize((20, 20), method).crop((3, 2, 19, 18))))
    assert np.array_equal(np.asarray(apply_transform(img, opts, params)), np.asarray(apply_transform(img, opts, params,
                                                                                                      Image.BICUBIC)))
