"""gennorm train / translate / export end to end on tiny data; config errors; presets.

Tiny everywhere: 32 px scenes, ngf/ndf 4, ResNet-6, a handful of steps.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gennorm.cli import main
from gennorm.errors import ConfigError
from gennorm.config import list_presets, load_config

TINY = ["model.ngf=4", "model.ndf=4", "model.g_arch=resnet_6blocks", "data.load_size=36", "data.crop_size=32",
        "train.checkpoint_every=2", "train.sample_every=2", "train.log_every=1", "train.device=cpu",
        "train.progress=false", "train.num_samples=2", "train.keep_last=2"]


def _cli(*args: str) -> int:
    return main(list(args))


def test_presets_load():
    presets = list_presets()
    for family, task in (("pix2pix", "pix2pix"), ("cyclegan", "cyclegan"), ("cut", "cut"), ("fastcut", "cut")):
        for norm in ("instance", "pono-ms", "nc", "kn"):
            name = f"{family}-{norm}"
            assert name in presets and presets[name], name
            cfg = load_config(name, ["model.d_norm=convnorm"])
            assert cfg.train.task == task and cfg.model.g_norm == norm and cfg.model.d_norm == "convnorm"
            assert cfg.data.mode == ("aligned" if task == "pix2pix" else "unaligned")
            if task == "cut":  # FastCUT: CUT with lambda_nce 10, no identity NCE, flip equivariance
                fast = family == "fastcut"
                t = cfg.train
                assert (t.lambda_nce, t.nce_idt, t.flip_equivariance) == ((10.0, False, True) if fast else (1.0, True, False))


def test_cut_classic_presets_are_cuts_defaults():
    for name, fast in (("cut-classic", False), ("fastcut-classic", True)):
        cfg = load_config(name)
        m, d, t = cfg.model, cfg.data, cfg.train
        assert (m.g_arch, m.g_norm, m.d_norm, m.use_dropout, m.init_type, m.init_gain) == (
            "resnet_9blocks", "instance", "instance", False, "xavier", 0.02)
        assert (d.mode, d.load_size, d.crop_size, d.no_flip, t.batch_size, t.gan_mode) == (
            "unaligned", 286, 256, False, 1, "lsgan")
        assert (t.task, t.lambda_gan, t.nce_t, t.num_patches, t.netf_nc, t.nce_batch_negatives) == (
            "cut", 1.0, 0.07, 256, 256, False)
        assert t.nce_layers == "input,down1,down2,block1,block5"  # CUT's nce_layers 0,4,8,12,16
        assert (t.lr, t.beta1, t.beta2, t.lr_policy) == (0.0002, 0.5, 0.999, "linear")
        assert (t.lambda_nce, t.nce_idt, t.flip_equivariance, t.n_epochs, t.n_epochs_decay) == (
            (10.0, False, True, 150, 50) if fast else (1.0, True, False, 200, 200))


def test_train_list(capsys):
    assert _cli("train", "--list") == 0
    out = capsys.readouterr().out
    assert "pix2pix-nc" in out and "cyclegan-pono-ms" in out and "cut-kn" in out and "fastcut-classic" in out


@pytest.mark.parametrize("override, words", [
    ("train.foo=1", ["train.foo", "max_steps"]),
    ("model.g_norm=banana", ["model.g_norm", "instance", "nc"]),
    ("train.max_steps=abc", ["train.max_steps", "int"]),
    ("train.amp=fp8", ["train.amp", "bf16"]),
    ("nosuchsection.x=1", ["nosuchsection.x"]),
])
def test_config_errors_exit_2(override, words, capsys, tmp_path):
    assert _cli("train", "pix2pix-nc", f"out={tmp_path / 'r'}", override) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    for w in words:
        assert w in err


def test_config_yaml_unknown_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  g_norm: nc\n  wings: 2\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'model.wings'.*g_norm"):
        load_config(str(path))
    path.write_text("model:\n  g_norm: nc\n  ngf: 8\ntrain:\n  lr: 0.001\n")  # the same file without it loads
    cfg = load_config(str(path))
    assert (cfg.model.g_norm, cfg.model.ngf, cfg.train.lr) == ("nc", 8, 0.001)


def test_override_types():
    cfg = load_config("pix2pix-nc", ["train.lr=1e-3", "model.upsample=null", "train.decay_start=5",
                                     "train.max_steps=10", "train.ema=0.99"])
    assert cfg.train.lr == 1e-3 and cfg.model.upsample is None and cfg.train.decay_start == 5
    with pytest.raises(ConfigError, match="decay_start"):
        load_config("pix2pix-nc", ["train.max_steps=10", "train.decay_start=20"])
    with pytest.raises(ConfigError, match="data.mode"):
        load_config("pix2pix-nc", ["data.mode=unaligned"])


@pytest.mark.slow
def test_pix2pix_end_to_end(scenes, tmp_path, capsys):
    run = tmp_path / "p2p"
    assert _cli("train", "pix2pix-nc", f"out={run}", f"data.root={scenes / 'paired'}", "train.max_steps=4",
                *TINY) == 0
    assert (run / "config.yaml").is_file() and (run / "index.html").is_file()
    assert [p.name for p in sorted((run / "checkpoints").iterdir())] == ["step_00000002.pt", "step_00000004.pt"]
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4] and "G_L1" in records[0] and "step_time" in records[0]
    assert sorted(p.name for p in (run / "samples").iterdir()) == [
        "step_00000000.png", "step_00000002.png", "step_00000004.png"]
    assert list(run.glob("events.out.tfevents.*"))
    state = torch.load(run / "checkpoints" / "step_00000004.pt", weights_only=True)
    assert state["step"] == 4 and set(state["task"]["nets"]) == {"G", "D"}

    out = tmp_path / "translated"
    assert _cli("translate", str(run), str(scenes / "paired" / "test"), str(out), "--aligned") == 0
    tests = sorted(p.stem for p in (scenes / "paired" / "test").iterdir())
    assert sorted(p.stem for p in out.glob("*.png")) == tests
    assert (out / "index.html").is_file() and len(list((out / "targets").glob("*.png"))) == len(tests)
    from PIL import Image

    assert Image.open(out / f"{tests[0]}.png").size == (32, 32)

    # export -> models/ folder -> translate from it gives the same images
    model = tmp_path / "models" / "tiny"
    metrics = tmp_path / "m.json"
    metrics.write_text(json.dumps({"metrics": {"psnr": 12.5, "ssim": 0.25}, "counts": {"pairs": 9}, "run": str(run),
                                   "protocol": {"name": "clean"}, "skipped": {"fid": "weights not on disk"}}))
    assert _cli("export", str(run), str(model), "--metrics-json", str(metrics)) == 0
    files = {p.name for p in model.iterdir()} - {".gennorm", ".gennorm.lock"}  # gennorm.locks: marker, lock
    assert files == {"config.yaml", "generator.safetensors", "card.md", "training_log.jsonl"}
    card = (model / "card.md").read_text()
    assert "pix2pix" in card and "12.5" in card and "gennorm" in card and "Images: pairs 9." in card
    assert "FID/KID: not measured (the Inception weights were not on disk" in card
    from gennorm.zoo import list_models

    # the zoo reads exactly the metric values from the card, not the evaluation details
    info = list_models(model.parent)[0]
    assert info.metrics == {"psnr": 12.5, "ssim": 0.25} and info.protocol == ""  # no FID: no protocol to show
    metrics.write_text(json.dumps({"metrics": {"fid": 41.0, "psnr": 12.5}, "protocol": {"name": "legacy"}}))
    assert _cli("export", str(run), str(model), "--metrics-json", str(metrics)) == 0
    assert list_models(model.parent)[0].protocol == "legacy"
    assert [r["step"] for r in info.training_log()] == [1, 2, 3, 4] and "G_L1" in info.training_log()[0]
    out2 = tmp_path / "translated2"
    assert _cli("translate", str(model), str(scenes / "paired" / "test"), str(out2), "--aligned") == 0
    for name in tests:
        assert Image.open(out / f"{name}.png").tobytes() == Image.open(out2 / f"{name}.png").tobytes()


@pytest.mark.slow
def test_cyclegan_end_to_end(scenes, tmp_path):
    run = tmp_path / "cg"
    assert _cli("train", "cyclegan-pono-ms", f"out={run}", f"data.root={scenes / 'unpaired'}", "train.max_steps=2",
                "train.ema=0.9", "model.d_norm=convnorm", *TINY) == 0
    state = torch.load(run / "checkpoints" / "step_00000002.pt", weights_only=True)
    assert set(state["task"]["nets"]) == {"G_A", "G_B", "D_A", "D_B"} and set(state["task"]["ema"]) == {"G_A", "G_B"}
    for direction, folder in (("AtoB", "testA"), ("BtoA", "testB")):
        out = tmp_path / direction
        assert _cli("translate", str(run), str(scenes / "unpaired" / folder), str(out), "--direction", direction) == 0
        assert len(list(out.glob("*.png"))) == len(list((scenes / "unpaired" / folder).iterdir()))
    from gennorm.inference import translate_test_split

    split = translate_test_split(run, tmp_path / "split")
    assert split["paired"] is False and Path(split["real"]).name == "testB"


def test_translator_keeps_size(scenes, tmp_path):
    from PIL import Image

    from gennorm.train.loop import train
    from gennorm.inference import load_translator

    run = train(load_config("pix2pix-instance", [f"out={tmp_path / 'r'}", f"data.root={scenes / 'paired'}",
                                                 "train.max_steps=1", *TINY]))
    tr = load_translator(run)
    out = tr.translate(Image.new("RGB", (37, 23), (10, 200, 30)))
    assert out.size == (37, 23) and out.mode == "RGB"


def test_existing_run_refused_and_resume_rules(scenes, tmp_path, capsys):
    run = tmp_path / "r"
    args = ["train", "pix2pix-instance", f"out={run}", f"data.root={scenes / 'paired'}", "train.max_steps=1", *TINY]
    assert _cli(*args) == 0
    assert _cli(*args) == 2 and "--resume" in capsys.readouterr().err
    assert _cli("train", "--resume", str(run), "model.ngf=8") == 2
    assert "model.ngf" in capsys.readouterr().err
    assert _cli("train", "--resume", str(run), "train.max_steps=2") == 0
    assert (run / "checkpoints" / "step_00000002.pt").is_file()


def test_crop_size_too_small_is_config_error(scenes, tmp_path, capsys):
    assert _cli("train", "pix2pix-instance", f"out={tmp_path / 'r'}", f"data.root={scenes / 'paired'}",
                "train.max_steps=1", *TINY, "data.load_size=16", "data.crop_size=16") == 2
    assert "data.crop_size" in capsys.readouterr().err


def test_module_entry_point_help():
    out = subprocess.run([sys.executable, "-m", "gennorm", "train", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--resume" in out.stdout
