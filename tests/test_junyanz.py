"""Coming from pytorch-CycleGAN-and-pix2pix: its checkpoints, presets, epoch schedules and test options.

The checkpoints in tests/fixtures/junyanz/ were made by that project's own networks.py (see
../shared/fixtures/junyanz/README.md): a CycleGAN ResNet-9 G, the same saved the pre-0.4 way (with
InstanceNorm running stats), pix2pix's U-Net-256 G with batch norm and dropout, its PatchGAN D, and
each network's eval-mode output on one input (converted from its .pt to safetensors; the .pth
checkpoints stay in that project's pickle format on purpose: reading it with weights_only=True is
what the importer does).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gennorm.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "junyanz"
RESNET, OLD, UNET, PATCH_D = (FIXTURES / f"{n}.pth" for n in (
    "cyclegan_resnet9_ngf8_instance_net_G_A", "old_resnet9_ngf8_instance_with_running_stats_net_G",
    "pix2pix_unet256_ngf8_batch_net_G", "pix2pix_basic_ndf8_batch_net_D"))


@pytest.fixture(scope="module")
def expected() -> dict:
    from safetensors.torch import load_file

    return load_file(FIXTURES / "expected_eval_outputs.safetensors")  # the fixture's .pt, as safetensors


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("imported")
    out = {"resnet": root / "resnet", "old": root / "old", "unet": root / "unet"}
    assert main(["import", "junyanz", str(RESNET), str(out["resnet"])]) == 0
    assert main(["import", "junyanz", str(OLD), str(out["old"])]) == 0
    assert main(["import", "junyanz", str(UNET), str(out["unet"]), "--netD", "basic", "--checkpoint_D", str(PATCH_D)]) == 0
    return out


@pytest.mark.parametrize("which, key", [("resnet", "cyclegan_resnet9_ngf8_instance_net_G_A"),
                                        ("old", "cyclegan_resnet9_ngf8_instance_net_G_A"),
                                        ("unet", "pix2pix_unet256_ngf8_batch_net_G")])
def test_imported_generators_give_the_stored_outputs(imported, expected, which, key):
    import gennorm

    translator = gennorm.load(imported[which])
    out = translator(expected["input"])
    assert out.shape == expected[key].shape
    torch.testing.assert_close(out, expected[key], rtol=0, atol=1e-5)


def test_imported_discriminator_gives_the_stored_output(imported, expected):
    from gennorm.config import config_from_file
    from gennorm.networks import build_discriminator, load_network_state
    from gennorm.networks.checkpoint import read_safetensors

    m = config_from_file(imported["unet"] / "config.yaml").model
    assert (m.d_arch, m.ndf, m.n_layers, m.d_norm) == ("basic", 8, 3, "batch")
    D = build_discriminator(m.d_arch, 6, m.ndf, m.n_layers, norm=m.d_norm)
    load_network_state(D, read_safetensors(imported["unet"] / "discriminator.safetensors")[0])
    with torch.no_grad():
        out = D.eval()(torch.cat([expected["input"], expected["pix2pix_unet256_ngf8_batch_net_G"]], 1))
    torch.testing.assert_close(out, expected["pix2pix_basic_ndf8_batch_net_D"], rtol=0, atol=1e-5)


def test_import_infers_and_says_what(imported, capsys):
    from gennorm.config import config_from_file

    m = config_from_file(imported["unet"] / "config.yaml").model
    assert (m.g_arch, m.ngf, m.g_norm, m.use_dropout, m.upsample) == ("unet_256", 8, "batch", True, "transpose")
    m = config_from_file(imported["old"] / "config.yaml").model
    assert (m.g_arch, m.ngf, m.g_norm, m.use_dropout) == ("resnet_9blocks", 8, "instance", False)
    card = (imported["unet"] / "card.md").read_text()
    import hashlib

    assert hashlib.sha256(UNET.read_bytes()).hexdigest() in card and UNET.name in card
    assert main(["import", "junyanz", str(RESNET), str(imported["resnet"].parent / "again"), "--ngf", "8"]) == 0
    said = capsys.readouterr().err
    assert "inferred: netG, norm, input_nc, output_nc, dropout" in said  # ngf was given, not inferred


@pytest.mark.parametrize("flags, words", [(["--ngf", "16"], "layer 1 (model.1.weight: [8, 3, 7, 7]) does not fit"),
                                          (["--netG", "resnet_6blocks"], "has 24 layers with weights"),
                                          (["--netG", "unet_256"], "has 24 layers with weights"),
                                          (["--input_nc", "1"], "does not fit")])
def test_wrong_options_fail_with_one_line(tmp_path, capsys, flags, words):
    assert main(["import", "junyanz", str(RESNET), str(tmp_path / "x"), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err and str(RESNET) in err
    assert not (tmp_path / "x").exists()


class Evil:
    """Pickled by reference: torch.load(weights_only=True) must refuse to import it."""

    def __reduce__(self):
        return (print, ("this must never run",))


def test_import_refuses_pickled_code_and_non_checkpoints(tmp_path, capsys):
    evil = tmp_path / "evil.pth"
    torch.save({"model.1.weight": torch.zeros(1), "x": Evil()}, evil)
    assert main(["import", "junyanz", str(evil), str(tmp_path / "o")]) == 2
    err = capsys.readouterr()
    assert "cannot be read" in err.err and "this must never run" not in err.out
    plain = tmp_path / "plain.pth"
    torch.save({"conv.weight": torch.zeros(2, 3, 3, 3)}, plain)
    assert main(["import", "junyanz", str(plain), str(tmp_path / "o")]) == 2
    assert "define_G" in capsys.readouterr().err


def test_import_from_a_checkpoints_folder(tmp_path):
    folder = tmp_path / "checkpoints" / "h2z"
    folder.mkdir(parents=True)
    (folder / "latest_net_G_A.pth").write_bytes(RESNET.read_bytes())
    assert main(["import", "junyanz", str(folder), str(tmp_path / "m")]) == 0
    assert (tmp_path / "m" / "generator.safetensors").is_file()


# ---- translate: PNGs in, PNGs out, the original's names, 8-bit conversion and test mode ----------


def _tensor2im(t: torch.Tensor) -> np.ndarray:
    """pytorch-CycleGAN-and-pix2pix's util.tensor2im, written out: [C, H, W] -> uint8 [H, W, C]."""
    arr = t.cpu().float().numpy()
    return ((np.transpose(arr, (1, 2, 0)) + 1) / 2.0 * 255.0).astype(np.uint8)


def test_translate_pngs_with_the_original_names_and_pixels(imported, tmp_path):
    import gennorm
    from gennorm.data.transforms import to_tensor

    rng = np.random.default_rng(0)
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(src / f"im{i}.png")
    out = tmp_path / "results"
    assert main(["translate", str(imported["unet"]), str(src), str(out), "--naming", "junyanz", "--num-test", "2"]) == 0
    assert sorted(p.name for p in (out / "images").iterdir()) == ["im0_fake_B.png", "im0_real_A.png",
                                                                   "im1_fake_B.png", "im1_real_A.png"]
    page = (out / "index.html").read_text()
    assert "images/im1_fake_B.png" in page and ">fake_B<" in page
    translator = gennorm.load(imported["unet"])
    x = to_tensor(Image.open(src / "im0.png").convert("RGB"))[None]
    want = _tensor2im(translator(x)[0])  # the original's truncating conversion
    got = np.asarray(Image.open(out / "images" / "im0_fake_B.png"))
    assert np.array_equal(got, want)
    assert np.array_equal(np.asarray(Image.open(out / "images" / "im0_real_A.png")), np.asarray(Image.open(src / "im0.png")))
    rounded = tmp_path / "rounded"
    assert main(["translate", str(imported["unet"]), str(src), str(rounded), "--num-test", "1"]) == 0
    ours = np.asarray(Image.open(rounded / "im0.png")).astype(int)
    assert 0 <= (ours - want).min() and (ours - want).max() <= 1 and (ours != want).any()


def test_train_mode_is_the_original_default_test_mode(imported, expected):
    import gennorm

    x = expected["input"]
    eval_out = gennorm.load(imported["unet"])(x)
    torch.manual_seed(0)
    train_out = gennorm.load(imported["unet"], train_mode=True)(x)  # batch statistics, dropout on
    assert (train_out - eval_out).abs().max() > 1e-2
    translator = gennorm.load(imported["unet"], train_mode=True)
    assert translator.net.training and any(isinstance(m, torch.nn.Dropout) for m in translator.net.modules())


# ---- presets and epoch schedules ---------------------------------------------------------------


def test_classic_presets_are_the_original_defaults():
    from gennorm.config import load_config
    from gennorm.networks.factory import build_discriminator_from, build_generator_from

    p2p = load_config("pix2pix-classic")
    G = build_generator_from(p2p.model, 3, 3)
    assert sum(p.numel() for p in G.parameters()) == 54_413_955
    assert any(isinstance(m, torch.nn.Dropout) for m in G.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in G.modules())
    D = build_discriminator_from(p2p.model, 6)
    assert sum(p.numel() for p in D.parameters()) == 2_765_633 + 3 * 64 * 4 * 4  # batch-norm PatchGAN, 6 input channels
    t, d = p2p.train, p2p.data
    assert (t.gan_mode, t.lambda_l1, t.pool_size, t.lr, t.beta1, t.n_epochs, t.n_epochs_decay, t.lr_policy) == \
        ("vanilla", 100.0, 0, 2e-4, 0.5, 100, 100, "linear")
    assert (d.load_size, d.crop_size, d.preprocess, d.no_flip, t.batch_size) == (286, 256, "resize_and_crop", False, 1)
    cg = load_config("cyclegan-classic")
    assert sum(p.numel() for p in build_generator_from(cg.model, 3, 3).parameters()) == 11_378_179
    t = cg.train
    assert (cg.model.g_norm, cg.model.use_dropout, t.gan_mode, t.lambda_cycle, t.lambda_identity, t.pool_size) == \
        ("instance", False, "lsgan", 10.0, 0.5, 50)


def _original_lrs(policy: str, n: int, d: int, per_epoch: int, lr: float = 2e-4, decay_iters: int = 2) -> list[float]:
    """The original's lr at every step: its scheduler (torch's) stepped once at the end of each epoch."""
    from torch.optim import lr_scheduler

    opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=lr)
    if policy == "linear":
        sched = lr_scheduler.LambdaLR(opt, lambda epoch: 1.0 - max(0, epoch + 1 - n) / float(d + 1))
    elif policy == "step":
        sched = lr_scheduler.StepLR(opt, step_size=decay_iters, gamma=0.1)
    elif policy == "plateau":
        sched = lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.2, threshold=0.01, patience=5)
    else:
        sched = lr_scheduler.CosineAnnealingLR(opt, T_max=n, eta_min=0)
    lrs = []
    for _ in range(n + d):
        lrs += [opt.param_groups[0]["lr"]] * per_epoch
        opt.step()
        sched.step(0) if policy == "plateau" else sched.step()  # its metric: 0 (pix2pix/CycleGAN never set it)
    return lrs


@pytest.mark.parametrize("policy", ["linear", "step", "plateau", "cosine"])
def test_epoch_schedules_equal_the_originals(policy):
    from types import SimpleNamespace

    from gennorm.train.optim import make_scheduler

    n, d, per_epoch = 10, 12, 3
    t = SimpleNamespace(lr=2e-4, beta1=0.5, beta2=0.999, n_epochs=n, n_epochs_decay=d, lr_policy=policy,
                        lr_decay_iters=2, max_steps=(n + d) * per_epoch, decay_start=None)
    opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=t.lr)
    sched = make_scheduler(opt, t)
    ours = []
    for _ in range(t.max_steps):
        ours.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    want = _original_lrs(policy, n, d, per_epoch)
    assert ours == pytest.approx(want, rel=1e-12, abs=1e-18)
    if policy == "linear":
        assert ours[-1] == pytest.approx(t.lr / (d + 1)) and ours[n * per_epoch - 1] == t.lr


def test_epoch_policies_need_epochs():
    from gennorm.errors import ConfigError

    from gennorm.config import load_config

    with pytest.raises(ConfigError, match="lr_policy"):
        load_config("pix2pix-nc", ["train.lr_policy=cosine"])


TINY = ["model.ngf=4", "model.ndf=4", "model.g_arch=resnet_6blocks", "data.load_size=36", "data.crop_size=32",
        "train.device=cpu", "train.progress=false", "train.num_samples=2", "train.log_every=1",
        "train.checkpoint_every=100", "train.sample_every=100", "train.deterministic=true", "train.batch_size=2"]


@pytest.mark.slow
def test_epoch_schedule_resumes_bit_exact(scenes, tmp_path, monkeypatch):
    from train_hooks import StopAtStep, with_callbacks

    args = ["pix2pix-nc", f"data.root={scenes / 'paired'}", *TINY, "train.n_epochs=1", "train.n_epochs_decay=2",
            "train.lr_policy=linear"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert main(["train", *args, f"out={straight}"]) == 0
    with monkeypatch.context() as patch:
        with_callbacks(patch, StopAtStep(4))
        assert main(["train", *args, f"out={split}"]) == 0
    assert main(["train", "--resume", str(split)]) == 0
    a = torch.load(sorted((straight / "checkpoints").glob("*.pt"))[-1], weights_only=True)
    b = torch.load(sorted((split / "checkpoints").glob("*.pt"))[-1], weights_only=True)
    per_epoch = 5  # 10 training scenes, batch 2
    assert a["step"] == b["step"] == 3 * per_epoch
    for name, net in a["task"]["nets"].items():
        for key, value in net.items():
            assert torch.equal(value, b["task"]["nets"][name][key]), f"{name}.{key}"
    # the lr a checkpoint holds is the next step's: after epoch 2 it is epoch 3's, 1 - 2/3 of the initial lr
    mid = torch.load(split / "checkpoints" / "step_00000004.pt", weights_only=True)
    assert mid["task"]["optims"]["G"]["param_groups"][0]["lr"] == pytest.approx(2e-4)  # step 5: epoch 1
    from gennorm.config import load_config
    from gennorm.train.optim import schedule_factor

    t = load_config(straight / "config.yaml").train
    assert t.max_steps == 15 and schedule_factor(10, t) == pytest.approx(1 - 2 / 3) and schedule_factor(5, t) == 1 - 1 / 3

    # export keeps float32 unless --half
    from safetensors import safe_open

    assert main(["export", str(straight), str(tmp_path / "m32")]) == 0
    assert main(["export", str(straight), str(tmp_path / "m16"), "--half"]) == 0
    for folder, dtype in (("m32", torch.float32), ("m16", torch.float16)):
        with safe_open(str(tmp_path / folder / "generator.safetensors"), "pt") as f:
            assert {f.get_tensor(k).dtype for k in f.keys() if f.get_tensor(k).is_floating_point()} == {dtype}


def test_fine_tuning_starts_from_an_imported_folder(imported):
    from gennorm.config import load_config
    from gennorm.networks.checkpoint import read_safetensors
    from gennorm.train.loop import make_task

    cfg = load_config("cyclegan-classic", [f"model.init_from={imported['old']}", "model.ngf=8", "train.device=cpu"])
    task = make_task(cfg, torch.device("cpu"))
    want = read_safetensors(imported["old"] / "generator.safetensors")[0]
    got = task.nets["G_A"].state_dict()
    assert all(torch.equal(got[k], want[k]) for k in want)
    from gennorm.errors import ConfigError

    with pytest.raises(ConfigError, match="does not fit G_A"):
        make_task(load_config("cyclegan-classic", [f"model.init_from={imported['old']}", "train.device=cpu"]),
                  torch.device("cpu"))


def test_imported_discriminator_says_what_it_is(imported, tmp_path):
    """The discriminator file records its build options (as the generator's does), checked when
    model.init_from loads it. An instance-norm D and a PONO-MS D have the same tensors (conv
    weights and biases only): before, either loaded into the other silently."""
    from gennorm.config import load_config
    from gennorm.errors import ConfigError
    from gennorm.networks import build_discriminator
    from gennorm.networks.checkpoint import options_from_metadata, read_safetensors
    from gennorm.train.loop import make_task

    path = imported["unet"] / "discriminator.safetensors"
    options = options_from_metadata(read_safetensors(path)[1], path)
    assert (options["kind"], options["ndf"], options["input_nc"], options["norm"]) == ("discriminator", 8, 6, "batch")
    # a CycleGAN D as their NLayerDiscriminator (ndf 8, n_layers 3) saves it: instance norm has no
    # tensors, so only the five convs' weights and biases, at their Sequential's indices
    g = torch.Generator().manual_seed(0)
    their_d = {}
    for index, (cin, cout) in zip((0, 2, 5, 8, 11), ((3, 8), (8, 16), (16, 32), (32, 64), (64, 1))):
        their_d[f"model.{index}.weight"] = torch.randn(cout, cin, 4, 4, generator=g) * 0.02
        their_d[f"model.{index}.bias"] = torch.randn(cout, generator=g) * 0.02
    torch.save(their_d, tmp_path / "latest_net_D_A.pth")
    out = tmp_path / "cyc"
    assert main(["import", "junyanz", str(RESNET), str(out), "--netD", "basic",
                 "--checkpoint_D", str(tmp_path / "latest_net_D_A.pth")]) == 0
    base = ["model.ngf=8", "model.ndf=8", "train.device=cpu", f"model.init_from={out}"]
    task = make_task(load_config("cyclegan-classic", [*base, "model.d_norm=instance"]), torch.device("cpu"))
    ours = task.nets["D_A"].state_dict()
    assert len(ours) == len(their_d) and all(torch.equal(a, b) for a, b in zip(ours.values(), their_d.values()))
    pono = build_discriminator("basic", 3, 8, 3, norm="pono-ms").state_dict()
    assert {k: v.shape for k, v in pono.items()} == {k: v.shape for k, v in ours.items()}  # the same tensors
    with pytest.raises(ConfigError, match=r"does not fit D_A: .*built with .*instance.*this network has .*pono-ms"):
        make_task(load_config("cyclegan-classic", [*base, "model.d_norm=pono-ms"]), torch.device("cpu"))
