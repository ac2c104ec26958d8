"""gennorm.load and tiled inference: every input kind, tiles equal to the whole image for local
norms, bounded-memory streaming, input limits, receptive fields."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
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
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
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
    # the verb's plumbing (any model source, --format, --size); the graphs' values are checked above
    assert main(["export", "scenes-instance", str(tmp_path / "g.onnx"), "--format", "onnx", "--size", "32"]) == 0
    assert main(["export", "scenes-instance", str(tmp_path / "g.pt2"), "--format", "torch-export", "--size", "32"]) == 0
    assert (tmp_path / "g.onnx").stat().st_size > 100_000 and (tmp_path / "g.pt2").stat().st_size > 100_000
