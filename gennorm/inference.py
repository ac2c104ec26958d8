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
from pathlib import Path
from typing import NamedTuple

from gennorm.errors import CheckpointError, ConfigError, DataError

GENERATOR_FILE = "generator.safetensors"
DIRECTIONS = ("AtoB", "BtoA")


class Translator:
    """A generator ready for inference. `t(x)` takes a PIL image, an HxWxC uint8 numpy array or a
    [C, H, W] / [N, C, H, W] tensor in [-1, 1], and returns the same kind at the same size."""

    def __init__(self, net, cfg, device, source: str, direction: str = "AtoB", meta: dict | None = None,
                 train_mode: bool = False):
        self.train_mode = train_mode  # batch norm on batch statistics and dropout on (the original test mode)
        self.net = net.to(device).train(train_mode)
        self.cfg, self.device, self.source, self.direction = cfg, device, source, direction
        self.meta = meta or {}
        m = cfg.model
        self.input_nc, self.output_nc = (m.input_nc, m.output_nc) if direction == "AtoB" else (m.output_nc, m.input_nc)
        self.multiple = net.size_multiple

    def valid_size(self, h: int, w: int) -> tuple[int, int]:
        """The nearest size the generator accepts (a multiple of net.size_multiple, at least one)."""
        k = self.multiple
        return max(k, round(h / k) * k), max(k, round(w / k) * k)

    def translate_tensor(self, x):
        """[N, input_nc, H, W] in [-1, 1] -> [N, output_nc, H, W] (resized to a valid size and back)."""
        import torch
        import torch.nn.functional as F

        h, w = x.shape[-2:]
        vh, vw = self.valid_size(h, w)
        x = x.to(self.device, torch.float32)
        with torch.no_grad():
            if (vh, vw) != (h, w):
                x = F.interpolate(x, size=(vh, vw), mode="bicubic", align_corners=False).clamp(-1, 1)
            y = self.net(x).float()
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
                    train_mode: bool = False) -> Translator:
    """A Translator from a run directory, a models/ folder or a zoo name (see the module docstring).

    checkpoint: a run directory's step to load ("latest": the newest readable one). train_mode:
    run the generator in train mode (batch norm on the batch's statistics, dropout on), as
    pytorch-CycleGAN-and-pix2pix's test.py does unless given --eval."""
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
        return Translator(net, cfg, device, str(path), "AtoB", meta, train_mode)
    run = run_generator_weights(path, cfg, direction, None if checkpoint == "latest" else int(checkpoint))
    meta = {"step": str(run.checkpoint["step"]), "ema": str(run.ema), "checkpoint": str(run.path)}
    net = _build(cfg, direction, run.weights, str(run.path), run.options)
    return Translator(net, cfg, device, str(path), direction, meta, train_mode)


load = load_translator  # gennorm.load


# ----------------------------------------------------------------------------------------------
# folders


def _split_pair(image, left: bool):
    w, h = image.size
    half = w // 2
    return image.crop((0, 0, half, h)) if left else image.crop((half, 0, 2 * half, h))


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
                     naming: str = "gennorm", quantize: str | None = None) -> list[Path]:
    """Translate every image of input_dir (the first num_test) into output_dir; returns the outputs.

    model: a Translator, or anything load_translator takes. aligned: inputs are A|B pairs; the half
    the model reads is translated and the other half saved as the target (the model's A half is the
    left one when it trained with data.direction AtoB).
    naming "gennorm": output_dir/NAME.png, inputs/NAME.png, targets/NAME.png and index.html.
    naming "junyanz": pytorch-CycleGAN-and-pix2pix's test.py layout, output_dir/images/NAME_real_A.png,
    NAME_fake_B.png, NAME_real_B.png (A and B swapped for BtoA) and its index.html.
    quantize: "round" (gennorm's default) or "floor" (the original's, and the default of naming junyanz).
    """
    from gennorm.data.images import list_images, load_image

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
    for src in paths:
        image = load_image(src)
        target = None
        if aligned:
            image, target = _split_pair(image, a_is_left), _split_pair(image, not a_is_left)
        files = {"in": image, "out": tr.translate(image, quantize), "target": target}
        for kind, picture in files.items():
            if picture is not None:
                (output_dir / where(src.stem, kind)).parent.mkdir(parents=True, exist_ok=True)
                _save_png(picture, output_dir / where(src.stem, kind))
        written.append(output_dir / where(src.stem, "out"))
        rows.append([where(src.stem, k) for k in ("in", "out", "target") if files[k] is not None])
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


def write_junyanz_index(output_dir: Path, stems: list[str], rows: list[list[str]], title: str) -> Path:
    """index.html as pytorch-CycleGAN-and-pix2pix's HTML class writes it: per image a heading and a
    row of its images, each captioned with its visual name (real_A, fake_B, real_B)."""
    from gennorm.atomic import atomic_write_bytes

    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head><body>"]
    for stem, files in zip(stems, rows):
        parts.append(f"<h3>{html.escape(stem)}</h3><table border='1' style='table-layout: fixed;'><tr>")
        for file in files:
            label = Path(file).stem[len(stem) + 1:]
            q = html.escape(file)
            parts.append(f"<td halign='center' style='word-wrap: break-word;' valign='top'><p><a href='{q}'>"
                         f"<img style='width:256px' src='{q}'></a><br><p>{html.escape(label)}</p></p></td>")
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
        q = html.escape(n)
        cells = [f"<td>{q}</td>", f'<td><img {style} src="inputs/{q}"></td>', f'<td><img {style} src="{q}"></td>']
        if with_target:
            cells.append(f'<td><img {style} src="targets/{q}"></td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head><body>"
            f"<h1>{html.escape(title)}</h1><table>{head}{''.join(body)}</table></body></html>\n")
    path = Path(output_dir) / "index.html"
    atomic_write_bytes(path, page.encode())
    return path
