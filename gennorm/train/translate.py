"""`gennorm translate MODEL INPUT OUTPUT`, and the Python API other parts use.

    from gennorm.train.translate import load_translator, translate_folder
    tr = load_translator("models/scenes-pix2pix-nc")     # or a run dir (latest checkpoint)
    out_image = tr.translate(pil_image)                   # same size as the input
    translate_folder("runs/p2p", "data/scenes/paired/test", "out/", aligned=True)

MODEL is a run directory (latest checkpoint; EMA weights when the run used EMA) or a models/
folder (config.yaml + generator.safetensors). The network is rebuilt from the saved config.
OUTPUT gets one PNG per input image (same stem), `inputs/` (and `targets/` with --aligned),
and `index.html` showing input | output [| target] side by side.
"""
from __future__ import annotations

import html
import sys
from pathlib import Path

import torch

from gennorm.errors import CheckpointError, ConfigError, DataError

DESCRIPTION = """\
Translate every image of a folder with a trained model; writes OUTPUT/NAME.png for each input,
and OUTPUT/index.html with input | output (| target) side by side.

MODEL: a run directory (gennorm train's out; the latest checkpoint, EMA weights if used) or a
models/ folder (gennorm export). INPUT: a folder of images, or of A|B pairs with --aligned
(the A half is translated, the B half shown as the target).

examples:
  gennorm translate runs/p2p-nc data/scenes/paired/test out/p2p --aligned
  gennorm translate models/scenes-pix2pix-nc my_label_maps/ out/maps
  gennorm translate runs/cg-nc data/scenes/unpaired/testB out/b2a --direction BtoA
"""

GENERATOR_FILE = "generator.safetensors"
MULTIPLES = {"unet_256": 256, "unet_128": 128}  # resnets: 4 (two stride-2 convs)


def _to_tensor(image, channels: int) -> torch.Tensor:
    """PIL -> [1, C, H, W] in [-1, 1]."""
    import numpy as np

    image = image.convert("L" if channels == 1 else "RGB")
    arr = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).float()
    arr = arr[None] if arr.dim() == 2 else arr.permute(2, 0, 1)  # [C, H, W]
    return (arr / 127.5 - 1.0)[None]


def _to_image(t: torch.Tensor):
    """[C, H, W] in [-1, 1] -> PIL."""
    from PIL import Image

    arr = ((t.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    if arr.shape[0] == 1:
        return Image.fromarray(arr[0].numpy(), mode="L")
    return Image.fromarray(arr.permute(1, 2, 0).numpy(), mode="RGB")


class Translator:
    """A generator ready for inference: `translate(pil) -> pil` at the input's size."""

    def __init__(self, net: torch.nn.Module, cfg, device: torch.device, source: str, direction: str = "AtoB",
                 meta: dict | None = None):
        self.net = net.to(device).eval()
        self.cfg, self.device, self.source, self.direction = cfg, device, source, direction
        self.meta = meta or {}
        m = cfg.model
        self.input_nc, self.output_nc = (m.input_nc, m.output_nc) if direction == "AtoB" else (m.output_nc, m.input_nc)
        self.multiple = MULTIPLES.get(m.g_arch, 4)

    def _valid_size(self, h: int, w: int) -> tuple[int, int]:
        k = self.multiple
        return max(k, round(h / k) * k), max(k, round(w / k) * k)

    @torch.no_grad()
    def translate_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """[N, input_nc, H, W] in [-1, 1] -> [N, output_nc, H, W] (resized to a valid size and back)."""
        import torch.nn.functional as F

        h, w = x.shape[-2:]
        vh, vw = self._valid_size(h, w)
        x = x.to(self.device, torch.float32)
        if (vh, vw) != (h, w):
            x = F.interpolate(x, size=(vh, vw), mode="bicubic", align_corners=False).clamp(-1, 1)
        y = self.net(x).float()
        if (vh, vw) != (h, w):
            y = F.interpolate(y, size=(h, w), mode="bicubic", align_corners=False)
        return y.clamp(-1, 1)

    def translate(self, image):
        """PIL image -> PIL image of the same size."""
        return _to_image(self.translate_tensor(_to_tensor(image, self.input_nc))[0])


# ----------------------------------------------------------------------------------------------
# loading


def _read_config(folder: Path):
    from gennorm.train.config import config_from_file

    path = folder / "config.yaml"
    if not path.is_file():
        raise CheckpointError(f"{folder}: no config.yaml (expected a run directory or a models/ folder)")
    return config_from_file(path)


def _generator_name(cfg, direction: str) -> str:
    if cfg.train.task == "pix2pix":
        if direction != "AtoB":
            raise ConfigError(f"direction {direction!r}: a pix2pix model translates one way only; allowed: AtoB")
        return "G"
    return "G_A" if direction == "AtoB" else "G_B"


def _build(cfg, direction: str):
    from gennorm.train.task import build_generator_from

    m = cfg.model
    ins, outs = (m.input_nc, m.output_nc) if direction == "AtoB" else (m.output_nc, m.input_nc)
    return build_generator_from(m, ins, outs)


def _load_weights(net, state: dict, what: str, options: dict | None = None) -> None:
    from gennorm.networks import load_network_state

    try:
        load_network_state(net, state, options)
    except CheckpointError as err:
        raise CheckpointError(f"{what}: {err}") from None


def load_translator(path: str | Path, device: str | torch.device = "cpu", direction: str = "AtoB") -> Translator:
    """A Translator from a run directory or a models/ folder (see the module docstring)."""
    path = Path(path)
    device = torch.device(device)
    if direction not in ("AtoB", "BtoA"):
        raise ValueError(f"direction must be 'AtoB' or 'BtoA', got {direction!r}")
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such model (expected a run directory or a models/ folder)")
    cfg = _read_config(path)
    if (path / GENERATOR_FILE).is_file():
        from safetensors.torch import load_file, safe_open

        if direction != "AtoB":
            raise ConfigError(f"direction {direction!r}: a models/ folder holds the AtoB generator only")
        try:
            state = {k: v.float() for k, v in load_file(str(path / GENERATOR_FILE)).items()}
            with safe_open(str(path / GENERATOR_FILE), "pt") as f:
                meta = dict(f.metadata() or {})
        except Exception as err:  # safetensors raises its own error types for bad files
            raise CheckpointError(f"{path / GENERATOR_FILE}: cannot be read ({err})") from None
        net = _build(cfg, "AtoB")
        _load_weights(net, state, str(path / GENERATOR_FILE))
        return Translator(net, cfg, device, str(path), "AtoB", meta)
    from gennorm.train.checkpoint import load_latest

    state, ckpt_path = load_latest(path / "checkpoints")
    name = _generator_name(cfg, direction)
    task_state = state["task"]
    weights = task_state["ema"].get(name) if task_state.get("ema") else None
    net = _build(cfg, direction)
    _load_weights(net, weights if weights is not None else task_state["nets"][name], str(ckpt_path),
                  task_state.get("options", {}).get(name))
    meta = {"step": str(state["step"]), "ema": str(weights is not None), "checkpoint": str(ckpt_path)}
    return Translator(net, cfg, device, str(path), direction, meta)


# ----------------------------------------------------------------------------------------------
# folders


def _split_pair(image, left: bool):
    w, h = image.size
    half = w // 2
    return image.crop((0, 0, half, h)) if left else image.crop((half, 0, 2 * half, h))


def translate_folder(model_path: str | Path, input_dir: str | Path, output_dir: str | Path,
                     aligned: bool = False, direction: str | None = None, device: str = "cpu",
                     translator: Translator | None = None) -> list[Path]:
    """Translate every image of input_dir into output_dir/NAME.png; also inputs/, targets/, index.html.

    aligned: inputs are A|B pairs; the half the model reads is translated and the other half is
    saved as the target (the model's A half is the left one when it trained with data.direction
    AtoB). Returns the written output PNG paths, in input order.
    """
    from gennorm.data.images import list_images, load_image
    from gennorm.atomic import atomic_write_bytes

    input_dir, output_dir = Path(input_dir), Path(output_dir)
    tr = translator or load_translator(model_path, device, direction or "AtoB")
    if not input_dir.is_dir():
        raise DataError(f"{input_dir}: not a folder of images")
    paths = list_images(input_dir)
    if not paths:
        raise DataError(f"{input_dir}: no images found (png, jpg, ...)")
    a_is_left = (tr.cfg.data.direction == "AtoB") == (tr.direction == "AtoB")
    written, rows = [], []
    for sub in ("inputs",) + (("targets",) if aligned else ()):
        (output_dir / sub).mkdir(parents=True, exist_ok=True)
    for src in paths:
        image = load_image(src)
        target = None
        if aligned:
            image, target = _split_pair(image, a_is_left), _split_pair(image, not a_is_left)
        out = tr.translate(image)
        name = f"{src.stem}.png"
        _save(out, output_dir / name, atomic_write_bytes)
        _save(image, output_dir / "inputs" / name, atomic_write_bytes)
        if target is not None:
            _save(target, output_dir / "targets" / name, atomic_write_bytes)
        written.append(output_dir / name)
        rows.append(name)
    write_index(output_dir, rows, aligned, title=f"{tr.source} ({tr.direction}) on {input_dir}")
    return written


def translate_test_split(run_dir: str | Path, out_dir: str | Path, *, device: str = "cpu", batch_size: int = 8,
                         direction: str = "AtoB") -> dict:
    """Translate a run's test split (data.root of its config) into out_dir (for `gennorm eval --run`).

    Returns {"real": folder of real target-domain test images, "fake": out_dir (one <stem>.png per
    test input), "paired": True for aligned data (real/<stem> is the target of fake/<stem>)}.
    batch_size is accepted for the caller's contract; images are translated one at a time.
    """
    del batch_size
    tr = load_translator(run_dir, device, direction)
    cfg, root = tr.cfg, Path(tr.cfg.data.root)
    if cfg.data.mode == "aligned":
        split = next((root / s for s in ("test", "val") if (root / s).is_dir()), None)
        if split is None:
            raise DataError(f"{root}: no test/ or val/ folder to evaluate on")
        translate_folder(run_dir, split, out_dir, aligned=True, translator=tr)
        return {"real": str(Path(out_dir) / "targets"), "fake": str(out_dir), "paired": True}
    a_side = "A" if (cfg.data.direction == "AtoB") == (direction == "AtoB") else "B"
    b_side = "B" if a_side == "A" else "A"
    src, real = root / f"test{a_side}", root / f"test{b_side}"
    for folder in (src, real):
        if not folder.is_dir():
            raise DataError(f"{folder}: missing (unaligned test split: testA/ and testB/)")
    translate_folder(run_dir, src, out_dir, translator=tr)
    return {"real": str(real), "fake": str(out_dir), "paired": False}


def _save(image, path: Path, writer) -> None:
    from io import BytesIO

    buf = BytesIO()
    image.save(buf, format="PNG")
    writer(path, buf.getvalue())


def write_index(output_dir: Path, names: list[str], with_target: bool, title: str) -> Path:
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


# ----------------------------------------------------------------------------------------------
# CLI


def add_arguments(parser) -> None:
    parser.add_argument("model", help="run directory or models/ folder")
    parser.add_argument("input", help="folder of images (A|B pairs with --aligned)")
    parser.add_argument("output", help="output folder")
    parser.add_argument("--aligned", action="store_true", help="inputs are A|B pairs; show B as the target")
    parser.add_argument("--direction", choices=("AtoB", "BtoA"), default=None,
                        help="AtoB (default) or BtoA (CycleGAN run directories: the second generator)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")


def run(args) -> int:
    written = translate_folder(args.model, args.input, args.output, aligned=args.aligned, direction=args.direction,
                               device=args.device)
    print(f"translated {len(written)} images -> {args.output}; open {Path(args.output) / 'index.html'}",
          file=sys.stderr)
    return 0
