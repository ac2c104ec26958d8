"""gennorm data fetch against a local HTTP server on 127.0.0.1 (no network): the registry and --list,
a fetch from a mirror, a resumed interrupted download (HTTP Range), a corrupt archive, --archive,
unsafe archives refused, then one training step on the fetched layout."""
from __future__ import annotations

import hashlib
import io
import json
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gennorm.cli import main
from gennorm.data.fetch import MIRROR_ENV, REGISTRY, fetch, mirrored
from gennorm.errors import DataError


class Handler(BaseHTTPRequestHandler):
    """Serves `files` (path -> bytes) with Range support; `cut` (path -> n) sends the full
    Content-Length but only n bytes and closes, once per entry."""

    files: dict[str, bytes] = {}
    cut: dict[str, int] = {}
    requests: list[tuple[str, str | None]] = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        rng = self.headers.get("Range")
        self.requests.append((self.path, rng))
        data = self.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        start = int(rng.split("=")[1].split("-")[0]) if rng else 0
        if start >= len(data):
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.end_headers()
            return
        body = data[start:]
        self.send_response(206 if rng else 200)
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        n = self.cut.pop(self.path, None)
        self.wfile.write(body if n is None else body[:n])
        self.wfile.flush()
        if n is not None:
            self.close_connection = True


@pytest.fixture
def server():
    Handler.files, Handler.cut, Handler.requests = {}, {}, []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _jpeg(w: int, h: int, seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG")
    return buf.getvalue()


def paired_tar(top="facades", extra: dict[str, bytes] | None = None) -> bytes:
    """A pix2pix archive: top/train/1..4.jpg and top/val/1.jpg, A|B side by side (32x16 per side... 64x32)."""
    buf = io.BytesIO()
    files = {f"{top}/train/{i}.jpg": _jpeg(64, 32, i) for i in range(1, 5)}
    files.update({f"{top}/val/1.jpg": _jpeg(64, 32, 9), f"{top}/test/1.jpg": _jpeg(64, 32, 10)})
    files.update(extra or {})
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def unpaired_zip(top="horse2zebra") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for i, split in enumerate(("trainA", "trainB", "testA", "testB")):
            for j in range(2):
                z.writestr(f"{top}/{split}/{j}.jpg", _jpeg(32, 32, 10 * i + j))
    return buf.getvalue()


def _path(name: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(REGISTRY[name].url).path


def test_registry_and_list(capsys):
    pix2pix = {"facades", "cityscapes", "maps", "edges2shoes", "edges2handbags", "night2day"}
    cyclegan = {"apple2orange", "summer2winter_yosemite", "horse2zebra", "monet2photo", "cezanne2photo",
                "ukiyoe2photo", "vangogh2photo", "maps_unpaired", "cityscapes_unpaired", "facades_unpaired",
                "iphone2dslr_flower", "ae_photos"}
    assert set(REGISTRY) == pix2pix | cyclegan | {"grumpifycat"}
    assert REGISTRY["facades"].url == "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/facades.tar.gz"
    assert REGISTRY["maps_unpaired"].url == "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets/maps.zip"
    assert REGISTRY["cityscapes"].url is None and REGISTRY["cityscapes_unpaired"].url is None
    assert main(["data", "fetch", "--list"]) == 0
    out = capsys.readouterr().out
    for name, d in REGISTRY.items():
        assert name in out and d.size in out and d.source in out
    assert "trainA/ trainB/ testA/ testB/" in out and "train/ val/" in out
    assert mirrored(REGISTRY["horse2zebra"].url, "https://m.example/x/") == \
        "https://m.example/x/cyclegan/datasets/horse2zebra.zip"


def test_fetch_from_mirror(server, tmp_path, capsys):
    data = unpaired_zip()
    Handler.files[_path("horse2zebra")] = data
    assert main(["data", "fetch", "horse2zebra", str(tmp_path), "--mirror", server, "--quiet"]) == 0
    folder = tmp_path / "horse2zebra"
    assert sorted(p.name for p in folder.iterdir()) == ["SOURCE.json", "testA", "testB", "trainA", "trainB"]
    source = json.loads((folder / "SOURCE.json").read_text())
    assert source["url"] == server + _path("horse2zebra") and source["bytes"] == len(data)
    assert source["sha256"] == hashlib.sha256(data).hexdigest() and source["date"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".horse2zebra.fetch.lock", "horse2zebra"]  # no archive left
    # a rerun does nothing and downloads nothing
    count = len(Handler.requests)
    assert main(["data", "fetch", "horse2zebra", str(tmp_path), "--mirror", server, "--quiet"]) == 0
    assert len(Handler.requests) == count and "already there" in capsys.readouterr().out


def test_mirror_from_environment(server, tmp_path, monkeypatch):
    Handler.files[_path("facades")] = paired_tar()
    monkeypatch.setenv(MIRROR_ENV, server)
    folder, fetched = fetch("facades", tmp_path, progress=False)
    assert fetched and sorted(p.name for p in folder.iterdir()) == ["SOURCE.json", "test", "train", "val"]


def test_interrupted_download_resumes_with_range(server, tmp_path, capsys):
    data = paired_tar()
    path = _path("facades")
    Handler.files[path], Handler.cut[path] = data, len(data) // 2
    assert main(["data", "fetch", "facades", str(tmp_path), "--mirror", server, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and server + path in err and "--archive FILE" in err and "rerun" in err
    partial = tmp_path / "facades.tar.gz.partial"
    assert partial.stat().st_size == len(data) // 2 and not (tmp_path / "facades").exists()
    assert main(["data", "fetch", "facades", str(tmp_path), "--mirror", server, "--quiet"]) == 0
    assert Handler.requests == [(path, None), (path, f"bytes={len(data) // 2}-")]
    source = json.loads((tmp_path / "facades" / "SOURCE.json").read_text())
    assert source["sha256"] == hashlib.sha256(data).hexdigest() and not partial.exists()


def test_corrupt_archive_is_one_line_and_leaves_nothing(server, tmp_path, capsys):
    good = paired_tar()
    Handler.files[_path("facades")] = good[:200] + bytes(len(good) - 200)  # right length, garbage inside
    assert main(["data", "fetch", "facades", str(tmp_path), "--mirror", server, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "corrupt" in err and "--archive FILE" in err
    assert server + _path("facades") in err
    assert [p.name for p in tmp_path.iterdir()] == [".facades.fetch.lock"]  # no dataset, no partial, no temp
    Handler.files[_path("facades")] = good  # a rerun downloads it again, from the start
    assert main(["data", "fetch", "facades", str(tmp_path), "--mirror", server, "--quiet"]) == 0
    assert Handler.requests[-1] == (_path("facades"), None)


def test_http_error_names_url(server, tmp_path, capsys):
    assert main(["data", "fetch", "grumpifycat", str(tmp_path), "--mirror", server, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "HTTP 404" in err and server + _path("grumpifycat") in err and "--archive FILE" in err
    assert [p.name for p in tmp_path.iterdir()] == [".grumpifycat.fetch.lock"]


def test_archive_by_hand(tmp_path, capsys):
    archive = tmp_path / "downloaded.zip"
    archive.write_bytes(unpaired_zip(top="grumpifycat"))
    root = tmp_path / "data"
    assert main(["data", "fetch", "grumpifycat", str(root), "--archive", str(archive)]) == 0
    source = json.loads((root / "grumpifycat" / "SOURCE.json").read_text())
    assert source["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest() and archive.exists()
    # cityscapes has no download: the line says how to prepare it, and --archive takes it
    assert main(["data", "fetch", "cityscapes", str(root)]) == 2
    err = capsys.readouterr().err
    assert "cityscapes-dataset.com" in err and "--archive FILE" in err
    tar = tmp_path / "cityscapes.tar.gz"
    tar.write_bytes(paired_tar(top="cityscapes"))
    assert main(["data", "fetch", "cityscapes", str(root), "--archive", str(tar)]) == 0
    assert (root / "cityscapes" / "train").is_dir()
    # an archive in the wrong layout is refused, nothing placed
    assert main(["data", "fetch", "horse2zebra", str(root), "--archive", str(tar)]) == 2
    assert "trainA/" in capsys.readouterr().err and not (root / "horse2zebra").exists()


def _evil_tar(kind: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, data in {"facades/train/1.jpg": _jpeg(64, 32, 1), "facades/val/1.jpg": _jpeg(64, 32, 2)}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo({"dotdot": "facades/../../evil.txt", "absolute": "/tmp/evil.txt",
                                "symlink": "facades/train/link.jpg"}[kind])
        if kind == "symlink":
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            t.addfile(info)
        else:
            info.size = 4
            t.addfile(info, io.BytesIO(b"evil"))
    return buf.getvalue()


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink"])
def test_unsafe_archives_refused(tmp_path, kind):
    archive = tmp_path / "a" / "facades.tar.gz"
    archive.parent.mkdir()
    archive.write_bytes(_evil_tar(kind))
    root = tmp_path / "r" / "s"
    with pytest.raises(DataError, match="outside the dataset folder|link"):
        fetch("facades", root, archive=archive, progress=False)
    assert sorted(p.name for p in root.iterdir()) == [".facades.fetch.lock"]
    assert not (tmp_path / "r" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()


def test_zip_traversal_refused(tmp_path):
    archive = tmp_path / "x.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("horse2zebra/trainA/0.jpg", _jpeg(8, 8, 0))
        z.writestr("../evil.txt", b"evil")
    with pytest.raises(DataError, match="outside the dataset folder"):
        fetch("horse2zebra", tmp_path / "root", archive=archive, progress=False)
    assert not (tmp_path / "evil.txt").exists()


def test_one_training_step_on_fetched_layout(server, tmp_path):
    Handler.files[_path("facades")] = paired_tar()
    folder, _ = fetch("facades", tmp_path / "datasets", mirror=server, progress=False)
    run = tmp_path / "run"
    tiny = ["model.ngf=4", "model.ndf=4", "model.g_arch=resnet_6blocks", "data.load_size=36", "data.crop_size=32",
            "train.device=cpu", "train.progress=false", "train.num_samples=1", "train.max_steps=1",
            "train.checkpoint_every=1", "train.sample_every=1", "train.log_every=1"]
    assert main(["train", "pix2pix-nc", f"out={run}", f"data.root={folder}", *tiny]) == 0
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1]
