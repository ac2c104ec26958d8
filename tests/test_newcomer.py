"""Issue 31, a newcomer's first hour (../shared/reports/2026-12-07-newuser.md): each test is one of
the report's steps, run the way the report ran it, with what it should have printed."""
from __future__ import annotations

import json
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
