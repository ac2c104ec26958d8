"""Training never loses work: bit-exact resume, SIGKILL / SIGTERM, NaN stop, failed writes, DDP, AMP.

Tiny runs (32 px scenes, ngf/ndf 4, ResNet-6) on the CPU. Training callbacks used
(tests/train_hooks.py): StopAtStep (acts like SIGTERM during step k), NanAtStep (the losses of
step k become NaN), ParamHash (each rank writes a hash of its weights at the end).
"""
from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gennorm.cli import main
from gennorm.train import checkpoint as ckpt
from train_hooks import NanAtStep, StopAtStep, with_callbacks

TINY = ["model.ngf=4", "model.ndf=4", "model.g_arch=resnet_6blocks", "data.load_size=36", "data.crop_size=32",
        "train.device=cpu", "train.progress=false", "train.num_samples=2", "train.log_every=1"]


def _train_args(preset, scenes, run, *extra):
    root = scenes / ("paired" if preset.startswith("pix2pix") else "unpaired")
    return ["train", preset, f"out={run}", f"data.root={root}", *TINY, *extra]


def _assert_same_state(a: dict, b: dict, path: str = "") -> None:
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            _assert_same_state(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same_state(x, y, f"{path}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), f"tensors differ at {path}"
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def _pngs(folder: Path) -> dict[str, bytes]:
    from PIL import Image

    return {p.name: Image.open(p).tobytes() for p in sorted(folder.glob("*.png"))}


@pytest.mark.slow
@pytest.mark.parametrize("preset, extra, raise_max_steps", [
    ("pix2pix-nc", ["train.batch_size=2", "train.ema=0.9"], False),
    ("cyclegan-pono-ms", ["train.pool_size=2", "model.use_dropout=true"], False),
    # 4 steps with max_steps=4, then --resume train.max_steps=8: the next step's lr (0 at the old
    # max_steps) must be recomputed from the new config (decay_start fixed, so the schedules agree)
    ("pix2pix-kn", ["train.batch_size=2", "train.decay_start=4"], True),
    # CUT: F's optimizer and schedule, FastCUT's flip coins and the patch ids (the task's generator)
    ("fastcut-nc", ["train.num_patches=16", "train.netf_nc=32", "train.ema=0.9"], False),
])
def test_bit_exact_resume(preset, extra, raise_max_steps, scenes, tmp_path, monkeypatch):
    common = ["train.max_steps=8", "train.checkpoint_every=100", "train.sample_every=100",
              "train.deterministic=true", *extra]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert main(_train_args(preset, scenes, straight, *common)) == 0
    if raise_max_steps:
        assert main(_train_args(preset, scenes, split, *common, "train.max_steps=4")) == 0
    else:
        with monkeypatch.context() as patch:
            with_callbacks(patch, StopAtStep(4))
            assert main(_train_args(preset, scenes, split, *common)) == 0
    assert [s for s, _ in ckpt.list_checkpoints(split / "checkpoints")] == [4]
    assert main(["train", "--resume", str(split), "train.max_steps=8"]) == 0

    a = torch.load(straight / "checkpoints" / "step_00000008.pt", weights_only=True)
    b = torch.load(split / "checkpoints" / "step_00000008.pt", weights_only=True)
    _assert_same_state(a["task"], b["task"])
    _assert_same_state(a["local"], b["local"])
    assert (a["epoch"], a["batch"]) == (b["epoch"], b["batch"])

    folder = "test" if preset.startswith("pix2pix") else "testA"
    src = scenes / ("paired" if preset.startswith("pix2pix") else "unpaired") / folder
    flag = ["--aligned"] if preset.startswith("pix2pix") else []
    assert main(["translate", str(straight), str(src), str(tmp_path / "ta"), *flag]) == 0
    assert main(["translate", str(split), str(src), str(tmp_path / "tb"), *flag]) == 0
    pa, pb = _pngs(tmp_path / "ta"), _pngs(tmp_path / "tb")
    assert pa and pa == pb


def _popen_train(args, env_extra=None):
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.Popen([sys.executable, "-m", "gennorm", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _wait_for_checkpoint(run: Path, proc, min_step: int = 1, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(s >= min_step for s, _ in ckpt.list_checkpoints(run / "checkpoints")):
            return
        if proc.poll() is not None:
            raise AssertionError(f"training exited early: {proc.communicate()}")
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("no checkpoint appeared")


@pytest.mark.slow
def test_sigkill_then_resume(scenes, tmp_path):
    run = tmp_path / "run"
    proc = _popen_train(_train_args("pix2pix-instance", scenes, run, "train.max_steps=10000",
                                    "train.checkpoint_every=1", "train.keep_last=2", "train.sample_every=1000"))
    _wait_for_checkpoint(run, proc, min_step=2)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    names = [p.name for p in (run / "checkpoints").iterdir()]
    assert names and all(ckpt.CKPT_RE.match(n) for n in names), names  # never a partial/temp file here
    for _, path in ckpt.list_checkpoints(run / "checkpoints"):
        ckpt.load_torch(path)
    last = ckpt.list_checkpoints(run / "checkpoints")[-1][0]
    assert main(["train", "--resume", str(run), f"train.max_steps={last + 2}"]) == 0
    assert ckpt.list_checkpoints(run / "checkpoints")[-1][0] == last + 2


@pytest.mark.slow
def test_sigterm_writes_checkpoint_and_exits_0(scenes, tmp_path):
    run = tmp_path / "run"
    proc = _popen_train(_train_args("pix2pix-instance", scenes, run, "train.max_steps=10000",
                                    "train.checkpoint_every=1", "train.sample_every=1000"))
    _wait_for_checkpoint(run, proc, min_step=1)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "stopped by SIGTERM" in err and "--resume" in err
    step = ckpt.list_checkpoints(run / "checkpoints")[-1][0]
    assert ckpt.load_torch(run / "checkpoints" / ckpt.checkpoint_name(step))["step"] == step


def test_nan_stops_with_exit_3_keeping_last_checkpoint(scenes, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    with_callbacks(monkeypatch, NanAtStep(3))
    code = main(_train_args("pix2pix-instance", scenes, run, "train.max_steps=6", "train.checkpoint_every=2"))
    err = capsys.readouterr().err
    assert code == 3
    assert "step 3" in err and "loss D_real" in err and "nan" in err
    assert [s for s, _ in ckpt.list_checkpoints(run / "checkpoints")] == [2]
    state = ckpt.load_torch(run / "checkpoints" / "step_00000002.pt")
    assert all(torch.isfinite(v).all() for v in state["task"]["nets"]["G"].values() if v.is_floating_point())


def test_failed_checkpoint_write_keeps_previous(scenes, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    real_save = torch.save
    calls = {"n": 0}

    def flaky_save(obj, f, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] >= 2:  # the second checkpoint: half written, then the disk is full
            f.write(b"\x00" * 100)
            raise OSError(28, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(ckpt.torch, "save", flaky_save)
    # the final checkpoint failed: exit 2, not a finished run (second hostile trial, N4)
    assert main(_train_args("pix2pix-instance", scenes, run, "train.max_steps=4", "train.checkpoint_every=2")) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "final checkpoint could not be written" in err, err
    monkeypatch.setattr(ckpt.torch, "save", real_save)
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step_00000002.pt"]
    assert ckpt.load_torch(run / "checkpoints" / "step_00000002.pt")["step"] == 2
    assert not list((run / ".tmp").iterdir())
    assert main(["train", "--resume", str(run)]) == 0
    assert ckpt.list_checkpoints(run / "checkpoints")[-1][0] == 4


def test_keep_last_and_resume_refuses_arch_change(scenes, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(_train_args("pix2pix-instance", scenes, run, "train.max_steps=5", "train.checkpoint_every=1",
                            "train.keep_last=2")) == 0
    assert [s for s, _ in ckpt.list_checkpoints(run / "checkpoints")] == [4, 5]
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "model.g_norm=nc"]) == 2
    assert "model.g_norm" in capsys.readouterr().err


def _losses(run: Path) -> list[dict]:
    import json

    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def fp32_run(scenes, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("amp") / "none"
    assert main(_train_args("pix2pix-nc", scenes, run, "train.max_steps=2", "train.checkpoint_every=2")) == 0
    return run


def test_cut_trains_under_autocast(scenes, tmp_path):
    """CUT's PatchNCE under bf16 autocast: finite weights (netF included) and finite losses."""
    run = tmp_path / "cut-bf16"
    assert main(_train_args("cut-nc", scenes, run, "train.max_steps=2", "train.amp=bf16", "train.num_patches=16",
                            "train.netf_nc=32", "train.checkpoint_every=2")) == 0
    state = ckpt.load_torch(run / "checkpoints" / "step_00000002.pt")
    assert state["config"]["train"]["amp"] == "bf16" and "F" in state["task"]["nets"]
    for net in state["task"]["nets"].values():
        assert all(torch.isfinite(v).all() for v in net.values() if v.is_floating_point())
    assert all(math.isfinite(v) for row in _losses(run) for k, v in row.items() if k.startswith(("NCE", "G_", "D_")))


@pytest.mark.parametrize("amp, tol", [("bf16", 0.05), ("fp16", 0.01)])
def test_amp_steps(amp, tol, scenes, tmp_path, fp32_run):
    run = tmp_path / amp
    assert main(_train_args("pix2pix-nc", scenes, run, "train.max_steps=2", f"train.amp={amp}",
                            "train.checkpoint_every=2")) == 0
    state = ckpt.load_torch(run / "checkpoints" / "step_00000002.pt")
    assert state["config"]["train"]["amp"] == amp
    scaler = state["task"]["scalers"]["G"]
    if amp == "fp16":  # a live GradScaler; bf16 needs none
        assert scaler["scale"] > 0
    else:
        assert not scaler
    for net in state["task"]["nets"].values():
        assert all(torch.isfinite(v).all() for v in net.values() if v.is_floating_point())
    # the first step's losses before any update (G_GAN comes after D's step, which fp16's GradScaler
    # may skip on an overflow) equal float32's to low precision, but not bit for bit: autocast ran
    got, want = _losses(run)[0], _losses(fp32_run)[0]
    names = ("G_L1", "D_real", "D_fake")
    assert all(abs(got[k] - want[k]) <= tol * max(abs(want[k]), 1.0) for k in names), (got, want)
    assert any(got[k] != want[k] for k in names), "the losses are bit-identical to float32: autocast did not run"


@pytest.mark.slow
@pytest.mark.parametrize("preset, extra", [
    ("cyclegan-instance", ["train.pool_size=2"]),
    # CUT: netF is made from the first batch's features, after the ranks start: both must agree on it
    ("cut-nc", ["train.num_patches=16", "train.netf_nc=32"]),
])
def test_torchrun_two_ranks_cpu(preset, extra, scenes, tmp_path):
    run, hashes = tmp_path / "run", tmp_path / "hashes"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    args = _train_args(preset, scenes, run, "train.max_steps=3", "train.checkpoint_every=2", *extra)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(Path(__file__).parent / "train_hooks.py"), "--param-hash", str(hashes), *args],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "effective batch 2" in proc.stderr
    h0, h1 = (hashes / "rank0.txt").read_text(), (hashes / "rank1.txt").read_text()
    assert h0 == h1 and h0.startswith("3 ")
    state = ckpt.load_torch(run / "checkpoints" / "step_00000003.pt")
    assert state["world_size"] == 2 and len(state["local"]) == 2
