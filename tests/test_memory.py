"""The memory planner (gennorm/networks/memory.py): the bytes it traces on fake tensors equal the
bytes autograd really saves for backward in a real CPU forward; the state it adds up is the
networks' parameters x (1 + 1 + 2 [+ 1 EMA]); `gennorm nets summary` prints it."""
from __future__ import annotations

import pytest
import torch

from gennorm.cli import main
from gennorm.networks import build_discriminator, build_generator
from gennorm.networks.memory import plan_memory, saved_bytes


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


@pytest.mark.parametrize("task", ["pix2pix", "cyclegan"])
def test_plan_matches_real_forwards_and_counts_state(task):
    kw = dict(size=32, batch=2, ngf=8, ndf=8, ema=True)
    arch, norm = ("unet_128", "batch") if task == "pix2pix" else ("resnet_6blocks", "instance")
    kw["size"] = 128 if task == "pix2pix" else 32
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
    assert len(fake.phases["G backward"]) == (2 if task == "pix2pix" else 8)


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


def test_train_prints_the_estimate_on_a_gpu_only(monkeypatch):
    from types import SimpleNamespace

    from gennorm.config import load_config, set_key
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
