"""Inference: load a generator from any source and translate images, tensors or folders with it.

    import gennorm
    t = gennorm.load("scenes-nc")                 # a zoo name, a models/ folder or a run directory
    out = t(pil_image)                            # same kind and size back (PIL, numpy or tensor)
    gennorm.inference.translate_folder(t, "data/scenes/paired/test", "out/", aligned=True)

MODEL is a run directory (gennorm train's `out`: config.yaml + checkpoints/, the latest readable
checkpoint, EMA weights when the run used EMA), a models/ folder (gennorm export: config.yaml +
generator.safetensors) or the name of a zoo model (gennorm.zoo.find_model). The network is
rebuilt from the saved config. Every verb that runs a generator (translate, eval --run, study,
quickstart, export) and the demo come through here.

Images are sized to what the generator accepts (a multiple of `net.size_multiple`: 4 for the
ResNets, 2**downs for the U-Nets) by bicubic resizing, and the output is resized back.
"""
from __future__ import annotations

import html
import os
from pathlib import Path
from typing import NamedTuple

from gennorm.errors import CheckpointError, ConfigError, DataError

GENERATOR_FILE = "generator.safetensors"
DIRECTIONS = ("AtoB", "BtoA")
MIN_SIDE = 4  # smaller images are refused by translate_folder: too few pixels to mean anything


class Translator:
    """A generator ready for inference. `t(x)` takes a PIL image, an HxWxC uint8 numpy array or a
    [C, H, W] / [N, C, H, W] tensor in [-1, 1], and returns the same kind at the same size."""

    def __init__(self, net, cfg, device, source: str, direction: str = "AtoB", meta: dict | None = None,
                 train_mode: bool = False, dtype=None, tile: int | None = None, overlap: int | str = "auto"):
        import torch

        self.train_mode = train_mode  # batch norm on batch statistics and dropout on (the original test mode)
        # bfloat16 / float16: the network runs under autocast in it (for GPUs); weights stay float32
        self.dtype = getattr(torch, dtype) if isinstance(dtype, str) else (dtype or torch.float32)
        if self.dtype not in (torch.float32, torch.bfloat16, torch.float16):
            raise ValueError(f"dtype must be float32, bfloat16 or float16, got {dtype!r}")
        self.net = net.to(device).train(train_mode)
        self.cfg, self.device, self.source, self.direction = cfg, device, source, direction
        self.meta = meta or {}
        m = cfg.model
        self.input_nc, self.output_nc = (m.input_nc, m.output_nc) if direction == "AtoB" else (m.output_nc, m.input_nc)
        self.multiple = net.size_multiple
        self.tile, self.overlap = tile, overlap
        if tile is not None and (not isinstance(tile, int) or tile < 1):
            raise ValueError(f"tile must be a positive number of pixels, got {tile!r}")
        self._margin: int | None = None

    # -- tiles: every tile_size x tile_size output block from its input block plus a margin --------
    @property
    def tiles_exactly(self) -> bool:
        """True when tiled output equals whole-image output (every norm uses local statistics)."""
        from gennorm.layers.registry import get_norm_layer

        return get_norm_layer(self.cfg.model.g_norm).tiles_exactly(training=self.train_mode)

    def margin(self) -> int:
        """Input pixels added on each side of a tile: "auto" = half the receptive field plus one coarse
        stride (gennorm.networks.receptive.tile_margin), else the given overlap, on the size grid."""
        if self._margin is None:
            from gennorm.networks.receptive import tile_margin

            k = self.multiple
            given = tile_margin(self.net, self.input_nc) if self.overlap == "auto" else int(self.overlap)
            self._margin = -(-given // k) * k
        return self._margin

    def min_side(self) -> int:
        """The smallest side the generator runs on (its padding layers need a few pixels at the
        coarsest level): found once by trying multiples of the size grid."""
        if getattr(self, "_min_side", None) is None:
            self._min_side = next(s for s in (self.multiple * 2 ** i for i in range(12)) if _runs(self, s))
        return self._min_side

    def tile_size(self) -> int:
        return max(self.multiple, -(-self.tile // self.multiple) * self.multiple)

    def _crops(self, h: int, w: int):
        """(output box, input box) per tile, both (y0, y1, x0, x1), row by row."""
        t, pad = self.tile_size(), self.margin()
        for y0 in range(0, h, t):
            for x0 in range(0, w, t):
                y1, x1 = min(y0 + t, h), min(x0 + t, w)
                yield (y0, y1, x0, x1), (max(0, y0 - pad), min(h, y1 + pad), max(0, x0 - pad), min(w, x1 + pad))

    def _run(self, x):
        import torch

        with torch.autocast(self.device.type, self.dtype, enabled=self.dtype != torch.float32):
            return self.net(x.to(self.device)).float()

    def _tiled(self, x):
        """[N, C, H, W] (a valid size) tile by tile: exact for local norms; otherwise the tiles' outputs
        are blended with linear ramps over their margins (they saw different statistics)."""
        import warnings

        import torch

        n, _, h, w = x.shape
        exact = self.tiles_exactly
        if not exact:
            warnings.warn(f"norm {self.cfg.model.g_norm!r} normalizes with statistics of the whole feature map: "
                          "tiles see different statistics, so their overlaps are blended and the result differs "
                          "from the whole image's", stacklevel=3)
        out = torch.zeros(n, self.output_nc, h, w, device=x.device)
        weight = None if exact else torch.zeros(1, 1, h, w, device=x.device)
        for (y0, y1, x0, x1), (cy0, cy1, cx0, cx1) in self._crops(h, w):
            y = self._run(x[..., cy0:cy1, cx0:cx1]).to(x.device)
            if exact:
                out[..., y0:y1, x0:x1] = y[..., y0 - cy0:y1 - cy0, x0 - cx0:x1 - cx0]
                continue
            ramp = _ramp(cy1 - cy0, cy0 > 0, cy1 < h, self.margin())[:, None] * \
                _ramp(cx1 - cx0, cx0 > 0, cx1 < w, self.margin())[None, :]
            out[..., cy0:cy1, cx0:cx1] += y * ramp
            weight[..., cy0:cy1, cx0:cx1] += ramp
        return out if exact else out / weight

    def valid_size(self, h: int, w: int) -> tuple[int, int]:
        """The nearest size the generator accepts (a multiple of net.size_multiple, at least min_side)."""
        k, low = self.multiple, self.min_side()
        return max(low, round(h / k) * k), max(low, round(w / k) * k)

    def to_valid_size(self, x):
        """x [N, C, H, W] in [-1, 1] resized (bicubic, clamped) to `valid_size`; x itself if it has it."""
        import torch.nn.functional as F

        size = self.valid_size(*x.shape[-2:])
        if size == tuple(x.shape[-2:]):
            return x
        return F.interpolate(x, size=size, mode="bicubic", align_corners=False).clamp(-1, 1)

    def translate_tensor(self, x):
        """[N, input_nc, H, W] in [-1, 1] -> [N, output_nc, H, W] (resized to a valid size and back)."""
        import torch
        import torch.nn.functional as F

        h, w = x.shape[-2:]
        vh, vw = self.valid_size(h, w)
        x = x.float() if self.tile else x.to(self.device, torch.float32)
        with torch.no_grad():
            x = self.to_valid_size(x)
            y = self._tiled(x) if self.tile and max(vh, vw) > self.tile_size() else self._run(x)
            if (vh, vw) != (h, w):
                y = F.interpolate(y, size=(h, w), mode="bicubic", align_corners=False)
        return y.clamp(-1, 1)

    def translate(self, image, quantize: str = "round"):
        """PIL image -> PIL image of the same size (quantize: see gennorm.data.transforms.to_image)."""
        from gennorm.data.transforms import to_image, to_tensor

        image = image.convert("L" if self.input_nc == 1 else "RGB")
        return to_image(self.translate_tensor(to_tensor(image)[None])[0], quantize)

    def __call__(self, x):
        import numpy as np
        import torch

        if isinstance(x, torch.Tensor):
            if x.dim() not in (3, 4):
                raise ValueError(f"expected a [C, H, W] or [N, C, H, W] tensor, got shape {tuple(x.shape)}")
            out = self.translate_tensor(x if x.dim() == 4 else x[None])
            return (out if x.dim() == 4 else out[0]).to(x.device)
        if isinstance(x, np.ndarray):
            from PIL import Image

            if x.dtype != np.uint8 or x.ndim not in (2, 3):
                raise ValueError(f"expected an HxW or HxWxC uint8 array, got {x.dtype} of shape {x.shape}")
            return np.asarray(self.translate(Image.fromarray(x)))
        if hasattr(x, "convert"):  # a PIL image
            return self.translate(x)
        raise TypeError(f"cannot translate a {type(x).__name__}: give a PIL image, a uint8 numpy array or a tensor")


def _runs(tr: Translator, side: int) -> bool:
    import torch

    try:
        with torch.no_grad():
            tr._run(torch.zeros(1, tr.input_nc, side, side))
        return True
    except (ValueError, RuntimeError):
        return False


def _ramp(size: int, fade_start: bool, fade_end: bool, margin: int):
    """[size] weights: 1 inside, rising linearly over `margin` pixels at each faded end (tile blending)."""
    import torch

    pos = torch.arange(size, dtype=torch.float32) + 0.5
    w = torch.ones(size)
    if fade_start:
        w = torch.minimum(w, pos / margin)
    if fade_end:
        w = torch.minimum(w, (size - pos) / margin)
    return w.clamp_min(1e-3)


# ----------------------------------------------------------------------------------------------
# loading


def generator_name(cfg, direction: str) -> str:
    """The network of a run that translates `direction`: G (pix2pix), G_A / G_B (CycleGAN)."""
    if direction not in DIRECTIONS:
        raise ConfigError(f"direction {direction!r}: allowed: {', '.join(DIRECTIONS)}")
    if cfg.train.task == "pix2pix":
        if direction != "AtoB":
            raise ConfigError(f"direction {direction!r}: a pix2pix model translates one way only; allowed: AtoB")
        return "G"
    return "G_A" if direction == "AtoB" else "G_B"


class RunWeights(NamedTuple):
    weights: dict  # the generator's state dict
    options: dict | None  # its saved build options (net.options), for mismatch messages
    checkpoint: dict  # the whole checkpoint (step, world_size, ...)
    path: Path  # the checkpoint file
    ema: bool  # weights are the EMA copy


def run_generator_weights(run_dir: Path, cfg, direction: str, step: int | None = None) -> RunWeights:
    """A run's generator for `direction` from its latest readable checkpoint, or the one of `step`
    (the EMA copy when the run kept one)."""
    from gennorm.networks.checkpoint import (check_finite_weights, check_train_checkpoint, checkpoint_name,
                                             load_latest, load_torch, verify_content)

    if step is None:
        state, ckpt_path = load_latest(Path(run_dir) / "checkpoints")  # content hash and structure checked
    else:
        ckpt_path = Path(run_dir) / "checkpoints" / checkpoint_name(step)
        state = load_torch(ckpt_path)
        verify_content(state, ckpt_path)
        check_train_checkpoint(state, ckpt_path)
    name = generator_name(cfg, direction)
    task_state = state["task"]
    ema = task_state.get("ema") if isinstance(task_state.get("ema"), dict) else {}
    if name not in task_state["nets"]:
        raise CheckpointError(f"checkpoint {ckpt_path} has no generator {name!r} (it holds "
                              f"{', '.join(task_state['nets']) or 'no networks'}), but {Path(run_dir) / 'config.yaml'} "
                              f"is a {cfg.train.task} run: the checkpoint belongs to another run")
    weights = ema.get(name) if ema.get(name) is not None else task_state["nets"][name]
    check_finite_weights(weights, f"checkpoint {ckpt_path} ({name}{' EMA' if ema.get(name) is not None else ''})")
    options = task_state.get("options") if isinstance(task_state.get("options"), dict) else {}
    return RunWeights(weights, options.get(name), state, ckpt_path, ema.get(name) is not None)


def _read_config(folder: Path):
    from gennorm.config import config_from_file

    path = folder / "config.yaml"
    if not path.is_file():
        raise CheckpointError(f"{folder}: no config.yaml (expected a run directory or a models/ folder)")
    return config_from_file(path)


def _build(cfg, direction: str, state: dict, what: str, options: dict | None = None):
    from gennorm.networks import load_network_state
    from gennorm.networks.factory import build_generator_from

    m = cfg.model
    ins, outs = (m.input_nc, m.output_nc) if direction == "AtoB" else (m.output_nc, m.input_nc)
    from gennorm.networks.checkpoint import check_finite_weights

    check_finite_weights(state, what)
    net = build_generator_from(m, ins, outs)
    try:
        load_network_state(net, state, options)
    except CheckpointError as err:
        raise CheckpointError(f"{what}: {err}") from None
    return net


def resolve_model(model: str | Path) -> Path:
    """A model folder from a path or a zoo name (see gennorm.zoo.find_model)."""
    path = Path(model)
    if path.is_dir():
        return path
    from gennorm.zoo import find_model

    found = find_model(str(model))
    if found is None:
        raise CheckpointError(f"{model}: no such model (expected a run directory, a models/ folder or a zoo "
                              "model name; `gennorm demo` lists the zoo)")
    return found


def load_translator(model: str | Path, device="cpu", direction: str = "AtoB", checkpoint: int | str = "latest",
                    train_mode: bool = False, dtype=None, tile: int | None = None,
                    overlap: int | str = "auto") -> Translator:
    """A Translator from a run directory, a models/ folder or a zoo name (see the module docstring).

    checkpoint: a run directory's step to load ("latest": the newest readable one). train_mode:
    run the generator in train mode (batch norm on the batch's statistics, dropout on), as
    pytorch-CycleGAN-and-pix2pix's test.py does unless given --eval. dtype: the network's dtype
    (torch.bfloat16 / float16 on a GPU; default float32). tile: translate images larger than this
    tile by tile (see Translator.margin; exact for local-statistics norms)."""
    import torch

    path = resolve_model(model)
    device = torch.device(device)
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be 'AtoB' or 'BtoA', got {direction!r}")
    cfg = _read_config(path)
    if (path / GENERATOR_FILE).is_file():
        if direction != "AtoB":
            raise ConfigError(f"direction {direction!r}: a models/ folder holds the AtoB generator only")
        from gennorm.networks.checkpoint import read_safetensors

        state, meta = read_safetensors(path / GENERATOR_FILE)
        if checkpoint != "latest":
            raise ConfigError(f"checkpoint {checkpoint!r}: {path} is a model folder (one generator), not a run directory")
        net = _build(cfg, "AtoB", state, str(path / GENERATOR_FILE))
        return Translator(net, cfg, device, str(path), "AtoB", meta, train_mode, dtype, tile, overlap)
    run = run_generator_weights(path, cfg, direction, None if checkpoint == "latest" else int(checkpoint))
    meta = {"step": str(run.checkpoint["step"]), "ema": str(run.ema), "checkpoint": str(run.path)}
    net = _build(cfg, direction, run.weights, str(run.path), run.options)
    return Translator(net, cfg, device, str(path), direction, meta, train_mode, dtype, tile, overlap)


load = load_translator  # gennorm.load


# ----------------------------------------------------------------------------------------------
# graph exports: ONNX and torch.export


def _example_and_shapes(tr: Translator, size: int):
    """An example input and dynamic height / width (multiples of the network's size grid)."""
    import torch

    k = tr.multiple
    side = max(tr.min_side(), -(-size // k) * k)
    x = torch.rand(1, tr.input_nc, side, side, generator=torch.Generator().manual_seed(0)) * 2 - 1
    h = torch.export.Dim("h", min=max(1, tr.min_side() // k), max=max(side // k, 16384 // k))
    w = torch.export.Dim("w", min=max(1, tr.min_side() // k), max=max(side // k, 16384 // k))
    return x, ({2: k * h, 3: k * w},)


def trace(tr: Translator, size: int = 256):
    """torch.export of the generator with dynamic height and width (multiples of net.size_multiple).
    NC / KN layers trace as plain PyTorch ops (no custom ops), so the program runs anywhere."""
    import torch

    x, shapes = _example_and_shapes(tr, size)
    return torch.export.export(tr.net.eval().float().cpu(), (x,), dynamic_shapes=shapes)


def export_program(tr: Translator, path: str | Path, size: int = 256, program=None) -> Path:
    """The generator as a torch.export program file (.pt2; load it with torch.export.load)."""
    import torch

    from gennorm.atomic import atomic_write

    program = program if program is not None else trace(tr, size)
    atomic_write(Path(path), lambda f: torch.export.save(program, f))
    return Path(path)


def export_onnx(tr: Translator, path: str | Path, size: int = 256, program=None, opset: int = 18) -> Path:
    """The generator as ONNX with standard operators only (NC / KN decompose into convs, pooling and
    arithmetic) and dynamic height and width; input "image" [1, C, H, W] in [-1, 1]."""
    import torch

    path = Path(path)
    program = program if program is not None else trace(tr, size)
    # optimize=False: onnxscript's graph optimizer triples the export time and changes no result here
    onnx_program = torch.onnx.export(program, dynamo=True, input_names=["image"], output_names=["translated"],
                                     opset_version=opset, optimize=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        onnx_program.save(str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


# ----------------------------------------------------------------------------------------------
# folders


def _split_pair(image, left: bool):
    w, h = image.size
    half = w // 2
    return image.crop((0, 0, half, h)) if left else image.crop((half, 0, 2 * half, h))


def write_png(f, width: int, height: int, channels: int, bands) -> None:
    """An 8-bit PNG written band by band: `bands` yields uint8 [rows, width, channels] arrays from the
    top; only one band is in memory at a time (zlib stream, filter 0)."""
    import struct
    import zlib

    import numpy as np

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
    import numpy as np
    import torch

    from gennorm.atomic import atomic_write
    from gennorm.data.transforms import to_uint8

    src = np.asarray(image.convert("L" if tr.input_nc == 1 else "RGB"))  # uint8 [H, W(, C)]
    src = src[:, :, None] if src.ndim == 2 else src
    h, w = src.shape[:2]

    def bands():
        band, band_y = None, None
        for (y0, y1, x0, x1), (cy0, cy1, cx0, cx1) in tr._crops(h, w):
            if y0 != band_y:
                if band is not None:
                    yield band
                band, band_y = np.empty((y1 - y0, w, tr.output_nc), np.uint8), y0
            crop = torch.from_numpy(np.ascontiguousarray(src[cy0:cy1, cx0:cx1])).permute(2, 0, 1)[None].float()
            with torch.no_grad():
                y = tr._run(crop / 127.5 - 1.0)[0, :, y0 - cy0:y1 - cy0, x0 - cx0:x1 - cx0]
            band[:, x0:x1] = to_uint8(y, quantize)
        yield band

    atomic_write(path, lambda f: write_png(f, w, h, tr.output_nc, bands()))


def _save_png(image, path: Path) -> None:
    from io import BytesIO

    from gennorm.atomic import atomic_write_bytes

    from gennorm.errors import write_error

    buf = BytesIO()
    image.save(buf, format="PNG")
    try:
        atomic_write_bytes(path, buf.getvalue())  # never a half-written PNG, even on a full disk
    except OSError as err:
        raise write_error(str(path), err, f"free space or choose another output folder (the images "
                                                f"written before it in {path.parent} are complete)") from None


NAMINGS = ("gennorm", "junyanz")


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
    quantize: "round" (gennorm's default) or "floor" (the original's, and the default of naming junyanz).
    max_pixels: larger images are refused (DataError) before decoding ("default":
    gennorm.data.images.DEFAULT_MAX_PIXELS, 100 MP; None: no limit). Images with a
    side under MIN_SIDE are refused too. With a tiling translator, images on the network's grid go
    tile by tile straight into their PNG (bounded memory; see `streams`).
    """
    from gennorm.data.images import DEFAULT_MAX_PIXELS, check_size, list_images, load_image

    input_dir, output_dir = Path(input_dir), Path(output_dir)
    tr = model if isinstance(model, Translator) else load_translator(model, device, direction or "AtoB")
    if not input_dir.is_dir():
        raise DataError(f"{input_dir}: not a folder of images")
    if naming not in NAMINGS:
        raise ConfigError(f"naming {naming!r}: allowed: {', '.join(NAMINGS)}")
    quantize = quantize or ("floor" if naming == "junyanz" else "round")
    paths = list_images(input_dir)[:num_test]
    if not paths:
        raise DataError(f"{input_dir}: no images found (png, jpg, ...)")
    a_is_left = (tr.cfg.data.direction == "AtoB") == (tr.direction == "AtoB")
    src_side, dst_side = ("A", "B") if tr.direction == "AtoB" else ("B", "A")
    where = {"gennorm": lambda stem, kind: {"in": f"inputs/{stem}.png", "out": f"{stem}.png",
                                            "target": f"targets/{stem}.png"}[kind],
             "junyanz": lambda stem, kind: {"in": f"images/{stem}_real_{src_side}.png",
                                            "out": f"images/{stem}_fake_{dst_side}.png",
                                            "target": f"images/{stem}_real_{dst_side}.png"}[kind]}[naming]
    written, rows = [], []
    max_pixels = DEFAULT_MAX_PIXELS if max_pixels == "default" else max_pixels
    for src in paths:
        check_size(src, max_pixels, MIN_SIDE * (2 if aligned else 1))
        image = load_image(src)
        target = None
        if aligned:
            image, target = _split_pair(image, a_is_left), _split_pair(image, not a_is_left)
        out_path = output_dir / where(src.stem, "out")
        out_path.parent.mkdir(parents=True, exist_ok=True)
        if streams(tr, *image.size):
            translate_streaming(tr, image, out_path, quantize)
            files = {"in": image, "out": None, "target": target}
        else:
            files = {"in": image, "out": tr.translate(image, quantize), "target": target}
        for kind, picture in files.items():
            if picture is not None:
                (output_dir / where(src.stem, kind)).parent.mkdir(parents=True, exist_ok=True)
                _save_png(picture, output_dir / where(src.stem, kind))
        written.append(out_path)
        rows.append([where(src.stem, k) for k in ("in", "out", "target") if k == "out" or files[k] is not None])
    title = f"{tr.source} ({tr.direction}) on {input_dir}"
    if naming == "junyanz":
        write_junyanz_index(output_dir, [p.stem for p in paths], rows, title)
    else:
        write_index(output_dir, [Path(r[1]).name for r in rows], aligned, title=title)
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


def _href(name: str) -> str:
    """A file name as a URL path: percent-encoded bytes, so names that are not UTF-8 still link."""
    from urllib.parse import quote

    return html.escape(quote(os.fsencode(name)))


def _text(name: str) -> str:
    """A file name as page text: undecodable bytes shown as U+FFFD."""
    return html.escape(os.fsencode(name).decode("utf-8", "replace"))


def write_junyanz_index(output_dir: Path, stems: list[str], rows: list[list[str]], title: str) -> Path:
    """index.html as pytorch-CycleGAN-and-pix2pix's HTML class writes it: per image a heading and a
    row of its images, each captioned with its visual name (real_A, fake_B, real_B)."""
    from gennorm.atomic import atomic_write_bytes

    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_text(title)}</title></head><body>"]
    for stem, files in zip(stems, rows):
        parts.append(f"<h3>{_text(stem)}</h3><table border='1' style='table-layout: fixed;'><tr>")
        for file in files:
            label = Path(file).stem[len(stem) + 1:]
            q = _href(file)
            parts.append(f"<td halign='center' style='word-wrap: break-word;' valign='top'><p><a href='{q}'>"
                         f"<img style='width:256px' src='{q}'></a><br><p>{_text(label)}</p></p></td>")
        parts.append("</tr></table>")
    parts.append("</body></html>\n")
    path = Path(output_dir) / "index.html"
    atomic_write_bytes(path, "".join(parts).encode())
    return path


def write_index(output_dir: Path, names: list[str], with_target: bool, title: str) -> Path:
    """output_dir/index.html: one row per image, input | output (| target)."""
    from gennorm.atomic import atomic_write_bytes

    head = "<tr><th>name</th><th>input</th><th>output</th>" + ("<th>target</th>" if with_target else "") + "</tr>"
    style = 'style="width:256px;image-rendering:pixelated"'
    body = []
    for n in names:
        q, label = _href(n), _text(n)
        cells = [f"<td>{label}</td>", f'<td><img {style} src="inputs/{q}"></td>', f'<td><img {style} src="{q}"></td>']
        if with_target:
            cells.append(f'<td><img {style} src="targets/{q}"></td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{_text(title)}</title></head><body>"
            f"<h1>{_text(title)}</h1><table>{head}{''.join(body)}</table></body></html>\n")
    path = Path(output_dir) / "index.html"
    atomic_write_bytes(path, page.encode())
    return path
