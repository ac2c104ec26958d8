"""Hostile values and a failing machine (issue 30; ../shared/reports/2026-12-07-faults.md F20-F31):
every number checked where it is parsed and named, images right or refused, metrics that are
valid JSON, full disks named, the demo's temp files, torchrun that cannot hang silently."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gennorm.cli import main


def cli(capsys, *args) -> tuple[int, str]:
    """(exit code, stderr) of `gennorm ARGS` in this process; argparse's SystemExit counts as a code."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as done:
        code = done.code
    return code, capsys.readouterr().err


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("in")
    for i in range(2):
        Image.new("RGB", (32, 32), (40 * i, 90, 200)).save(folder / f"{i}.png")
    return folder


# ---- 1. every CLI number checked and named ---------------------------------------------------

@pytest.mark.parametrize("option, value", [
    ("--num-test", "-1"), ("--num-test", "0"), ("--tile", "0"), ("--tile", "-5"), ("--max-pixels", "0.5"),
    ("--max-pixels", "nan"), ("--max-pixels", "1e400"), ("--device", "foo"), ("--device", "meta"),
])
def test_translate_refuses_bad_numbers_naming_the_option(option, value, images, tmp_path, capsys):
    """Before: --num-test -1 dropped the last image (rc 0), 0 said "no images found", --max-pixels 0.5
    was no limit, the others ended as "unexpected ..." lines without the option's name."""
    code, err = cli(capsys, "translate", "scenes-nc", images, tmp_path / "o", f"{option}={value}")
    assert code == 2 and option in err and "unexpected" not in err, err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv", [["demo", "--port", "99999"], ["demo", "--port", "-1"], ["demo", "--device", "gpu"],
                                  ["demo", "--concurrency", "0"], ["eval", "a", "b", "--batch-size", "0"],
                                  ["eval", "a", "b", "--max-pixels", "inf"], ["eval", "a", "b", "--kid-subsets", "-1"],
                                  ["quickstart", "--steps", "-3"], ["nets", "summary", "unet_256", "--size", "0"],
                                  ["bench", "metrics", "--images", "0"], ["export", "r", "o", "--size", "-1"],
                                  ["data", "scenes", "o", "--count", "1"]])
def test_every_verb_checks_its_numbers_when_parsing(argv, capsys):
    code, err = cli(capsys, *argv)
    option = next(a for a in argv if a.startswith("--"))
    assert code == 2 and f"argument {option}" in err, err


def test_the_types_accept_what_they_should():
    from gennorm.commands import _types as t

    assert t.pixel_limit("100e6") == 100_000_000 and t.pixel_limit("0") is None and t.pixel_limit("1") == 1
    assert t.port("1") == 1 and t.port("65535") == 65535
    assert [t.device(x) for x in ("cpu", "CUDA", "cuda:1", "mps")] == ["cpu", "cuda", "cuda:1", "mps"]
    assert t.device_or_auto("auto") == "auto" and t.positive_float("1e-3") == 1e-3 and t.nonneg_int("0") == 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
@pytest.mark.parametrize("verb", ["translate", "eval", "demo", "train"])
def test_a_missing_cuda_device_is_one_named_line(verb, images, tmp_path, capsys, scenes):
    """Before: translate --device cuda printed "unexpected RuntimeError: Found no NVIDIA driver"."""
    argv = {"translate": ["translate", "scenes-nc", images, tmp_path / "o", "--device", "cuda"],
            "eval": ["eval", images, images, "--metrics", "psnr", "--device", "cuda:0"],
            "demo": ["demo", "--device", "cuda"],
            "train": ["train", "pix2pix-instance", f"out={tmp_path / 'r'}", f"data.root={scenes / 'paired'}",
                      "train.device=cuda", "train.max_steps=1"]}[verb]
    code, err = cli(capsys, *argv)
    assert code == 2 and "no CUDA device" in err and "unexpected" not in err, err
    assert ("train.device" if verb == "train" else "--device cuda") in err


def test_the_device_check_counts_devices():
    from gennorm.devices import require_device
    from gennorm.errors import ConfigError

    assert require_device("cpu").type == "cpu" and require_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ConfigError, match="--device meta: not supported"):
        require_device("meta")
    with pytest.raises(ConfigError, match="--device cuda:99"):
        require_device("cuda:99")


@pytest.mark.parametrize("override, key", [("train.lr=1e300", "train.lr"), ("train.lr=1e7", "train.lr"),
                                           ("train.lambda_l1=1e30", "train.lambda_l1"),
                                           # N5 (second trial): 0 steps "succeeded" into a run without a checkpoint
                                           ("train.max_steps=0", "train.max_steps")])
def test_absurd_config_numbers_are_refused_naming_the_key(override, key, scenes, tmp_path, capsys):
    """Before: train.lr=1e300 ended as "unexpected RuntimeError: value cannot be converted to type float"."""
    code, err = cli(capsys, "train", "pix2pix-instance", f"out={tmp_path / 'r'}", f"data.root={scenes / 'paired'}",
                    "train.device=cpu", "train.max_steps=1", override)
    assert code == 2 and f"'{key}'" in err and "unexpected" not in err, err


def test_eval_auto_honours_no_verify_weights(images, tmp_path, capsys, monkeypatch):
    """Before: --metrics auto skipped fid/kid ("weights not on disk") for a weight file that --metrics
    fid with the same --weights-dir --no-verify-weights used."""
    from gennorm.errors import GennormError
    from gennorm.metrics import weights
    from gennorm.study import evaluate as study

    (tmp_path / "w").mkdir()
    (tmp_path / "w" / weights.WEIGHT_FILES["inception"].filename).write_bytes(b"not the official file")

    def chosen(real, fake, names, **options):
        raise GennormError(f"would run {','.join(names)}")

    monkeypatch.setattr(study, "evaluate_folders", chosen)
    code, err = cli(capsys, "eval", images, images, "--weights-dir", tmp_path / "w", "--no-verify-weights")
    assert code == 2 and "would run fid,kid" in err, err
    code, err = cli(capsys, "eval", images, images, "--weights-dir", tmp_path / "w")  # verified: official size only
    assert "would run psnr,ssim" in err or "would run fid" not in err, err


# ---- 3. images right or refused ----------------------------------------------------------------

def _png(path: Path, width: int, height: int, depth: int, colour: int, rows: list[bytes]) -> Path:
    """A PNG written by hand: a valid file (CRCs, IEND) whose IDAT holds exactly `rows`."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    idat = zlib.compress(b"".join(b"\x00" + r for r in rows))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def test_a_png_with_half_its_rows_is_refused_naming_the_file(tmp_path, capsys):
    """Before: loaded silently, the bottom half black (PIL fills missing rows)."""
    from gennorm.data.images import load_image
    from gennorm.errors import DataError

    (tmp_path / "in").mkdir()
    half = _png(tmp_path / "in" / "half.png", 32, 32, 8, 2, [bytes([200]) * 96] * 16)
    whole = _png(tmp_path / "whole.png", 32, 32, 8, 2, [bytes([200]) * 96] * 32)
    assert np.asarray(load_image(whole)).min() == 200
    with pytest.raises(DataError, match="half.png.*rows missing"):
        load_image(half)
    code, err = cli(capsys, "translate", "scenes-nc", tmp_path / "in", tmp_path / "out")
    assert code == 2 and "half.png" in err and "rows missing" in err, err


def test_a_16bit_png_gives_the_same_pixels_in_the_cli_and_the_demo(tmp_path):
    """Before: values 0..255 stored as 16 bits were 0..1 in the CLI and 0..255 in the demo."""
    pytest.importorskip("gradio")
    from gennorm.apps import demo
    from gennorm.data.images import load_image

    values = (np.arange(64 * 8).reshape(8, 64) % 256 * 16).astype(">u2")  # 12-bit data
    path = _png(tmp_path / "deep.png", 64, 8, 16, 0, [r.tobytes() for r in values])
    cli_pixels = np.asarray(load_image(path))
    assert cli_pixels.max() == round(255 * 16 * 255 / 65535)
    with Image.open(path) as im:
        assert np.array_equal(np.asarray(demo.prepare_image(im)), cli_pixels)


# ---- 4. non-finite metrics: said in the table, valid JSON ----------------------------------------

def test_an_identical_pair_gives_inf_in_the_table_and_valid_json(tmp_path, capsys):
    """Before: the set's PSNR was inf and --json wrote `Infinity`, which strict JSON parsers refuse."""
    rng = np.random.default_rng(0)
    for side in ("real", "fake"):
        (tmp_path / side).mkdir()
    for i in range(3):
        real = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        fake = real if i == 0 else rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        Image.fromarray(real).save(tmp_path / "real" / f"{i}.png")
        Image.fromarray(fake).save(tmp_path / "fake" / f"{i}.png")
    code = main(["eval", str(tmp_path / "real"), str(tmp_path / "fake"), "--metrics", "psnr",
                 "--json", str(tmp_path / "m.json")])
    out = capsys.readouterr().out
    assert code == 0 and "inf" in out and "1 of 3 pairs are identical" in out, out
    text = (tmp_path / "m.json").read_text()
    assert "Infinity" not in text and "NaN" not in text
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert data["metrics"]["psnr"] is None and data["metrics"]["psnr_note"] == "infinite"
    assert data["notes"]["psnr"].startswith("infinite: 1 of 3 pairs are identical")


def test_json_writer_turns_every_non_finite_float_into_null_and_a_note(tmp_path):
    from gennorm.atomic import atomic_write_json

    atomic_write_json(tmp_path / "x.json", {"a": math.inf, "b": [math.nan, 1.5], "c": {"d": -math.inf}, "e": 2.0})
    data = json.loads((tmp_path / "x.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert data == {"a": None, "a_note": "infinite", "b": [None, 1.5], "c": {"d": None, "d_note": "-infinite"},
                    "e": 2.0}


# ---- 2. a full disk names the file or the folder -------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A 1 MB tmpfs (root only), unmounted afterwards."""
    import os
    import subprocess

    folder = tmp_path / "small"
    folder.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root to mount a small tmpfs")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_full_disk_names_the_folder_being_written(small_disk, capsys):
    """Before: "error: a file: No space left on device" (the write on an open file names none)."""
    code, err = cli(capsys, "data", "scenes", small_disk / "ds", "--size", "128", "--count", "60")
    assert code == 2 and "No space left on device" in err, err
    assert f"{small_disk / 'ds'}" in err and "a file:" not in err, err


def test_a_full_disk_in_an_atomic_write_names_its_target(tmp_path, capsys, monkeypatch):
    import errno

    from gennorm.atomic import atomic_write

    def full(f):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError) as caught:
        atomic_write(tmp_path / "out.png", full)
    assert caught.value.filename == str(tmp_path / "out.png") and not list(tmp_path.iterdir())

    from gennorm.cli import describe_os_error
    assert describe_os_error(OSError(errno.ENOSPC, "No space left on device"), "out/maps").startswith(
        "a file under out/maps: No space left on device; free space there")


# ---- 5. the demo under stress -----------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory) -> Path:
    pytest.importorskip("gradio")
    from test_demo import write_tiny_model

    root = tmp_path_factory.mktemp("zoo") / "models"
    write_tiny_model(root / "scenes-instance", "instance", fid=30.0)
    return root


@pytest.fixture(scope="module")
def demo_blocks(tiny_zoo):
    from gennorm.apps import demo as demo_app

    app = demo_app.build_app(tiny_zoo, device="cpu")
    yield app
    app.close()


@pytest.fixture(scope="module")
def demo_api(demo_blocks):
    """The demo's /translate function, called as Gradio calls it (no server)."""
    return next(f for f in demo_blocks.fns.values() if f.api_name == "translate").fn


def test_each_translate_request_gets_its_own_output_files(demo_api):
    """Before: outputs were PIL images that Gradio cached by content, so identical requests shared one
    file, rewritten while another response streamed it (1-2 of 50 concurrent calls truncated)."""
    image = Image.new("RGB", (32, 32), (152, 251, 152))
    first, _ = demo_api(image, "scenes")
    second, _ = demo_api(image, "scenes")
    paths = [item[0] for item in first + second]
    assert all(isinstance(p, str) and Path(p).is_file() for p in paths), paths
    assert len(set(paths)) == len(paths)
    assert Path(paths[0]).read_bytes() == Path(paths[1]).read_bytes()


def test_the_pages_outputs_are_the_requests_own_files_too(demo_blocks):
    from gennorm.apps import demo as demo_app

    on_translate = next(f.fn for f in demo_blocks.fns.values() if getattr(f.fn, "func", None) is demo_app._on_translate)
    image = Image.new("RGB", (32, 32), (152, 251, 152))
    first, second = on_translate(image, "scenes"), on_translate(image, "scenes")

    def pngs(value):  # every file path in an event's outputs (slots, slider, shown input)
        if isinstance(value, str):
            return [value] if value.endswith(".png") else []
        items = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else []
        return [p for v in items for p in pngs(v)]

    one, two = set(pngs(first)), set(pngs(second))
    assert len(one) == 2 and not one & two and all(Path(f).is_file() for f in one | two), (one, two)


def test_a_full_temp_folder_is_told_to_the_visitor(demo_api, monkeypatch):
    """Before: /translate answered {"error": null} when the temp folder was full."""
    import errno

    import gradio as gr

    from gennorm.apps import demo as demo_app

    def full(image, cache_dir):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(demo_app, "fresh_png", full)
    with pytest.raises(gr.Error, match="temp space is full"):
        demo_api(Image.new("RGB", (32, 32)), "scenes")


def test_a_full_temp_folder_is_told_wherever_gradio_hits_it():
    """The two places that turn ENOSPC into TEMP_FULL whatever raised it: the demo's events (Gradio
    storing an upload or an output) and its server's middleware (an upload: it was an HTTP 500)."""
    import asyncio
    import errno

    import gradio as gr

    from gennorm.apps import demo as demo_app
    from gennorm.apps.public import TEMP_FULL, PublicPaths, disk_full

    def enospc():
        raise OSError(errno.ENOSPC, "No space left on device")

    try:
        try:
            enospc()
        except OSError as err:
            raise RuntimeError("wrapped") from err
    except RuntimeError as err:
        assert disk_full(err) and not disk_full(RuntimeError("x")) and not disk_full(OSError(errno.EACCES, "no"))

    class Raising(gr.Blocks):
        async def process_api(self, *args, **kwargs):
            enospc()

    class Events(demo_app.DemoBlocks, Raising):
        pass

    with pytest.raises(gr.Error, match="temp space is full") as caught:
        asyncio.run(Events().process_api(0, []))
    assert caught.value.message == TEMP_FULL

    async def upload(scope, receive, send):
        enospc()

    sent = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "path": "/gradio_api/upload", "headers": [(b"content-type", b"multipart/form-data")]}
    asyncio.run(PublicPaths(upload, "/nowhere")(scope, receive, send))
    assert sent[0]["status"] == 507 and sent[1]["body"].decode() == TEMP_FULL


@pytest.fixture
def full_temp_dir(tmp_path, monkeypatch):
    """A 1 MB tmpfs as Gradio's temp folder (root only: mount); unmounted afterwards."""
    import subprocess

    folder = tmp_path / "tmpfs"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)], capture_output=True).returncode:
        pytest.skip("mounting a tmpfs needs root")
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(folder))  # read by Gradio's components and server when built
    yield folder
    subprocess.run(["umount", "--lazy", str(folder)], check=True)  # lazy: a file Gradio left open must not fail it


@pytest.mark.slow
def test_a_demo_starting_on_a_full_temp_folder_names_it(tiny_zoo, full_temp_dir):
    """Before: "gennorm demo: error: a file: No space left on device" (the failed write names no file)."""
    import subprocess
    import sys

    (full_temp_dir / "filler").write_bytes(b"\0" * (1024 * 1024 - 4096 * 2))  # leave ~nothing
    proc = subprocess.run([sys.executable, "-m", "gennorm", "demo", "--models", str(tiny_zoo), "--port", "7999",
                           "--device", "cpu"], capture_output=True, text=True, timeout=300)
    lines = [line for line in proc.stderr.splitlines() if "error" in line]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
    assert "No space left on device" in lines[0] and f"temp folder {full_temp_dir}" in lines[0], lines[0]
    assert "a file:" not in lines[0] and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_a_full_temp_folder_gives_uploads_and_translations_a_clear_message(tiny_zoo, full_temp_dir, tmp_path):
    """Before: with the temp folder full, /upload answered HTTP 500 and /translate {"error": null}."""
    import errno
    import json

    import httpx
    from test_demo import _free_port

    from gennorm.apps import demo as demo_app
    from gennorm.apps.public import TEMP_FULL

    app = demo_app.build_app(tiny_zoo, device="cpu")
    _, url, _ = demo_app.launch(app, "127.0.0.1", _free_port(), prevent_thread_lock=True, quiet=True)
    url = url.rstrip("/")

    def upload(colour):
        Image.new("RGB", (64, 64), colour).save(tmp_path / "in.png")
        with open(tmp_path / "in.png", "rb") as f:
            return httpx.post(url + "/gradio_api/upload", files={"files": ("in.png", f, "image/png")}, timeout=30)

    def translate(path):
        event = httpx.post(url + "/gradio_api/call/translate", timeout=30,
                           json={"data": [{"path": path, "meta": {"_type": "gradio.FileData"}}, "scenes"]})
        return httpx.get(f"{url}/gradio_api/call/translate/{event.json()['event_id']}", timeout=120).text

    try:
        uploaded = upload((10, 200, 30)).json()[0]  # before the folder is full
        filler = full_temp_dir / "filler"
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError as err:
                assert err.errno == errno.ENOSPC
        refused = upload((200, 10, 30))
        assert (refused.status_code, refused.text) == (507, TEMP_FULL)
        answer = translate(uploaded)
        assert answer.startswith("event: error"), answer
        assert json.loads(answer.split("data: ", 1)[1])["error"] == TEMP_FULL, answer
        filler.unlink()  # space again: the server works as before
        assert "event: complete" in translate(uploaded) and upload((200, 10, 30)).status_code == 200
    finally:
        app.close()


def test_leftovers_of_dead_demos_are_swept_and_live_ones_kept(tmp_path, monkeypatch):
    from gennorm.apps import tempdir

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "elsewhere"))  # restored afterwards
    dead = tmp_path / "gennorm-demo-999999"
    (dead / "abc").mkdir(parents=True)
    (dead / "abc" / "upload.png").write_bytes(b"x" * 100)
    (dead / ".alive").touch()
    other = tmp_path / "not-ours"
    other.mkdir()
    mine = tempdir.private_temp_dir(tmp_path)
    assert not dead.exists() and other.exists() and mine.is_dir()
    assert tempdir.sweep_dead(tmp_path) == [] and mine.is_dir()  # this process holds its lock
    tempdir.remove(mine)


@pytest.mark.slow
def test_sigterm_stops_the_demo_and_removes_its_files(tiny_zoo, tmp_path):
    """Before: a demo stopped with SIGTERM kept every upload and output in the temp folder."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    gradio_client = pytest.importorskip("gradio_client")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = tmp_path / "gradio"
    env = {**os.environ, "GRADIO_TEMP_DIR": str(base)}
    proc = subprocess.Popen([sys.executable, "-m", "gennorm", "demo", "--models", str(tiny_zoo), "--port", str(port),
                             "--device", "cpu"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = ""
        deadline = time.monotonic() + 120
        while "serving" not in line and time.monotonic() < deadline and proc.poll() is None:
            line = proc.stdout.readline()
        assert "serving" in line, line
        Image.new("RGB", (32, 32), (10, 200, 30)).save(tmp_path / "in.png")
        client = gradio_client.Client(f"http://127.0.0.1:{port}", verbose=False, download_files=str(tmp_path / "dl"))
        client.predict(gradio_client.handle_file(str(tmp_path / "in.png")), "scenes", api_name="/translate")
        assert [p for p in base.rglob("*") if p.is_file() and p.name != ".alive"]  # the upload and output
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not [p for p in base.rglob("*") if p.is_file()]


# ---- 6. torchrun cannot hang silently ---------------------------------------------------------

def test_the_process_group_gets_a_timeout(monkeypatch):
    """Before: init_process_group without a timeout (gloo: 30 minutes of silence)."""
    import datetime

    from gennorm.errors import ConfigError
    from gennorm.train import distributed

    seen = []
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(distributed.dist, "init_process_group", lambda **kw: seen.append(kw))
    monkeypatch.setattr(distributed._WATCH, "start", lambda rank, timeout: None)
    for key, value in (("WORLD_SIZE", "2"), ("RANK", "1"), ("LOCAL_RANK", "1")):
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("GENNORM_DIST_TIMEOUT", raising=False)
    assert distributed.init_distributed("cpu").rank == 1
    monkeypatch.setenv("GENNORM_DIST_TIMEOUT", "42")
    distributed.init_distributed("cpu")
    assert [kw["timeout"] for kw in seen] == [datetime.timedelta(seconds=600), datetime.timedelta(seconds=42)]
    for bad in ("0", "-1", "nan", "ten"):
        monkeypatch.setenv("GENNORM_DIST_TIMEOUT", bad)
        with pytest.raises(ConfigError, match="GENNORM_DIST_TIMEOUT"):
            distributed.init_distributed("cpu")


FROZEN_PEER = """
import os, signal, sys
from gennorm.train import distributed as d

info = d.init_distributed("cpu")
signal.signal(signal.SIGTERM, lambda s, f: None)  # as the training loop does: a Python-level handler
open(os.path.join(sys.argv[1], f"pid{info.rank}"), "w").write(str(os.getpid()))
if info.rank == 1:
    os.kill(os.getpid(), signal.SIGSTOP)  # frozen, not dead
d.barrier(info)
"""


def _lines(proc):
    """A queue of proc's output lines, filled by a thread (readline alone would block past any deadline)."""
    import queue
    import threading

    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(ln) for ln in proc.stdout], daemon=True).start()
    return lines


def _wait_for(lines, text: str, seconds: float, seen: list) -> bool:
    import queue
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            seen.append(lines.get(timeout=0.5))
        except queue.Empty:
            continue
        if text in seen[-1]:
            return True
    return False


@pytest.mark.slow
def test_a_frozen_rank_is_reported_and_sigterm_ends_the_waiting_one(tmp_path):
    """Before: rank 0 waited 1832 s without a word and ignored SIGTERM (F11)."""
    import contextlib
    import os
    import shutil
    import signal
    import subprocess
    import sys
    import time

    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    if torchrun is None:
        pytest.skip("no torchrun")
    (tmp_path / "frozen.py").write_text(FROZEN_PEER)
    env = {**os.environ, "GENNORM_DIST_TIMEOUT": "20", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([torchrun, "--standalone", "--nproc_per_node=2", str(tmp_path / "frozen.py"),
                             str(tmp_path)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen: list[str] = []
    try:
        lines = _lines(proc)
        assert _wait_for(lines, "has waited", 60, seen), "".join(seen)
        assert any("rank 0 has waited" in ln and "GENNORM_DIST_TIMEOUT" in ln for ln in seen), "".join(seen)
        sent = time.monotonic()
        os.kill(int((tmp_path / "pid0").read_text()), signal.SIGTERM)
        assert _wait_for(lines, "SIGTERM while blocked", 15, seen), "".join(seen)
        assert "rank 0: SIGTERM while blocked" in seen[-1] and time.monotonic() - sent < 15
    finally:
        for rank in (0, 1):
            with contextlib.suppress(OSError, ValueError):
                os.kill(int((tmp_path / f"pid{rank}").read_text()), signal.SIGKILL)
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_no_verb_takes_a_bare_int_or_float():
    """The rule (CONTRIBUTING.md, CLI verbs): numbers take their type from gennorm/commands/_types.py."""
    import re

    commands = Path(__file__).resolve().parents[1] / "gennorm" / "commands"
    bare = [f"{p.name}:{n}" for p in sorted(commands.glob("*.py")) if p.name != "_types.py"
            for n, line in enumerate(p.read_text().splitlines(), 1) if re.search(r"type=(int|float)\b", line)]
    assert not bare, f"bare type=int/float (use gennorm/commands/_types.py): {bare}"
