"""gennorm.load and tiled inference: every input kind, tiles equal to the whole image for local
norms, bounded-memory streaming, input limits, receptive fields."""
from __future__ import annotations

import errno
import json
import os
import re
import struct
import subprocess
import sys
import warnings
import zlib
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import gennorm
from gennorm.cli import main

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"


def _rand(h, w, seed=0):
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_every_input_kind_comes_back_as_itself():
    t = gennorm.load("scenes-nc")  # a zoo name
    pil = Image.fromarray(np.random.default_rng(0).integers(0, 256, (37, 50, 3), dtype=np.uint8))
    out = t(pil)
    assert isinstance(out, Image.Image) and out.size == (50, 37)
    arr = t(np.asarray(pil))
    assert isinstance(arr, np.ndarray) and arr.shape == (37, 50, 3) and arr.dtype == np.uint8
    assert np.array_equal(arr, np.asarray(out))
    one = t(_rand(40, 44)[0])
    batch = t(torch.cat([_rand(40, 44), _rand(40, 44, 1)]))
    assert one.shape == (3, 40, 44) and batch.shape == (2, 3, 40, 44)
    torch.testing.assert_close(batch[0], one, rtol=0, atol=1e-6)
    for bad, words in ((torch.zeros(3, 4), "tensor"), (np.zeros((4, 4), np.float32), "uint8"), ("x", "PIL")):
        with pytest.raises((TypeError, ValueError), match=words):
            t(bad)


def test_load_takes_a_folder_a_zoo_name_and_refuses_nonsense(tmp_path):
    from gennorm.errors import CheckpointError

    assert gennorm.load(MODELS / "scenes-kn").source == str(MODELS / "scenes-kn")
    with pytest.raises(CheckpointError, match="no such model"):
        gennorm.load("no-such-model")
    with pytest.raises(ValueError, match="dtype"):
        gennorm.load("scenes-nc", dtype="int8")
    bf16 = gennorm.load("scenes-nc", dtype="bfloat16")(_rand(32, 32))
    torch.testing.assert_close(bf16, gennorm.load("scenes-nc")(_rand(32, 32)), rtol=0, atol=0.1)


@pytest.mark.parametrize("name", ["scenes-nc", "scenes-kn"])
@pytest.mark.parametrize("size", [(200, 136), (256, 256), (100, 300)])
def test_tiles_equal_the_whole_image_for_local_norms(name, size):
    whole, tiled = gennorm.load(MODELS / name), gennorm.load(MODELS / name, tile=64)
    assert tiled.tiles_exactly
    x = _rand(*size)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "different statistics" warning for local norms
        diff = (whole(x) - tiled(x)).abs().max().item()
    assert diff <= 1e-4


@pytest.mark.parametrize("name", ["scenes-instance", "scenes-pono-ms"])
def test_instance_statistics_tiles_warn_and_blend(name):
    whole, tiled = gennorm.load(MODELS / name), gennorm.load(MODELS / name, tile=64)
    assert not tiled.tiles_exactly
    x = _rand(200, 136)
    with pytest.warns(UserWarning, match="different statistics"):
        y = tiled(x)
    diff = (whole(x) - y).abs().max().item()
    assert 1e-3 < diff < 2  # seams: the tiles normalized with their own statistics
    assert torch.isfinite(y).all()


def test_receptive_fields_of_the_generators():
    from gennorm.networks import build_generator
    from gennorm.networks.receptive import receptive_field, tile_margin

    # by hand for resnet_9blocks: 7x7 (6) + two stride-2 3x3 (2 + 4) + 18 3x3 at stride 4 (144)
    # + two transposed 3x3 (4 + 2) + 7x7 (6), + 1
    got = {arch: receptive_field(build_generator(arch, ngf=4, norm="nc"), 3, 256)
           for arch in ("resnet_9blocks", "resnet_6blocks", "unet_256", "unet_128")}
    assert got == {"resnet_9blocks": 169, "resnet_6blocks": 121, "unet_256": 1276, "unet_128": 636}
    assert receptive_field(build_generator("resnet_9blocks", ngf=4, norm="instance"), 3, 64) == 169
    assert tile_margin(build_generator("resnet_6blocks", ngf=4, norm="nc"), 3) == 64


def test_streamed_tiles_and_input_limits(tmp_path, capsys):
    rng = np.random.default_rng(1)
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(rng.integers(0, 256, (136, 200, 3), dtype=np.uint8)).save(src / "a.png")
    assert main(["translate", "scenes-nc", str(src), str(tmp_path / "whole")]) == 0
    assert main(["translate", "scenes-nc", str(src), str(tmp_path / "tiled"), "--tile", "64"]) == 0
    a = np.asarray(Image.open(tmp_path / "whole" / "a.png")).astype(int)
    b = np.asarray(Image.open(tmp_path / "tiled" / "a.png")).astype(int)  # written band by band
    assert a.shape == b.shape and np.abs(a - b).max() <= 1 and (a != b).mean() < 1e-3
    assert main(["translate", "scenes-nc", str(src), str(tmp_path / "capped"), "--max-pixels", "1000"]) == 2
    assert "27,200 pixels, above the limit of 1,000" in capsys.readouterr().err
    Image.fromarray(np.zeros((1, 2, 3), np.uint8)).save(src / "tiny.png")
    assert main(["translate", "scenes-nc", str(src), str(tmp_path / "t")]) == 2
    assert "tiny.png is 2x1: too small" in capsys.readouterr().err


def test_eval_refuses_huge_images_before_decoding(tmp_path, capsys):
    for side in ("real", "fake"):
        (tmp_path / side).mkdir()
        Image.fromarray(np.zeros((40, 30, 3), np.uint8)).save(tmp_path / side / "a.png")
    assert main(["eval", str(tmp_path / "real"), str(tmp_path / "fake"), "--metrics", "psnr", "--max-pixels", "1000"]) == 2
    assert "a.png is 30x40 = 1,200 pixels, above the limit of 1,000" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "real"), str(tmp_path / "fake"), "--metrics", "psnr", "--quiet"]) == 0


def test_file_names_that_are_not_utf8(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    name = os.fsdecode(b"caf\xe9.png")  # latin-1 bytes: not valid UTF-8
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(src / name)
    assert main(["translate", "scenes-nc", str(src), str(tmp_path / "out")]) == 0
    page = (tmp_path / "out" / "index.html").read_bytes().decode("utf-8")
    assert 'src="caf%E9.png"' in page and "caf\ufffd.png" in page
    assert (tmp_path / "out" / name).is_file()


MEMORY_SCRIPT = r"""
import json, resource, sys
import numpy as np
from PIL import Image
from gennorm.cli import main
code = main(["translate", sys.argv[1], sys.argv[2], sys.argv[3], *sys.argv[4:]])
print(json.dumps({"code": code, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


@pytest.mark.slow
def test_tiling_bounds_the_memory(tmp_path):
    """A 1536 x 1536 image through the zoo's ngf-32 ResNet: whole, every activation is 302 MB; tiled
    (256) the peak stays near the interpreter's. Peak RSS of separate processes (the tiled run's
    varies with the machine's state, 0.8-1.8 GB seen at 1024 px: hence an image whose whole run
    needs far more)."""
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (1536, 1536, 3), dtype=np.uint8)).save(src / "big.png")
    peaks = {}
    for label, extra in (("whole", []), ("tiled", ["--tile", "256"])):
        done = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(MODELS / "scenes-nc"), str(src),
                               str(tmp_path / label), *extra], capture_output=True, text=True,
                              env=dict(os.environ, OMP_NUM_THREADS="2"))
        assert done.returncode == 0, done.stderr[-2000:]
        result = json.loads(done.stdout.strip().splitlines()[-1])
        assert result["code"] == 0
        peaks[label] = result["peak_mb"]
    print(f"peak RSS: whole {peaks['whole']:.0f} MB, tiled {peaks['tiled']:.0f} MB")
    assert peaks["tiled"] < peaks["whole"] - 300


# ---- graph exports ------------------------------------------------------------------------------

ZOO = sorted(p.name for p in MODELS.iterdir() if (p / "generator.safetensors").is_file())


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """name -> (ONNX file, torch.export program file) of a zoo generator, exported on first use and kept for
    the module (one test selects one model: the mutation runs select two)."""
    from gennorm.inference import export_onnx, export_program, load_translator, trace

    root, files = tmp_path_factory.mktemp("exported"), {}

    def get(name):
        if name not in files:
            tr = load_translator(MODELS / name)
            program = trace(tr, 64)  # one trace for both files
            files[name] = (export_onnx(tr, root / f"{name}.onnx", program=program),
                           export_program(tr, root / f"{name}.pt2", program=program))
        return files[name]
    return get


@pytest.mark.parametrize("name", ZOO)
def test_onnx_and_torch_export_equal_pytorch(exported, name):
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    onnx_file, program_file = exported(name)
    model = onnx.load(str(onnx_file))
    assert not [n.op_type for n in model.graph.node if n.domain not in ("", "ai.onnx")]  # standard operators only
    assert {o.domain: o.version for o in model.opset_import}[""] == 18  # opset 18: onnxruntime >= 1.14 runs it
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"] and [o.name for o in session.get_outputs()] == ["translated"]
    program = torch.export.load(str(program_file)).module()
    tr = gennorm.load(MODELS / name)
    for h, w in ((64, 64), (96, 160)):
        x = _rand(h, w, seed=h)
        with torch.no_grad():
            want = tr.net(x)
            got_program = program(x)
        got_onnx = torch.from_numpy(session.run(None, {"image": x.numpy()})[0])
        assert got_onnx.shape == want.shape == got_program.shape
        assert (got_onnx - want).abs().max().item() <= 1e-4, "onnxruntime"
        assert (got_program - want).abs().max().item() <= 1e-4, "torch.export"


def test_export_verb_writes_graph_files(tmp_path):
    # the verb's plumbing (any model source, --format, --size, missing folders made); the graphs' values are checked above
    onnx_file = tmp_path / "new" / "folder" / "g.onnx"
    assert main(["export", "scenes-instance", str(onnx_file), "--format", "onnx", "--size", "32"]) == 0
    assert main(["export", "scenes-instance", str(tmp_path / "g.pt2"), "--format", "torch-export", "--size", "32"]) == 0
    assert onnx_file.stat().st_size > 100_000 and (tmp_path / "g.pt2").stat().st_size > 100_000
    assert sorted(p.name for p in onnx_file.parent.iterdir()) == ["g.onnx"]  # no temporary file left


# ---- the Translator's arithmetic on stand-in generators (exact values; fast) -------------------------

class _Pointwise(torch.nn.Module):
    """A generator stand-in that looks at each pixel alone (so any tiling is exact): identity, or with
    `conv` a seeded 1x1 convolution; on a ResNet's size grid (4). Sides under `min_side` raise `error`,
    as a real generator's padding layers do on too small inputs."""

    size_multiple = 4

    def __init__(self, channels: int = 3, conv: bool = False, min_side: int = 1, error=RuntimeError):
        super().__init__()
        self.conv = torch.nn.Conv2d(channels, channels, 1) if conv else None
        if conv:
            with torch.no_grad():
                g = torch.Generator().manual_seed(0)
                self.conv.weight.copy_(torch.rand(self.conv.weight.shape, generator=g) - 0.5)
                self.conv.bias.copy_(torch.rand(channels, generator=g) * 0.2)
        self.min_side, self.error = min_side, error

    def forward(self, x):
        if min(x.shape[-2:]) < self.min_side:
            raise self.error(f"input {tuple(x.shape)} too small")
        return self.conv(x) if self.conv is not None else x.clone()


class _TileMean(torch.nn.Module):
    """A stand-in with instance statistics: each input minus its own mean (tiles see different means)."""

    size_multiple = 4

    def forward(self, x):
        return x - x.mean(dim=(2, 3), keepdim=True)


def _config(norm="nc", input_nc=3, output_nc=3):
    from types import SimpleNamespace

    return SimpleNamespace(model=SimpleNamespace(input_nc=input_nc, output_nc=output_nc, g_norm=norm),
                           data=SimpleNamespace(direction="AtoB"))


def _translator(net, norm="nc", input_nc=3, output_nc=3, direction="AtoB", device="cpu", **kw):
    from gennorm.inference import Translator

    return Translator(net, _config(norm, input_nc, output_nc), torch.device(device), "stand-in", direction, **kw)


def test_translator_settings():
    """The constructor's defaults and checks: direction AtoB, eval mode unless train_mode (dropout /
    batch statistics off), float32 unless a dtype is named, the network moved to the device (here
    "meta": a GPU's translator must not leave it on the CPU), channels swapped for BtoA only, tile a
    positive int (1 is allowed), the grid from net.size_multiple, tiles exact per the norm (batch norm
    only in eval)."""
    from gennorm.inference import Translator

    tr = Translator(_Pointwise(), _config(input_nc=1, output_nc=3), torch.device("cpu"), "stand-in")
    assert tr.direction == "AtoB" and (tr.input_nc, tr.output_nc) == (1, 3)
    assert tr.dtype == torch.float32 and tr.net.training is False and tr.meta == {}
    assert (tr.multiple, tr.tile, tr.overlap) == (4, None, "auto")
    assert next(_translator(_Pointwise(conv=True), device="meta").net.parameters()).device.type == "meta"
    assert _translator(_Pointwise(), train_mode=True).net.training is True
    assert _translator(_Pointwise(), dtype="bfloat16").dtype == torch.bfloat16
    assert _translator(_Pointwise(), dtype=torch.float16).dtype == torch.float16
    with pytest.raises(ValueError, match="dtype must be float32, bfloat16 or float16"):
        _translator(_Pointwise(), dtype="int8")
    swapped = _translator(_Pointwise(), input_nc=1, output_nc=3, direction="BtoA")
    assert (swapped.input_nc, swapped.output_nc, swapped.direction) == (3, 1, "BtoA")
    assert _translator(_Pointwise(), tile=1).tile == 1
    for bad in (0, -4, 2.5, "8"):
        with pytest.raises(ValueError, match="tile must be a positive number of pixels"):
            _translator(_Pointwise(), tile=bad)
    assert _translator(_Pointwise(), norm="batch").tiles_exactly
    assert not _translator(_Pointwise(), norm="batch", train_mode=True).tiles_exactly
    assert not _translator(_Pointwise(), norm="instance").tiles_exactly


def test_tile_size_margin_and_crops():
    """Tiles and margins on the size grid (4): tile 1 -> 4, 3 -> 4, 5 -> 8, 8 -> 8; overlap 0 -> 0,
    5 -> 8, 8 -> 8, "auto" = tile_margin of the network rounded up. crops of a 21 x 13 image with
    4-pixel tiles and an 8-pixel margin, by hand: row by row, each output box and its input box
    (the output box grown by the margin, cut at the image's edges)."""
    from gennorm.networks.receptive import tile_margin

    sizes = {tile: _translator(_Pointwise(), tile=tile).tile_size() for tile in (1, 3, 5, 8)}
    assert sizes == {1: 4, 3: 4, 5: 8, 8: 8}
    margins = {overlap: _translator(_Pointwise(), tile=4, overlap=overlap).margin() for overlap in (0, 5, 8, "8")}
    assert margins == {0: 0, 5: 8, 8: 8, "8": 8}
    zoo = gennorm.load("scenes-nc", tile=64)
    assert zoo.margin() == -(-tile_margin(zoo.net, 3) // 4) * 4 > 0
    tr = _translator(_Pointwise(), tile=3, overlap=5)
    rows = [((0, 4), (0, 12)), ((4, 8), (0, 16)), ((8, 12), (0, 20)), ((12, 16), (4, 21)), ((16, 20), (8, 21)),
            ((20, 21), (12, 21))]
    cols = [((0, 4), (0, 12)), ((4, 8), (0, 13)), ((8, 12), (0, 13)), ((12, 13), (4, 13))]
    assert list(tr.crops(21, 13)) == [(oy + ox, iy + ix) for oy, iy in rows for ox, ix in cols]


def test_smallest_side_and_valid_sizes():
    """min_side: the first of 4, 8, 16, 32, ... (the grid times powers of 2) that the network runs on,
    whether a too small input raises RuntimeError or ValueError, with input_nc channels (a 1-channel
    network refuses 3), probed with one image: batch norm in train mode (the original's test mode)
    fails on a single image's 1 x 1 bottleneck (8 px through an 8 x 8 pooling) and runs at 16.
    valid_size: the nearest multiple of 4 (halves to even, as Python's round),
    at least min_side. The zoo's ResNet runs from 8."""
    assert _translator(_Pointwise()).min_side() == 4
    assert _translator(_Pointwise(min_side=20)).min_side() == 32
    assert _translator(_Pointwise(min_side=9, error=ValueError)).min_side() == 16
    gray = _translator(_Pointwise(1, conv=True), input_nc=1, output_nc=1)
    assert gray.min_side() == 4
    bottleneck = torch.nn.Sequential(torch.nn.MaxPool2d(8), torch.nn.BatchNorm2d(3))
    bottleneck.size_multiple = 4
    assert _translator(bottleneck, norm="batch", train_mode=True).min_side() == 16
    sizes = ((10, 18), (14, 22), (16, 17), (1, 3), (9, 30))
    tr = _translator(_Pointwise())
    assert [tr.valid_size(*size) for size in sizes] == [(8, 16), (16, 24), (16, 16), (4, 4), (8, 32)]
    tr = _translator(_Pointwise(min_side=9))
    assert [tr.valid_size(*size) for size in sizes] == [(16, 16), (16, 24), (16, 16), (16, 16), (16, 32)]
    assert gennorm.load("scenes-nc").min_side() == 8


def test_run_under_autocast_and_resizing_to_the_grid():
    """run: float32 as the network computes it; with dtype bfloat16 / float16 the convolution runs
    under autocast in that dtype (every value a bfloat16 / float16 one, not the float32 result; CPU
    autocast's default would be bfloat16) and comes back as float32. translate_tensor
    off the grid: bicubic to valid_size (clamped), the network, bicubic back, clamped; the same op for
    op, so bit for bit. On the grid the network sees the input itself (unclamped), cast to float32."""
    net = _Pointwise(conv=True)
    x = _rand(12, 20)
    with torch.no_grad():
        want = net(x)
        assert torch.equal(_translator(net).run(x), want)
        bf16 = _translator(net, dtype="bfloat16").run(x)
        fp16 = _translator(net, dtype="float16").run(x)
    assert bf16.dtype == fp16.dtype == torch.float32
    assert torch.equal(bf16, bf16.bfloat16().float()) and not torch.equal(bf16, want)
    assert torch.equal(fp16, fp16.half().float()) and not torch.equal(fp16, fp16.bfloat16().float())
    tr = _translator(net)
    assert torch.equal(tr(x), want.clamp(-1, 1)) and tr.to_valid_size(x) is x
    with torch.no_grad():  # on the grid, values outside [-1, 1] reach the network as they are
        assert torch.equal(tr(1.5 * x), net(1.5 * x).clamp(-1, 1))
    assert torch.equal(tr(x.double()), tr(x))  # float32 for the network, whatever comes in
    assert torch.equal(_translator(_Pointwise())(1.5 * x), (1.5 * x).clamp(-1, 1))  # outputs clamped to [-1, 1]
    x = _rand(10, 18, seed=3)
    with torch.no_grad():
        inner = net(F.interpolate(x, size=(8, 16), mode="bicubic", align_corners=False).clamp(-1, 1))
    want = F.interpolate(inner, size=(10, 18), mode="bicubic", align_corners=False).clamp(-1, 1)
    assert torch.equal(tr(x), want) and torch.equal(tr(x[0]), want[0])
    assert torch.equal(tr.to_valid_size(x), F.interpolate(x, size=(8, 16), mode="bicubic", align_corners=False).clamp(-1, 1))


def test_tiles_of_a_local_network_are_exact_and_others_blend_over_the_margins():
    """A pixel-wise network tiled (4-pixel tiles, margin 4) gives the whole image's output bit for bit
    (also off the grid, and for an image exactly one tile large, which runs whole). A network with
    instance statistics warns and blends (4-pixel tiles, margin 8: pixels near the image's edge are
    covered by tiles that start at the edge and by tiles that start inside): each tile's output
    weighted by the product of two _ramp's (linear over the margin at the tile's inner edges only)
    and divided by the summed weights, computed here tile by tile. _ramp by hand: (i + 0.5) / margin
    at a faded start, (size - i - 0.5) / margin at a faded end, 1 elsewhere, never under 1e-3."""
    from gennorm.inference.translator import _ramp

    assert _ramp(6, True, True, 2).tolist() == [0.25, 0.75, 1.0, 1.0, 0.75, 0.25]
    assert _ramp(5, True, False, 4).tolist() == [0.125, 0.375, 0.625, 0.875, 1.0]
    assert _ramp(3, False, True, 2).tolist() == [1.0, 0.75, 0.25]
    assert _ramp(3, False, False, 2).tolist() == [1.0, 1.0, 1.0]
    assert torch.allclose(_ramp(2, True, False, 1000), torch.tensor([1e-3, 1.5e-3]), rtol=1e-6, atol=0)
    net = _Pointwise(conv=True)
    whole, tiled = _translator(net), _translator(net, tile=4, overlap=4)
    for size in ((20, 12), (10, 18), (4, 4)):
        x = _rand(*size, seed=size[0])
        assert torch.equal(tiled(x), whole(x))
    blend = _translator(_TileMean(), norm="instance", tile=4, overlap=5)
    x = _rand(4, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one tile: run whole, no warning
        assert torch.equal(blend(x), (x - x.mean(dim=(2, 3), keepdim=True)).clamp(-1, 1))
    x = _rand(20, 24, seed=5)
    out, weight = torch.zeros(1, 3, 20, 24), torch.zeros(1, 1, 20, 24)
    for _, (cy0, cy1, cx0, cx1) in blend.crops(20, 24):
        tile = x[..., cy0:cy1, cx0:cx1]
        ramp = _ramp(cy1 - cy0, cy0 > 0, cy1 < 20, 8)[:, None] * _ramp(cx1 - cx0, cx0 > 0, cx1 < 24, 8)[None, :]
        out[..., cy0:cy1, cx0:cx1] += (tile - tile.mean(dim=(2, 3), keepdim=True)) * ramp
        weight[..., cy0:cy1, cx0:cx1] += ramp
    with pytest.warns(UserWarning, match=re.escape(
            "norm 'instance' normalizes with statistics of the whole feature map: tiles see different statistics, "
            "so their overlaps are blended and the result differs from the whole image's")):
        got = blend(x)
    torch.testing.assert_close(got, (out / weight).clamp(-1, 1), rtol=0, atol=1e-6)
    assert (got - _translator(_TileMean(), norm="instance")(x)).abs().max() > 0.02  # the blend is not the whole


def test_gray_translators_and_quantization():
    """A 1-channel translator takes a PIL image converted to L (an RGB image's luminance) or an H x W
    uint8 array, and gives the same kind back; a path is refused, naming its type. An identity
    network returns the 8-bit levels themselves with quantize "round", and "floor"
    (pytorch-CycleGAN-and-pix2pix's) puts some a level lower."""
    gray = _translator(_Pointwise(1), input_nc=1, output_nc=1)
    rgb = Image.fromarray(np.random.default_rng(3).integers(0, 256, (12, 20, 3), dtype=np.uint8))
    out = gray(rgb)
    assert out.mode == "L" and np.array_equal(np.asarray(out), np.asarray(rgb.convert("L")))
    assert np.array_equal(gray(np.asarray(out)), np.asarray(out))  # an H x W uint8 array: gray levels
    with pytest.raises(TypeError, match=re.escape("cannot translate a str: give a PIL image, a uint8 numpy array")):
        gray("x.png")
    levels = np.asarray(rgb).astype(int)
    assert np.array_equal(np.asarray(_translator(_Pointwise()).translate(rgb)), levels)
    floor = np.asarray(_translator(_Pointwise()).translate(rgb, "floor")).astype(int)
    assert floor.min() >= 0 and set(np.unique(levels - floor)) == {0, 1}


def test_streamed_png_files_hold_the_exact_levels(tmp_path):
    """Streaming (a tiling translator, a local norm, an image on the grid larger than a tile, no side
    under min_side) through an identity network gives back the input's 8-bit levels exactly, for RGB and for 1-channel models
    (colour type 2 / 0 in the IHDR chunk: width, height, bit depth 8, compression, filter and interlace
    0), ending in the standard IEND chunk; quantize defaults to "round" and "floor" is passed on (the
    same levels as the whole-image path). write_png refuses a row count other than the height."""
    from gennorm.inference import streams, translate_folder, translate_streaming, write_png

    rng = np.random.default_rng(4)
    src = tmp_path / "in"
    src.mkdir()
    rgb = Image.fromarray(rng.integers(0, 256, (28, 20, 3), dtype=np.uint8))  # rows of tiles at 0, 8, 16, 24
    rgb.save(src / "a.png")
    tr = _translator(_Pointwise(), tile=8, overlap=4)
    assert streams(tr, 20, 28) and streams(tr, 12, 4) and streams(tr, 4, 12)
    assert not any((streams(_translator(_Pointwise()), 20, 28), streams(tr, 8, 8), streams(tr, 20, 26),
                    streams(tr, 18, 28), streams(_translator(_Pointwise(min_side=5)), 12, 4),
                    streams(_translator(_Pointwise(), norm="instance", tile=8), 20, 28)))
    assert translate_folder(tr, src, tmp_path / "out") == [tmp_path / "out" / "a.png"]
    assert "<td>a.png</td>" in (tmp_path / "out" / "index.html").read_text()  # the page's row: the streamed output
    data = (tmp_path / "out" / "a.png").read_bytes()
    assert data[12:29] == b"IHDR" + struct.pack(">IIBBBBB", 20, 28, 8, 2, 0, 0, 0)
    assert data.endswith(struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND")))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "a.png")), np.asarray(rgb))
    translate_streaming(tr, rgb, tmp_path / "round.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "round.png")), np.asarray(rgb))
    translate_streaming(tr, rgb, tmp_path / "floor.png", "floor")
    floor = np.asarray(Image.open(tmp_path / "floor.png"))
    assert np.array_equal(floor, np.asarray(tr.translate(rgb, "floor"))) and not np.array_equal(floor, np.asarray(rgb))
    translate_folder(tr, src, tmp_path / "floored", quantize="floor")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "floored" / "a.png")), floor)
    gray = _translator(_Pointwise(1), input_nc=1, output_nc=1, tile=8, overlap=4)
    translate_streaming(gray, rgb, tmp_path / "gray.png")
    data = (tmp_path / "gray.png").read_bytes()
    assert data[12:29] == b"IHDR" + struct.pack(">IIBBBBB", 20, 28, 8, 0, 0, 0, 0)
    got = Image.open(tmp_path / "gray.png")
    assert got.mode == "L" and np.array_equal(np.asarray(got), np.asarray(rgb.convert("L")))
    with pytest.raises(ValueError, match="write_png: got 2 rows for a 3-row image"):
        write_png(BytesIO(), 2, 3, 3, [np.zeros((2, 2, 3), np.uint8)])


def test_index_pages_of_translated_folders(tmp_path):
    """gennorm's index.html, whole: a header row (name, input, output and, for aligned pairs, target),
    then one row per image with its name and its pictures at 256 px, pixelated; the title names the
    model, the direction and the input folder. For A|B pairs the A half (left: the model trained AtoB)
    is the input and the B half the target."""
    from gennorm.inference import translate_folder

    rng = np.random.default_rng(5)
    style = 'style="width:256px;image-rendering:pixelated"'
    for aligned in (False, True):
        src, out = tmp_path / f"in{aligned}", tmp_path / f"out{aligned}"
        src.mkdir()
        pairs = {name: rng.integers(0, 256, (8, 16 if aligned else 8, 3), dtype=np.uint8) for name in ("a", "b")}
        for name, pixels in pairs.items():
            Image.fromarray(pixels).save(src / f"{name}.png")
        translate_folder(_translator(_Pointwise()), src, out, aligned=aligned)
        head = "<tr><th>name</th><th>input</th><th>output</th>" + ("<th>target</th>" if aligned else "") + "</tr>"
        rows = "".join(f'<tr><td>{n}.png</td><td><img {style} src="inputs/{n}.png"></td><td><img {style} src="{n}.png"></td>'
                       + (f'<td><img {style} src="targets/{n}.png"></td>' if aligned else "") + "</tr>" for n in pairs)
        title = f"stand-in (AtoB) on {src}"
        assert (out / "index.html").read_text() == (
            f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head><body>"
            f"<h1>{title}</h1><table>{head}{rows}</table></body></html>\n")
        for name, pixels in pairs.items():
            assert np.array_equal(np.asarray(Image.open(out / f"{name}.png")), pixels[:, :8])
            assert np.array_equal(np.asarray(Image.open(out / "inputs" / f"{name}.png")), pixels[:, :8])
            assert (out / "targets" / f"{name}.png").is_file() == aligned
            if aligned:
                assert np.array_equal(np.asarray(Image.open(out / "targets" / f"{name}.png")), pixels[:, 8:])


class _BatchNormed(torch.nn.Sequential):
    """A stand-in whose output changes in train mode: a seeded 1x1 convolution, then batch norm with
    running statistics far from a batch's own (train mode would normalize with the batch's)."""

    size_multiple = 4

    def __init__(self):
        super().__init__(_Pointwise(conv=True), torch.nn.BatchNorm2d(3))
        self[1].running_mean.fill_(0.5)
        self[1].running_var.fill_(4.0)


def test_probing_the_smallest_side_leaves_the_network_as_it_was():
    """min_side runs the network on zeros; in train mode (the original test mode) that would move batch norm's
    running statistics, which an export (eval mode) then uses: the probe restores every buffer."""
    net = _BatchNormed()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    tr = _translator(net, norm="batch", train_mode=True)
    assert tr.min_side() == 4 and net.training
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), [k for k in before if not torch.equal(before[k], after[k])]


def test_graph_exports_resize_as_the_translator_off_the_grid(monkeypatch):
    """GridResized (the exported graphs' wrapper) resizes as Translator.translate_tensor: off the grid
    (10 x 18 -> 8 x 16 and back), under min_side (3 x 5 -> 16 x 16), on it and at MAX_SIDE, clamped
    to [-1, 1], bit for bit in eager mode. trace hands torch.export the network in eval mode (running
    statistics, even from a network left in train mode) and float32 in GridResized with the
    translator's grid and min_side, and an example input: the requested size (default 256) rounded
    up to the grid, at least min_side, seeded; H and W dynamic from 2 to MAX_SIDE (torch.export
    itself is stubbed: the zoo tests above run it)."""
    from gennorm.inference import trace
    from gennorm.inference.export import MAX_SIDE, GridResized

    net = _Pointwise(conv=True, min_side=9)
    with torch.no_grad():
        net.conv.weight.mul_(8)  # outputs far outside [-1, 1]: the final clamp shows
    tr = _translator(net)
    grid = GridResized(net, 4, tr.min_side())
    for size in ((10, 18), (3, 5), (16, 24), (MAX_SIDE, 4)):
        x = _rand(*size, seed=size[1])
        with torch.no_grad():
            got = grid(x)
            assert torch.equal(got, tr(x)) and got.min() == -1 and got.max() == 1
    calls = []
    monkeypatch.setattr(torch.export, "export", lambda module, args, dynamic_shapes: calls.append(
        (module, args, dynamic_shapes)) or "program")
    tr = _translator(_BatchNormed(), norm="batch")
    assert tr.min_side() == 4  # probed in eval mode (in train mode the probe would move the running statistics)
    tr.net.double().train()
    for size, side in ((17, 20), (2, 4), (None, 256)):  # None: the default size, 256
        assert (trace(tr) if size is None else trace(tr, size)) == "program"
        module, (x,), (shapes,) = calls.pop()
        assert isinstance(module, GridResized) and (module.net, module.k, module.low) == (tr.net, 4, 4)
        assert not module.net.training and module.net[1].running_mean.dtype == torch.float32
        assert torch.equal(x, torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(0)) * 2 - 1)
        assert sorted(shapes) == [2, 3] and [(d.min, d.max) for d in shapes.values()] == [(2, MAX_SIDE)] * 2
    assert trace(_translator(_Pointwise(min_side=9)), 5) == "program" and calls[0][1][0].shape == (1, 3, 16, 16)
    assert calls[0][0].low == 16


def test_graph_export_files_of_a_stand_in(tmp_path, monkeypatch):
    """export_onnx / export_program on a 1x1-conv stand-in (seconds, not the zoo's minutes): each traces at
    size 256 unless given a program (then it traces nothing), writes its file atomically (missing folders
    made, no temporary file left, a str path returned as a Path), ONNX with opset 18 and the names "image" /
    "translated"; both files give the translator's values off the grid."""
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    from gennorm.inference import export as ex

    tr = _translator(_Pointwise(conv=True))
    sizes, real_trace = [], ex.trace
    monkeypatch.setattr(ex, "trace", lambda t, size: sizes.append(size) or real_trace(t, 8))
    onnx_file = ex.export_onnx(tr, str(tmp_path / "new" / "deeper" / "g.onnx"))
    program_file = ex.export_program(tr, str(tmp_path / "g.pt2"))
    assert sizes == [256, 256] and onnx_file == tmp_path / "new" / "deeper" / "g.onnx" and program_file == tmp_path / "g.pt2"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["deeper", "g.onnx", "g.pt2", "new"]
    program = real_trace(tr, 8)
    ex.export_onnx(tr, tmp_path / "h.onnx", program=program, opset=17)
    ex.export_program(tr, tmp_path / "h.pt2", program=program)
    assert sizes == [256, 256]
    model = onnx.load(str(onnx_file))
    assert {o.domain: o.version for o in model.opset_import}[""] == 18
    assert {o.domain: o.version for o in onnx.load(str(tmp_path / "h.onnx")).opset_import}[""] == 17
    x = _rand(10, 18, seed=3)
    with torch.no_grad():
        want = tr(x)
        for pt2 in (program_file, tmp_path / "h.pt2"):
            assert (torch.export.load(str(pt2)).module()(x) - want).abs().max() <= 1e-5
    for path in (onnx_file, tmp_path / "h.onnx"):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        assert [i.name for i in session.get_inputs()] == ["image"] and [o.name for o in session.get_outputs()] == ["translated"]
        assert (torch.from_numpy(session.run(None, {"image": x.numpy()})[0]) - want).abs().max() <= 1e-5


def test_a_run_directory_loads_the_generator_of_each_direction_and_step(scenes, tmp_path):
    """A CycleGAN run: AtoB is G_A, BtoA is G_B (the EMA copies when the run kept them, the nets otherwise),
    from the latest checkpoint or the one of `checkpoint`; the translator's metadata names step, EMA and file.
    pix2pix / CUT runs translate AtoB only; unknown directions name the choices."""
    from types import SimpleNamespace

    from gennorm.config import load_config
    from gennorm.errors import CheckpointError, ConfigError
    from gennorm.inference import load_translator
    from gennorm.inference.loading import generator_name
    from gennorm.train.loop import train

    tiny = ["model.ngf=4", "model.ndf=4", "model.g_arch=resnet_6blocks", "data.load_size=36", "data.crop_size=32",
            "train.checkpoint_every=1", "train.sample_every=2", "train.log_every=1", "train.device=cpu",
            "train.progress=false", "train.num_samples=1", "train.max_steps=2", f"data.root={scenes / 'unpaired'}"]
    runs = {ema: train(load_config("cyclegan-instance", [f"out={tmp_path / str(ema)}", f"train.ema={ema}", *tiny]))
            for ema in (0.9, 0)}
    for ema, run in runs.items():
        for step in (1, 2):
            state = torch.load(run / "checkpoints" / f"step_{step:08d}.pt", weights_only=True)["task"]
            for direction, name in (("AtoB", "G_A"), ("BtoA", "G_B")):
                kw = {} if step == 2 else {"checkpoint": step}
                tr = load_translator(run, direction=direction, **kw)
                want = state["ema"][name] if ema else state["nets"][name]
                got = tr.net.state_dict()
                assert set(got) == set(want) and all(torch.equal(got[k], want[k]) for k in want), (ema, step, direction)
                assert tr.meta == {"step": str(step), "ema": str(bool(ema)),
                                   "checkpoint": str(run / "checkpoints" / f"step_{step:08d}.pt")}
                assert tr.direction == direction
            nets = state["nets"]
            pairs = [(nets["G_A"], nets["G_B"])] + ([(nets["G_A"], state["ema"]["G_A"])] if ema else [])
            assert all(any(not torch.equal(a[k], b[k]) for k in a) for a, b in pairs)  # G_A, G_B, the EMA differ
    with pytest.raises(CheckpointError, match="step_00000007.pt"):
        load_translator(runs[0], checkpoint=7)
    # a checkpoint picked by step is checked as the latest one is: content hash, then structure
    from gennorm.networks.checkpoint import HASH_KEY

    ckpt = runs[0] / "checkpoints" / "step_00000001.pt"
    state = torch.load(ckpt, weights_only=True)
    weights = state["task"]["nets"]["G_B"]
    weights[next(iter(weights))].add_(1)
    torch.save(state, ckpt)
    with pytest.raises(CheckpointError, match=rf"^checkpoint {ckpt} is corrupt: its content does not match"):
        load_translator(runs[0], direction="BtoA", checkpoint=1)
    del state[HASH_KEY], state["epoch"]
    torch.save(state, ckpt)
    with pytest.raises(CheckpointError, match=rf"^checkpoint {ckpt} is incomplete: no 'epoch'"):
        load_translator(runs[0], direction="BtoA", checkpoint=1)
    state["epoch"], state["task"]["ema"] = 0, None  # no EMA dict (a run without EMA): the nets
    torch.save(state, ckpt)
    tr = load_translator(runs[0], direction="BtoA", checkpoint=1)
    assert torch.equal(tr.net.state_dict()[next(iter(weights))], weights[next(iter(weights))])
    for nets, held in (({"G": weights, "D": weights}, "G, D"), ({}, "no networks")):  # pix2pix's, or none
        state["task"]["nets"] = nets
        torch.save(state, ckpt)
        with pytest.raises(CheckpointError, match=rf"^checkpoint {ckpt} has no generator 'G_B' \(it holds {held}\), "
                                                  rf"but {runs[0] / 'config.yaml'} is a cyclegan run: the checkpoint "
                                                  r"belongs to another run$"):
            load_translator(runs[0], direction="BtoA", checkpoint=1)
    # the saved build options are compared (an edited config.yaml cannot pass one norm's weights off as
    # another's with the same tensors); a checkpoint without options (older) loads
    config = runs[0] / "config.yaml"
    config.write_text(config.read_text().replace("g_norm: instance", "g_norm: pono-ms"))
    with pytest.raises(CheckpointError, match=r"checkpoint was built with .*instance.*; this network has .*pono-ms"):
        load_translator(runs[0])
    config.write_text(config.read_text().replace("g_norm: pono-ms", "g_norm: instance"))
    ckpt = runs[0] / "checkpoints" / "step_00000002.pt"
    state = torch.load(ckpt, weights_only=True)
    state["task"]["options"] = None
    torch.save({k: v for k, v in state.items() if k != HASH_KEY}, ckpt)
    assert load_translator(runs[0], direction="BtoA").meta["step"] == "2"
    gray = train(load_config("cyclegan-instance", [f"out={tmp_path / 'gray'}", "model.input_nc=1",
                                                   "train.lambda_identity=0", *tiny]))
    assert [(t.input_nc, t.output_nc) for t in (load_translator(gray), load_translator(gray, direction="BtoA"))] == [
        (1, 3), (3, 1)]
    with pytest.raises(CheckpointError, match=rf"^{tmp_path}: no config.yaml \(expected a run directory or a models/ "
                                              r"folder\)$"):
        load_translator(tmp_path)
    for ema, net in ((0.9, "G_A EMA"), (0, "G_A")):  # a diverged run's weights are refused, naming what they are
        ckpt = runs[ema] / "checkpoints" / "step_00000002.pt"
        state = torch.load(ckpt, weights_only=True)
        state.pop(HASH_KEY, None)
        weights = state["task"]["ema" if ema else "nets"]["G_A"]
        first = next(iter(weights))
        weights[first].view(-1)[0] = float("nan")
        torch.save(state, ckpt)
        with pytest.raises(CheckpointError, match=rf"^checkpoint {ckpt} \({net}\): tensor '{first}' has 1 of "):
            load_translator(runs[ema])
    one_way = SimpleNamespace(train=SimpleNamespace(task="pix2pix"))
    assert generator_name(one_way, "AtoB") == "G" and generator_name(SimpleNamespace(train=SimpleNamespace(task="cut")),
                                                                     "AtoB") == "G"
    with pytest.raises(ConfigError, match=r"^direction 'BtoA': a pix2pix model translates one way only; allowed: AtoB$"):
        generator_name(one_way, "BtoA")
    with pytest.raises(ConfigError, match=r"^direction 'AB': allowed: AtoB, BtoA$"):
        generator_name(one_way, "AB")
    with pytest.raises(ValueError, match=r"^direction must be 'AtoB' or 'BtoA', got 'AB'$"):
        load_translator(runs[0], direction="AB")


def test_a_model_folder_is_checked_against_its_config_before_loading(tmp_path):
    """A models/ folder's generator file: its header is checked against the network first (an extra tensor:
    nothing is read). (Its recorded build options against config.yaml: test_integrity, on freshly exported
    folders.)"""
    import shutil

    from safetensors.torch import load_file, save_file

    from gennorm.errors import CheckpointError
    from gennorm.inference import load_translator

    folder = tmp_path / "m"
    shutil.copytree(MODELS / "scenes-instance", folder)
    path = folder / "generator.safetensors"
    save_file({**load_file(path), "extra.weight": torch.zeros(2)}, str(path))
    with pytest.raises(CheckpointError, match=rf"^{path}: 1 tensor\(s\) the network does not have \(extra.weight\); "
                                              r"nothing was loaded$"):
        load_translator(folder)


def test_translate_folder_layouts_and_refusals(tmp_path, monkeypatch):
    """translate_folder's naming "junyanz" (pytorch-CycleGAN-and-pix2pix's test.py): images/NAME_real_A,
    _fake_B, _real_B (A and B swapped for a BtoA translator, whose input is then the B half: the
    right one when the model trained AtoB), quantize "floor" by default, its index.html whole (a
    heading per image, each picture captioned with its visual name, also for a stem in a subfolder);
    num_test keeps the first images; a model folder is loaded AtoB (BtoA refused); leftovers of killed
    translations are swept from every folder written, subfolders too. Refused, naming what is wrong:
    an image with a side under 4 px (8 for pairs, whose halves are translated), a missing input
    folder, a file, a folder without images, two inputs that would write one file (a.jpg and a.png;
    with pairs, a.png's target and targets/a.png's output), an unknown naming, an output that contains
    the model's folder (one inside it is fine; a model source that is no folder holds nothing back); a
    full disk names the file, the reason and what to do."""
    from gennorm.errors import ConfigError, DataError, GennormError
    from gennorm.inference import folders, translate_folder

    rng = np.random.default_rng(6)
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    pairs = {"a": rng.integers(0, 256, (8, 16, 3), dtype=np.uint8), "sub/b": rng.integers(0, 256, (8, 16, 3), dtype=np.uint8)}
    for stem, pixels in pairs.items():
        Image.fromarray(pixels).save(src / f"{stem}.png")
    for direction, real, fake in (("AtoB", "A", "B"), ("BtoA", "B", "A")):
        tr, out = _translator(_Pointwise(), direction=direction), tmp_path / direction
        written = translate_folder(tr, src, out, aligned=True, naming="junyanz")
        assert written == [out / "images" / f"{stem}_fake_{fake}.png" for stem in pairs]
        cells = []
        for stem, pixels in pairs.items():
            left, right = pixels[:, :8], pixels[:, 8:]
            seen, other = (left, right) if direction == "AtoB" else (right, left)
            files = {f"real_{real}": seen, f"fake_{fake}": np.asarray(tr.translate(Image.fromarray(seen), "floor")),
                     f"real_{'B' if real == 'A' else 'A'}": other}
            assert not np.array_equal(files[f"fake_{fake}"], seen)  # floor: some levels one lower
            for label, want in files.items():
                assert np.array_equal(np.asarray(Image.open(out / "images" / f"{stem}_{label}.png")), want)
            cells.append(f"<h3>{stem}</h3><table border='1' style='table-layout: fixed;'><tr>" + "".join(
                f"<td halign='center' style='word-wrap: break-word;' valign='top'><p><a href='images/{stem}_{label}.png'>"
                f"<img style='width:256px' src='images/{stem}_{label}.png'></a><br><p>{label}</p></p></td>"
                for label in files) + "</tr></table>")
        title = f"stand-in ({direction}) on {src}"
        assert (out / "index.html").read_text() == (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}"
                                                    f"</title></head><body>{''.join(cells)}</body></html>\n")
    assert translate_folder(_translator(_Pointwise()), src, tmp_path / "first", num_test=1) == [tmp_path / "first" / "a.png"]
    assert sorted(p.name for p in (tmp_path / "first").rglob("*.png")) == ["a.png", "a.png"]
    tr = _translator(_Pointwise())
    (tmp_path / "empty").mkdir()
    for folder, words in ((tmp_path / "nothing", f"input folder {tmp_path / 'nothing'} does not exist"),
                          (src / "a.png", f"{src / 'a.png'}: not a folder of images"),
                          (tmp_path / "empty", f"{tmp_path / 'empty'}: no images found (png, jpg, ...)")):
        with pytest.raises(DataError, match=re.escape(words)):
            translate_folder(tr, folder, tmp_path / "o")
    Image.fromarray(pairs["a"]).save(src / "a.jpg")
    with pytest.raises(DataError, match=re.escape(f"{src / 'a.jpg'} and {src / 'a.png'} would both be written as "
                                                  f"{tmp_path / 'o' / 'inputs' / 'a.png'}; rename one of them")):
        translate_folder(tr, src, tmp_path / "o")
    (src / "a.jpg").unlink()
    with pytest.raises(ConfigError, match=re.escape("naming 'cyclegan': allowed: gennorm, junyanz")):
        translate_folder(tr, src, tmp_path / "o", naming="cyclegan")
    small = tmp_path / "small"
    small.mkdir()
    Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(small / "s.png")  # whole: 4 px is enough; a pair's halves: 3 x 4
    assert translate_folder(tr, small, tmp_path / "s1") == [tmp_path / "s1" / "s.png"]
    with pytest.raises(DataError, match=re.escape(f"image {small / 's.png'} is 6x4: too small, the model needs at least 8")):
        translate_folder(tr, small, tmp_path / "s2", aligned=True)
    tr.source = str(tmp_path / "gone" / "model")  # no such folder: nothing to keep the output apart from
    assert translate_folder(tr, src, tmp_path / "gone", num_test=1) == [tmp_path / "gone" / "a.png"]
    one = tmp_path / "one"
    one.mkdir()
    Image.fromarray(pairs["a"]).save(one / "a.png")
    translate_folder(MODELS / "scenes-nc", one, tmp_path / "zoo")  # a model folder: loaded AtoB, on the CPU
    want = gennorm.load(MODELS / "scenes-nc").translate(Image.fromarray(pairs["a"]))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "zoo" / "a.png")), np.asarray(want))
    with pytest.raises(ConfigError, match="a models/ folder holds the AtoB generator only"):
        translate_folder(MODELS / "scenes-nc", one, tmp_path / "zoo-b", direction="BtoA")
    clash = tmp_path / "clash"
    (clash / "targets").mkdir(parents=True)
    for name in ("a.png", "targets/a.png"):
        Image.fromarray(pairs["a"]).save(clash / name)
    translate_folder(tr, clash, tmp_path / "c1")  # no targets written: targets/a.png's output is nobody else's
    with pytest.raises(DataError, match=re.escape(f"{clash / 'a.png'} and {clash / 'targets' / 'a.png'} would both be "
                                                  f"written as {tmp_path / 'c2' / 'targets' / 'a.png'}")):
        translate_folder(tr, clash, tmp_path / "c2", aligned=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    leftover = tmp_path / "swept" / "inputs" / "sub" / f".b.png.{dead.pid}.tmp"  # of a killed translation
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"half a PNG")
    translate_folder(tr, src, tmp_path / "swept")
    assert not leftover.exists() and (tmp_path / "swept" / "inputs" / "sub" / "b.png").is_file()
    (tmp_path / "nested" / "deep").mkdir(parents=True)  # the first input in a subfolder: inputs/deep needs inputs/
    Image.fromarray(pairs["a"]).save(tmp_path / "nested" / "deep" / "x.png")
    translate_folder(tr, tmp_path / "nested", tmp_path / "n-out", aligned=True)
    assert sorted(p.relative_to(tmp_path / "n-out").as_posix() for p in (tmp_path / "n-out").rglob("*.png")) == [
        "deep/x.png", "inputs/deep/x.png", "targets/deep/x.png"]
    def full_disk(path, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(folders, "atomic_write_bytes", full_disk)
    first = tmp_path / "full" / "inputs" / "a.png"
    with pytest.raises(GennormError, match=re.escape(
            f"cannot write {first} (No space left on device); free space or choose another output folder (the images "
            f"written before it in {first.parent} are complete)")):
        translate_folder(tr, src, tmp_path / "full")
    monkeypatch.undo()
    model = tmp_path / "runs" / "model"
    model.mkdir(parents=True)
    tr.source = str(model)
    with pytest.raises(DataError, match=re.escape(f"gennorm translate: the output {model.parent} contains the input {model}")):
        translate_folder(tr, src, model.parent)
    assert translate_folder(tr, src, model / "eval", num_test=1) == [model / "eval" / "a.png"]
