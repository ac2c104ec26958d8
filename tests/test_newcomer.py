"""Issue 31, a newcomer's first hour (../shared/reports/2026-12-07-newuser.md): each test is one of
the report's steps, run the way the report ran it, with what it should have printed."""
from __future__ import annotations

import json
import os
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
