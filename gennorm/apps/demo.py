"""The gennorm demo: one label map in, every model of a set out, side by side (Gradio Blocks).

    gennorm demo                         # http://127.0.0.1:7860, models from ./models
    python apps/demo.py --models models --port 7860     # the same, via the thin launcher in apps/

Its one entry point is the verb (gennorm/commands/demo.py: options, checks, then build_app and
launch from here).

Pick a model set (models that learned the same task and differ in their normalization: the
baseline, PONO-MS, NC, ...), upload a label map or click an example from assets/, and Translate
shows the input next to each model's output, labelled with the model, its norm and its
inference time. Timings leave out warm-up: every model is loaded and run once at start, and the
first image of a new size is translated once untimed (allocation and kernel selection happen
then), so the times compare like with like. Any size up to MAX_SIDE: models whose norm uses local
statistics (NC, KN, PONO) translate large inputs tile by tile (TILE px, exact: the same output as
one pass, bounded memory); whole-image norms (instance) are run on the image downscaled to
WHOLE_SIDE. The status line gives each model's size, tiles and time. An image slider compares any
output with the input; "Statistics" shows, for one model, what its norm normalizes by at every
layer (PONO's mean/std maps, NC's and KN's per-window std; gennorm.networks.statistics). The
"Model zoo" tab holds the metrics table from the model cards with the FID/KID protocol, each
model's training curves, and each card.

The app uses only gennorm's public API: `gennorm.zoo` to list models and
`gennorm.inference.load_translator` to run them (loaded once per model, then cached; on
the GPU when there is one). API: POST `/translate` (gradio_client: `api_name="/translate"`)
takes (image, model_set) and returns (gallery of (output, caption) one per model, timings).

Safety: uploads are capped (`max_file_size`), decoded images beyond MAX_PIXELS are refused
before decoding, larger ones are downscaled to MAX_SIDE px on the long side; EXIF orientation,
alpha, grayscale and 16-bit images are normalized to RGB; a non-image or corrupt upload gets a
clear message. The server binds 127.0.0.1 unless told otherwise, never opens a share link and
serves no files but its own (no `allowed_paths`; examples are passed as images, not paths).
Uploads and outputs are swept from Gradio's temp folder (CACHE_SWEEP; everything on close), and
the page shows no absolute path of this machine (the zoo folder by its name, paths in cards and
error messages shortened to their last component); neither does any answer of the server: files
are named relative to the temp folder (gennorm.apps.public). A full temp folder is told to the
visitor (TEMP_FULL), on an upload as on a translation.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline, no telemetry

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402  (gradio's dependency: its DataFrames and plots)
import torch  # noqa: E402
from PIL import Image, UnidentifiedImageError  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402  (gradio's server)

from gennorm.data.images import check_image, load_image, to_rgb8  # noqa: E402
from gennorm.data.transforms import to_tensor  # noqa: E402
from gennorm.devices import require_device  # noqa: E402
from gennorm.errors import DataError  # noqa: E402
from gennorm.inference import load_translator  # noqa: E402
from gennorm.layers.registry import NORMS  # noqa: E402
from gennorm.networks.statistics import norm_statistics  # noqa: E402
from gennorm.zoo import ModelInfo, default_set, metrics_table, model_sets  # noqa: E402

from gennorm.apps.public import TEMP_FULL, PublicPaths, disk_full  # noqa: E402

# the example label maps: the checkout's assets/, or the wheel's copy (setup.py)
ASSETS_DIR = next((d for d in (Path(__file__).resolve().parents[2] / "assets", Path(__file__).resolve().parents[1] / "_assets")
                   if d.is_dir()), Path(__file__).resolve().parents[1] / "_assets")
MAX_SIDE = 2048  # longer side of what the models see; larger uploads are downscaled
WHOLE_SIDE = 1024  # longer side for models that cannot tile exactly (whole-image statistics)
TILE = 256  # tile side for the models that tile exactly
STATS_SIDE = 512  # longer side of the image the statistics view runs on
WARM_SIZE = (128, 128)  # the warm-up image at start (the zoo's training size)
WARM_MAX_SIDE = 512  # new sizes up to this get an untimed first call; above it warm-up is a small part
WARM_KEEP = 256  # sizes remembered per process (then forgotten: a bound, not a cache policy)
MODEL_EVENTS = "models"  # one Gradio concurrency group for everything that runs a model
MAX_PIXELS = 40_000_000  # refuse to decode beyond this (decompression bombs)
MAX_FILE_SIZE = "10mb"
CACHE_SWEEP = (300, 900)  # every 5 min, delete uploads and outputs older than 15 min (and all on close)
OUT_HEIGHT = 300  # px of each side-by-side image
BAD_UPLOAD = "The upload is not an image that can be read (PNG, JPEG, WebP, BMP, TIFF, GIF) or it is corrupt."
CSS = "\n".join([
    ".gn-out img {width: 100% !important; height: 100% !important; object-fit: contain;}",
    # the side-by-side labels get the whole width and wrap: the download button, which covered their
    # end ("scenes-nc · 71 m"), goes to the bottom corner, and the label's icon goes
    ".gn-out .icon-button-wrapper.top-panel {top: auto; bottom: var(--block-label-margin);}",
    ".gn-out label[data-testid=block-label] {max-width: calc(100% - 2 * var(--block-label-margin));}",
    ".gn-out label[data-testid=block-label] > span {display: none;}",
    # the statistics maps' captions wrap instead of ending in "..." ("NC window std at...")
    "#stats-gallery .caption-label {white-space: normal; max-width: calc(100% - 12px);}",
])
THEME_FONTS = dict(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


# ----------------------------------------------------------------------------------------------
# images in


def prepare_image(im: Image.Image, max_side: int = MAX_SIDE) -> Image.Image:
    """Any PIL image -> an upright 8-bit RGB image whose long side is <= max_side."""
    w, h = im.size
    if w * h > MAX_PIXELS:
        raise gr.Error(f"The image is {w}x{h} pixels; the demo takes at most {MAX_PIXELS // 1_000_000} megapixels.")
    if w == 0 or h == 0:
        raise gr.Error(BAD_UPLOAD)
    im.load()  # decode now: a truncated file fails here, not inside a model
    im = to_rgb8(im)  # the data loader's conversion (EXIF, 16-bit, alpha onto white): the CLI's pixels
    if max(im.size) > max_side:
        scale = max_side / max(im.size)
        im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.Resampling.LANCZOS)
    return im


def upload_image(**kwargs) -> gr.Image:
    """A gr.Image input whose preprocessing hands the app a prepared RGB image, and turns an
    unreadable upload into a clear gr.Error (instead of Gradio's generic "Error")."""
    image = gr.Image(type="filepath", image_mode=None, **kwargs)
    decode = image.preprocess  # the uploaded file's path (a data: URL written to a file); raises on non-images

    def preprocess(payload):
        try:
            path = decode(payload)
            if path is None:
                return None
            w, h = check_image(path)  # the header only: a bomb is refused before decoding
            if w * h > MAX_PIXELS:
                raise gr.Error(f"The image is {w}x{h} pixels; the demo takes at most {MAX_PIXELS // 1_000_000} "
                               "megapixels.")
            return prepare_image(load_image(path))  # the CLI's reader: truncated files refused, same pixels
        except gr.Error:
            raise
        except OSError as err:
            raise gr.Error(TEMP_FULL if disk_full(err) else BAD_UPLOAD) from None
        except (DataError, UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError):
            raise gr.Error(BAD_UPLOAD) from None  # the reason names a temp path: not for the visitor

    image.preprocess = preprocess  # per instance: the frontend still sees a plain gr.Image
    return image


# ----------------------------------------------------------------------------------------------
# models


def pick_device(device: str = "auto") -> str:
    """The device name to run on ("auto": cuda when available); a ConfigError if it does not exist."""
    return str(require_device(device))


def _default_loader(path: Path, device: str):
    return load_translator(path, device=device)


class TranslatorCache:
    """Loads each model once (per process) and hands out the same translator afterwards.

    A translator whose norm tiles exactly gets `tile = TILE` (it then translates inputs larger
    than a tile tile by tile); `warm(translator, size)` runs one untimed translation per new size
    up to WARM_MAX_SIDE (larger ones take long enough that their first-call cost is a small part,
    and translating them twice would double the wait)."""

    def __init__(self, device: str, loader: Callable | None = None):
        self.device, self.loader = device, loader or _default_loader
        self._items: dict[str, object] = {}
        self._warm: set[tuple[int, tuple[int, int]]] = set()
        self._lock = threading.Lock()
        self._busy: dict[int, threading.Lock] = {}  # per translator: statistics hooks vs translations

    def busy(self, translator) -> threading.Lock:
        """The lock held while `translator` runs (translate or statistics), so that the statistics
        view's hooks never fire inside a concurrent translation of the same model."""
        with self._lock:
            return self._busy.setdefault(id(translator), threading.Lock())

    def get(self, info: ModelInfo):
        key = str(info.path.resolve())
        with self._lock:
            if key not in self._items:
                translator = self.loader(info.path, self.device)
                if getattr(translator, "tiles_exactly", False):
                    translator.tile = TILE
                self._items[key] = translator
            return self._items[key]

    def warm(self, translator, size: tuple[int, int]) -> None:
        """Translate one blank image of `size` once per translator and size, untimed."""
        key = (id(translator), size)
        if key in self._warm or max(size) > WARM_MAX_SIDE:
            return
        translator.translate(Image.new("RGB", size))
        with self._lock:
            if len(self._warm) >= WARM_KEEP:
                self._warm.clear()
            self._warm.add(key)


def tiles_of(translator, size: tuple[int, int]) -> int:
    """How many tiles `translator` cuts an image of `size` (w, h) into (0: one whole pass)."""
    tile = getattr(translator, "tile", None)
    if not tile or not hasattr(translator, "valid_size"):
        return 0
    h, w = translator.valid_size(size[1], size[0])
    t = translator.tile_size()
    return 0 if max(h, w) <= t else -(-h // t) * -(-w // t)


@dataclass
class Result:
    info: ModelInfo
    image: Image.Image | None
    ms: float | None
    error: str = ""
    size: tuple[int, int] | None = None  # (w, h) the model translated
    tiles: int = 0  # tiles it was cut into (0: one pass)
    tile_side: int = TILE  # their side (the translator's tile_size(): TILE on the network's size grid)
    downscaled: bool = False  # to WHOLE_SIDE (whole-image norm)

    @property
    def how(self) -> str:
        """'512x512 in 4 tiles' / '1024x768, downscaled (whole-image norm)' / '128x128'."""
        if self.size is None:
            return ""
        text = f"{self.size[0]}x{self.size[1]}"
        if self.tiles:
            text += f" in {self.tiles} tiles of {self.tile_side}"
        if self.downscaled:
            text += ", downscaled (whole-image norm: not tiled)"
        return text

    @property
    def caption(self) -> str:
        role = "baseline, " if self.info.role == "baseline" else ""
        head = f"{self.info.name} ({role}{self.info.norm_label})"
        return f"{head} · failed: {self.error}" if self.error else f"{head} · {self.ms:.0f} ms · {self.how}"

    @property
    def short_label(self) -> str:
        """For the side-by-side images: the name (which usually says the norm), role, time."""
        info = self.info
        head = info.name if info.norm in info.name else f"{info.name} ({info.norm_label})"
        head += " (baseline)" if info.role == "baseline" else ""
        if self.error:
            return f"{head} · failed"
        return head if self.ms is None else f"{head} · {self.ms:.0f} ms"


class Demo:
    """The app's state: the zoo's sets and the translator cache; UI-free logic, easy to test."""

    def __init__(self, models_dir: str | Path = "models", device: str = "auto", loader: Callable | None = None,
                 model_set: str | None = None):
        self.models_dir = Path(models_dir)
        self.sets = model_sets(self.models_dir)
        self.default_set = default_set(self.sets, model_set)  # the built-in set unless --set names another
        self.device = pick_device(device)
        self.cache = TranslatorCache(self.device, loader)

    @property
    def max_models(self) -> int:
        return max((len(v) for v in self.sets.values()), default=1)

    def models(self) -> list[ModelInfo]:
        return [i for models in self.sets.values() for i in models]

    def warm_up(self) -> None:
        """Load every model and translate a WARM_SIZE image once, so that no visitor's timing pays it."""
        for info in self.models():
            try:
                self.cache.warm(self.cache.get(info), WARM_SIZE)
            except Exception:  # noqa: BLE001  a broken model says so when it is used
                pass

    def translate(self, image: Image.Image | None, set_name: str) -> list[Result]:
        if image is None:
            raise gr.Error("Upload an image or pick an example first.")
        if set_name not in self.sets:
            raise gr.Error(f"Unknown model set {set_name!r}; sets: {', '.join(self.sets) or 'none'}.")
        results = []
        for info in self.sets[set_name]:
            try:
                translator = self.cache.get(info)
                img, downscaled = image, False
                if not getattr(translator, "tile", None) and max(image.size) > WHOLE_SIDE:
                    img, downscaled = prepare_image(image, WHOLE_SIDE), True
                with self.cache.busy(translator):
                    self.cache.warm(translator, img.size)  # the first call at a size is not timed
                    start = time.perf_counter()
                    out = translator.translate(img)
                    ms = (time.perf_counter() - start) * 1000
                results.append(Result(info, out, ms, size=img.size, tiles=tiles_of(translator, img.size),
                                      downscaled=downscaled,
                                      tile_side=translator.tile_size() if getattr(translator, "tile", None) else TILE))
            except Exception as err:  # one broken model must not hide the others
                msg = _message(err)
                gr.Warning(f"{info.name}: {msg}")
                results.append(Result(info, None, None, msg))
        return results

    def statistics(self, image: Image.Image | None, name: str) -> tuple[list[tuple[Image.Image, str]], str]:
        """(gallery of (map image, caption), note) of what model `name`'s norm normalizes by."""
        if image is None:
            raise gr.Error("Upload an image or pick an example first.")
        info = next((i for i in self.models() if i.name == name), None)
        if info is None:
            raise gr.Error(f"Unknown model {name!r}.")
        try:
            translator = self.cache.get(info)
            small = prepare_image(image, STATS_SIDE)
            with self.cache.busy(translator):
                maps = _statistics_maps(translator, small)
        except gr.Error:
            raise
        except Exception as err:
            raise gr.Error(f"{name}: {_message(err)}") from None
        if not maps:
            return [], (f"**{name}** ({info.norm_label}) has no spatial statistics: its norm uses one mean and "
                        "std per channel (or none), so there is no map to show.")
        gallery = [(small, f"input {small.width}x{small.height}")]
        gallery += [(colorize(m.values, small.size), _map_caption(m)) for m in maps]
        kinds = sorted({m.kind for m in maps})
        return gallery, (f"**{name}**: {len(maps)} maps from {', '.join(kinds)} layers, in execution order "
                         "(bright = high; each map scaled to its own 1st-99th percentile).")


def _map_caption(m) -> str:
    """'NC window std · blocks.0.conv_block.1 · 32x32': short enough to show whole under a map (the
    statistics module's caption, with the layer's input shape, ended in "..." there)."""
    h, w = m.values.shape
    return f"{m.kind} {m.name} · {m.layer} · {w}x{h}"


def _message(err: Exception) -> str:
    return redact_paths(str(err).splitlines()[0]) if str(err) else type(err).__name__


def _statistics_maps(translator, image: Image.Image):
    """gennorm.networks.statistics on the translator's network for `image` at a valid size."""
    x = to_tensor(image.convert("L" if translator.input_nc == 1 else "RGB"))[None]  # [1, C, H, W] in [-1, 1]
    return norm_statistics(translator.net, translator.to_valid_size(x).to(torch.device(translator.device)))


# viridis at 9 stops (matplotlib's), interpolated: dark blue (low) -> yellow (high)
_VIRIDIS = np.array([[68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141], [39, 173, 129],
                     [92, 200, 99], [170, 220, 50], [253, 231, 37]], dtype=np.float64)


def colorize(values: np.ndarray, size: tuple[int, int]) -> Image.Image:
    """A float map [H, W] -> an RGB image of `size` (nearest: one block per window), viridis over
    the map's 1st-99th percentile."""
    lo, hi = np.percentile(values, [1, 99])
    t = np.clip((values - lo) / max(hi - lo, 1e-12), 0, 1) * (len(_VIRIDIS) - 1)  # [H, W] in [0, 8]
    i = np.minimum(t.astype(int), len(_VIRIDIS) - 2)
    f = (t - i)[..., None]
    rgb = _VIRIDIS[i] * (1 - f) + _VIRIDIS[i + 1] * f
    return Image.fromarray(rgb.round().astype(np.uint8)).resize(size, Image.Resampling.NEAREST)


# ----------------------------------------------------------------------------------------------
# UI


def _examples() -> list[list[Image.Image]]:
    out = []
    for path in sorted(ASSETS_DIR.glob("*.png"))[:8]:
        with Image.open(path) as im:
            out.append([im.convert("RGB")])  # images, not paths: nothing outside the app is served
    return out


def _name_label(info: ModelInfo) -> str:
    return Result(info, None, None).short_label


def _slot_updates(demo: Demo, set_name: str, results: list[Result] | None = None,
                  paths: dict[str, str] | None = None) -> list:
    infos = demo.sets.get(set_name, [])
    updates = []
    for k in range(demo.max_models):
        if k >= len(infos):
            updates.append(gr.update(visible=False, value=None))
        elif results is None:
            updates.append(gr.update(visible=True, value=None, label=_name_label(infos[k])))
        else:
            value = (paths or {}).get(results[k].info.name, results[k].image)  # the request's own file
            updates.append(gr.update(visible=True, value=value, label=results[k].short_label))
    return updates


_ABS_PATH = re.compile(r"(?<![\w.:/~-])/(?:[\w.+@-]+/)*([\w.+@-]+)/?")


def redact_paths(text: str) -> str:
    """Absolute paths in text shown to visitors (cards name data folders and run dirs) -> their last
    component ('/home/me/data/scenes' -> '.../scenes'): the page must not map this machine's disk."""
    return _ABS_PATH.sub(lambda m: f".../{m.group(1)}", text)


def training_curves(infos: list[ModelInfo], loss: str):
    """Long-format table (step, value, model) of one logged loss for every model that logged it."""
    rows = [(r["step"], float(r[loss]), i.name) for i in infos for r in i.training_log() if loss in r]
    return pd.DataFrame(rows, columns=["step", loss, "model"])


def _losses(infos: list[ModelInfo]) -> list[str]:
    names: list[str] = []
    for info in infos:
        for row in info.training_log()[:1]:
            names += [k for k in row if k[:2] in ("G_", "D_") and k not in names]
    return names


def _zoo_tab(demo: Demo) -> None:
    infos = demo.models()
    headers, rows = metrics_table(infos)
    gr.Markdown(f"Models in `{demo.models_dir.name or demo.models_dir}` and the metrics from their cards "
                "(FID/KID/LPIPS: lower is better; PSNR/SSIM: higher is better). A FID compares only with "
                "FIDs of the same protocol (`gennorm eval --protocol`: clean = clean-fid, legacy = pytorch-fid).")
    gr.Dataframe(value=rows, headers=headers, interactive=False, label="metrics", elem_id="zoo-table")
    losses = _losses(infos)
    if losses:
        first = "G_L1" if "G_L1" in losses else losses[0]
        loss_pick = gr.Dropdown(losses, value=first, label="training curve (logged loss per step)", elem_id="loss")
        plot = gr.LinePlot(training_curves(infos, first), x="step", y=first, color="model",
                           elem_id="training-curves", label="training curves")
        loss_pick.change(lambda name: gr.update(value=training_curves(infos, name), y=name), loss_pick, plot,
                         api_visibility="private")
    names = [i.name for i in infos]
    shown = next((i.name for i in demo.sets.get(demo.default_set, [])), names[0] if names else None)
    card_pick = gr.Dropdown(names, value=shown, label="model card")
    cards = {i.name: redact_paths(i.card) if i.card else "_(no card.md)_" for i in infos}
    card_md = gr.Markdown(cards.get(shown, "") if shown else "")
    card_pick.change(lambda n: cards.get(n, ""), card_pick, card_md, api_visibility="private")


def _statistics_panel(demo: Demo, upload) -> None:
    """For one model: the maps its norm normalizes by (PONO mean/std, NC/KN window std), per layer."""
    names = [i.name for i in demo.models()]
    # first shown: the first model of the first set whose norm works on windows (NC, KN; the registry says)
    # the default set's first (models of other sets after it)
    ordered = demo.sets.get(demo.default_set, []) + [i for i in demo.models() if i.model_set != demo.default_set]
    first = next((i.name for i in ordered if i.norm in NORMS and NORMS[i.norm].statistics == "window"),
                 ordered[0].name if ordered else None)
    with gr.Accordion("Statistics: what each norm normalizes by", open=False, elem_id="statistics"):
        with gr.Row():
            pick = gr.Dropdown(names, value=first, label="model", scale=2, elem_id="stats-model")
            button = gr.Button("Show statistics", scale=1, elem_id="stats-button")
        note = gr.Markdown(elem_id="stats-note")
        gallery = gr.Gallery(label="statistics maps", columns=6, height="auto", type="pil", format="png",
                             elem_id="stats-gallery")
        button.click(demo.statistics, [upload, pick], [gallery, note], api_visibility="private",
                     concurrency_id=MODEL_EVENTS)  # hooks on a shared network: never next to a translation


def _translate_tab(demo: Demo) -> SimpleNamespace:
    """Controls on top, then input | model 1 | model 2 ..., then the comparison slider."""
    first = demo.default_set
    first_infos = demo.sets.get(first, [])
    ui = SimpleNamespace()
    with gr.Row():
        ui.upload = upload_image(label="input (label map)", sources=["upload", "clipboard"], height=240,
                                 elem_id="input-image", scale=1)
        with gr.Column(scale=1):
            ui.model_set = gr.Dropdown(list(demo.sets), value=first, label="model set", elem_id="model-set")
            ui.button = gr.Button("Translate", variant="primary", elem_id="translate-button")
            ui.status = gr.Markdown(elem_id="status")
        with gr.Column(scale=1):
            examples = _examples()
            if examples:
                gr.Examples(examples, inputs=[ui.upload], label="examples (assets/)")
    with gr.Row(equal_height=True):  # input | baseline | PONO-MS | NC ...
        ui.shown_input = gr.Image(label="input", type="pil", interactive=False, elem_classes="gn-out",
                                  elem_id="shown-input", height=OUT_HEIGHT, buttons=["download"])
        ui.slots = [gr.Image(type="pil", interactive=False, elem_classes="gn-out", elem_id=f"output-{k}",
                             format="png", visible=k < len(first_infos), height=OUT_HEIGHT, buttons=["download"],
                             label=_name_label(first_infos[k]) if k < len(first_infos) else None)
                    for k in range(demo.max_models)]
    with gr.Row():
        ui.compare = gr.Dropdown([], label="compare with the input", scale=1, elem_id="compare")
        ui.slider = gr.ImageSlider(label="input | output (drag)", type="pil", scale=3, elem_id="slider",
                                   height=OUT_HEIGHT + 120, max_height=OUT_HEIGHT + 120)
    ui.state = gr.State({})  # {"input": image, model name: output image}
    return ui


def _on_set(demo: Demo, set_name):
    """A new set: relabel the slots, clear the outputs."""
    names = [i.name for i in demo.sets.get(set_name, [])]
    return (*_slot_updates(demo, set_name), gr.update(choices=names, value=names[0] if names else None),
            None, {}, None, "")


def _on_translate(demo: Demo, image, set_name):
    results = demo.translate(image, set_name)
    outputs = {"input": image, **{r.info.name: r.image for r in results if r.image is not None}}
    names = [r.info.name for r in results if r.image is not None]
    pick = names[-1] if names else None  # compare the last (newest norm) with the input first
    status = " · ".join(f"**{r.info.name}** failed" if r.error else f"**{r.info.name}** {r.ms:.0f} ms ({r.how})"
                        for r in results)
    paths = {name: stored(out, demo.cache_dir) for name, out in outputs.items()}  # this request's own files
    return (*_slot_updates(demo, set_name, results, paths), gr.update(choices=names, value=pick),
            (paths["input"], paths[pick]) if pick else None, outputs, paths["input"],
            f"{image.width}x{image.height} px on {demo.device}, warm-up excluded: {status}")


def _on_compare(demo: Demo, name, outputs):
    if not outputs or name not in outputs:
        return None
    return stored(outputs["input"], demo.cache_dir), stored(outputs[name], demo.cache_dir)


def build_app(models_dir: str | Path = "models", device: str = "auto", loader: Callable | None = None,
              delete_cache: tuple[int, int] = CACHE_SWEEP, model_set: str | None = None) -> gr.Blocks:
    """The Blocks app for the zoo in `models_dir` (loader: path, device -> translator; for tests),
    opening on `model_set` (default: gennorm.zoo.default_set)."""
    demo = Demo(models_dir, device, loader, model_set)
    demo.warm_up()  # load and run every model once now: no visitor's timing includes it
    # delete_cache: Gradio keeps every upload and output in its temp folder; sweep them (frequency, age in s)
    with DemoBlocks(title="gennorm demo", analytics_enabled=False, delete_cache=delete_cache) as app:
        empty = "" if demo.sets else (f"\n\n**No models found in `{demo.models_dir.name}`** "
                                      "(export one with `gennorm export RUN_DIR models/NAME`).")
        gr.Markdown("## gennorm: normalizations side by side\nLabel map in, one photo per model out. "
                    f"Inference on **{demo.device}**.{empty}")
        with gr.Tab("Translate"):
            ui = _translate_tab(demo)
            demo.cache_dir = ui.slots[0].GRADIO_CACHE  # where outputs are written, one fresh file each
            _statistics_panel(demo, ui.upload)
        with gr.Tab("Model zoo"):
            _zoo_tab(demo)
        outputs = [*ui.slots, ui.compare, ui.slider, ui.state, ui.shown_input, ui.status]
        ui.model_set.change(partial(_on_set, demo), ui.model_set, outputs, api_visibility="private")
        ui.button.click(partial(_on_translate, demo), [ui.upload, ui.model_set], outputs, api_visibility="private",
                        concurrency_id=MODEL_EVENTS)
        ui.compare.change(partial(_on_compare, demo), [ui.compare, ui.state], ui.slider, api_visibility="private")
        _api_endpoint(demo, ui.model_set)
    return app


class DemoBlocks(gr.Blocks):
    """gr.Blocks whose events answer TEMP_FULL when the temp folder is full, wherever Gradio hit it
    (storing an upload, an example or an output): show_error is off, so that other errors show no
    internals, and such an event answered {"error": null}."""

    async def process_api(self, *args, **kwargs):
        try:
            return await super().process_api(*args, **kwargs)
        except Exception as err:
            if disk_full(err):
                raise gr.Error(TEMP_FULL) from None
            raise


def _api_endpoint(demo: Demo, model_set: gr.Dropdown) -> None:
    """POST /translate: (image, model_set) -> (gallery of (output, caption), {model: timing})."""
    api_image = upload_image(label="image", visible=False)
    api_gallery = gr.Gallery(label="outputs", type="pil", format="png", visible=False)
    api_info = gr.JSON(label="timings", visible=False)
    api_button = gr.Button(visible=False)

    def translate(image, set_name):
        results = demo.translate(image, set_name)
        gallery = [(stored(r.image, api_gallery.GRADIO_CACHE), r.caption) for r in results if r.image is not None]
        info = {r.info.name: {"norm": r.info.norm, "ms": r.ms, "size": list(r.size or image.size), "tiles": r.tiles,
                              "downscaled": r.downscaled, "error": r.error or None} for r in results}
        return gallery, info

    api_button.click(translate, [api_image, model_set], [api_gallery, api_info], api_name="translate",
                     concurrency_id=MODEL_EVENTS)


def stored(image: Image.Image, cache_dir: str | Path) -> str:
    """fresh_png, or a gr.Error the visitor reads (a full temp folder used to answer {"error": null}).

    Every output a visitor gets is its request's own file: Gradio's cache names PIL images by their
    content and rewrites that shared file while another response may still stream it (1-2 of 50
    identical concurrent requests got a truncated body)."""
    try:
        return fresh_png(image, cache_dir)
    except OSError as err:
        reason = err.strerror or "write failed"
        raise gr.Error(TEMP_FULL if disk_full(err) else f"The server cannot store the results ({reason}); try "
                       "again later.") from None


def fresh_png(image: Image.Image, cache_dir: str | Path) -> str:
    """`image` as a PNG in a new folder of Gradio's cache (served from there, swept with it)."""
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="out-", dir=cache_dir))
    path = folder / "image.png"
    try:
        image.save(path, format="PNG")
    except OSError:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return str(path)


# ----------------------------------------------------------------------------------------------
# serving


def launch(app: gr.Blocks, host: str = "127.0.0.1", port: int | None = 7860, concurrency: int = 1,
           max_file_size: str | int = MAX_FILE_SIZE, prevent_thread_lock: bool = False, quiet: bool = False):
    """Queue (at most `concurrency` model events -- translations, statistics, API calls -- at a
    time; one model never runs two at once) and serve; never a share link.

    Returns Gradio's (app, local_url, share_url) when prevent_thread_lock, else blocks until Ctrl-C.
    """
    app.queue(default_concurrency_limit=concurrency, max_size=32)
    served = app.launch(server_name=host, server_port=port, share=False, max_file_size=max_file_size,
                        show_error=False, ssr_mode=False, prevent_thread_lock=True, quiet=True, inbrowser=False,
                        enable_monitoring=False, mcp_server=False, footer_links=["api"],
                        theme=gr.themes.Soft(**THEME_FONTS), css=CSS,
                        # inside Gradio's middleware: answers name files relative to the temp folder
                        app_kwargs={"middleware": [Middleware(PublicPaths, folder=app.GRADIO_CACHE)]})
    if not quiet:
        print(f"gennorm demo: serving {served[1]} (Ctrl-C to stop)", flush=True)
    if not prevent_thread_lock:
        app.block_thread()
    return served
