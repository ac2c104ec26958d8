"""The memory planner (gennorm/networks/memory.py): the bytes it traces on fake tensors equal the
bytes autograd really saves for backward in a real CPU forward; the state it adds up is the
networks' parameters x (1 + 1 + 2 [+ 1 EMA]); `gennorm nets summary` prints it. CUT's plan is also
checked against the bytes its real training step (CUTTask.train_step) keeps saved."""
from __future__ import annotations

import pytest
import torch

from gennorm.cli import main
from gennorm.networks import build_discriminator, build_generator
from gennorm.networks.memory import plan_for_config, plan_memory, saved_bytes


def _close(a: int, b: int, rel: float = 0.02) -> bool:
    return abs(a - b) <= rel * max(a, b)


@pytest.mark.parametrize("norm", ["instance", "batch", "group", "nc", "kn", "pono-ms", "convnorm", "spectral"])
@pytest.mark.parametrize("amp", ["none", "bf16"])
def test_fake_trace_equals_real_saved_bytes(norm, amp):
    G = build_generator("resnet_6blocks", 3, 3, 8, norm)
    D = build_discriminator("basic", 6, 8, 3, norm)
    for net, shape in ((G, (2, 3, 32, 32)), (D, (2, 6, 32, 32))):
        for kw in ({}, {"input_grad": True, "frozen": True}):
            fake, real = saved_bytes(net, shape, amp=amp, **kw), saved_bytes(net, shape, amp=amp, fake=False, **kw)
            assert real > 0 and _close(fake, real), (type(net).__name__, kw, fake, real)


def test_saved_bytes_count_real_activations():
    """A conv -> relu chain by hand: conv saves its input (x) and relu its output (one storage)."""
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU())
    x_bytes, y_bytes = 2 * 3 * 8 * 8 * 4, 2 * 4 * 8 * 8 * 4
    assert saved_bytes(net, (2, 3, 8, 8), input_grad=True) == x_bytes + y_bytes
    assert saved_bytes(net, (2, 3, 8, 8), input_grad=True, fake=False) == x_bytes + y_bytes
    assert saved_bytes(net, (2, 3, 8, 8), amp="bf16", fake=False) == saved_bytes(net, (2, 3, 8, 8), amp="bf16")


@pytest.mark.parametrize("task", ["pix2pix", "cyclegan", "cut"])
def test_plan_matches_real_forwards_and_counts_state(task):
    from gennorm.train.cut import patch_nce

    kw = dict(size=32, batch=2, ngf=8, ndf=8, ema=True)
    arch, norm = ("unet_128", "batch") if task == "pix2pix" else ("resnet_6blocks", "instance")
    kw["size"] = 128 if task == "pix2pix" else 32
    if task == "cut":  # convnorm: the tap probe that sizes F must leave its running_V alone
        kw.update(num_patches=64, netf_nc=32, nce_loss=patch_nce)
        norm = "convnorm"
    fake = plan_memory(task, arch, norm, **kw)
    real = plan_memory(task, arch, norm, fake=False, **kw)
    assert fake.phases.keys() == real.phases.keys()
    for phase in fake.phases:
        assert _close(fake.phase_bytes(phase), real.phase_bytes(phase)), phase
    params = sum(fake.params.values()) * 4
    generators = sum(n for name, n in fake.params.items() if name.startswith("G")) * 4
    state = dict(fake.state)
    assert state["gradients"] == params and state["Adam moments (2 per parameter)"] == 2 * params
    assert state["EMA of the generators"] == generators
    assert fake.total == fake.state_bytes + max(fake.phase_bytes(p) for p in fake.phases)
    assert len(fake.phases["G backward"]) == {"pix2pix": 2, "cyclegan": 8, "cut": 5}[task]


@pytest.mark.parametrize("preset, norm, batch, size, extra", [
    ("cut", "nc", 2, 32, []),
    pytest.param("cut", "instance", 1, 64, [], marks=pytest.mark.slow),
    ("fastcut", "instance", 2, 32, ["train.nce_batch_negatives=true"]),
])
def test_cut_plan_matches_the_real_step(preset, norm, batch, size, extra):
    from gennorm.config import load_config
    from gennorm.train.cut import CUTTask, patch_nce
    from gennorm.train.memory_probe import measure_cut_step

    cfg = load_config(f"{preset}-{norm}", ["model.ngf=8", "model.ndf=8", "model.g_arch=resnet_6blocks",
                                           f"data.crop_size={size}", "train.device=cpu", "train.progress=false",
                                           "train.num_patches=64", "train.netf_nc=32",
                                           f"train.batch_size={batch}"] + extra)
    plan = plan_for_config(cfg.model, "cut", size, batch, train_cfg=cfg.train, nce_loss=patch_nce)
    task = CUTTask(cfg, torch.device("cpu"))
    assert plan.params == {name: sum(p.numel() for p in net.parameters()) for name, net in task.nets.items()}
    g, flips = torch.Generator().manual_seed(3), set()
    for step in range(2 if cfg.train.flip_equivariance else 1):  # FastCUT: a flipped step and not, the same bytes
        coin = torch.Generator()
        coin.set_state(task.cut_gen.get_state())  # the step's first draw is its flip coin (CUTTask.train_step)
        flips.add(torch.rand((), generator=coin).item() < 0.5)
        data = {k: torch.rand(batch, 3, size, size, generator=g) * 2 - 1 for k in "AB"}
        real = measure_cut_step(task, data)
        keys = plan.phases["G backward"][-1]
        assert "keys" in keys[0]
        for phase in plan.phases:
            assert _close(plan.phase_bytes(phase), real[phase]), (phase, plan.phase_bytes(phase), real[phase])
        assert _close(plan.phase_bytes("G backward") - keys[1], real["G at backward"])
    assert flips == {False, True} or not cfg.train.flip_equivariance


def test_bf16_and_batch_scale_activations():
    one = plan_memory("pix2pix", "resnet_6blocks", "instance", size=32, batch=1, ngf=8, ndf=8)
    four = plan_memory("pix2pix", "resnet_6blocks", "instance", size=32, batch=4, ngf=8, ndf=8)
    half = plan_memory("pix2pix", "resnet_6blocks", "instance", size=32, batch=4, ngf=8, ndf=8, amp="bf16")
    assert four.state_bytes == one.state_bytes and _close(four.activations, 4 * one.activations, 0.01)
    assert half.activations < 0.9 * four.activations  # some ops (instance norm) keep fp32 under autocast


def test_nets_summary_prints_the_plan(capsys):
    assert main(["nets", "summary", "resnet_6blocks", "--norm", "nc", "--size", "32", "--batch", "2", "--ngf", "8",
                 "--ndf", "8", "--task", "cyclegan", "--amp", "bf16", "--ema"]) == 0
    out = capsys.readouterr().out
    assert "training-step memory, estimated (cyclegan, batch 2, 32x32, amp bf16)" in out
    assert "Adam moments" in out and "EMA of the generators" in out and "G_B(G_A(A))" in out and "peak" in out
    assert main(["nets", "summary", "basic", "--norm", "batch", "--size", "64"]) == 0
    assert "training-step memory" not in capsys.readouterr().out
    assert main(["nets", "summary", "resnet_6blocks", "--norm", "instance", "--size", "32", "--ngf", "8", "--ndf", "8",
                 "--task", "cut", "--num-patches", "16", "--netf-nc", "32", "--no-nce-idt"]) == 0
    out = capsys.readouterr().out
    assert "estimated (cut, batch 1, 32x32, amp none)" in out and "F mlp_sample 32" in out
    assert "NCE keys: G.encode(A)" in out and "NCE_Y" not in out


def test_train_prints_the_estimate_on_a_gpu_only(monkeypatch):
    from types import SimpleNamespace

    from gennorm.config import load_config, set_key
    from gennorm.train.cut import patch_nce
    from gennorm.train.memory_note import memory_note

    cfg = load_config("pix2pix-nc")
    for key, value in (("model.ngf", 8), ("model.ndf", 8), ("data.crop_size", 64), ("train.batch_size", 2)):
        set_key(cfg, key, value)
    assert memory_note(cfg, torch.device("cpu")) is None
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: SimpleNamespace(total_memory=2**20))
    note = memory_note(cfg, torch.device("cuda"))
    plan = plan_memory("pix2pix", cfg.model.g_arch, "nc", size=64, batch=2, ngf=8, ndf=8, d_norm=cfg.model.d_norm)
    assert note.startswith("memory: a training step needs about") and "1.0 MiB" in note and "may not fit" in note
    from gennorm.networks.memory import mib

    assert mib(plan.total) in note
    cfg = load_config("fastcut-nc")
    for key, value in (("model.ngf", 8), ("model.ndf", 8), ("data.crop_size", 64), ("train.batch_size", 2)):
        set_key(cfg, key, value)
    note = memory_note(cfg, torch.device("cuda"))
    plan = plan_for_config(cfg.model, "cut", 64, 2, train_cfg=cfg.train, nce_loss=patch_nce)
    assert note.startswith("memory: a training step needs about") and mib(plan.total) in note and "--task cut" in note
