"""Generators and discriminators built from every norm (gennorm.networks; GitHub issue 4).

Parameter counts against docs/SPEC.md section 6 (full size: counting needs no forward pass); forward +
backward of every arch x norm at batch 1, tiny widths and the smallest valid input.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from gennorm.errors import CheckpointError
from gennorm.layers import NORMS, PONO, DynamicMomentShortcut, KNConv2d, MomentShortcut, NCConv2d
from gennorm.networks import (build_discriminator, build_generator, init_weights, load_network_state,
                              summarize)


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def build_or_skip(build, *args, **kwargs):
    """Every norm is implemented now (ConvNorm2d landed): a NotImplementedError is a failure, not a skip."""
    return build(*args, **kwargs)


# --- docs/SPEC.md section 6 ---------------------------------------------------------------------

@pytest.mark.parametrize("arch, norm, expected", [
    ("resnet_9blocks", "instance", 11_378_179),
    ("resnet_6blocks", "instance", 7_837_699),
    ("unet_256", "batch", 54_413_955),
    ("unet_128", "batch", 41_828_995),
    ("resnet_9blocks", "nc", 11_378_179),  # NC convs with bias, resize upsampling
    ("resnet_9blocks", "pono-ms", 11_378_179),  # PONO + MS add no parameters
])
def test_generator_parameter_counts(arch, norm, expected):
    assert n_params(build_generator(arch, norm=norm)) == expected


def test_nc_generator_defaults_to_resize_upsampling():
    net = build_generator("resnet_9blocks", norm="nc")
    assert net.options["upsample"] == "resize"
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in net.modules())
    assert sum(isinstance(m, NCConv2d) for m in net.modules()) == 1 + 2 + 2 * 9 + 2  # stem, down, blocks, up


@pytest.mark.parametrize("arch, norm, expected", [
    ("basic", "instance", 2_764_737),
    ("basic", "batch", 2_765_633),
    ("pixel", "batch", 8_832),
])
def test_discriminator_parameter_counts(arch, norm, expected):
    assert n_params(build_discriminator(arch, norm=norm)) == expected


def test_pono_dms_adds_only_the_shortcut_parameters():
    net = build_generator("resnet_9blocks", norm="pono-dms")
    dms = [m for m in net.modules() if isinstance(m, DynamicMomentShortcut)]
    assert len(dms) == 2
    assert n_params(net) == 11_378_179 + sum(n_params(m) for m in dms)


# --- every arch x norm: builds, runs forward + backward in train and eval mode ---------------------

GENERATOR_CASES = [("resnet_9blocks", 16, 4), ("resnet_6blocks", 16, 4), ("unet_128", 128, 2), ("unet_256", 256, 1)]


@pytest.mark.parametrize("norm", list(NORMS))
@pytest.mark.parametrize("arch, size, ngf", GENERATOR_CASES)
def test_generator_runs_and_keeps_size(arch, size, ngf, norm):
    torch.manual_seed(0)
    net = build_or_skip(build_generator, arch, ngf=ngf, norm=norm, use_dropout=True)
    x = torch.randn(1, 3, size, size)
    for training in (True, False):
        net.train(training)
        net.zero_grad()
        y = net(x)
        assert y.shape == x.shape
        assert torch.isfinite(y).all() and y.abs().max() <= 1  # tanh output
        y.square().mean().backward()
        grads = [p.grad for p in net.parameters() if p.requires_grad]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("norm", list(NORMS))
@pytest.mark.parametrize("arch, size, out", [("basic", 32, 2), ("n_layers", 32, 6), ("pixel", 8, 8)])
def test_discriminator_runs(arch, size, out, norm):
    torch.manual_seed(0)
    net = build_or_skip(build_discriminator, arch, ndf=4, n_layers=2, norm=norm)
    x = torch.randn(1, 3, size, size, requires_grad=True)
    for training in (True, False):
        net.train(training)
        y = net(x)
        assert y.shape == (1, 1, out, out)
        y.mean().backward()
        assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("norm", ["instance", "convnorm", "nc", "kn"])
def test_basic_discriminator_gives_a_30x30_map_on_256(norm):
    net = build_or_skip(build_discriminator, "basic", ndf=2, norm=norm)
    with torch.no_grad():
        assert net(torch.randn(1, 3, 256, 256)).shape == (1, 1, 30, 30)


@pytest.mark.parametrize("arch", ["resnet_9blocks", "unet_128"])
@pytest.mark.parametrize("norm", ["instance", "nc", "kn", "spectral", "pono-ms"])
def test_both_upsampling_modes(arch, norm):
    size = 16 if arch.startswith("resnet") else 128
    for upsample in ("resize", "transpose"):
        net = build_generator(arch, ngf=2, norm=norm, upsample=upsample)
        assert net.options["upsample"] == upsample
        assert any(isinstance(m, nn.ConvTranspose2d) for m in net.modules()) == (upsample == "transpose")
        assert net(torch.randn(1, 3, size, size)).shape == (1, 3, size, size)


def test_fused_norm_with_transpose_upsampling_is_a_biased_transposed_conv():
    net = build_generator("resnet_6blocks", ngf=4, norm="nc", upsample="transpose")
    ups = [m for m in net.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert len(ups) == 2 and all(m.bias is not None for m in ups)


def test_kn_generator_uses_knconv():
    net = build_generator("resnet_6blocks", ngf=4, norm="kn")
    assert sum(isinstance(m, KNConv2d) for m in net.modules()) == 1 + 2 + 2 * 6 + 2
    assert not any(isinstance(m, nn.InstanceNorm2d) for m in net.modules())


# --- PONO-MS ---------------------------------------------------------------------------------------

def test_pono_ms_resnet_applies_moments_of_the_same_resolution():
    torch.manual_seed(0)
    net = build_generator("resnet_6blocks", ngf=4, norm="pono-ms").eval()
    seen = []
    hook = lambda m, inputs, out: seen.append((type(m).__name__, tuple(inputs[0].shape[-2:])))  # noqa: E731
    for m in net.modules():
        if isinstance(m, (PONO, MomentShortcut)):
            m.register_forward_hook(hook)
    net(torch.randn(1, 3, 32, 32))
    assert seen == [("PONO", (16, 16)), ("PONO", (8, 8)), ("MomentShortcut", (8, 8)), ("MomentShortcut", (16, 16))]


def test_pono_ms_changes_the_function_but_not_the_weights():
    torch.manual_seed(0)
    plain = build_generator("resnet_6blocks", ngf=4, norm="instance").eval()
    pono = build_generator("resnet_6blocks", ngf=4, norm="pono-ms").eval()
    pono.load_state_dict(plain.state_dict())
    x = torch.randn(1, 3, 16, 16)
    assert not torch.allclose(plain(x), pono(x))


@pytest.mark.parametrize("arch", ["resnet_6blocks", "unet_128"])
def test_fresh_dynamic_moment_shortcut_equals_the_static_one(arch):
    size = 16 if arch.startswith("resnet") else 128
    torch.manual_seed(0)
    ms = build_generator(arch, ngf=2, norm="pono-ms").eval()
    dms = build_generator(arch, ngf=2, norm="pono-dms").eval()
    missing, unexpected = dms.load_state_dict(ms.state_dict(), strict=False)
    assert not unexpected and all(".net." in k for k in missing)
    x = torch.randn(1, 3, size, size)
    torch.testing.assert_close(ms(x), dms(x))


@pytest.mark.parametrize("arch, levels", [("unet_256", 5), ("unet_128", 4)])
def test_pono_ms_unet_levels(arch, levels):
    net = build_generator(arch, ngf=1, norm="pono-ms")
    assert len(net.shortcuts) == levels and n_params(net) == n_params(build_generator(arch, ngf=1, norm="instance"))


# --- input sizes -------------------------------------------------------------------------------------

@pytest.mark.parametrize("arch, size, multiple", [
    ("resnet_9blocks", 30, 4), ("resnet_6blocks", 18, 4), ("unet_256", 128, 256), ("unet_128", 192, 128)])
def test_bad_input_size_is_a_clear_error(arch, size, multiple):
    net = build_generator(arch, ngf=1)
    with pytest.raises(ValueError, match=rf"{arch}.*multiples of {multiple}.*{size}x{size}"):
        net(torch.randn(1, 3, size, size))


def test_wrong_channel_count_is_a_clear_error():
    with pytest.raises(ValueError, match="expected 3 input channels, got 1"):
        build_generator("resnet_6blocks", ngf=2)(torch.randn(1, 1, 16, 16))


def test_unknown_names_are_clear_errors():
    with pytest.raises(ValueError, match="unknown generator arch 'resnet_12'"):
        build_generator("resnet_12")
    with pytest.raises(ValueError, match="unknown discriminator arch"):
        build_discriminator("patch")
    with pytest.raises(ValueError, match="unknown norm"):
        build_generator("resnet_6blocks", norm="layer")
    with pytest.raises(ValueError, match="unknown upsample"):
        build_generator("resnet_6blocks", upsample="bilinear")
    with pytest.raises(ValueError, match="unknown init_type"):
        build_generator("resnet_6blocks", ngf=2, init_type="uniform")


# --- initialization ----------------------------------------------------------------------------------

def test_same_seed_same_initial_weights():
    def weights(seed):
        torch.manual_seed(seed)
        return build_generator("unet_128", ngf=2, norm="batch").state_dict()
    a, b, c = weights(1), weights(1), weights(2)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_classic_init():
    torch.manual_seed(0)
    net = build_discriminator("basic", norm="batch", ndf=32)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    weight = torch.cat([m.weight.flatten() for m in convs])
    assert abs(weight.std().item() - 0.02) < 2e-3 and abs(weight.mean().item()) < 1e-3
    assert all(m.bias is None or not m.bias.any() for m in convs)
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    bn_weight = torch.cat([m.weight for m in bns])
    assert abs(bn_weight.mean().item() - 1) < 0.01 and not any(m.bias.any() for m in bns)
    # conv bias exactly as the classic code: only with instance norm
    assert all(m.bias is None for m in convs[1:-1])
    inst = [m for m in build_discriminator("basic", ndf=2).modules() if isinstance(m, nn.Conv2d)]
    assert all(m.bias is not None for m in inst)


@pytest.mark.parametrize("init_type", ["normal", "xavier", "kaiming", "orthogonal"])
def test_init_types(init_type):
    torch.manual_seed(0)
    net = build_generator("resnet_6blocks", ngf=4, norm="spectral", init_type=init_type)
    assert net.options["init_type"] == init_type
    assert torch.isfinite(net(torch.randn(1, 3, 16, 16))).all()
    init_weights(net, init_type, 0.5)  # re-initializing in place works too


def test_spectral_init_draws_the_trained_parameter():
    torch.manual_seed(0)
    net = build_generator("resnet_6blocks", ngf=8, norm="spectral")
    origs = [m.weight_orig for m in net.modules() if hasattr(m, "weight_orig")]
    assert origs and abs(torch.cat([w.flatten() for w in origs]).std().item() - 0.02) < 3e-3


# --- options and checkpoints -------------------------------------------------------------------------

def test_options_record_the_build():
    g = build_generator("resnet_6blocks", ngf=8, norm="nc", use_dropout=True)
    assert {k: g.options[k] for k in ("kind", "arch", "input_nc", "output_nc", "ngf", "norm", "use_dropout",
                                      "upsample", "n_blocks")} == {
        "kind": "generator", "arch": "resnet_6blocks", "input_nc": 3, "output_nc": 3, "ngf": 8, "norm": "nc",
        "use_dropout": True, "upsample": "resize", "n_blocks": 6}
    d = build_discriminator("basic", ndf=8, norm="batch")
    assert d.options["kind"] == "discriminator" and d.options["n_layers"] == 3 and d.options["ndf"] == 8
    assert build_generator("resnet_6blocks", ngf=2, norm=nn.InstanceNorm2d).options["norm"] == "callable:InstanceNorm2d"


def test_load_network_state_roundtrip():
    torch.manual_seed(0)
    a = build_generator("resnet_6blocks", ngf=4)
    torch.manual_seed(1)
    b = build_generator("resnet_6blocks", ngf=4)
    load_network_state(b, a.state_dict(), saved_options=a.options)
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    wrapped = {f"module.{k}": v for k, v in a.state_dict().items()}  # saved from DataParallel
    load_network_state(b, wrapped)


def test_load_network_state_names_the_differing_options():
    saved = build_generator("resnet_6blocks", ngf=8, norm="instance")
    net = build_generator("resnet_6blocks", ngf=4, norm="nc")
    with pytest.raises(CheckpointError) as info:
        load_network_state(net, saved.state_dict(), saved_options=saved.options)
    message = str(info.value)
    assert "checkpoint was built with ngf=8, norm='instance', upsample='transpose'" in message
    assert "this network has ngf=4, norm='nc', upsample='resize'" in message
    assert len(message) < 600


def test_load_network_state_same_keys_different_norm():
    saved = build_generator("resnet_6blocks", ngf=4, norm="instance")
    net = build_generator("resnet_6blocks", ngf=4, norm="pono-ms")
    with pytest.raises(CheckpointError, match="norm='instance'.*norm='pono-ms'"):
        load_network_state(net, saved.state_dict(), saved_options=saved.options)


def test_load_network_state_summarizes_without_options():
    saved = build_generator("unet_256", ngf=2, norm="batch").state_dict()
    net = build_generator("resnet_9blocks", ngf=2, norm="instance")
    with pytest.raises(CheckpointError) as info:
        load_network_state(net, saved)
    message = str(info.value)
    assert "missing key(s)" in message and "unexpected key(s)" in message and "more)" in message
    assert len(message) < 800 and message.count("\n") == 0
    wider = build_generator("resnet_9blocks", ngf=4, norm="instance").state_dict()
    with pytest.raises(CheckpointError, match=r"shape mismatch\(es\)"):
        load_network_state(net, wider)


def test_convnorm_discriminator_state_roundtrip_after_training_step():
    torch.manual_seed(0)
    d = build_or_skip(build_discriminator, "basic", ndf=2, norm="convnorm")
    d(torch.randn(1, 3, 32, 32)).mean().backward()  # fills ConvNorm's running statistics
    fresh = build_discriminator("basic", ndf=2, norm="convnorm")
    load_network_state(fresh, d.state_dict(), saved_options=d.options)
    d.eval(), fresh.eval()
    x = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(d(x), fresh(x))


# --- summary and CLI -----------------------------------------------------------------------------------

def test_summarize():
    net = build_generator("resnet_6blocks", ngf=4, norm="pono-ms")
    s = summarize(net, (1, 3, 32, 32))
    assert s.total_params == n_params(net) and s.output_shape == (1, 3, 32, 32)
    assert sum(row[3] for row in s.rows) == s.total_params
    assert any(row[1] == "PONO" and row[2].startswith("[1, 8, 16, 16]") for row in s.rows)
    assert f"total parameters: {s.total_params:,}" in s.table()
    assert net.training  # mode restored


def test_cli_nets_summary(capsys):
    from gennorm.cli import main

    assert main(["nets", "summary", "resnet_6blocks", "--norm", "nc", "--size", "32", "--ngf", "4"]) == 0
    out = capsys.readouterr().out
    assert "NCConv2d" in out and "[1, 3, 32, 32]" in out and "total parameters:" in out
    assert main(["nets", "summary", "basic", "--norm", "batch", "--ndf", "4", "--size", "64"]) == 0
    assert "[1, 1, 6, 6]" in capsys.readouterr().out
    assert main(["nets", "summary", "resnet_6blocks", "--size", "30", "--ngf", "2"]) == 2
    assert "multiples of 4" in capsys.readouterr().err
    assert main(["nets", "summary", "resnet_7blocks"]) == 2
    assert main(["nets", "list"]) == 0
    assert "pono-ms" in capsys.readouterr().out


def test_load_network_state_ignores_options_the_checkpoint_lacks():
    torch.manual_seed(0)
    saved = build_generator("resnet_6blocks", ngf=4)
    older = {k: v for k, v in saved.options.items() if k != "upsample"} | {"init_gain": 0.5}
    load_network_state(build_generator("resnet_6blocks", ngf=4), saved.state_dict(), saved_options=older)


# ---------------------------------------------------------------- the statistics maps (the demo's view)

def test_norm_statistics_equal_their_literal_definitions():
    """NC: std of each padded im2col row (unfold) with eps inside; PONO: its mean/std across channels."""
    import torch.nn.functional as F

    from gennorm.networks.statistics import norm_statistics

    torch.manual_seed(0)
    x = torch.randn(1, 3, 24, 20, dtype=torch.float64) * 0.3 + 5.0  # far from 0: the shift must keep it exact
    conv = NCConv2d(3, 4, 3, stride=2, padding=1, padding_mode="reflect").double()
    (m,) = norm_statistics(nn.Sequential(conv), x)
    rows = F.unfold(F.pad(x, (1, 1, 1, 1), mode="reflect"), 3, stride=2)  # [1, 27, L]
    expected = (rows.var(1, unbiased=False) + conv.eps).sqrt().view(12, 10)
    assert (m.kind, m.name, m.layer, m.input_shape) == ("NC", "window std", "0", (3, 24, 20))
    torch.testing.assert_close(torch.from_numpy(m.values).double(), expected, rtol=1e-5, atol=0)

    pono = PONO()
    maps = norm_statistics(nn.Sequential(pono, nn.Identity()), x)  # PONO returns (x, mean, std)
    assert [(s.name, s.layer) for s in maps] == [("mean", "0 (call 1)"), ("std", "0 (call 1)")]
    torch.testing.assert_close(torch.from_numpy(maps[0].values).double(), x.mean(1)[0], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(torch.from_numpy(maps[1].values).double(),
                               (x.var(1, unbiased=False) + pono.eps).sqrt()[0], rtol=1e-5, atol=0)


@pytest.mark.parametrize("norm, kinds", [("nc", {"NC"}), ("kn", {"KN"}), ("pono-ms", {"PONO"}), ("instance", set())])
def test_norm_statistics_of_each_generator(norm, kinds):
    from gennorm.networks.statistics import has_statistics, norm_statistics

    net = build_generator("resnet_6blocks", 3, 3, 8, norm)
    maps = norm_statistics(net, torch.rand(1, 3, 32, 32) * 2 - 1)
    assert {m.kind for m in maps} == kinds and has_statistics(net) == bool(kinds)
    assert all(np.isfinite(m.values).all() and (m.values > 0).all() for m in maps if m.name != "mean")
    assert len({m.layer + m.name for m in maps}) == len(maps)  # a reused PONO is told apart by its call
