"""pip install gennorm works anywhere: the sdist and wheel build, and the installed wheel (not the
checkout) runs --version, a short training, translate with a zoo model and the demo's /translate,
from a folder outside the checkout.

The fresh virtual environment gets the dependencies of the dev environment through a .pth line
(its packages are not re-downloaded) and the wheel itself with `pip install --no-deps`; the dev
environment's editable install is not active there (.pth files of an added folder are not run),
and the test checks that gennorm is imported from the new environment.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _run(cmd, **kw):
    done = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert done.returncode == 0, f"{cmd}: {done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """sdist + wheel built from the tracked files (what a clone has)."""
    src, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("dist")
    files = _run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT).stdout.splitlines()
    for name in files:
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    _run([sys.executable, "-m", "build", "--no-isolation", "--sdist", "--wheel", "--outdir", str(out), str(src)])
    return out


def test_wheel_carries_the_demo_zoo_sources_and_licence(dist):
    (wheel,) = dist.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"gennorm/apps/demo.py", "gennorm/commands/zoo.py", "gennorm/presets/pix2pix.yaml",
            "gennorm/presets/classic/cyclegan.yaml"} <= names
    assert any(n.endswith("dist-info/licenses/LICENSE") for n in names)
    released = [p.name for p in (ROOT / "models").iterdir() if (p / "generator.safetensors").is_file()]
    for model in released:
        assert {f"gennorm/_zoo/{model}/{f}" for f in ("config.yaml", "generator.safetensors", "card.md")} <= names
        if (ROOT / "models" / model / "training_log.jsonl").is_file():  # the demo's training curves
            assert f"gennorm/_zoo/{model}/training_log.jsonl" in names
    assert {f"gennorm/_assets/{p.name}" for p in (ROOT / "assets").glob("*.png")} <= names
    with zipfile.ZipFile(wheel) as z:  # the CUDA sources are the checkout's, byte for byte
        for source in (ROOT / "cuda").iterdir():
            if source.suffix in (".cpp", ".cu", ".cuh", ".h"):
                assert z.read(f"gennorm/_csrc/{source.name}") == source.read_bytes(), source.name
    print(f"wheel {wheel.name}: {wheel.stat().st_size / 1e6:.1f} MB, {len(names)} files")
    assert wheel.stat().st_size < 60e6  # the README's budget (the zoo: 5 float32 ngf-32 generators of 7.9 MB)
    (sdist,) = dist.glob("*.tar.gz")
    assert sdist.stat().st_size > 1e6  # carries the zoo too


@pytest.fixture(scope="module")
def installed(dist, tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed (no-deps; dependencies via a .pth to the dev env)."""
    venv = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", str(venv)])
    site = Path(_run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
                .stdout.strip())
    (site / "dev-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    (wheel,) = dist.glob("*.whl")
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)])
    return venv


def _env(tmp: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GENNORM_", "PYTHON"))}
    return dict(env, HOME=str(tmp), GENNORM_CACHE=str(tmp / "cache"), GRADIO_ANALYTICS_ENABLED="False")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_installed_wheel_works_outside_the_checkout(installed, tmp_path):
    bin_dir, env = installed / "bin", _env(tmp_path)
    gennorm = [str(bin_dir / "gennorm")]
    where = _run([str(bin_dir / "python"), "-c", "import gennorm, gennorm.apps.demo as d; print(gennorm.__file__); "
                  "print(d.ASSETS_DIR)"], cwd=tmp_path, env=env).stdout.split()
    assert where[0].startswith(str(installed)) and where[1].startswith(str(installed))  # not the checkout
    assert _run(gennorm + ["--version"], cwd=tmp_path, env=env).stdout.strip() == "0.1.0"
    zoo = _run(gennorm + ["zoo", "list"], cwd=tmp_path, env=env).stdout
    assert "_zoo" in zoo and "scenes-nc" in zoo

    _run(gennorm + ["data", "scenes", "data", "--size", "32", "--count", "10"], cwd=tmp_path, env=env)
    _run(gennorm + ["train", "pix2pix-nc", "out=run", "data.root=data/paired", "model.ngf=4", "model.ndf=4",
                    "model.g_arch=resnet_6blocks", "data.load_size=36", "data.crop_size=32", "train.max_steps=2",
                    "train.device=cpu", "train.progress=false", "train.num_samples=1"], cwd=tmp_path, env=env)
    assert (tmp_path / "run" / "checkpoints" / "step_00000002.pt").is_file()
    _run(gennorm + ["translate", "scenes-nc", "data/paired/test", "out", "--aligned"], cwd=tmp_path, env=env)
    assert len(list((tmp_path / "out").glob("*.png"))) == 2
    status = _run([str(bin_dir / "python"), "-m", "gennorm.ops", "status"], cwd=tmp_path, env=env).stdout
    assert "_csrc" in status  # the installed package builds from its own copy of the sources

    port = _free_port()
    demo = subprocess.Popen(gennorm + ["demo", "--port", str(port), "--device", "cpu"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert demo.poll() is None, demo.stdout.read()
                time.sleep(0.5)
        script = ("import json, sys; from gradio_client import Client, handle_file; "
                  f"c = Client('http://127.0.0.1:{port}', verbose=False); "
                  "g, info = c.predict(handle_file(sys.argv[1]), 'scenes', api_name='/translate'); "
                  "print(json.dumps({'n': len(g), 'info': info}))")
        asset = next((installed / "lib").rglob("gennorm/_assets/*.png"))
        out = json.loads(_run([str(bin_dir / "python"), "-c", script, str(asset)], cwd=tmp_path, env=env,
                              timeout=300).stdout.strip().splitlines()[-1])
        from gennorm.zoo import model_sets

        # the scenes set of the installed zoo: instance, pono-ms, nc, nc-convnorm-d, kn (as in models/)
        assert out["n"] == len(model_sets(ROOT / "models")["scenes"])
    finally:
        demo.terminate()
        demo.wait(timeout=30)
