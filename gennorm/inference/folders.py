"""Folders: every image of a folder through a Translator, in gennorm's naming or in
pytorch-CycleGAN-and-pix2pix's (NAMINGS), with an index.html (gennorm.inference.pages); large
images tile by tile straight into their PNG (write_png: a streaming 8-bit PNG encoder)."""
from __future__ import annotations

import struct
import zlib
from io import BytesIO
from pathlib import Path

import numpy as np
import torch

from gennorm.atomic import atomic_write, atomic_write_bytes
from gennorm.data.images import DEFAULT_MAX_PIXELS, check_size, list_images, load_image
from gennorm.data.transforms import to_uint8
from gennorm.errors import ConfigError, DataError, write_error
from gennorm.inference.loading import load_translator
from gennorm.inference.pages import write_index, write_junyanz_index
from gennorm.inference.translator import Translator
from gennorm.locks import sweep_leftovers
from gennorm.paths import check_output_apart

MIN_SIDE = 4  # smaller images are refused by translate_folder: too few pixels to mean anything
NAMINGS = ("gennorm", "junyanz")


def _split_pair(image, left: bool):
    w, h = image.size
    half = w // 2
    return image.crop((0, 0, half, h)) if left else image.crop((half, 0, 2 * half, h))


def write_png(f, width: int, height: int, channels: int, bands) -> None:
    """An 8-bit PNG written band by band: `bands` yields uint8 [rows, width, channels] arrays from the
    top; only one band is in memory at a time (zlib stream, filter 0)."""

    def chunk(kind: bytes, data: bytes) -> None:
        f.write(struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    f.write(b"\x89PNG\r\n\x1a\n")
    chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, {1: 0, 3: 2}[channels], 0, 0, 0))
    packer = zlib.compressobj(6)
    rows = 0
    for band in bands:
        rows += band.shape[0]
        lines = np.concatenate([np.zeros((band.shape[0], 1), np.uint8), band.reshape(band.shape[0], -1)], 1)
        data = packer.compress(lines.tobytes())
        if data:
            chunk(b"IDAT", data)
    if rows != height:
        raise ValueError(f"write_png: got {rows} rows for a {height}-row image")
    chunk(b"IDAT", packer.flush())
    chunk(b"IEND", b"")


def streams(tr: Translator, width: int, height: int) -> bool:
    """Whether an image is translated tile by tile straight into its file (bounded memory): a
    tiling translator, local-statistics norms, a size on the network's grid, larger than a tile."""
    k = tr.multiple
    return bool(tr.tile) and tr.tiles_exactly and width % k == 0 and height % k == 0 and \
        max(width, height) > tr.tile_size() and min(width, height) >= tr.min_side()


def translate_streaming(tr: Translator, image, path: Path, quantize: str = "round") -> None:
    """Translate a PIL image tile by tile into the PNG `path`, one row of tiles in memory at a time
    (inputs are taken from the 8-bit image per tile, outputs quantized per tile)."""
    src = np.asarray(image.convert("L" if tr.input_nc == 1 else "RGB"))  # uint8 [H, W(, C)]
    src = src[:, :, None] if src.ndim == 2 else src
    h, w = src.shape[:2]

    def bands():
        band, band_y = None, None
        for (y0, y1, x0, x1), (cy0, cy1, cx0, cx1) in tr.crops(h, w):
            if y0 != band_y:
                if band is not None:
                    yield band
                band, band_y = np.empty((y1 - y0, w, tr.output_nc), np.uint8), y0
            crop = torch.from_numpy(np.ascontiguousarray(src[cy0:cy1, cx0:cx1])).permute(2, 0, 1)[None].float()
            with torch.no_grad():
                y = tr.run(crop / 127.5 - 1.0)[0, :, y0 - cy0:y1 - cy0, x0 - cx0:x1 - cx0]
            band[:, x0:x1] = to_uint8(y, quantize)
        yield band

    atomic_write(path, lambda f: write_png(f, w, h, tr.output_nc, bands()))


def _save_png(image, path: Path) -> None:
    buf = BytesIO()
    image.save(buf, format="PNG")
    try:
        atomic_write_bytes(path, buf.getvalue())  # never a half-written PNG, even on a full disk
    except OSError as err:
        raise write_error(str(path), err, f"free space or choose another output folder (the images "
                                          f"written before it in {path.parent} are complete)") from None


def output_stems(input_dir: Path, paths: list[Path]) -> list[str]:
    """Each input's output name without extension: its path under input_dir (a/x.png -> "a/x"), so
    inputs in subfolders keep them."""
    return [path.relative_to(input_dir).with_suffix("").as_posix() for path in paths]


def check_names_apart(output_dir: Path, paths: list[Path], files: list[list[str]]) -> None:
    """DataError naming both inputs when two would write one file (y.png and y.jpg -> y.png; x.png
    and inputs/x.png): `files[i]` are the files input i writes, relative to output_dir."""
    owner: dict[str, Path] = {}
    for src, names in zip(paths, files):
        for name in names:
            if name in owner:
                raise DataError(f"{owner[name]} and {src} would both be written as {output_dir / name}; "
                                f"rename one of them (or move it to another folder)")
            owner[name] = src


def translate_folder(model, input_dir: str | Path, output_dir: str | Path, aligned: bool = False,
                     direction: str | None = None, device: str = "cpu", num_test: int | None = None,
                     naming: str = "gennorm", quantize: str | None = None,
                     max_pixels: int | None | str = "default") -> list[Path]:
    """Translate every image of input_dir (the first num_test) into output_dir; returns the outputs.

    model: a Translator, or anything load_translator takes. aligned: inputs are A|B pairs; the half
    the model reads is translated and the other half saved as the target (the model's A half is the
    left one when it trained with data.direction AtoB).
    naming "gennorm": output_dir/NAME.png, inputs/NAME.png, targets/NAME.png and index.html.
    naming "junyanz": pytorch-CycleGAN-and-pix2pix's test.py layout, output_dir/images/NAME_real_A.png,
    NAME_fake_B.png, NAME_real_B.png (A and B swapped for BtoA) and its index.html.
    NAME is the input's path under input_dir without extension (sub/x.jpg -> sub/x: see output_stems).
    output_dir must be apart from input_dir, and neither be nor contain the model's folder
    (gennorm.paths.check_output_apart); leftovers of
    killed translations into it are removed (gennorm.locks.sweep_leftovers).
    quantize: "round" (gennorm's default) or "floor" (the original's, and the default of naming junyanz).
    max_pixels: larger images are refused (DataError) before decoding ("default":
    gennorm.data.images.DEFAULT_MAX_PIXELS, 100 MP; None: no limit). Images with a
    side under MIN_SIDE are refused too. With a tiling translator, images on the network's grid go
    tile by tile straight into their PNG (bounded memory; see `streams`).
    """
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    tr = model if isinstance(model, Translator) else load_translator(model, device, direction or "AtoB")
    if not input_dir.exists():
        raise DataError(f"input folder {input_dir} does not exist")
    if not input_dir.is_dir():
        raise DataError(f"{input_dir}: not a folder of images")
    if naming not in NAMINGS:
        raise ConfigError(f"naming {naming!r}: allowed: {', '.join(NAMINGS)}")
    quantize = quantize or ("floor" if naming == "junyanz" else "round")
    model_dir = Path(tr.source) if Path(tr.source).exists() else None
    check_output_apart(output_dir, [input_dir], "gennorm translate", holders=[model_dir])  # RUN/eval/fake: fine
    paths = list_images(input_dir)[:num_test]
    if not paths:
        raise DataError(f"{input_dir}: no images found (png, jpg, ...)")
    stems = output_stems(input_dir, paths)
    a_is_left = (tr.cfg.data.direction == "AtoB") == (tr.direction == "AtoB")
    src_side, dst_side = ("A", "B") if tr.direction == "AtoB" else ("B", "A")
    where = {"gennorm": lambda stem, kind: {"in": f"inputs/{stem}.png", "out": f"{stem}.png",
                                            "target": f"targets/{stem}.png"}[kind],
             "junyanz": lambda stem, kind: {"in": f"images/{stem}_real_{src_side}.png",
                                            "out": f"images/{stem}_fake_{dst_side}.png",
                                            "target": f"images/{stem}_real_{dst_side}.png"}[kind]}[naming]
    written, rows = [], []
    max_pixels = DEFAULT_MAX_PIXELS if max_pixels == "default" else max_pixels
    kinds = ("in", "out", "target") if aligned else ("in", "out")
    check_names_apart(output_dir, paths, [[where(stem, kind) for kind in kinds] for stem in stems])
    for folder in {(output_dir / where(stem, kind)).parent for stem in stems for kind in kinds}:
        sweep_leftovers(folder)  # .NAME.PID.tmp of killed translations
    for src, stem in zip(paths, stems):
        check_size(src, max_pixels, MIN_SIDE * (2 if aligned else 1))
        image = load_image(src)
        target = None
        if aligned:
            image, target = _split_pair(image, a_is_left), _split_pair(image, not a_is_left)
        out_path = output_dir / where(stem, "out")
        out_path.parent.mkdir(parents=True, exist_ok=True)
        if streams(tr, *image.size):
            translate_streaming(tr, image, out_path, quantize)
            files = {"in": image, "out": None, "target": target}
        else:
            files = {"in": image, "out": tr.translate(image, quantize), "target": target}
        for kind, picture in files.items():
            if picture is not None:
                (output_dir / where(stem, kind)).parent.mkdir(parents=True, exist_ok=True)
                _save_png(picture, output_dir / where(stem, kind))
        written.append(out_path)
        rows.append([where(stem, k) for k in ("in", "out", "target") if k == "out" or files[k] is not None])
    title = f"{tr.source} ({tr.direction}) on {input_dir}"
    if naming == "junyanz":
        write_junyanz_index(output_dir, stems, rows, title)
    else:
        write_index(output_dir, [r[1] for r in rows], aligned, title=title)
    return written


def translate_test_split(run_dir: str | Path, out_dir: str | Path, *, device: str = "cpu",
                         direction: str = "AtoB") -> dict:
    """Translate a run's test split (data.root of its config) into out_dir (for `gennorm eval --run`).

    Returns {"real": folder of real target-domain test images, "fake": out_dir (one <stem>.png per
    test input), "paired": True for aligned data (real/<stem> is the target of fake/<stem>)}.
    """
    tr = load_translator(run_dir, device, direction)
    cfg, root = tr.cfg, Path(tr.cfg.data.root)
    if cfg.data.mode == "aligned":
        split = next((root / s for s in ("test", "val") if (root / s).is_dir()), None)
        if split is None:
            raise DataError(f"{root}: no test/ or val/ folder to evaluate on")
        translate_folder(tr, split, out_dir, aligned=True)
        return {"real": str(Path(out_dir) / "targets"), "fake": str(out_dir), "paired": True}
    a_side = "A" if (cfg.data.direction == "AtoB") == (direction == "AtoB") else "B"
    b_side = "B" if a_side == "A" else "A"
    src, real = root / f"test{a_side}", root / f"test{b_side}"
    for folder in (src, real):
        if not folder.is_dir():
            raise DataError(f"{folder}: missing (unaligned test split: testA/ and testB/)")
    translate_folder(tr, src, out_dir)
    return {"real": str(real), "fake": str(out_dir), "paired": False}
