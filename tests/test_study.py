"""A tiny study end to end: 2 norms x 1 batch size x 1 seed, a few steps, report regenerated."""
from __future__ import annotations

import json

import pytest

from gennorm.cli import main
from gennorm.errors import ConfigError
from gennorm.study.spec import TASKS, load_spec, runs_of

TINY = ["norms=instance,nc", "d_norms=instance", "batch_sizes=1", "seeds=0", "tasks=paired",
        "scenes_size=32", "scenes_count=12", "train.max_steps=3", "model.ngf=4", "model.ndf=4",
        "train.checkpoint_every=2", "train.sample_every=100"]


def test_grid_and_spec_errors():
    spec = load_spec("small", ["norms=instance,nc", "batch_sizes=1,2", "seeds=0,1", "d_norms=instance,convnorm"])
    runs = runs_of(spec)
    # per task: 2 norms x 2 batch sizes x 2 seeds + 1 extra D norm x 2 seeds
    assert len(runs) == len(spec.tasks) * (8 + 2)
    assert len({r.run_id for r in runs}) == len(runs)
    with pytest.raises(ConfigError, match="'norms'.*'layer'"):
        load_spec("small", ["norms=layer"])
    with pytest.raises(ConfigError, match="unknown study key 'norm'"):
        load_spec("small", ["norm=nc"])


@pytest.mark.slow
def test_tiny_study_end_to_end(tmp_path, capsys):
    out = tmp_path / "study"
    assert main(["study", "small", f"out={out}", "--no-progress", *TINY]) == 0
    report = (out / "report.md").read_text()
    assert "| instance |" in report and "| nc |" in report and "PSNR" in report
    assert (out / "report_files" / "paired_grid.png").exists() and (out / "report_files" / "paired_loss.png").exists()
    assert "](report_files/paired_grid.png)" in report
    first = report
    # Running again on the finished study regenerates the same report without retraining.
    log = out / "runs" / "paired" / "g-nc_d-instance_bs1_seed0" / "train.log"
    size = log.stat().st_size
    assert main(["study", "small", f"out={out}", "--no-progress", *TINY]) == 0
    assert log.stat().st_size == size
    assert (out / "report.md").read_text() == first
    # Other training settings into the same directory would mix results: refused, naming the key.
    with pytest.raises(ConfigError, match="overrides differ"):
        from gennorm.study.runner import run_all
        spec = load_spec("small", [f"out={out}", *TINY, "train.max_steps=4"])
        run_all(spec, runs_of(spec), progress=False)


@pytest.mark.slow
def test_unpaired_methods_side_by_side(tmp_path):
    """CycleGAN, CUT and FastCUT on the same unpaired data: one row per norm x method with the
    metrics, the training time and the training process's own peak memory (from wait4)."""
    out = tmp_path / "methods"
    args = ["study", "unpaired-methods", f"out={out}", "--no-progress", "norms=nc", "scenes_size=32",
            "scenes_count=12", "train.max_steps=2", "train.decay_start=1", "train.checkpoint_every=2",
            "model.ngf=4", "model.ndf=4", "data.load_size=32", "data.crop_size=32"]
    assert main(args) == 0
    report = (out / "report.md").read_text()
    table = report.split("## Unpaired methods (CycleGAN vs CUT vs FastCUT)")[1].split("## ")[0]
    rows = [line for line in table.splitlines() if line.startswith("| nc |")]
    assert [row.split(" | ")[1] for row in rows] == ["CycleGAN", "CUT", "FastCUT"]
    for task in ("unpaired", "cut", "fastcut"):
        result = json.loads((out / "runs" / task / "g-nc_d-instance_bs2_seed0" / "eval.json").read_text())
        # the training process imported torch (~0.7 GB); not the pytest process's memory (wait4 counted it)
        assert 200 < result["train_peak_rss_mib"] < 1536
        assert f"train {TASKS[task].preset} " in result["command"]
    assert "## cut (CUT)" in report and "## fastcut (FastCUT)" in report
