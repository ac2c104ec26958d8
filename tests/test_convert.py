"""gennorm.convert: any conv net's Conv2d -> norm pairs become NC / KN convs holding the same weights."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from gennorm.layers.convert import convert_norms


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("norm", ["nc", "kn"])
def test_resnet18_every_pair_replaced_forward_and_backward(norm):
    torchvision = pytest.importorskip("torchvision")
    from gennorm.layers import KNConv2d, NCConv2d

    model = torchvision.models.resnet18()  # random weights, nothing downloaded
    before = _count(model)
    bns = [(n, m.num_features) for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]
    weights = {n: m.weight.detach().clone() for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    model, report = convert_norms(model, norm)
    assert len(report.converted) == len(bns) == 20 and not report.skipped
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    kind = NCConv2d if norm == "nc" else KNConv2d
    convs = {n: m for n, m in model.named_modules() if isinstance(m, kind)}
    assert len(convs) == 20 and all(torch.equal(convs[n].weight, weights[n]) for n in convs)
    # each BN (2C parameters) is gone; each converted conv gained a bias (C): resnet18's convs have none
    assert _count(model) == before - sum(c for _, c in bns)
    x = torch.randn(2, 3, 64, 64, requires_grad=True)
    y = model(x)
    y.square().mean().backward()
    assert y.shape == (2, 1000) and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(m.weight.grad is not None for m in convs.values())


def test_gennorm_instance_generator_converts_all_but_the_transposed_convs():
    from gennorm.layers import NCConv2d
    from gennorm.networks import build_generator

    G = build_generator("resnet_6blocks", ngf=8, norm="instance")
    before = _count(G)
    G, report = convert_norms(G, "nc", torch.zeros(1, 3, 32, 32))
    assert len(report.converted) == 1 + 2 + 2 * 6  # stem, two downs, two convs per block
    assert [name for name, _ in report.skipped] == ["up.0.0.0", "up.1.0.0"]
    assert all("ConvTranspose2d" in why for _, why in report.skipped)
    assert _count(G) == before  # instance norm has no parameters; the convs keep their biases
    assert sum(isinstance(m, NCConv2d) for m in G.modules()) == 15
    out = G(torch.randn(1, 3, 32, 32))
    assert out.shape == (1, 3, 32, 32) and torch.isfinite(out).all()


def test_converted_conv_is_the_literal_nc_of_the_same_weights():
    import torch.nn.functional as F
    from literal import nc_conv

    model = nn.Sequential(nn.Conv2d(4, 6, 3, padding=1, bias=False), nn.GroupNorm(2, 6), nn.ReLU())
    weight = model[0].weight.detach().clone().double()
    model, report = convert_norms(model.double(), "nc", torch.zeros(1, 4, 8, 8, dtype=torch.float64))
    assert report.converted == [("0", "1")] and isinstance(model[1], nn.Identity)
    x = torch.randn(2, 4, 8, 8, dtype=torch.float64)
    bias = torch.zeros(6, dtype=torch.float64)  # GroupNorm's shift (0 at init) became the bias
    want = torch.relu(nc_conv(F.pad(x, (1, 1, 1, 1)), weight, bias, (1, 1), (1, 1), 1, 1e-5))
    torch.testing.assert_close(model(x), want, rtol=1e-10, atol=1e-10)


def test_what_cannot_be_converted_is_said():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, dilation=1, padding_mode="reflect"), nn.BatchNorm2d(4))
    _, report = convert_norms(model, "kn")
    assert report.converted == [] and "zero padding" in report.skipped[0][1]
    with pytest.raises(ValueError, match="norm must be one of"):
        convert_norms(nn.Conv2d(3, 3, 1), "batch")
    with pytest.raises(ValueError, match="no nn.Conv2d"):
        convert_norms(nn.Linear(3, 3), "nc")


def test_top_level_convert_prints_the_report(capsys):
    import gennorm

    model = gennorm.convert(nn.Sequential(nn.Conv2d(3, 4, 3), nn.InstanceNorm2d(4)))
    assert isinstance(model[1], nn.Identity) and "converted 1 conv + norm pairs: 0+1" in capsys.readouterr().err


def test_converted_convs_keep_their_arguments_and_the_norms_shift():
    """The new conv has the old one's dilation, groups, stride, padding mode and dtype and a bias equal to the
    norm's shift (a trained BatchNorm's); KN keeps groups and stride; on the meta device the new conv is made
    there too; with no example the model runs once on zeros [1, C, 64, 64] of its own device and dtype;
    the default target is NC."""
    from gennorm.layers import KNConv2d, NCConv2d

    bn = nn.BatchNorm2d(4)
    with torch.no_grad():
        bn.bias.copy_(torch.arange(4.0))
    model = nn.Sequential(nn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=2, padding_mode="reflect"), bn).double()
    seen = []
    model[0].register_forward_pre_hook(lambda m, args: seen.append((tuple(args[0].shape), args[0].dtype)))
    model, report = convert_norms(model)
    assert seen == [((1, 4, 64, 64), torch.float64)] and report.converted == [("0", "1")]
    new = model[0]
    assert isinstance(new, NCConv2d) and (new.dilation, new.groups, new.padding, new.padding_mode) == (
        (2, 2), 2, (2, 2), "reflect")
    assert new.weight.dtype == torch.float64 and torch.equal(new.bias, torch.arange(4.0, dtype=torch.float64))
    kn, _ = convert_norms(nn.Sequential(nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2), nn.InstanceNorm2d(6)),
                          "kn", torch.zeros(1, 4, 8, 8))
    assert isinstance(kn[0], KNConv2d) and (kn[0].groups, kn[0].stride) == (2, (2, 2))
    assert torch.equal(kn[0].bias, torch.zeros(6))  # InstanceNorm2d without affine: no shift, the bias starts at 0
    meta, _ = convert_norms(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).to("meta"), "nc")
    assert meta[0].weight.device.type == "meta" and isinstance(meta[0], NCConv2d)


class _Fork(nn.Module):
    """conv -> (bn, relu): the conv's output feeds two layers."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn, self.relu = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + self.relu(y)


def test_the_report_names_each_pair_it_skips_and_goes_on():
    """Each skipped pair has its exact reason, and the pairs after it are still converted: a conv feeding two
    layers, a transposed conv, a dilated conv for KN, a norm after a ReLU (no Conv2d output feeds it)."""
    x = torch.zeros(1, 3, 8, 8)
    model = nn.Sequential(_Fork(), nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4))
    _, report = convert_norms(model, "nc", x)
    assert report.skipped == [("0.conv", "its output feeds 2 layers, not only 0.bn")]
    assert report.converted == [("1", "2")]
    model = nn.Sequential(nn.ConvTranspose2d(3, 4, 3, padding=1), nn.BatchNorm2d(4),
                          nn.Conv2d(4, 4, 3, padding=2, dilation=2), nn.BatchNorm2d(4),
                          nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(4),
                          nn.Conv2d(4, 4, 3, padding=1), nn.GroupNorm(2, 4))
    _, report = convert_norms(model, "kn", x)
    assert report.skipped == [
        ("0", "ConvTranspose2d feeding 1: NC/KN are defined on direct convolutions"),
        ("2", "KNConv2d supports zero padding (an int or pair) and no dilation only"),
        ("6", "no Conv2d output feeds it directly")]
    assert report.converted == [("7", "8")]
    with pytest.raises(ValueError, match=r"^the model has no nn.Conv2d to convert$"):
        convert_norms(nn.Linear(3, 3), "nc")
