"""Issue 31, a newcomer's first hour (../shared/reports/2026-12-07-newuser.md): each test is one of
the report's steps, run the way the report ran it, with what it should have printed."""
from __future__ import annotations

import json
import re
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gennorm.cli import main


@pytest.fixture(autouse=True)
def _no_user_weights(tmp_path, monkeypatch):
    """No user cache, no user weights: the hub cache and the feature cache point into tmp."""
    monkeypatch.setenv("GENNORM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv("GENNORM_WEIGHTS", raising=False)


def _images(folder: Path, seed: int, n: int = 3, size: int = 16) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    g = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(g.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{i:04d}.png")
    return folder


# ---------------------------------------------------------------- step 10: eval computes what it can

def test_eval_computes_psnr_ssim_and_names_every_missing_weight_file(tmp_path, capsys):
    from gennorm.metrics.weights import WEIGHT_FILES

    real, fake = _images(tmp_path / "real", 1), _images(tmp_path / "fake", 2)
    empty = tmp_path / "no_weights"
    empty.mkdir()
    out = tmp_path / "m.json"
    code = main(["eval", str(real), str(fake), "--metrics", "fid,kid,lpips,psnr,ssim", "--json", str(out),
                 "--weights-dir", str(empty), "--quiet"])
    err = capsys.readouterr().err
    assert code == 0, err
    data = json.loads(out.read_text())
    assert set(data["metrics"]) == {"psnr", "ssim"} and set(data["skipped"]) == {"fid", "kid", "lpips"}
    warning = [line for line in err.splitlines() if "warning" in line and "skipped" in line]
    assert len(warning) == 1, err  # one message naming every missing file, each once
    for key in ("inception", "alexnet"):
        assert warning[0].count(WEIGHT_FILES[key].filename) == 1, warning[0]
    assert str(empty) in warning[0]


def test_eval_exits_2_only_when_nothing_requested_can_be_computed(tmp_path, capsys):
    from gennorm.metrics.weights import WEIGHT_FILES

    real = _images(tmp_path / "real", 1)
    empty = tmp_path / "no_weights"
    empty.mkdir()
    code = main(["eval", str(real), str(real), "--metrics", "fid,lpips", "--json", str(tmp_path / "m.json"),
                 "--weights-dir", str(empty), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert WEIGHT_FILES["inception"].filename in err and WEIGHT_FILES["alexnet"].filename in err
    assert not (tmp_path / "m.json").exists()


# ---------------------------------------------------------------- step 7: --resume with a larger max_steps

TINY = ["model.ngf=4", "model.ndf=4", "model.g_arch=resnet_6blocks", "data.load_size=36", "data.crop_size=32",
        "train.device=cpu", "train.progress=false", "train.num_samples=0", "train.log_every=1",
        "train.sample_every=100", "train.checkpoint_every=100"]


def _lrs(run: Path) -> dict[int, float]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return {r["step"]: r["lr"] for r in map(json.loads, lines) if "lr" in r}


def test_resume_says_how_the_lr_changes_and_can_continue_the_decay(scenes, tmp_path, monkeypatch, capsys):
    from train_hooks import StopAtStep, with_callbacks

    run = tmp_path / "run"
    args = ["train", "pix2pix-instance", f"out={run}", f"data.root={scenes / 'paired'}", *TINY]
    with monkeypatch.context() as patch:  # max_steps 4: the decay starts at 2; stopped after step 3 (lr x 0.5)
        with_callbacks(patch, StopAtStep(3))
        assert main([*args, "train.max_steps=4"]) == 0
    capsys.readouterr()
    # a larger max_steps moves the decay's start to 4: the lr would go from 1e-4 back up to 2e-4; say so
    shutil.copytree(run, tmp_path / "copy")
    assert main(["train", "--resume", str(tmp_path / "copy"), "train.max_steps=8"]) == 0
    err = capsys.readouterr().err
    note = [line for line in err.splitlines() if "lr schedule" in line]
    assert len(note) == 1, err
    assert "step 3 lr 0.0001 -> 0.0002" in note[0] and "train.max_steps 4 -> 8" in note[0]
    assert "train.decay_start=3 train.decay_start_factor=0.5" in note[0]
    # the keys it names continue the decay: 1e-4 at step 3 linearly down to 0 at step 8, no note
    assert main(["train", "--resume", str(run), "train.max_steps=8", "train.decay_start=3",
                 "train.decay_start_factor=0.5"]) == 0
    assert "lr schedule" not in capsys.readouterr().err
    lrs = _lrs(run)
    for step in range(4, 9):
        assert lrs[step] == pytest.approx(2e-4 * 0.5 * (8 - step) / 5, abs=1e-12), (step, lrs)


def test_resume_lr_note_of_a_finished_decay():
    from types import SimpleNamespace

    from gennorm.train.optim import resume_lr_note

    def t(max_steps, decay_start=None):
        return SimpleNamespace(n_epochs=None, max_steps=max_steps, decay_start=decay_start, decay_start_factor=1.0,
                               lr=2e-4)

    # the report's run: 200 steps (decay from 100), resumed with max_steps=300
    note = resume_lr_note(t(200), t(300), 200)
    assert "step 200 lr 0 -> 0.000133" in note and "decay from step 100 -> 150" in note and "finished" in note
    assert resume_lr_note(t(200), t(300), 80) is None  # constant phase either way: nothing changes
    assert resume_lr_note(t(200, 100), t(200, 100), 150) is None


# ---------------------------------------------------------------- step 23 and 13: hints and help

def _subcommands(verb: str) -> set[str] | None:
    """The subcommand names of `gennorm VERB` (None: it has none), from its own parser."""
    import argparse
    import importlib

    from gennorm.cli import VERBS

    parser = argparse.ArgumentParser()
    importlib.import_module(VERBS[verb][0]).add_arguments(parser)
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return set(subs[0].choices) if subs else None


def test_every_gennorm_command_named_in_the_package_exists():
    """Each `gennorm VERB [SUB]` in a string of the package (hints, help texts) names a verb of
    cli.VERBS, and a subcommand of that verb where it has subcommands."""
    import ast
    import re

    import gennorm
    from gennorm.cli import VERBS

    pattern = re.compile(r"`gennorm ([a-z][\w-]*)(?: ([a-z][\w-]*))?|\bgennorm ([a-z][\w-]*) (?:--help|-h)\b")
    bad, seen = [], 0
    for path in sorted(Path(gennorm.__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
                continue
            for m in pattern.finditer(node.value):
                verb, sub = m.group(1) or m.group(3), m.group(2)
                seen += 1
                if verb not in VERBS:
                    bad.append(f"{path.name}:{node.lineno}: {m.group(0)!r} (no verb {verb!r})")
                elif sub and (subs := _subcommands(verb)) is not None and sub not in subs:
                    bad.append(f"{path.name}:{node.lineno}: {m.group(0)!r} (no subcommand {sub!r})")
    assert seen > 20 and not bad, "\n".join(bad)


def test_unknown_model_points_to_zoo_list(tmp_path):
    from gennorm.errors import CheckpointError
    from gennorm.inference.loading import resolve_model

    with pytest.raises(CheckpointError, match=r"`gennorm zoo list` lists the zoo"):
        resolve_model(str(tmp_path / "runs" / "p2p-ncc"))


def test_translate_from_a_folder_that_does_not_exist(tmp_path, capsys):
    assert main(["translate", "scenes-nc", str(tmp_path / "nope"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"{tmp_path / 'nope'} does not exist") and len(err.splitlines()) == 1, err


@pytest.mark.parametrize("argv, suggestion", [
    (["train", "pix2pix-nc", "train.max_step=10"], "did you mean 'train.max_steps'?"),
    (["train", "pix2pix-nc", "trian.max_steps=10"], "did you mean 'train.max_steps'?"),
    (["train", "pix2pix-ncc"], "did you mean 'pix2pix-nc'?"),
    (["trian"], "did you mean 'train'?"),
])
def test_did_you_mean(argv, suggestion, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert suggestion in err and len(err.strip().splitlines()) == 1, err


def test_train_print_config_prints_the_resolved_config_and_trains_nothing(tmp_path, capsys):
    import yaml

    out = tmp_path / "run"
    assert main(["train", "pix2pix-nc", f"out={out}", "train.max_steps=7", "model.ngf=8", "--print-config"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["train"]["max_steps"] == 7 and cfg["model"]["ngf"] == 8 and cfg["model"]["g_norm"] == "nc"
    assert cfg["out"] == str(out) and not out.exists()


def test_weights_fetch_help_is_its_own(capsys):
    with pytest.raises(SystemExit):
        main(["weights", "--help"])
    verb = capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["weights", "fetch", "--help"])
    fetch = capsys.readouterr().out
    assert fetch != verb and "Download the missing weight files" in fetch and "--only" in fetch
    assert "--no-verify" not in fetch  # status's options stay with status


def test_top_help_names_every_bench_subcommand(capsys):
    from gennorm.commands.bench import SUBCOMMANDS

    assert main(["--help"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.strip().startswith("bench "))
    assert all(re.search(rf"\b{name}\b", line) for name in SUBCOMMANDS), line


# ---------------------------------------------------------------- steps 15, 24: an export and the demo

@pytest.fixture(scope="module")
def zoo_with_an_export(tmp_path_factory) -> Path:
    """The built-in set (scenes-*) plus a user's export my-p2p-nc, which sorts before it."""
    from test_demo import write_tiny_model

    root = tmp_path_factory.mktemp("zoo") / "models"
    for norm in ("instance", "nc"):
        write_tiny_model(root / f"scenes-{norm}", norm, fid=30.0)
    write_tiny_model(root / "my-p2p-nc", "nc", fid=40.0)
    return root


def _dropdown_values(app) -> dict[str, object]:
    return {c["props"].get("elem_id") or c["props"].get("label"): c["props"].get("value")
            for c in app.config["components"] if c.get("type") == "dropdown"}


@pytest.mark.parametrize("wanted, shown", [(None, "scenes"), ("my-p2p", "my-p2p")])
def test_demo_opens_on_the_builtin_set_unless_asked(zoo_with_an_export, wanted, shown):
    from gennorm.apps import demo as demo_app
    from gennorm.zoo import model_sets

    assert list(model_sets(zoo_with_an_export)) == ["my-p2p", "scenes"]  # alphabetical: the export first

    class Stub:
        def translate(self, image):
            return image

    asked = {"model_set": wanted} if wanted else {}
    app = demo_app.build_app(zoo_with_an_export, "cpu", loader=lambda path, device: Stub(), **asked)
    values = _dropdown_values(app)
    assert values["model-set"] == shown
    assert values["stats-model"] == f"{shown}-nc" and values["model card"].startswith(shown)
    app.close()


def test_demo_set_that_does_not_exist_is_one_line(zoo_with_an_export, capsys):
    assert main(["demo", "--models", str(zoo_with_an_export), "--set", "scene"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--set 'scene': no such model set (did you mean 'scenes'?)" in err and len(err.splitlines()) == 1


def test_export_into_the_checkouts_models_folder_warns(scenes, tmp_path, monkeypatch, capsys):
    from gennorm import zoo

    checkout = tmp_path / "checkout"
    (checkout / "models").mkdir(parents=True)
    (checkout / "setup.py").write_text("")
    monkeypatch.setattr(zoo, "CHECKOUT_MODELS", checkout / "models")
    run = tmp_path / "run"
    assert main(["train", "pix2pix-instance", f"out={run}", f"data.root={scenes / 'paired'}", *TINY,
                 "train.max_steps=1"]) == 0
    capsys.readouterr()
    assert main(["export", str(run), str(tmp_path / "elsewhere" / "my-p2p")]) == 0
    assert "warning" not in capsys.readouterr().err
    assert main(["export", str(run), str(checkout / "models" / "my-p2p")]) == 0
    err = capsys.readouterr().err
    warning = [line for line in err.splitlines() if "warning" in line]
    assert len(warning) == 1 and "git status" in warning[0] and "wheel" in warning[0] and "--models" in warning[0]
    assert (checkout / "models" / "my-p2p" / "generator.safetensors").is_file()


# ---------------------------------------------------------------- steps 19-20: graphs at any size

def test_onnx_and_torch_export_take_any_size_as_gennorm_load(tmp_path, capsys):
    """scenes-nc (size grid 4) exported, then run at sizes off the grid (130x130 failed in
    onnxruntime with 'Attempting to broadcast an axis ... 32 by 33'): the same as gennorm.load."""
    import torch

    import gennorm

    ort = pytest.importorskip("onnxruntime")
    onnx_file, program_file = tmp_path / "g.onnx", tmp_path / "g.pt2"
    assert main(["export", "scenes-nc", str(onnx_file), "--format", "onnx", "--size", "32"]) == 0
    assert "multiples of 4" in capsys.readouterr().err
    assert main(["export", "scenes-nc", str(program_file), "--format", "torch-export", "--size", "32"]) == 0
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    program = torch.export.load(str(program_file)).module()
    tr = gennorm.load("scenes-nc")
    for h, w in ((130, 130), (67, 45), (64, 96)):
        x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(h)) * 2 - 1
        want = tr(x)  # resized to the grid and back
        got_onnx = torch.from_numpy(session.run(None, {"image": x.numpy()})[0])
        with torch.no_grad():
            got_program = program(x)
        assert got_onnx.shape == got_program.shape == want.shape == (1, 3, h, w)
        assert (got_onnx - want).abs().max().item() <= 1e-4, (h, w)
        assert (got_program - want).abs().max().item() <= 1e-5, (h, w)


def test_export_help_states_the_size_grid(capsys):
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "any height and width" in text and "multiples of 4" in text and "nearest size on the grid" in text


# ---------------------------------------------------------------- steps 4-5: what a training costs

def test_train_says_how_many_steps_then_their_speed_and_eta(scenes, tmp_path, capsys):
    run = tmp_path / "run"
    args = [a for a in TINY if a != "train.progress=false"]
    assert main(["train", "pix2pix-instance", f"out={run}", f"data.root={scenes / 'paired'}", *args,
                 "train.max_steps=4", "train.progress=true"]) == 0
    err = capsys.readouterr().err
    first = next(line for line in err.splitlines() if line.startswith("training "))
    assert first.startswith("training 4 steps (step 0 -> 4), batch 1 at 32 px on cpu"), first
    assert re.search(r"steps/s=[\d.e+-]+, ETA=0:00:00", err), err


def test_speed_of_the_progress_line():
    from gennorm.train.loop import speed

    assert speed(1, 100, [9.0]) == {}  # the first step (warm-up) alone says nothing
    assert speed(3, 100, [9.0, 2.0, 2.0]) == {"steps/s": "0.5", "ETA": "0:03:14"}  # 97 steps x 2 s


def test_quick_is_a_cpu_sized_profile_of_any_preset(capsys):
    import yaml

    for preset in ("pix2pix-nc", "cyclegan-instance"):
        assert main(["train", preset, "--quick", "train.max_steps=50", "--print-config"]) == 0
        cfg = yaml.safe_load(capsys.readouterr().out)
        assert cfg["model"]["g_arch"] == "resnet_6blocks" and cfg["model"]["ngf"] == 16
        assert cfg["data"]["crop_size"] == 64 and cfg["train"]["batch_size"] == 4
        assert cfg["train"]["max_steps"] == 50  # the user's overrides come after the profile
    assert main(["train", "--resume", "runs/x", "--quick"]) == 2


# ---------------------------------------------------------------- step 23g: --device cuda without a GPU

@pytest.mark.skipif("__import__('torch').cuda.is_available()", reason="the case of a machine without a GPU")
def test_translate_a_run_with_device_cuda_and_no_gpu_is_one_line(scenes, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "pix2pix-instance", f"out={run}", f"data.root={scenes / 'paired'}", *TINY,
                 "train.max_steps=1"]) == 0
    capsys.readouterr()
    code = main(["translate", str(run), str(scenes / "paired" / "test"), str(tmp_path / "out"), "--aligned",
                 "--device", "cuda"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--device cuda" in err, err
    assert "unexpected" not in err and "NVIDIA driver" not in err


def test_the_pix2pix_cyclegan_and_cut_presets_state_their_cost():
    from gennorm.config import list_presets

    listed = {name: text for name, text in list_presets().items()
              if name.split("-")[0] in ("pix2pix", "cyclegan", "cut", "fastcut") and not name.endswith("-classic")}
    assert listed
    for name, text in listed.items():
        assert re.search(r"cost \d+ steps at \d+ px, CPU", text) and "GPU not measured" in text, name
        assert "--quick" in text, name
