"""The Gradio demo: zoo listing, upload handling, the /translate API, and what the server refuses.

One app is served in-process (prevent_thread_lock) on a free 127.0.0.1 port for the module,
over a temporary zoo of three tiny pix2pix generators (instance / pono-ms / nc, ngf=4) written
in the `gennorm export` folder format: config.yaml + generator.safetensors + card.md.
"""
from __future__ import annotations

import socket
from io import BytesIO
from pathlib import Path

import gradio  # noqa: F401  (hard dependencies of gennorm: a missing one fails here, it never skips)
import gradio_client
import pytest
from PIL import Image

pytestmark = pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword).*")  # gradio's pandas use

from gennorm.apps import demo as demo_app  # noqa: E402
from gennorm.zoo import list_models, metrics_table, model_sets, parse_card_metrics, parse_front_matter  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
NORMS = ("instance", "pono-ms", "nc")
CARD = """# {name}

pix2pix on scenes, generator norm {norm}.

## Metrics (gennorm eval)

| metric | value |
|---|---|
| FID ↓ | {fid} |
| SSIM ↑ | 0.61 ± 0.02 |

FID/KID protocol: **clean**

## Command

    gennorm train pix2pix-{norm}
"""


def write_tiny_model(folder: Path, norm: str, fid: float) -> None:
    """A models/ folder as `gennorm export` writes it, with an untrained ngf=4 generator."""
    import torch
    from safetensors.torch import save_file

    from gennorm.config import load_config, save_config
    from gennorm.networks.factory import build_generator_from

    folder.mkdir(parents=True)
    cfg = load_config(f"pix2pix-{norm}", ["model.ngf=4", "model.g_arch=resnet_6blocks", f"out=runs/{folder.name}"])
    save_config(cfg, folder / "config.yaml")
    torch.manual_seed(0)
    net = build_generator_from(cfg.model, 3, 3)
    save_file({k: v.detach().contiguous().clone() for k, v in net.state_dict().items()},
              str(folder / "generator.safetensors"))
    (folder / "card.md").write_text(CARD.format(name=folder.name, norm=norm, fid=fid), encoding="utf-8")
    (folder / "training_log.jsonl").write_text("".join(  # as gennorm export copies it from the run
        f'{{"step": {k * 10}, "G_GAN": 1.0, "G_L1": {20.0 - k - fid / 10}, "D_real": 0.25, "lr": 0.0002}}\n'
        for k in range(1, 4)))


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("zoo") / "models"
    for k, norm in enumerate(NORMS):
        write_tiny_model(root / f"scenes-{norm}", norm, fid=30.0 - k)
    return root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(zoo):
    demo = demo_app
    app = demo.build_app(zoo, device="cpu")
    _, url, _ = demo.launch(app, "127.0.0.1", _free_port(), max_file_size="256kb", prevent_thread_lock=True,
                            quiet=True)
    yield url.rstrip("/")
    app.close()


@pytest.fixture(scope="module")
def client(server):
    return gradio_client.Client(server, verbose=False)


def _png(path: Path, size=(96, 64), mode="RGB") -> Path:
    Image.new(mode, size, (152, 251, 152) if mode == "RGB" else 128).save(path)
    return path


# ----------------------------------------------------------------------------------------------
# zoo


def test_zoo_sets_and_metrics(zoo):
    infos = list_models(zoo)
    assert [i.name for i in infos] == ["scenes-instance", "scenes-pono-ms", "scenes-nc"]  # baseline first
    sets = model_sets(zoo)
    assert list(sets) == ["scenes"]
    assert [i.role for i in sets["scenes"]] == ["baseline", "PONO-MS", "NC"]
    assert infos[2].metrics == {"fid": 28.0, "ssim": 0.61}
    headers, rows = metrics_table(infos)
    assert headers == ["set", "model", "norm", "FID/KID protocol", "fid", "ssim"]
    assert rows[0] == ["scenes", "scenes-instance", "InstanceNorm", "clean", 30.0, 0.61]


def test_card_formats():
    wide = "## Metrics\n| FID | KID | PSNR |\n|---|---|---|\n| 41.5 | 0.012 ± 0.003 | 18.2 |\n## Other\n| x | 1 |"
    assert parse_card_metrics(wide) == {"fid": 41.5, "kid": 0.012, "psnr": 18.2}
    bullets = "# m\n### Test metrics\n- **LPIPS**: 0.31\n- SSIM: 0.55 (test split)\n- note: none\n"
    assert parse_card_metrics(bullets) == {"lpips": 0.31, "ssim": 0.55}
    assert parse_card_metrics("# no metrics here\n| FID | 3 |") == {}
    assert parse_front_matter("---\nset: scenes-cyclegan\nnorm: nc\n---\n# card") == {"set": "scenes-cyclegan",
                                                                                      "norm": "nc"}


def test_set_from_front_matter_and_zoo_json(zoo, tmp_path):
    import json
    import shutil

    root = tmp_path / "models"
    shutil.copytree(zoo / "scenes-nc", root / "my-nc-model")
    shutil.copytree(zoo / "scenes-instance", root / "other")
    card = root / "my-nc-model" / "card.md"
    card.write_text("---\nset: scenes-x\nmetrics: {fid: 12.5}\n---\n" + card.read_text(encoding="utf-8"),
                    encoding="utf-8")
    (root / "zoo.json").write_text(json.dumps({"other": {"set": "scenes-x"}}))
    (root / "other" / "metrics.json").write_text(json.dumps({"metrics": {"LPIPS": 0.3, "note": "x"}}))
    (root / "not-a-model").mkdir()
    sets = model_sets(root)
    assert list(sets) == ["scenes-x"] and [i.name for i in sets["scenes-x"]] == ["other", "my-nc-model"]
    other, mine = sets["scenes-x"]
    assert mine.metrics == {"fid": 12.5, "ssim": 0.61}  # front matter over the card's table
    assert other.metrics == {"fid": 30.0, "ssim": 0.61, "lpips": 0.3}  # metrics.json added


def test_a_broken_model_does_not_hide_the_others(zoo):
    """Demo.translate with a stub loader: one model fails to load, the others still translate."""
    demo_module = demo_app

    class Stub:
        def translate(self, image):
            return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)

    def loader(path, device):
        if path.name == "scenes-pono-ms":
            raise RuntimeError("weights do not match\nsecond line")
        return Stub()

    demo = demo_module.Demo(zoo, device="cpu", loader=loader)
    with pytest.warns(UserWarning, match="scenes-pono-ms: weights do not match"):
        results = demo.translate(Image.new("RGB", (8, 4)), "scenes")
    assert [r.error for r in results] == ["", "weights do not match", ""]
    assert results[0].image.size == (8, 4) and results[1].image is None
    assert "failed: weights do not match" in results[1].caption and "(baseline" in results[0].short_label


# ----------------------------------------------------------------------------------------------
# uploads


def test_prepare_image_normalizes_uploads():
    demo = demo_app
    rotated = Image.new("RGB", (40, 20), "red")
    exif = rotated.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees on display
    buf = BytesIO()
    rotated.save(buf, "JPEG", exif=exif.tobytes())
    out = demo.prepare_image(Image.open(BytesIO(buf.getvalue())))
    assert out.mode == "RGB" and out.size == (20, 40)
    clear = demo.prepare_image(Image.new("RGBA", (8, 8), (0, 0, 0, 0)))
    assert clear.mode == "RGB" and clear.getpixel((0, 0)) == (255, 255, 255)  # transparent -> white
    assert demo.prepare_image(Image.new("L", (8, 8), 7)).getpixel((1, 1)) == (7, 7, 7)
    deep = demo.prepare_image(Image.new("I;16", (8, 8), 65535))
    assert deep.getpixel((0, 0)) == (255, 255, 255)
    big = demo.prepare_image(Image.new("RGB", (4000, 2000)))
    assert big.size == (demo.MAX_SIDE, demo.MAX_SIDE // 2) == (2048, 1024)


def test_translate_api_returns_one_image_per_model(client, tmp_path):
    gallery, timings = client.predict(gradio_client.handle_file(str(_png(tmp_path / "in.png"))), "scenes",
                                      api_name="/translate")
    assert all(t["error"] is None for t in timings.values()), timings  # a model that failed says why
    assert len(gallery) == len(NORMS)
    for item, norm in zip(gallery, NORMS):
        assert f"scenes-{norm}" in item["caption"] and " ms" in item["caption"]
        with Image.open(item["image"]) as out:
            assert out.size == (96, 64) and out.mode == "RGB"
    assert list(timings) == [f"scenes-{n}" for n in NORMS]
    assert all(t["ms"] > 0 and t["size"] == [96, 64] for t in timings.values())


def test_translate_api_handles_examples_grayscale_and_exif(client, tmp_path):
    asset = sorted((REPO / "assets").glob("*.png"))[0]
    gallery, _ = client.predict(gradio_client.handle_file(str(asset)), api_name="/translate")  # default set
    assert len(gallery) == len(NORMS)
    gray = _png(tmp_path / "gray.png", (33, 17), "L")  # odd size: the translator resizes and back
    gallery, _ = client.predict(gradio_client.handle_file(str(gray)), "scenes", api_name="/translate")
    with Image.open(gallery[0]["image"]) as out:
        assert out.size == (33, 17) and out.mode == "RGB"
    rotated = Image.new("RGB", (40, 20), "red")
    exif = rotated.getexif()
    exif[0x0112] = 6  # EXIF orientation: shown rotated by 90 degrees -> upright it is 20x40
    rotated.save(tmp_path / "photo.jpg", exif=exif.tobytes())
    gallery, timings = client.predict(gradio_client.handle_file(str(tmp_path / "photo.jpg")), api_name="/translate")
    assert next(iter(timings.values()))["size"] == [20, 40]  # rotated exactly once
    with Image.open(gallery[0]["image"]) as out:
        assert out.size == (20, 40)


@pytest.mark.parametrize("content", [b"this is not an image\n" * 10, b"\x89PNG\r\n\x1a\n" + b"\x00" * 64],
                         ids=["text", "corrupt-png"])
def test_non_image_upload_gets_a_clear_error(client, tmp_path, content):
    bad = tmp_path / "upload.png"
    bad.write_bytes(content)
    with pytest.raises(Exception, match="not an image that can be read"):
        client.predict(gradio_client.handle_file(str(bad)), "scenes", api_name="/translate")


def test_upload_size_is_capped(client, tmp_path):
    import os

    big = tmp_path / "big.png"
    big.write_bytes(os.urandom(300 * 1024))  # over the 256kb cap of the fixture
    with pytest.raises(Exception, match="(?i)size|large|exceed"):
        client.predict(gradio_client.handle_file(str(big)), "scenes", api_name="/translate")


def test_unknown_set_is_refused(client, tmp_path):
    with pytest.raises(Exception, match="nope is not in the list of choices"):
        client.predict(gradio_client.handle_file(str(_png(tmp_path / "in.png"))), "nope", api_name="/translate")


# ----------------------------------------------------------------------------------------------
# what the server serves


def test_no_files_outside_the_app_are_served(server, zoo):
    import httpx

    secret = zoo / "scenes-nc" / "config.yaml"
    paths = ["/etc/passwd", "../../../../etc/passwd", "%2Fetc%2Fpasswd", str(secret), str(REPO / "pyproject.toml"),
             str(REPO / "assets" / "scene_labels_1.png")]
    for prefix in ("/gradio_api/file=", "/file="):
        for path in paths:
            r = httpx.get(server + prefix + path, follow_redirects=True, timeout=30)
            assert r.status_code in (403, 404), (prefix + path, r.status_code)
            for leaked in (b"root:x:", b"g_norm", b"[build-system]", b"\x89PNG"):  # passwd, config, pyproject, asset
                assert leaked not in r.content, (prefix + path, leaked)


def test_uploaded_files_are_served_back(server, tmp_path):
    """Positive control for the test above: the same route serves the app's own (uploaded) files."""
    import httpx

    with open(_png(tmp_path / "mine.png"), "rb") as f:
        r = httpx.post(server + "/gradio_api/upload", files={"files": ("mine.png", f, "image/png")}, timeout=30)
    r.raise_for_status()
    uploaded = r.json()[0]
    assert httpx.get(server + "/gradio_api/file=" + uploaded, timeout=30).status_code == 200


def _strings(value):
    """Every string in a JSON value (keys and values)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def test_no_answer_names_an_absolute_path(server, tmp_path):
    """Before: /config, /upload and every event answer held Gradio's absolute temp-folder paths
    (.../gennorm-demo-PID/<sha>/image.webp), though the README says the page shows no path of
    this machine. The files are still served by their relative names."""
    import json
    import os

    import httpx
    from gradio.utils import get_upload_folder

    folder = str(Path(get_upload_folder()).resolve())
    local = (folder, get_upload_folder(), "/tmp", os.path.expanduser("~"), str(REPO), str(tmp_path))
    page = httpx.get(server + "/", timeout=30)
    answers = {"/config": httpx.get(server + "/config", timeout=30).json(),
               "info": httpx.get(server + "/gradio_api/info", timeout=30).json()}
    with open(_png(tmp_path / "in.png"), "rb") as f:
        upload = httpx.post(server + "/gradio_api/upload", files={"files": ("in.png", f, "image/png")}, timeout=30)
    answers["/upload"] = upload.json()
    event = httpx.post(server + "/gradio_api/call/translate", timeout=30,
                       json={"data": [{"path": upload.json()[0], "meta": {"_type": "gradio.FileData"}}, "scenes"]})
    answers["/call/translate"] = event.json()
    stream = httpx.get(f"{server}/gradio_api/call/translate/{event.json()['event_id']}", timeout=120).text
    assert "event: complete" in stream, stream
    answers["/call/translate result"] = json.loads(stream.split("data: ", 1)[1])
    for name, text in [("/", page.text), ("result", stream)]:
        assert folder not in text and get_upload_folder() not in text, name
    for name, answer in answers.items():
        for s in _strings(answer):
            assert not s.startswith(local), (name, s)
    gallery = answers["/call/translate result"][0]
    assert len(gallery) == len(NORMS) and gallery[0]["image"]["path"].endswith("/image.png")
    for item in gallery:  # served by its relative URL
        r = httpx.get(item["image"]["url"], timeout=30)
        assert r.status_code == 200 and r.content.startswith(b"\x89PNG"), item
    example = answers["/config"]["components"]  # the cached examples too, e.g. "<sha>/image.webp"
    assert any(".webp" in s for s in _strings(example))


def test_server_binds_localhost(server):
    assert server.startswith("http://127.0.0.1:")


# ----------------------------------------------------------------------------------------------
# the CLI verb


def test_launcher_runs_the_packaged_app():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(REPO / "apps" / "demo.py"), "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "--models" in done.stdout, done.stderr


def test_cli_checks_models(tmp_path, capsys):
    from gennorm.cli import main

    assert main(["demo", "--models", str(tmp_path / "missing")]) == 2
    assert "no such folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["demo", "--models", str(tmp_path / "empty")]) == 2
    assert "no models in it" in capsys.readouterr().err


def test_cli_serves_on_localhost_by_default(zoo, monkeypatch):
    from gennorm.cli import main

    demo_module, seen = demo_app, {}

    def fake_launch(app, host, port, concurrency):
        seen.update(host=host, port=port, concurrency=concurrency, app=app)

    monkeypatch.setattr(demo_module, "launch", fake_launch)
    assert main(["demo", "--models", str(zoo), "--device", "cpu"]) == 0
    assert (seen["host"], seen["port"], seen["concurrency"]) == ("127.0.0.1", 7860, 1)
    assert main(["demo", "--models", str(zoo), "--port", "8123", "--concurrency", "2"]) == 0
    assert (seen["port"], seen["concurrency"]) == (8123, 2)


# ---------------------------------------------------------------------------------------------- timings, tiles, statistics


class SlowFirstCall:
    """A fake translator: the first translation at each size takes 0.3 s (warm-up), later ones none."""

    tiles_exactly = False

    def __init__(self):
        self.seen, self.calls = set(), []

    def translate(self, image):
        self.calls.append(image.size)
        if image.size not in self.seen:
            import time

            self.seen.add(image.size)
            time.sleep(0.3)
        return image


def test_timings_leave_out_warm_up(zoo):
    fakes = {}
    demo = demo_app.Demo(zoo, "cpu", loader=lambda path, device: fakes.setdefault(path.name, SlowFirstCall()))
    demo.warm_up()
    assert all(f.calls == [demo_app.WARM_SIZE] for f in fakes.values()) and len(fakes) == len(NORMS)
    results = demo.translate(Image.new("RGB", (96, 64)), "scenes")  # a new size: warmed once, untimed
    assert [r.ms < 100 for r in results] == [True] * len(NORMS)
    assert all(f.calls == [demo_app.WARM_SIZE, (96, 64), (96, 64)] for f in fakes.values())
    demo.translate(Image.new("RGB", (96, 64)), "scenes")  # a size seen before: no second warm-up
    assert all(len(f.calls) == 4 for f in fakes.values())


def test_large_inputs_are_tiled_where_the_norm_allows_and_downscaled_where_not(zoo):
    demo = demo_app.Demo(zoo, "cpu")
    big = Image.new("RGB", (1100, 300), (120, 200, 90))
    results = {r.info.norm: r for r in demo.translate(big, "scenes")}
    nc, inst = results["nc"], results["instance"]
    assert not nc.error and nc.image.size == (1100, 300) and nc.tiles == 5 * 2 and not nc.downscaled
    assert "1100x300 in 10 tiles of 256" in nc.caption
    assert inst.tiles == 0 and inst.downscaled and inst.image.size == (1024, 279)
    assert "downscaled (whole-image norm" in inst.caption
    small = {r.info.norm: r for r in demo.translate(Image.new("RGB", (96, 64)), "scenes")}
    assert small["nc"].tiles == 0 and small["nc"].how == "96x64"


def test_statistics_view_shows_each_norms_maps(zoo):
    demo = demo_app.Demo(zoo, "cpu")
    image = Image.open(sorted((REPO / "assets").glob("*.png"))[0]).convert("RGB")
    gallery, note = demo.statistics(image, "scenes-nc")
    assert gallery[0][1].startswith("input ") and len(gallery) > 5
    assert all(caption.startswith("NC window std · ") for _, caption in gallery[1:]) and "NC layers" in note
    assert gallery[1][1] == "NC window std · stem.1 · 128x128"  # layer and map size: short enough to show whole
    assert all(im.size == gallery[0][0].size and im.mode == "RGB" for im, _ in gallery)
    pono, _ = demo.statistics(image, "scenes-pono-ms")
    assert {c.split(" · ")[0] for _, c in pono[1:]} == {"PONO mean", "PONO std"}
    none, note = demo.statistics(image, "scenes-instance")
    assert none == [] and "no spatial statistics" in note
    with pytest.raises(gradio.Error, match="Upload an image"):
        demo.statistics(None, "scenes-nc")


def test_colorize_maps_low_to_dark_and_high_to_bright():
    import numpy as np

    im = demo_app.colorize(np.array([[0.0, 1.0], [0.5, 1.0]]), (4, 4))
    assert im.size == (4, 4) and im.getpixel((0, 0)) == (68, 1, 84) and im.getpixel((3, 0)) == (253, 231, 37)


def test_zoo_tab_training_curves(zoo):
    infos = list_models(zoo)
    frame = demo_app.training_curves(infos, "G_L1")
    assert list(frame.columns) == ["step", "G_L1", "model"] and len(frame) == 3 * len(NORMS)
    assert set(frame["model"]) == {i.name for i in infos} and list(frame["step"][:3]) == [10, 20, 30]
    assert demo_app._losses(infos) == ["G_GAN", "G_L1", "D_real"]
    assert all(i.protocol == "clean" for i in infos)


def test_zoo_table_prints_the_readme_table(zoo, capsys):
    from gennorm.cli import main

    assert main(["zoo", "table", "--models", str(zoo)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| set | model | norm | FID/KID protocol | fid | ssim |"
    assert lines[2] == "| scenes | scenes-instance | InstanceNorm | clean | 30.00 | 0.61 |" and len(lines) == 2 + len(NORMS)
