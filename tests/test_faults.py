"""The fault suite: every case of "nothing lost, nothing crashes" (issue 18), reproduced small.

Each test runs a `gennorm` command the way a user (or a failing disk) would break it and checks
the outcome: one line on stderr that names the file, folder or key, exit 2 (3 for divergence),
no traceback, and nothing the user made lost. Tiny runs (32 px scenes, ngf/ndf 4, ResNet-6, a
few steps, CPU). Full and read-only disks are 8 MB-or-smaller tmpfs mounts (needs root; those
tests skip, saying why, where mounting is not permitted), always unmounted at teardown.

    1  non-finite update            test_update_that_makes_weights_nan_stops_before_a_checkpoint, ...
    2  full disk, checkpoint write   test_full_disk_during_checkpoint_write_warns_and_keeps_previous
    3  unwritable / full outputs     test_read_only_outputs_*, test_full_disk_in_translate_*
    4  malformed checkpoints         test_malformed_checkpoint_*
    5  torn metrics.jsonl, stray png test_torn_metrics_line_and_stray_sample_are_survived
    6  bad config values             test_bad_config_value_is_refused_naming_the_key, ...
    7  corruption and leftovers      test_flipped_byte_*, test_stale_temp_files_*, test_demo_*
"""
from __future__ import annotations

import contextlib
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from clitools import cli, error_line
from gennorm.cli import main
from gennorm.train import checkpoint as ckpt
from gennorm.train import loop

TINY = ["model.ngf=4", "model.ndf=4", "model.g_arch=resnet_6blocks", "data.load_size=36", "data.crop_size=32",
        "train.device=cpu", "train.progress=false", "train.num_samples=2", "train.log_every=1"]


# ----------------------------------------------------------------------------------------------
# fixtures and helpers


def _train(scenes, run, *extra, preset="pix2pix-instance"):
    return ["train", preset, f"out={run}", f"data.root={scenes / 'paired'}", *TINY, *extra]


@pytest.fixture(scope="module")
def trained(scenes, tmp_path_factory) -> Path:
    """A finished tiny pix2pix run with checkpoints at steps 2 and 4 (copy it before changing it)."""
    run = tmp_path_factory.mktemp("trained") / "run"
    assert main(_train(scenes, run, "train.max_steps=4", "train.checkpoint_every=2")) == 0
    assert [s for s, _ in ckpt.list_checkpoints(run / "checkpoints")] == [2, 4]
    return run


@pytest.fixture
def run_copy(trained, tmp_path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(trained, dst)
    return dst






@contextlib.contextmanager
def tmpfs(where: Path, size: str = "8m", read_only: bool = False):
    """A fresh tmpfs of `size` at `where` (skips the test when mounting is not permitted)."""
    where.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if read_only else "")
    if not shutil.which("mount"):
        pytest.skip("no mount command: cannot make a full or read-only disk")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here (root needed): {done.stderr.strip()}")
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)


def remount_read_only(where: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True, capture_output=True)


def rewrite(path: Path, change) -> None:
    """Load a checkpoint, change(state), store it again with a fresh content hash (a *valid* file)."""
    state = torch.load(path, weights_only=True)
    change(state)
    if isinstance(state, dict) and ckpt.HASH_KEY in state:
        state[ckpt.HASH_KEY] = ckpt.content_hash(state)
    torch.save(state, path)


def finite(state: dict) -> bool:
    tensors = [v for part in ("nets", "ema") for net in state["task"].get(part, {}).values() for v in net.values()]
    tensors += [v for o in state["task"]["optims"].values() for st in o["state"].values()
                for k, v in st.items() if k != "step"]
    return all(torch.isfinite(v).all() for v in tensors if v.is_floating_point())


# ----------------------------------------------------------------------------------------------
# 1. non-finite weights never reach a checkpoint; translate / export / resume refuse them


def test_update_that_makes_weights_nan_stops_before_a_checkpoint(scenes, tmp_path, capsys):
    """The issue's command: step 1's losses are finite, its update is not (before: step_00000001.pt
    held 183 NaN generator weights and translate wrote black PNGs)."""
    run = tmp_path / "R"
    code, err = cli(capsys, *_train(scenes, run, "data.load_size=32", "model.ngf=8", "model.ndf=8",
                                    "model.g_arch=resnet_9blocks",  # the network: ResNet-6 NaNs a loss first
                                    "model.g_norm=none", "model.d_norm=none", "train.lr=1e6",
                                    "train.gan_mode=vanilla", "train.max_steps=25", "train.checkpoint_every=1"))
    line = error_line(err, "train")
    assert code == 3, err
    assert "the update of step 1 made the weights non-finite: nets." in line and "NaN/inf" in line, line
    assert "no checkpoint had been written yet" in line
    assert ckpt.list_checkpoints(run / "checkpoints") == []


class CorruptMoment(loop.Callback):
    """Before step k's optimizer steps: one second moment of G's Adam becomes inf (the weights stay finite)."""

    def __init__(self, step):
        self.step, self.trainer = step, None

    def on_losses(self, step, losses):
        if step == self.step and self.trainer is not None:
            state = self.trainer.task.optims["G"].state
            first = next(iter(state.values()))
            first["exp_avg_sq"].view(-1)[0] = float("inf")

    def on_step_end(self, trainer):
        self.trainer = trainer


def test_non_finite_optimizer_state_stops_naming_the_tensor(scenes, tmp_path, capsys, monkeypatch):
    import functools

    run = tmp_path / "run"
    monkeypatch.setattr(loop, "train", functools.partial(loop.train, callbacks=[CorruptMoment(3)]))
    code, err = cli(capsys, *_train(scenes, run, "train.max_steps=6", "train.checkpoint_every=2"))
    line = error_line(err, "train")
    assert code == 3 and "step 3" in line and "optims.G.param0.exp_avg_sq" in line, line
    assert "step_00000002.pt, is kept" in line
    assert [s for s, _ in ckpt.list_checkpoints(run / "checkpoints")] == [2]
    assert finite(ckpt.load_torch(run / "checkpoints" / "step_00000002.pt"))


def test_finite_check_covers_ema(scenes):
    from gennorm.config import load_config
    from gennorm.train.task import TrainingDiverged

    cfg = load_config("pix2pix-instance", [*TINY, f"data.root={scenes / 'paired'}", "train.ema=0.9", "out=x"])
    task = loop.make_task(cfg, torch.device("cpu"))
    task.check_state_finite(1)
    next(task.ema["G"].module.parameters()).data.view(-1)[0] = float("nan")
    with pytest.raises(TrainingDiverged, match=r"ema\.G\..* has 1 of"):
        task.check_state_finite(1)


def _nan_generator(run: Path) -> None:
    def change(state):
        weight = next(v for v in state["task"]["nets"]["G"].values() if v.is_floating_point() and v.dim() > 1)
        weight.view(-1)[:5] = float("nan")

    for _, path in ckpt.list_checkpoints(run / "checkpoints"):
        rewrite(path, change)


def test_translate_export_and_resume_refuse_nan_weights(run_copy, scenes, tmp_path, capsys):
    """A checkpoint of a diverged run (what older versions wrote): before, translate wrote black
    PNGs with exit 0 and export shipped the NaNs."""
    _nan_generator(run_copy)
    out = tmp_path / "out"
    code, err = cli(capsys, "translate", run_copy, scenes / "paired" / "test", out, "--aligned")
    line = error_line(err, "translate")
    assert code == 2 and "step_00000004.pt" in line and "has 5 of" in line and "NaN/inf" in line, line
    assert not list(out.rglob("*.png"))
    code, err = cli(capsys, "export", run_copy, tmp_path / "models" / "m")
    assert code == 2 and "NaN/inf" in error_line(err, "export")
    assert not (tmp_path / "models" / "m").exists()
    code, err = cli(capsys, "train", "--resume", run_copy, "train.max_steps=6")
    line = error_line(err, "train")
    assert code == 2 and "step_00000004.pt holds non-finite values" in line, line


def test_translate_refuses_a_models_folder_with_nan_weights(run_copy, scenes, tmp_path, capsys):
    from safetensors.torch import load_file, save_file

    models = tmp_path / "models" / "m"
    assert cli(capsys, "export", run_copy, models)[0] == 0
    weights = load_file(str(models / "generator.safetensors"))
    name = next(k for k, v in weights.items() if v.dim() > 1)
    weights[name].view(-1)[0] = float("inf")
    save_file(weights, str(models / "generator.safetensors"))
    code, err = cli(capsys, "translate", models, scenes / "paired" / "test", tmp_path / "out", "--aligned")
    line = error_line(err, "translate")
    assert code == 2 and f"tensor {name!r} has 1 of" in line and "generator.safetensors" in line, line


# ----------------------------------------------------------------------------------------------
# 2. a full disk during a checkpoint write


class FillDisk(loop.Callback):
    """After step k, fill the run's disk up to `leave` free bytes (what another process might do)."""

    def __init__(self, step, leave=16 * 1024):
        self.step, self.leave = step, leave

    def on_step_end(self, trainer):
        if trainer.step == self.step:
            free = shutil.disk_usage(trainer.run_dir).free
            with open(trainer.run_dir.parent / "filler", "wb") as f:
                f.write(b"\0" * max(0, free - self.leave))


def test_full_disk_during_checkpoint_write_warns_and_keeps_previous(scenes, tmp_path, capsys, monkeypatch):
    """Before: torch's `RuntimeError: [enforce fail at inline_container.cc] unexpected pos`, traceback, exit 1."""
    import functools

    monkeypatch.setattr(loop, "train", functools.partial(loop.train, callbacks=[FillDisk(3)]))
    with tmpfs(tmp_path / "disk", size="8m") as disk:
        run = disk / "R"
        code, err = cli(capsys, *_train(scenes, run, "train.max_steps=4", "train.checkpoint_every=2",
                                        "train.keep_last=5"))
        # the final checkpoint failed: not a finished run (N4 of the second trial: this exited 0)
        assert code == 2 and "Traceback" not in err, err
        assert "final checkpoint could not be written" in err and "redoes the steps after step_00000002.pt" in err, err
        assert "warning: writing checkpoint" in err and "step_00000004.pt failed" in err, err
        assert "torch's writer stopped" in err or "No space left" in err, err
        assert "step_00000002.pt" in err and "--resume" in err
        assert [p.name for p in (run / "checkpoints").iterdir()] == ["step_00000002.pt"]
        assert not list((run / ".tmp").iterdir())
        saved = tmp_path / "saved"
        shutil.copytree(run, saved)
    monkeypatch.undo()
    state, path = ckpt.load_latest(saved / "checkpoints")  # hash checked
    assert state["step"] == 2
    code, err = cli(capsys, "train", "--resume", saved)  # on a disk with room: nothing was lost
    assert code == 0, err
    assert ckpt.list_checkpoints(saved / "checkpoints")[-1][0] == 4


def test_any_writer_error_is_caught_at_the_checkpoint(scenes, tmp_path, capsys, monkeypatch):
    def broken(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04")
        raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 4 vs 0")

    monkeypatch.setattr(ckpt.torch, "save", broken)
    run = tmp_path / "run"
    code, err = cli(capsys, *_train(scenes, run, "train.max_steps=2", "train.checkpoint_every=2"))
    assert code == 2 and "Traceback" not in err and "torch's writer stopped: unexpected pos 4 vs 0" in err, err
    assert f"remove {run} and run the same command again" in err, err
    assert ckpt.list_checkpoints(run / "checkpoints") == [] and not list((run / ".tmp").iterdir())


# ----------------------------------------------------------------------------------------------
# 3. unwritable output folders and full disks outside training


def test_read_only_outputs_give_one_line(scenes, trained, tmp_path, capsys):
    """Before: `OSError: [Errno 30] Read-only file system` tracebacks (exit 1) in train, translate,
    eval --json and resume."""
    with tmpfs(tmp_path / "ro", size="1m", read_only=True) as ro:
        code, err = cli(capsys, *_train(scenes, ro / "R", "train.max_steps=2"))
        line = error_line(err, "train")
        assert code == 2 and str(ro / "R") in line and "Read-only file system" in line and "out=DIR" in line

        code, err = cli(capsys, "translate", trained, scenes / "paired" / "test", ro / "out", "--aligned")
        line = error_line(err, "translate")
        assert code == 2 and str(ro / "out") in line and "Read-only" in line, line

        real = scenes / "paired" / "test"
        code, err = cli(capsys, "eval", real, real, "--metrics", "psnr", "--json", ro / "m.json")
        line = error_line(err, "eval")
        assert code == 2 and "--json" in line and str(ro) in line, line


def test_read_only_run_directory_refuses_resume(trained, tmp_path, capsys):
    with tmpfs(tmp_path / "disk", size="8m") as disk:
        shutil.copytree(trained, disk / "run")
        remount_read_only(disk)
        code, err = cli(capsys, "train", "--resume", disk / "run", "train.max_steps=6")
        line = error_line(err, "train")
        assert code == 2 and str(disk / "run") in line and "Read-only file system" in line, line
        assert ".tmp" not in line


def test_full_disk_in_translate_names_the_file_and_leaves_complete_pngs(scenes, trained, tmp_path, capsys):
    """Before: `OSError: [Errno 28] No space left on device` traceback."""
    from PIL import Image

    with tmpfs(tmp_path / "disk", size="12k") as disk:
        code, err = cli(capsys, "translate", trained, scenes / "paired" / "test", disk / "out", "--aligned")
        line = error_line(err, "translate")
        assert code == 2 and "No space left on device" in line and str(disk / "out") in line, line
        for png in (disk / "out").rglob("*.png"):
            Image.open(png).load()  # every file that is there is whole
        assert not [p for p in (disk / "out").rglob("*") if p.name.endswith(".tmp")]


def test_unexpected_errors_are_one_line_and_debug_shows_the_traceback(monkeypatch, capsys):
    from gennorm.commands import translate

    def boom(args):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(translate, "run", boom)
    code, err = cli(capsys, "translate", "a", "b", "c")
    assert code == 2 and "unexpected ZeroDivisionError" in error_line(err, "translate")
    monkeypatch.setenv("GENNORM_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        main(["translate", "a", "b", "c"])


# ----------------------------------------------------------------------------------------------
# 4. malformed but loadable checkpoints


def _only_checkpoint(run: Path, obj) -> Path:
    for _, path in ckpt.list_checkpoints(run / "checkpoints"):
        path.unlink()
    path = run / "checkpoints" / "step_00000004.pt"
    torch.save(obj, path)
    return path


def _good_state(trained: Path) -> dict:
    return torch.load(trained / "checkpoints" / "step_00000004.pt", weights_only=True)


def _cyclegan_nets(state):
    nets = state["task"]["nets"]
    state["task"]["nets"] = {"G_A": nets["G"], "G_B": nets["G"], "D_A": nets["D"], "D_B": nets["D"]}
    state["task"]["options"] = {}
    state.pop(ckpt.HASH_KEY)


@pytest.mark.parametrize("kind, expected", [
    ("format-only", "incomplete: no 'step'"),  # before: KeyError 'step' / KeyError 'task'
    ("bare-tensor", "holds a Tensor, not a dict"),  # before: AttributeError / IndexError
    ("step-abc", "'step' is 'abc', expected an integer"),  # before: TypeError
    ("cyclegan-in-pix2pix", "G_A, G_B, D_A, D_B"),  # before: "...networks: 'G'" without the file; KeyError 'G'
])
def test_malformed_checkpoint_is_named_in_resume_and_translate(kind, expected, trained, run_copy, scenes,
                                                               tmp_path, capsys):
    state = _good_state(trained)
    if kind == "format-only":
        obj = {"format": "gennorm-train-1"}
    elif kind == "bare-tensor":
        obj = torch.zeros(3)
    elif kind == "step-abc":
        obj = state
        obj["step"] = "abc"
        obj.pop(ckpt.HASH_KEY)
    else:
        obj = state
        _cyclegan_nets(obj)
    path = _only_checkpoint(run_copy, obj)
    for args in (("train", "--resume", run_copy, "train.max_steps=6"),
                 ("translate", run_copy, scenes / "paired" / "test", tmp_path / "out", "--aligned")):
        code, err = cli(capsys, *args)
        line = error_line(err, args[0])
        assert code == 2 and str(path) in line and expected in line, line
        assert len(line) < 600


def test_checkpoint_of_another_ngf_names_file_and_option(run_copy, scenes, tmp_path, capsys):
    """Before: a 48-line size-mismatch dump that never named the file."""
    import yaml

    cfg = yaml.safe_load((run_copy / "config.yaml").read_text())
    cfg["model"]["ngf"] = 8  # the run says ngf 8; its checkpoints hold ngf 4 networks
    (run_copy / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    for args in (("train", "--resume", run_copy, "train.max_steps=6"),
                 ("translate", run_copy, scenes / "paired" / "test", tmp_path / "out", "--aligned")):
        code, err = cli(capsys, *args)
        line = error_line(err, args[0])
        assert code == 2 and "step_00000004.pt" in line and "ngf=4" in line and "ngf=8" in line, line
        assert len(line) < 400


def test_a_bad_newest_checkpoint_falls_back_to_the_previous(trained, run_copy, capsys):
    torch.save({"format": "gennorm-train-1"}, run_copy / "checkpoints" / "step_00000004.pt")
    code, err = cli(capsys, "train", "--resume", run_copy, "train.max_steps=6")
    assert code == 0, err
    assert "step_00000004.pt is incomplete" in err and "using the previous checkpoint" in err


# ----------------------------------------------------------------------------------------------
# 5. a torn line at the end of metrics.jsonl, a stray file in samples/


def test_torn_metrics_line_and_stray_sample_are_survived(run_copy, capsys):
    """Before: JSONDecodeError (run un-resumable); `samples/step_final.png` -> ValueError."""
    import json

    metrics = run_copy / "metrics.jsonl"
    whole = metrics.read_text().splitlines()
    with open(metrics, "a") as f:
        f.write('{"step": 5, "G_GA')  # what a disk-full append leaves
    (run_copy / "samples" / "step_final.png").write_bytes(b"mine")
    code, err = cli(capsys, "train", "--resume", run_copy, "train.max_steps=6")
    assert code == 0, err
    assert f"{metrics} line {len(whole) + 1} is not a complete record" in err and "dropped" in err
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert (run_copy / "samples" / "step_final.png").read_bytes() == b"mine"  # the user's file is kept


# ----------------------------------------------------------------------------------------------
# 6. config values


@pytest.mark.parametrize("override, key, says", [
    ("train.lr=.nan", "train.lr", "not a finite number"),  # before: traceback
    ("train.lr=.inf", "train.lr", "not a finite number"),  # before: accepted, diverged at step 1
    ("train.lr=1e309", "train.lr", "not a finite number"),  # before: accepted
    ("train.beta1=2", "train.beta1", "[0, 1)"),  # before: Adam's ValueError traceback
    ("train.beta2=-0.1", "train.beta2", "[0, 1)"),
    ("model.init_gain=.nan", "model.init_gain", "not a finite number"),  # before: traceback
    ("train.seed=1180591620717411303424", "train.seed", "[0, 2**62]"),  # 2**70; before: overflow traceback
    ("train.seed=-1", "train.seed", "[0, 2**62]"),
    ("train.lambda_l1=-100", "train.lambda_l1", ">= 0"),  # before: accepted
    ("train.lambda_gp=-1", "train.lambda_gp", ">= 0"),
    ("model.input_nc=0", "model.input_nc", ">= 1"),
])
def test_bad_config_value_is_refused_naming_the_key(override, key, says, scenes, tmp_path, capsys):
    code, err = cli(capsys, *_train(scenes, tmp_path / "run", override))
    line = error_line(err, "train")
    assert code == 2 and repr(key) in line and says in line, line
    assert not (tmp_path / "run").exists()


def test_config_file_in_latin1_and_duplicate_keys_are_refused(tmp_path, capsys):
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("description: caf\xe9\ntrain:\n  lr: 0.001\n".encode("latin-1"))
    code, err = cli(capsys, "train", latin)  # before: UnicodeDecodeError traceback
    line = error_line(err, "train")
    assert code == 2 and str(latin) in line and "not UTF-8" in line and "0xe9" in line, line
    for text, key in (("train:\n  lr: 0.1\n  max_steps: 3\n  lr: 0.2\n", "'lr'"),
                      ("out: a\nmodel: {ngf: 4}\nout: b\n", "'out'")):
        dup = tmp_path / "dup.yaml"
        dup.write_text(text)
        code, err = cli(capsys, "train", dup)  # before: silently the last value
        line = error_line(err, "train")
        assert code == 2 and str(dup) in line and f"key {key} is given twice" in line, line


# ----------------------------------------------------------------------------------------------
# 7. silent corruption and leftovers


def _flip_a_byte_of_optimizer_state(path: Path) -> None:
    state = torch.load(path, weights_only=True)
    moment = next(iter(state["task"]["optims"]["G"]["state"].values()))["exp_avg"]
    data = bytearray(path.read_bytes())
    at = data.find(moment.reshape(-1)[:4].numpy().tobytes())
    assert at > 0
    data[at + 1] ^= 0x01
    path.write_bytes(bytes(data))
    torch.load(path, weights_only=True)  # still loads: only the hash can tell


def test_flipped_byte_falls_back_to_the_previous_checkpoint(run_copy, scenes, tmp_path, capsys):
    """Before: a flipped byte in optimizer state loaded silently."""
    bad = run_copy / "checkpoints" / "step_00000004.pt"
    _flip_a_byte_of_optimizer_state(bad)
    code, err = cli(capsys, "translate", run_copy, scenes / "paired" / "test", tmp_path / "out", "--aligned")
    assert code == 0 and f"checkpoint {bad} is corrupt" in err and "using the previous checkpoint" in err, err
    code, err = cli(capsys, "train", "--resume", run_copy, "train.max_steps=6")
    assert code == 0 and f"checkpoint {bad} is corrupt" in err, err
    assert ckpt.list_checkpoints(run_copy / "checkpoints")[-1][0] == 6


def test_flipped_byte_in_the_only_checkpoint_is_an_error(run_copy, capsys):
    (run_copy / "checkpoints" / "step_00000002.pt").unlink()
    bad = run_copy / "checkpoints" / "step_00000004.pt"
    _flip_a_byte_of_optimizer_state(bad)
    code, err = cli(capsys, "train", "--resume", run_copy, "train.max_steps=6")
    line = error_line(err, "train")
    assert code == 2 and f"checkpoint {bad} is corrupt" in line and "sha256" in line, line


def test_checkpoints_carry_a_hash_that_verifies(trained):
    for _, path in ckpt.list_checkpoints(trained / "checkpoints"):
        state = ckpt.load_torch(path)
        assert len(state[ckpt.HASH_KEY]) == 64 and state[ckpt.HASH_KEY] == ckpt.content_hash(state)


def test_stale_temp_files_are_removed_at_start(run_copy, capsys):
    """Before: RUN/.tmp/*.tmp files of killed writes stayed forever."""
    stale = [run_copy / ".tmp" / ".step_00000006.pt.4242.tmp", run_copy / ".config.yaml.4242.tmp",
             run_copy / "samples" / ".step_00000006.png.4242.tmp"]
    for p in stale:
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(b"half a file")
    code, err = cli(capsys, "train", "--resume", run_copy, "train.max_steps=6")
    assert code == 0 and "removed 3 temporary file(s)" in err, err
    assert not any(p.exists() for p in stale)


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory):
    """The demo over a zoo whose card names absolute paths; its cache swept every second."""
    pytest.importorskip("gradio")
    from test_demo import write_tiny_model

    from gennorm.apps import demo as demo_app

    root = tmp_path_factory.mktemp("zoo") / "models"
    write_tiny_model(root / "scenes-instance", "instance", fid=30.0)
    card = root / "scenes-instance" / "card.md"
    secret_data = tmp_path_factory.getbasetemp() / "secret" / "data" / "scenes" / "paired"
    card.write_text(card.read_text() + f"\n| data | `{secret_data}` |\n\n    gennorm translate {root}/scenes-instance "
                                       "IN OUT\n", encoding="utf-8")
    app = demo_app.build_app(root, device="cpu", delete_cache=(1, 1))
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _, url, _ = demo_app.launch(app, "127.0.0.1", port, prevent_thread_lock=True, quiet=True)
    yield app, url.rstrip("/"), root, secret_data
    app.close()


@pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword).*")
def test_demo_config_exposes_no_absolute_zoo_or_data_path(demo_server):
    import httpx

    _, url, root, secret_data = demo_server
    text = httpx.get(url + "/config", timeout=30).text
    assert "scenes-instance" in text  # the zoo is listed ...
    for leaked in (str(root), str(secret_data), str(root.parent)):  # ... but not where it is
        assert leaked not in text, leaked


@pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword).*")
def test_demo_uploads_are_removed_from_the_temp_folder(demo_server, tmp_path):
    """Before: every upload stayed in Gradio's temp folder (no cache cleanup)."""
    import time

    gradio_client = pytest.importorskip("gradio_client")
    from PIL import Image

    app, url, _, _ = demo_server
    Image.new("RGB", (24, 16), (10, 200, 30)).save(tmp_path / "in.png")
    client = gradio_client.Client(url, verbose=False)
    gallery, _ = client.predict(gradio_client.handle_file(str(tmp_path / "in.png")), "scenes",
                                api_name="/translate")
    assert len(gallery) == 1
    uploads = [Path(p) for p in app.upload_file_set]
    examples = set().union(*(getattr(block, "keep_in_cache", set()) for block in app.blocks.values()))
    cached = [Path(p) for s in app.temp_file_sets for p in s if p not in examples]  # uploads and outputs
    assert cached
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(p.exists() for p in uploads + cached):
        time.sleep(0.5)
    assert not [p for p in uploads + cached if p.exists()]
