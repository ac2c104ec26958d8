"""Finding and reading image files robustly: every odd file either loads as 8-bit RGB/L or
raises a `DataError` that names it.

Why a module of its own: datasets in the wild mix grayscale, RGBA, palette, 16-bit and
EXIF-rotated files, and a single truncated JPEG should stop a run with the file's name, not
with a PIL traceback 3 hours in. Decisions (documented here once):

- **Alpha** (RGBA, LA, PA, palette with transparency) is *composited onto white*, not dropped:
  fully transparent pixels often hold arbitrary colours (black, garbage) that dropping alpha
  would expose; white is what a viewer shows.
- **16-bit** (`I;16*`, `I`) is *scaled* to 8 bits (`v * 255 / 65535`, rounded), never clipped,
  so a 16-bit scan keeps its whole tonal range. Float (`F`) images in [0, 1] are scaled by
  255; other float ranges are clipped to [0, 255].
- **One conversion**: `to_rgb8` (EXIF, 16-bit, alpha) is what every reader uses, the datasets,
  translate, eval and the demo's uploads (gennorm.apps.demo), so one file gives the same pixels.
- **EXIF orientation** is applied (`ImageOps.exif_transpose`); a broken EXIF block is ignored.
- **Corruption** is found by decoding: `load_image` fully decodes (`Image.load()`, with
  `ImageFile.LOAD_TRUNCATED_IMAGES` off), so a truncated file raises. A PNG whose IDAT stream
  is complete but holds fewer rows than its header says is one PIL fills with black without a
  word; `load_image` counts the decompressed bytes against the header and refuses it. `check_image` (used by dataset scans) reads only the header, which is
  cheap and catches non-images and wrong sizes; `verify_image` decodes fully (what
  `skip_corrupt=True` uses, since `Image.verify()` does not notice a truncated JPEG).
- **Lists** are sorted by path (relative to the folder), recursive like the classic CycleGAN
  `make_dataset`, skipping hidden files/folders. Extensions are case-insensitive.
"""
from __future__ import annotations

import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps

from gennorm.errors import DataError

IMG_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

# Errors PIL raises for unreadable files: UnidentifiedImageError is an OSError; truncated
# data is OSError; some broken headers raise SyntaxError/ValueError/struct errors.
_READ_ERRORS = (
    OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError, Image.DecompressionBombError,
)


def is_image_file(path: str | os.PathLike) -> bool:
    """True if the file name ends with one of `IMG_EXTENSIONS` (any case)."""
    return str(path).lower().endswith(IMG_EXTENSIONS)


def list_images(folder: str | os.PathLike, max_size: int | None = None, recursive: bool = True) -> list[Path]:
    """Sorted image paths under `folder` (hidden entries skipped); [] if none.

    Recursive by default (classic `make_dataset`); `recursive=False` lists only `folder` itself.
    The caller decides what a missing folder means (see `require_images`).
    """
    folder = Path(folder)
    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if recursive else []
        for name in filenames:
            if name.startswith(".") or not is_image_file(name):
                continue
            path = Path(dirpath) / name
            found.append((path.relative_to(folder).as_posix(), path))
    paths = [p for _, p in sorted(found)]
    return paths if max_size is None else paths[: max(0, int(max_size))]


def require_images(folder: str | os.PathLike, expected: str, max_size: int | None = None,
                   recursive: bool = True) -> list[Path]:
    """`list_images`, but a missing, non-folder or image-less `folder` raises `DataError`.

    `expected` describes the layout the caller wants, e.g. "an unaligned dataset: ROOT/trainA,
    ROOT/trainB, ROOT/testA, ROOT/testB"; it ends every message so the user knows what to fix.
    """
    folder = Path(folder)
    if not folder.exists():
        raise DataError(f"folder {folder} does not exist; expected {expected}")
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder; expected {expected}")
    paths = list_images(folder, max_size, recursive)
    if not paths:
        exts = ", ".join(e[1:] for e in IMG_EXTENSIONS)
        raise DataError(f"no images ({exts}) in {folder}; expected {expected}")
    return paths


def check_image(path: str | os.PathLike) -> tuple[int, int]:
    """Read only the header of `path`; return its (width, height) after EXIF rotation.

    Raises `DataError` naming the file if it is not a readable image. Cheap: no pixel decode.
    """
    try:
        with Image.open(path) as im:
            width, height = im.size
            orientation = _exif_orientation(im)
    except _READ_ERRORS as err:
        raise _unreadable(path, err) from None
    # EXIF orientations 5-8 swap width and height.
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


DEFAULT_MAX_PIXELS = 100_000_000  # what translate and eval accept by default (the demo: 40 MP)


def check_size(path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_PIXELS, min_side: int = 1) -> tuple[int, int]:
    """check_image plus limits: more than max_pixels (None: no limit) or a side below min_side is a
    DataError naming the file, the size and the limit; checked before any pixel is decoded."""
    width, height = check_image(path)
    if max_pixels is not None and width * height > max_pixels:
        raise DataError(f"image {path} is {width}x{height} = {width * height:,} pixels, above the limit of "
                        f"{max_pixels:,} (raise it with --max-pixels)")
    if min(width, height) < min_side:
        raise DataError(f"image {path} is {width}x{height}: too small, the model needs at least {min_side} px a side")
    return width, height


def verify_image(path: str | os.PathLike) -> tuple[int, int]:
    """Fully decode `path` (catches truncation); return its (width, height). Raises `DataError`."""
    return load_image(path).size


def load_image(path: str | os.PathLike, mode: str = "RGB") -> Image.Image:
    """Read `path` as an 8-bit PIL image in `mode` ("RGB" or "L"), robustly (see module doc).

    Raises `DataError` naming the file if it is missing, not an image, corrupt or truncated.
    """
    if mode not in ("RGB", "L"):
        raise ValueError(f"load_image: mode must be 'RGB' or 'L', got {mode!r}")
    ImageFile.LOAD_TRUNCATED_IMAGES = False  # a library may have switched it on: truncated files are refused
    try:
        with Image.open(path) as im:
            im.load()  # full decode: a truncated file raises here, not later in a worker
            if im.format == "PNG":
                _check_png_rows(path, im)
            rgb = to_rgb8(im)
    except FileNotFoundError:
        raise DataError(f"image {path} does not exist") from None
    except DataError:
        raise
    except _READ_ERRORS as err:
        raise _unreadable(path, err) from None
    return rgb if mode == "RGB" else rgb.convert("L")


def to_rgb8(im: Image.Image) -> Image.Image:
    """A decoded PIL image -> a new upright 8-bit RGB image: EXIF orientation applied, 16-bit scaled
    (v * 255 / 65535), alpha composited onto white (the module doc's rules; the one conversion)."""
    return _to_8bit_rgb(_apply_exif(im))


_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples per pixel
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def _png_expected_bytes(width: int, height: int, depth: int, colour: int, interlace: int) -> int:
    """Bytes of the decompressed IDAT stream the header promises (one filter byte per row)."""
    bits = depth * _PNG_CHANNELS.get(colour, 4)
    passes = [(0, 0, 1, 1)] if interlace == 0 else _ADAM7  # (x0, y0, dx, dy)
    total = 0
    for x0, y0, dx, dy in passes:
        w, h = max(0, (width - x0 + dx - 1) // dx), max(0, (height - y0 + dy - 1) // dy)
        if w and h:
            total += h * (1 + (w * bits + 7) // 8)
    return total


def _check_png_rows(path: str | os.PathLike, im: Image.Image) -> None:
    """DataError if the PNG's IDAT data decompresses to fewer bytes than its header promises (PIL
    fills the missing rows with black silently). Streams the data: memory stays small."""
    with open(path, "rb") as f:
        data = f.read(8)
        inflate, got, header = zlib.decompressobj(), 0, None
        while True:
            head = f.read(8)
            if len(head) < 8:
                break
            length, kind = struct.unpack(">I4s", head)
            if kind == b"IHDR":
                header = struct.unpack(">IIBBBBB", f.read(13))
                f.seek(length - 13 + 4, os.SEEK_CUR)
                continue
            if kind == b"IEND":
                break
            if kind != b"IDAT":
                f.seek(length + 4, os.SEEK_CUR)
                continue
            chunk = f.read(length)
            f.seek(4, os.SEEK_CUR)
            while chunk and not inflate.eof:
                got += len(inflate.decompress(chunk, 1 << 20))
                chunk = inflate.unconsumed_tail
    if header is None or data != b"\x89PNG\r\n\x1a\n":
        return  # PIL read it: nothing for this check to say
    width, height, depth, colour, _, _, interlace = header
    want = _png_expected_bytes(width, height, depth, colour, interlace)
    if got < want:
        raise DataError(f"cannot read image {path} (corrupt, truncated or not an image): its pixel data holds "
                        f"{got:,} of the {want:,} bytes its {width}x{height} header promises (rows missing)")


def _unreadable(path: str | os.PathLike, err: BaseException) -> DataError:
    """The DataError for a file PIL cannot read; PIL's reason without the path repeated."""
    reason = str(err).replace(repr(str(path)), "").replace(str(path), "").strip(" :") or type(err).__name__
    return DataError(f"cannot read image {path} (corrupt, truncated or not an image): {reason}")


def _exif_orientation(im: Image.Image) -> int:
    try:
        return int(im.getexif().get(0x0112, 1))
    except Exception:  # a broken EXIF block is ignored, the pixels are still usable
        return 1


def _apply_exif(im: Image.Image) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ImageOps.exif_transpose(im)
    except Exception:  # broken EXIF: keep the stored orientation
        return im


def _to_8bit_rgb(im: Image.Image) -> Image.Image:
    """Any PIL mode -> new 8-bit RGB image (16-bit scaled, alpha composited onto white)."""
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        arr = np.asarray(im).astype(np.float64)  # [H, W]
        arr = np.clip(np.rint(arr * (255.0 / 65535.0)), 0, 255).astype(np.uint8)
        return Image.fromarray(arr).convert("RGB")
    if im.mode == "F":
        arr = np.asarray(im).astype(np.float64)
        if np.nanmax(arr, initial=0.0) <= 1.0:
            arr = arr * 255.0
        arr = np.clip(np.rint(np.nan_to_num(arr)), 0, 255).astype(np.uint8)
        return Image.fromarray(arr).convert("RGB")
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if im.mode in ("L", "1") and "transparency" in im.info:
        return _to_8bit_rgb(im.convert("LA"))
    return im.convert("RGB")
