"""Property-based fuzzing (hypothesis, bounded examples) of what users hand gennorm.

- config overrides (`KEY=VALUE`) and whole YAML files: either a Config whose numbers are finite
  and in range, or a ConfigError naming the key / file; never another exception;
- image files (odd sizes, every PIL mode, png/jpeg/bmp/tiff/webp, truncated, garbage) through
  the aligned and single datasets and through translate_folder: either items / outputs of the
  right shape and size, or a DataError naming the file.

Examples are few (max_examples 25-60) and unbounded in time per example (deadline None) so the
file runs in well under a minute on 2 CPU cores.
"""
from __future__ import annotations

import dataclasses
import io
import math
import tempfile
import warnings
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from gennorm.config import SECTIONS, Config, ConfigError, load_config  # noqa: E402
from gennorm.errors import DataError  # noqa: E402

FUZZ = settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(deadline=None, max_examples=25, suppress_health_check=[HealthCheck.too_slow,
                                                                      HealthCheck.function_scoped_fixture])

KEYS = [f.name for f in dataclasses.fields(Config) if f.name not in SECTIONS] + [
    f"{section}.{f.name}" for section, cls in SECTIONS.items() for f in dataclasses.fields(cls)]
NASTY = [".nan", ".inf", "-.inf", "nan", "inf", "1e309", "-1e309", "-1", "0", "2**70", str(2**70), "-0.0",
         "1e-320", "[1, 2]", "{a: 1}", "!!python/object/apply:os.system ['true']", "~", "null", "yes", "''",
         "\x00", "é", "1_000", "0x10", "0o7", "3.", ".5", "+1", "1e3", "AtoB", "instance", "resnet_6blocks"]


def _value_text(value) -> str:
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else {math.inf: ".inf", -math.inf: "-.inf"}.get(value, ".nan")
    if value is None:
        return "null"
    return str(value).lower() if isinstance(value, bool) else str(value)


values = st.one_of(st.sampled_from(NASTY), st.integers(-2**70, 2**70), st.floats(), st.booleans(), st.none(),
                   st.text(max_size=8))


def _check_config(cfg: Config) -> None:
    """What a Config that loaded promises: finite floats, positive sizes, betas in [0, 1)."""
    for section in SECTIONS:
        for f in dataclasses.fields(getattr(cfg, section)):
            v = getattr(getattr(cfg, section), f.name)
            if isinstance(v, float):
                assert math.isfinite(v), (section, f.name, v)
    t, m, d = cfg.train, cfg.model, cfg.data
    assert t.lr > 0 and 0 <= t.beta1 < 1 and 0 <= t.beta2 < 1 and 0 <= t.ema < 1
    assert min(t.lambda_l1, t.lambda_cycle, t.lambda_identity, t.lambda_gp, m.init_gain) >= 0
    assert 0 <= t.seed <= 2**62 and m.ngf >= 1 and m.ndf >= 1 and d.crop_size >= 4 and t.batch_size >= 1


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(KEYS + ["train.nope", "model", "x.y.z", ""]), values), max_size=4))
def test_config_overrides_load_or_name_the_key(pairs):
    overrides = [f"{key}={_value_text(value)}" for key, value in pairs]
    try:
        cfg = load_config("pix2pix-instance", overrides)
    except ConfigError as err:
        assert "\n" not in str(err).strip() or "YAML" in str(err)
        return
    _check_config(cfg)


yaml_scalars = st.one_of(st.integers(-2**66, 2**66), st.floats(), st.booleans(), st.none(), st.text(max_size=6))
yaml_docs = st.dictionaries(
    st.sampled_from(["out", "description", "model", "data", "train", "extra"]),
    st.one_of(yaml_scalars, st.dictionaries(st.sampled_from([k.split(".")[-1] for k in KEYS] + ["zzz"]),
                                            yaml_scalars, max_size=4)), max_size=4)


@FUZZ
@given(yaml_docs, st.sampled_from(["yaml", "latin-1", "garbage", "dup", "truncated"]))
def test_config_files_load_or_name_the_file(doc, how):
    import yaml

    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    data = {"yaml": text.encode(), "latin-1": (text + "description: caf\xe9\n").encode("latin-1", "replace"),
            "garbage": bytes(range(256)) * 2, "dup": (text + text).encode(),
            "truncated": text.encode()[: len(text) // 2]}[how]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cfg.yaml"
        path.write_bytes(data)
        try:
            cfg = load_config(path)
        except ConfigError as err:
            assert str(path) in str(err) or "config key" in str(err) or "a config must be" in str(err), err
            return
    _check_config(cfg)


# ----------------------------------------------------------------------------------------------
# image files

MODES = ["1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I", "F", "CMYK"]
FORMATS = {"png": "PNG", "jpg": "JPEG", "bmp": "BMP", "tif": "TIFF", "webp": "WEBP"}


@st.composite
def image_files(draw):
    """(file name, bytes): an image of any mode and odd size, maybe truncated or replaced by junk."""
    from PIL import Image

    mode = draw(st.sampled_from(MODES))
    w, h = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    ext = draw(st.sampled_from(sorted(FORMATS)))
    seed = draw(st.integers(0, 2**16))
    import numpy as np

    rng = np.random.default_rng(seed)
    im = Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).convert(mode) if mode != "F" else \
        Image.fromarray(rng.random((h, w)).astype(np.float32), "F")
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # Pillow: "Saving I mode images as PNG"
            im.save(buf, FORMATS[ext])
    except (OSError, ValueError, KeyError):  # a mode this format cannot store: store it as PNG of RGB
        ext, buf = "png", io.BytesIO()
        im.convert("RGB").save(buf, "PNG")
    data = buf.getvalue()
    damage = draw(st.sampled_from(["none", "none", "truncate", "junk", "empty"]))
    if damage == "truncate":
        data = data[: draw(st.integers(0, max(0, len(data) - 1)))]
    elif damage == "junk":
        data = draw(st.binary(min_size=0, max_size=64))
    elif damage == "empty":
        data = b""
    return f"img.{ext}", data, (w, h), damage


@FEW
@given(image_files(), st.sampled_from(["resize_and_crop", "crop", "scale_width", "none"]))
def test_datasets_load_any_file_or_name_it(file, preprocess):
    import torch

    from gennorm.data import create_dataset

    name, data, (w, h), _ = file
    with tempfile.TemporaryDirectory() as tmp:
        for mode, folder in (("aligned", Path(tmp) / "paired" / "train"), ("single", Path(tmp) / "single")):
            folder.mkdir(parents=True)
            (folder / name).write_bytes(data)
            root = folder.parent if mode == "aligned" else folder  # ROOT/train/ or the folder itself
            try:
                ds = create_dataset(mode, root, phase="train", load_size=12, crop_size=8, preprocess=preprocess)
                item = ds[0]
            except DataError as err:
                assert name in str(err) or str(folder) in str(err), err
                continue
            except ValueError as err:  # options refused up front (e.g. crop > image for some modes)
                pytest.fail(f"{mode} {preprocess}: {type(err).__name__}: {err}")
            for key in ("A", "B") if mode == "aligned" else ("A",):
                x = item[key]
                assert x.dim() == 3 and x.shape[0] == 3 and torch.isfinite(x).all() and x.abs().max() <= 1
                if preprocess.endswith("crop"):
                    assert tuple(x.shape[1:]) == (8, 8)


@pytest.fixture(scope="module")
def translator(tmp_path_factory):
    import torch
    from safetensors.torch import save_file

    from gennorm.config import save_config
    from gennorm.inference import load_translator
    from gennorm.networks.factory import build_generator_from

    folder = tmp_path_factory.mktemp("models") / "tiny"
    folder.mkdir()
    cfg = load_config("pix2pix-instance", ["model.ngf=2", "model.g_arch=resnet_6blocks", "out=x"])
    save_config(cfg, folder / "config.yaml")
    torch.manual_seed(0)
    net = build_generator_from(cfg.model, 3, 3)
    save_file({k: v.detach().contiguous().clone() for k, v in net.state_dict().items()},
              str(folder / "generator.safetensors"))
    return load_translator(folder)


@FEW
@given(st.lists(image_files(), min_size=1, max_size=3))
def test_translate_folder_writes_same_size_pngs_or_names_the_file(translator, files):
    from PIL import Image

    from gennorm.inference import translate_folder

    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "in", Path(tmp) / "out"
        src.mkdir()
        sizes = {}
        for k, (name, data, size, damage) in enumerate(files):
            path = src / f"{k}_{name}"
            path.write_bytes(data)
            sizes[path.stem] = size
        try:
            written = translate_folder(translator, src, out)
        except DataError as err:
            assert str(src) in str(err), err
            return
        assert len(written) == len(files)
        for png in written:
            with Image.open(png) as im:
                im.load()
                assert im.mode == "RGB" and im.size == sizes[png.stem]  # same size as the input
