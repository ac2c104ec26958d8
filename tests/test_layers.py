"""NC, KNConv, KernelNorm and PONO against the literal im2col definitions (docs/SPEC.md 1-3), float64."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.testing import assert_close

import literal
from gennorm import PONO, DynamicMomentShortcut, KernelNorm2d, KNConv2d, MomentShortcut, NCConv2d
from gennorm.layers import NORMS, conv_norm, create_norm, get_norm_layer
from gennorm.layers.convnorm import ConvNorm2d

torch.manual_seed(0)
f64 = torch.float64

NC_CASES = [
    # kernel, stride, padding, dilation, groups
    (3, 1, 0, 1, 1),
    (3, 2, 1, 1, 1),
    (3, 1, 2, 2, 2),
    ((3, 2), 2, (1, 2), 1, 4),
    (1, 1, 0, 1, 2),
    (1, 2, 1, 1, 1),
    ((2, 3), 1, (2, 0), (2, 1), 1),
    (3, 1, "same", 2, 4),
    (4, 2, 1, 1, 2),
]


def literal_nc(m: NCConv2d, x):
    return literal.nc_conv(literal.pad_like_conv(x, m), m.weight, m.bias, m.stride, m.dilation, m.groups, m.eps,
                           m.weight_standardization)


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("kernel,stride,padding,dilation,groups", NC_CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_nc_matches_literal_values_and_grads(padding_mode, kernel, stride, padding, dilation, groups, bias):
    m = NCConv2d(8, 8, kernel, stride, padding, dilation, groups, bias=bias, padding_mode=padding_mode).to(f64)
    x = torch.randn(2, 8, 9, 10, dtype=f64, requires_grad=True)
    out = m(x)
    ref = literal_nc(m, x)
    assert_close(out, ref, rtol=1e-10, atol=1e-10)
    g = torch.randn_like(out)
    got = torch.autograd.grad(out, [x, m.weight] + ([m.bias] if bias else []), g)
    want = torch.autograd.grad(ref, [x, m.weight] + ([m.bias] if bias else []), g)
    for a, b in zip(got, want):
        assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_nc_kernel_equal_to_input_and_weight_standardization():
    x = torch.randn(3, 4, 5, 5, dtype=f64)
    m = NCConv2d(4, 6, 5, weight_standardization=True).to(f64)
    out = m(x)
    assert out.shape == (3, 6, 1, 1)
    assert_close(out, literal_nc(m, x), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("groups,padding_mode,impl", [(1, "zeros", "torch"), (2, "reflect", "torch"), (2, "circular", "op")])
def test_nc_gradcheck(groups, padding_mode, impl):
    m = NCConv2d(4, 4, 3, stride=2, padding=1, groups=groups, padding_mode=padding_mode, impl=impl).to(f64)
    x = torch.randn(1, 4, 6, 5, dtype=f64, requires_grad=True)
    w, b = m.weight.detach().clone().requires_grad_(), m.bias.detach().clone().requires_grad_()
    call = lambda x, w, b: torch.func.functional_call(m, {"weight": w, "bias": b}, (x,))  # noqa: E731
    assert torch.autograd.gradcheck(call, (x, w, b))


def test_nc_float32_accuracy_large_mean():
    """x = 300 +- 0.01: E[x^2] - E[x]^2 would cancel; the shift keeps float32 within 1e-3."""
    torch.manual_seed(1)
    for groups, mode in [(1, "zeros"), (2, "reflect")]:
        m = NCConv2d(8, 8, 3, padding=1, groups=groups, padding_mode=mode)
        x = torch.randn(2, 8, 16, 16) * 0.01 + 300
        out = m(x)
        ref = literal_nc(m.to(f64), x.to(f64))
        assert torch.isfinite(out).all()
        rel = (out.to(f64) - ref).norm() / ref.norm()
        assert rel < 1e-3, rel


def test_nc_state_dict_is_conv2d_compatible():
    m = NCConv2d(3, 5, 3, padding=1, eps=1e-3)
    plain = nn.Conv2d(3, 5, 3, padding=1)
    plain.load_state_dict(m.state_dict())
    again = NCConv2d(3, 5, 3, padding=1, eps=1e-3)
    again.load_state_dict(plain.state_dict())
    x = torch.randn(1, 3, 8, 8)
    assert_close(again(x), m(x))


def test_nc_bf16_autocast_cpu():
    m = NCConv2d(4, 4, 3, padding=1)
    x = torch.randn(1, 4, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m(x)
    assert torch.isfinite(out).all()
    assert_close(out.float(), m(x), rtol=0.05, atol=0.05)


# ---- KNConv2d / KernelNorm2d -------------------------------------------------------------


@pytest.mark.parametrize("kernel,stride,padding,groups", [(3, 1, 1, 1), (3, 2, (0, 1, 2, 1), 1), ((2, 3), 1, (1, 0), 2), (1, 1, 0, 1)])
def test_knconv_matches_literal_in_eval(kernel, stride, padding, groups):
    m = KNConv2d(4, 6, kernel, stride, padding, groups=groups).to(f64).eval()
    x = torch.randn(2, 4, 7, 8, dtype=f64, requires_grad=True)
    xp = F.pad(x, m.kn_padding)
    # Statistics over all channels (one group), then the (possibly grouped) conv on the windows.
    rows, (ho, wo) = literal.im2col_rows(xp, m.kernel_size, m.stride, (1, 1), 1)
    z = literal.standardize_rows(rows, m.eps)  # [N, 1, L, C*kh*kw]
    cin = 4 // groups
    z = z.view(2, ho * wo, groups, -1)  # channels are the slowest index of a row
    w = m.weight.view(groups, 6 // groups, -1)
    ref = torch.einsum("gok,nLgk->ngoL", w, z).reshape(2, 6, ho, wo) + m.bias.view(1, -1, 1, 1)
    out = m(x)
    assert_close(out, ref, rtol=1e-10, atol=1e-10)
    g = torch.randn_like(out)
    assert_close(torch.autograd.grad(out, x, g)[0], torch.autograd.grad(ref, x, g)[0], rtol=1e-9, atol=1e-9)
    assert cin * m.kernel_size[0] * m.kernel_size[1] == w.shape[-1]


def test_knconv_dropout_only_on_statistics_in_training():
    m = KNConv2d(3, 4, 3, padding=1, dropout_p=0.5).to(f64).train()
    x = torch.randn(1, 3, 6, 6, dtype=f64)
    torch.manual_seed(5)
    out = m(x)
    torch.manual_seed(5)
    xp = F.pad(x, m.kn_padding)
    dropped = F.dropout(xp, 0.5, training=True)
    ref = literal.knconv(xp, m.weight, m.bias, m.kernel_size, m.stride, m.eps, stats=dropped)
    assert_close(out, ref, rtol=1e-10, atol=1e-10)
    m.eval()  # no dropout in eval: the statistics of the clean windows ...
    clean = literal.knconv(xp, m.weight, m.bias, m.kernel_size, m.stride, m.eps)
    assert_close(m(x), clean, rtol=1e-10, atol=1e-10)
    assert not torch.allclose(out, clean)  # (which training's dropout changed)
    m.dropout_in_eval = True
    assert not torch.equal(m(x), m(x))  # ... unless asked to reproduce the authors' module


@pytest.mark.parametrize("kernel,stride,padding", [(2, 2, 0), (3, 1, 1), ((2, 3), (1, 2), (0, 1, 1, 0))])
def test_kernel_norm_tiles_match_literal(kernel, stride, padding):
    m = KernelNorm2d(kernel, stride, padding).to(f64).eval()
    x = torch.randn(2, 3, 6, 7, dtype=f64, requires_grad=True)
    out = m(x)
    ref = literal.kernel_norm_tiles(F.pad(x, m.padding), m.kernel_size, m.stride, m.eps)
    assert out.shape == ref.shape
    assert_close(out, ref, rtol=1e-10, atol=1e-10)
    g = torch.randn_like(out)
    assert_close(torch.autograd.grad(out, x, g)[0], torch.autograd.grad(ref, x, g)[0], rtol=1e-9, atol=1e-9)


def test_kernel_norm_defaults_checks_and_dropout():
    """KernelNorm2d's defaults (stride 1, no padding, dropout 0.1 off in eval, eps 1e-5), its errors naming the
    layer, a 3x3 kernel on a 3x3 input (one window), and training's dropout on the statistics only: the tiles
    are the clean windows standardized with the moments of dropout(x~) (the authors' module)."""
    m = KernelNorm2d(3)
    assert (m.stride, m.padding, m.eps, m.dropout_p, m.dropout_in_eval) == ((1, 1), (0, 0, 0, 0), 1e-5, 0.1, False)
    assert m.eval()(torch.randn(1, 2, 3, 3)).shape == (1, 2, 3, 3)
    with pytest.raises(ValueError, match=r"^KernelNorm2d: kernel_size must be an int >= 1 or a pair of them, got 0$"):
        KernelNorm2d(0)
    with pytest.raises(ValueError, match=r"^KernelNorm2d: stride must be an int >= 1 or a pair of them, got \(1, 2, 3\)$"):
        KernelNorm2d(3, (1, 2, 3))
    with pytest.raises(ValueError, match=r"^KernelNorm2d expects input of shape \[N, C, H, W\]"):
        m(torch.randn(4, 8, 8))
    with pytest.raises(ValueError, match=r"^KernelNorm2d: .*larger than the padded input"):
        m(torch.randn(1, 2, 2, 8))
    k = KernelNorm2d(2, 2, dropout_p=0.3).to(f64).train()
    x = torch.randn(1, 3, 4, 6, dtype=f64)
    torch.manual_seed(11)
    out = k(x)
    torch.manual_seed(11)
    dropped = F.dropout(x, 0.3, training=True)
    mean, rstd = literal.window_moments(dropped, (2, 2), (2, 2), (1, 1), 1, k.eps)  # [1, 1, 2, 3]
    up = lambda t: t.repeat_interleave(2, 2).repeat_interleave(2, 3)  # noqa: E731
    assert_close(out, (x - up(mean)) * up(rstd), rtol=1e-10, atol=1e-10)  # stride 2 = kernel: tiles are x
    k.eval()
    assert_close(k(x), literal.kernel_norm_tiles(x, (2, 2), (2, 2), k.eps), rtol=1e-10, atol=1e-10)
    k = KernelNorm2d(2, 2, dropout_p=0.3, dropout_in_eval=True).to(f64).eval()
    assert k.dropout_in_eval is True and not torch.equal(k(x), k(x))
    with pytest.raises(ValueError, match="impl must be one of"):
        KernelNorm2d(2, impl="cudnn")(x)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_kernel_norm_far_from_zero_and_half(dtype):
    """Windows of 300 +- 0.01: float32 statistics stay exact only because the centre value is subtracted first;
    bfloat16 inputs give bfloat16 tiles equal to the float64 definition to bfloat16 precision."""
    x = torch.randn(2, 3, 6, 6, dtype=f64) * 0.01 + 300 if dtype == torch.float32 else torch.randn(2, 3, 6, 6, dtype=f64)
    m = KernelNorm2d(3, 1, 1, dropout_p=0.2).eval()
    out = m(x.to(dtype))
    assert out.dtype == dtype
    ref = literal.kernel_norm_tiles(F.pad(x.to(dtype).to(f64), m.padding), m.kernel_size, m.stride, m.eps)
    assert ((out.to(f64) - ref).norm() / ref.norm()) < (1e-3 if dtype == torch.float32 else 1e-2)
    if dtype == torch.float32:  # and in training, the statistics of dropout(x~) - c
        assert torch.isfinite(m.train()(x.float())).all() and m(x.float()).abs().max() < 10


def test_kn_gradcheck():
    m = KNConv2d(3, 2, 3, stride=2, padding=(1, 0, 1, 1), dropout_p=0.0).to(f64)
    x = torch.randn(1, 3, 5, 6, dtype=f64, requires_grad=True)
    assert torch.autograd.gradcheck(m, (x,))
    k = KernelNorm2d(2, 1, dropout_p=0.0).to(f64)
    assert torch.autograd.gradcheck(k, (x,))


def test_kn_two_value_padding_is_height_then_width():
    """padding=(h, w) as in nn.Conv2d: h rows on top and bottom, w columns left and right; the
    reference pads with the literal F.pad order (left, right, top, bottom), not the module's own."""
    x = torch.randn(1, 2, 5, 6, dtype=f64)
    m = KNConv2d(2, 3, 3, padding=(1, 2)).to(f64).eval()
    assert m.kn_padding == (2, 2, 1, 1)
    xp = F.pad(x, (2, 2, 1, 1))  # [1, 2, 7, 10]
    ref = literal.knconv(xp, m.weight, m.bias, m.kernel_size, m.stride, m.eps)
    out = m(x)
    assert out.shape == nn.Conv2d(2, 3, 3, padding=(1, 2))(x.float()).shape == (1, 3, 5, 8)
    assert_close(out, ref, rtol=1e-10, atol=1e-10)
    k = KernelNorm2d((2, 3), 1, (1, 0)).to(f64).eval()
    assert k.padding == (0, 0, 1, 1)
    assert_close(k(x), literal.kernel_norm_tiles(F.pad(x, (0, 0, 1, 1)), (2, 3), (1, 1), k.eps), rtol=1e-10, atol=1e-10)


# ---- PONO and moment shortcuts -----------------------------------------------------------


def test_pono_matches_definition_and_gradcheck():
    x = torch.randn(2, 5, 4, 3, dtype=f64, requires_grad=True)
    for got, want in zip(PONO()(x), literal.pono(x, 1e-5)):
        assert_close(got, want, rtol=1e-10, atol=1e-10)
    assert torch.autograd.gradcheck(lambda t: PONO()(t), (x,))
    y, mean, std = PONO(unbiased=True)(x)
    assert_close(std, torch.sqrt(x.var(1, keepdim=True) + 1e-5))
    # exact up to round-off: MS multiplies back by the same sqrt(var + eps) PONO divided by
    assert_close(MomentShortcut()(*PONO()(x)), x, rtol=1e-12, atol=1e-12)


def test_pono_float32_large_mean():
    x = torch.randn(2, 8, 6, 6) * 0.01 + 300
    y, mean, std = PONO()(x)
    ref = literal.pono(x.to(f64), 1e-5)[0]
    assert torch.isfinite(y).all()
    assert ((y.to(f64) - ref).norm() / ref.norm()) < 1e-3


def test_dynamic_moment_shortcut_starts_as_ms():
    h = torch.randn(2, 4, 6, 6)
    _, mean, std = PONO()(torch.randn(2, 3, 6, 6))
    assert_close(DynamicMomentShortcut()(h, mean, std), MomentShortcut()(h, mean, std))
    with pytest.raises(ValueError, match="do not match"):
        MomentShortcut()(h, mean[..., :3, :3], std[..., :3, :3])


def test_pono_unbiased_is_the_authors_snippet():
    """PONO(unbiased=True), the authors' PyTorch snippet: mean over channels, torch.var's unbiased estimate,
    (x - mean) / std; two channels are enough, one is refused."""
    x = torch.randn(2, 3, 4, 5, dtype=f64)
    y, mean, std = PONO(eps=1e-3, unbiased=True)(x)
    m = x.sum(1, keepdim=True) / 3
    s = torch.sqrt(((x - m) ** 2).sum(1, keepdim=True) / 2 + 1e-3)
    assert_close(mean, m, rtol=1e-12, atol=1e-12)
    assert_close(std, s, rtol=1e-12, atol=1e-12)
    assert_close(y, (x - m) / s, rtol=1e-12, atol=1e-12)
    y, _, _ = PONO(unbiased=True)(torch.randn(1, 2, 1, 4, dtype=f64))  # 2 channels, 1 row
    assert y.shape == (1, 2, 1, 4)
    with pytest.raises(ValueError, match=r"^PONO\(unbiased=True\) needs at least 2 channels$"):
        PONO(unbiased=True)(torch.randn(1, 1, 4, 4))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_pono_half_inputs(dtype):
    """Half inputs: the three outputs in the input's dtype (statistics accumulated in float32), equal to the
    float64 definition to half precision; the impl is passed to the op (an unknown one is refused)."""
    x = (torch.randn(2, 4, 5, 5, dtype=f64) + 3).to(dtype)
    outs = PONO()(x)
    assert [o.dtype for o in outs] == [dtype] * 3
    for got, want in zip(outs, literal.pono(x.to(f64), 1e-5)):
        assert_close(got.to(f64), want, rtol=2e-2, atol=2e-2)
    with pytest.raises(ValueError, match="impl must be one of"):
        PONO(impl="cudnn")(x)


def test_moment_shortcuts_literal():
    """MS(h, mean, std) = h * std + mean; DMS with a trained stack: conv -> ReLU -> conv on cat(mean, std),
    h * (std + dgamma) + (mean + dbeta); its default stack is 2 -> 8 -> 2 with 3x3 kernels, any odd kernel
    keeps the size; a size mismatch names both sizes."""
    g = torch.Generator().manual_seed(3)
    h = torch.randn(2, 4, 6, 7, dtype=f64, generator=g)
    mean = torch.randn(2, 1, 6, 7, dtype=f64, generator=g)
    std = torch.rand(2, 1, 6, 7, dtype=f64, generator=g) + 0.5
    assert_close(MomentShortcut()(h, mean, std), h * std + mean, rtol=1e-12, atol=1e-12)
    dms = DynamicMomentShortcut().to(f64)
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.padding) for c in dms.net[::2]] == [
        (2, 8, (3, 3), (1, 1)), (8, 2, (3, 3), (1, 1))]
    for c in dms.net[::2]:
        nn.init.normal_(c.weight, generator=g)
        nn.init.normal_(c.bias, generator=g)
    z = F.conv2d(F.relu(F.conv2d(torch.cat([mean, std], 1), dms.net[0].weight, dms.net[0].bias, padding=1)),
                 dms.net[2].weight, dms.net[2].bias, padding=1)  # [N, 2, H, W]: (dbeta, dgamma)
    assert_close(dms(h, mean, std), h * (std + z[:, 1:]) + (mean + z[:, :1]), rtol=1e-12, atol=1e-12)
    assert DynamicMomentShortcut(kernel_size=5)(h.float(), mean.float(), std.float()).shape == h.shape
    for shortcut in (MomentShortcut(), DynamicMomentShortcut()):
        name = type(shortcut).__name__
        with pytest.raises(ValueError, match=rf"^{name}: moments of size \(3, 4\) do not match features \(6, 7\)$"):
            shortcut(h.float(), mean[..., :3, :4].float(), std[..., :3, :4].float())


# ---- clear errors ------------------------------------------------------------------------


@pytest.mark.parametrize("layer", [lambda: NCConv2d(4, 4, 3), lambda: KNConv2d(4, 4, 3)])
def test_errors_name_the_problem(layer):
    m = layer()
    with pytest.raises(ValueError, match="4 dims"):
        m(torch.randn(4, 8, 8))
    with pytest.raises(ValueError, match="expects 4 input channels, got 3"):
        m(torch.randn(1, 3, 8, 8))
    with pytest.raises(TypeError, match="floating-point"):
        m(torch.ones(1, 4, 8, 8, dtype=torch.int64))
    with pytest.raises(ValueError, match="larger than the padded input"):
        m(torch.randn(1, 4, 2, 8))


def test_constructor_errors():
    with pytest.raises(ValueError, match="divisible by groups"):
        NCConv2d(6, 4, 3, groups=4)
    with pytest.raises(ValueError, match=r"unknown norm 'layer'.*instance"):
        get_norm_layer("layer")
    with pytest.raises(ValueError, match="padding"):
        KNConv2d(3, 3, 3, padding=(1, 2, 3))
    with pytest.raises(ValueError, match="dropout_p"):
        KernelNorm2d(3, dropout_p=1.5)
    with pytest.raises(TypeError, match="PONO expects"):
        PONO()(torch.ones(1, 2, 3, 3, dtype=torch.int32))


def test_layers_print_their_settings():
    """What print(model) shows for each layer (the settings that change its output), and the conversion report."""
    from gennorm.layers.blur import BlurDownsample, BlurUpsample
    from gennorm.layers.convert import ConversionReport

    assert [repr(m) for m in (
        NCConv2d(3, 4, 3), NCConv2d(3, 4, 3, padding=1, weight_standardization=True, eps=1e-3),
        KNConv2d(3, 4, 3, padding=(1, 2)), KNConv2d(3, 4, 3, dropout_in_eval=True), KernelNorm2d(3),
        PONO(), PONO(eps=1e-3, unbiased=True), ConvNorm2d(3, 4, 3), ConvNorm2d(3, 4, 3, momentum=0.1, affine=False),
        BlurDownsample(4), BlurUpsample(4))] == [
        "NCConv2d(3, 4, kernel_size=(3, 3), stride=(1, 1), eps=1e-05)",
        "NCConv2d(3, 4, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), eps=0.001, weight_standardization=True)",
        "KNConv2d(3, 4, kernel_size=(3, 3), stride=(1, 1), padding=(2, 2, 1, 1), dropout_p=0.05, eps=1e-05)",
        "KNConv2d(3, 4, kernel_size=(3, 3), stride=(1, 1), padding=(0, 0, 0, 0), dropout_p=0.05, eps=1e-05, "
        "dropout_in_eval=True)",
        "KernelNorm2d(kernel_size=(3, 3), stride=(1, 1), padding=(0, 0, 0, 0), dropout_p=0.1, eps=1e-05)",
        "PONO(eps=1e-05)", "PONO(eps=0.001, unbiased=True)",
        "ConvNorm2d(3, 4, kernel_size=(3, 3), stride=(1, 1), eps=1e-05, affine=True)",
        "ConvNorm2d(3, 4, kernel_size=(3, 3), stride=(1, 1), eps=1e-05, affine=False, momentum=0.1)",
        "BlurDownsample(4)", "BlurUpsample(4)"]
    report = ConversionReport()
    assert str(report) == "converted 0 conv + norm pairs"
    report.converted, report.skipped = [("0", "1"), ("2", "3")], [("4", "why")]
    assert str(report) == "converted 2 conv + norm pairs: 0+1, 2+3\nnot converted: 4 (why)"


# ---- registry ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(NORMS))
def test_registry_builds_every_norm(name):
    block = conv_norm(name, 4, 8, 3, stride=2, padding=1)
    out = block(torch.randn(2, 4, 8, 8))
    assert out.shape == (2, 8, 4, 4)
    assert isinstance(create_norm(name, 8), nn.Module)


def test_registry_accepts_callables_and_classic_bias_rule():
    spec = get_norm_layer(nn.BatchNorm2d)
    assert spec.conv_bias is False
    assert get_norm_layer(lambda c: nn.InstanceNorm2d(c)).conv_bias is True
    assert get_norm_layer("Instance").name == "instance"
    assert conv_norm("instance", 3, 4, 3)[0].bias is not None
    assert conv_norm("batch", 3, 4, 3)[0].bias is None


def test_registry_builders_pass_their_arguments():
    """What each entry builds from conv_norm's arguments: NC keeps bias and padding mode; KN keeps bias and
    refuses a non-zero padding mode (naming the norm) unless there is no padding; ConvNorm has no bias (its
    affine shift follows) and is affine; spectral norm wraps a conv with a bias; batch norm is affine with
    running statistics; group norm takes the largest of 32, 16, 8, 4, 2, 1 groups that divides the channels."""
    nc = conv_norm("nc", 3, 4, 3, padding=1, padding_mode="reflect", bias=False)
    assert isinstance(nc, NCConv2d) and nc.bias is None and nc.padding_mode == "reflect"
    assert conv_norm("nc", 3, 4, 3).bias is not None
    kn = conv_norm("kn", 3, 4, 3, padding=1, bias=False)
    assert isinstance(kn, KNConv2d) and kn.bias is None and kn.kn_padding == (1, 1, 1, 1)
    assert conv_norm("kn", 3, 4, 3, padding=0, padding_mode="reflect").bias is not None  # no padding: any mode
    for norm in ("kn", "convnorm"):
        with pytest.raises(ValueError, match=rf"^norm '{norm}' supports zero padding only, got padding_mode='reflect'$"):
            conv_norm(norm, 3, 4, 3, padding=1, padding_mode="reflect")
    cn = conv_norm("convnorm", 3, 4, 3, padding=1, bias=True)
    assert isinstance(cn, ConvNorm2d) and cn.bias is None and cn.affine is True and cn.scale is not None
    sn = conv_norm("spectral", 3, 4, 3, bias=False)
    assert sn.bias is not None and hasattr(sn, "weight_orig")
    bn = create_norm("batch", 6)
    assert bn.affine is True and bn.track_running_stats is True
    assert isinstance(create_norm("instance", 6), nn.InstanceNorm2d) and isinstance(create_norm("nc", 6), nn.Identity)
    assert [create_norm("group", c).num_groups for c in (64, 48, 24, 12, 6, 3, 9, 10)] == [32, 16, 8, 4, 2, 1, 1, 2]


def test_which_norms_tile_exactly():
    """NormSpec.tiles_exactly (tiled translation decides from it): window and no statistics always, batch norm
    in eval only, per-image statistics and ConvNorm's spectrum never; the default is eval."""
    got = {name: (spec.tiles_exactly(), spec.tiles_exactly(training=True)) for name, spec in NORMS.items()}
    assert got == {"instance": (False, False), "batch": (True, False), "group": (False, False),
                   "none": (True, True), "spectral": (True, True), "pono-ms": (False, False),
                   "pono-dms": (False, False), "nc": (True, True), "kn": (True, True), "convnorm": (False, False)}


def test_knconv_defaults_arguments_and_errors():
    """KNConv2d: its nn.Conv2d part has no padding and dilation 1 (the layer pads itself), dtype / device / bias
    reach the parameters, eps and dropout_in_eval are kept (eps 1e-5, dropout 0.05 by default); dropout_p is in
    [0, 1); the statistics drop with dropout_p (0.3 here: not F.dropout's default 0.5); eps and impl reach the op;
    the errors name the layer."""
    m = KNConv2d(3, 4, 3, padding=1)
    assert (m.padding, m.dilation, m.eps, m.dropout_p, m.dropout_in_eval) == ((0, 0), (1, 1), 1e-5, 0.05, False)
    assert KNConv2d(3, 4, 3, bias=False).bias is None and KNConv2d(3, 4, 3, dropout_in_eval=True).dropout_in_eval is True
    made = KNConv2d(3, 4, 3, device="meta", dtype=f64)
    assert made.weight.device.type == "meta" and made.weight.dtype == f64 and made.bias.dtype == f64
    with pytest.raises(ValueError, match=r"^dropout_p must be in \[0, 1\), got 1.0$"):
        KNConv2d(3, 4, 3, dropout_p=1.0)
    with pytest.raises(ValueError, match=r"^padding values must be non-negative ints, got -1$"):
        KNConv2d(3, 4, 3, padding=-1)
    k = KNConv2d(3, 4, 3, padding=1, dropout_p=0.3, eps=0.5).to(f64).train()
    x = torch.randn(1, 3, 5, 5, dtype=f64)
    torch.manual_seed(2)
    out = k(x)
    torch.manual_seed(2)
    xp = F.pad(x, k.kn_padding)
    ref = literal.knconv(xp, k.weight, k.bias, k.kernel_size, k.stride, 0.5, stats=F.dropout(xp, 0.3, training=True))
    assert_close(out, ref, rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="impl must be one of"):
        KNConv2d(3, 4, 3, impl="cudnn")(x.float())
    with pytest.raises(ValueError, match=r"^KNConv2d expects input of shape"):
        m(torch.randn(3, 5, 5))
    with pytest.raises(ValueError, match=r"^KNConv2d: .*larger than the padded input"):
        KNConv2d(3, 4, 5)(torch.randn(1, 3, 4, 8))


def test_knconv_without_dropout_far_from_zero():
    """dropout_p=0 in training takes the no-dropout path (the statistics of the centred input, exact in float32
    for windows of 300 +- 0.01), not dropout(x~) with p=0 (uncentred)."""
    m = KNConv2d(3, 4, 3, padding=1, dropout_p=0.0).train()
    x = torch.randn(1, 3, 6, 6, dtype=f64) * 0.01 + 300
    ref = KNConv2d(3, 4, 3, padding=1, dropout_p=0.0).to(f64)
    ref.load_state_dict(m.state_dict())
    want = ref.eval()(x)
    assert ((m(x.float()).double() - want).norm() / want.norm()) < 1e-3


def test_standardize_weight_is_per_filter():
    """NC's weight standardization: each filter over its C/g * kh * kw values, mean 0 and biased variance 1."""
    from gennorm.layers.nc_conv import standardize_weight

    w = torch.randn(4, 3, 2, 2, dtype=f64) * torch.arange(1, 5, dtype=f64).view(4, 1, 1, 1) + 5
    flat = w.flatten(1)
    want = (flat - flat.mean(1, keepdim=True)) / torch.sqrt(flat.var(1, unbiased=False, keepdim=True) + 1e-5)
    assert_close(standardize_weight(w, 1e-5), want.view_as(w), rtol=1e-12, atol=1e-12)


def test_convert_uses_the_example_input():
    """gennorm.convert traces the model with the given example (a model whose head needs 8 x 8 inputs would fail
    on the default 64 x 64 one)."""
    from gennorm.layers.convert import convert

    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(256, 2))
    out = convert(model, "nc", torch.zeros(1, 3, 8, 8), verbose=False)
    assert isinstance(out[0], NCConv2d) and out(torch.randn(2, 3, 8, 8)).shape == (2, 2)


def test_registry_resolves_names_and_callables():
    """get_norm_layer: underscores read as hyphens, in any case; a callable becomes an instance-statistics spec
    named after it ("custom" for a callable object), probed with 4 channels (GroupNorm(4, c) works), with a conv
    bias only when the probe has no shift (a probe without a bias attribute has none); the errors list the known
    norms / name the type. Instance norm: per image, no affine, no running statistics; the plain conv keeps its
    padding mode; an explicit bias beats the norm's default."""
    assert get_norm_layer("PONO_MS").name == "pono-ms"

    def my_norm(c):
        return nn.GroupNorm(4, c)

    spec = get_norm_layer(my_norm)
    assert (spec.name, spec.label, spec.description, spec.statistics, spec.conv_bias, spec.make_norm) == (
        "my_norm", "my_norm", "my_norm", "instance", False, my_norm)
    block = conv_norm(my_norm, 3, 8, 3)
    assert type(block[0]) is nn.Conv2d and block[0].bias is None and isinstance(block[1], nn.GroupNorm)

    class Factory:
        def __call__(self, c):
            return nn.Identity()

    custom = get_norm_layer(Factory())
    assert (custom.name, custom.conv_bias) == ("custom", True)
    known = "instance, batch, group, none, spectral, pono-ms, pono-dms, nc, kn, convnorm"
    with pytest.raises(ValueError, match=rf"^unknown norm 'layer'; known norms: {known}$"):
        get_norm_layer("layer")
    with pytest.raises(TypeError, match=r"^norm must be a name or a callable, got int$"):
        get_norm_layer(3)
    inst = create_norm("instance", 5)
    assert (inst.num_features, inst.affine, inst.track_running_stats) == (5, False, False)
    assert conv_norm("instance", 3, 4, 3, padding=1, padding_mode="reflect")[0].padding_mode == "reflect"
    assert conv_norm("batch", 3, 4, 3, bias=True)[0].bias is not None


def test_nc_arguments_weight_standardization_and_errors():
    """NCConv2d: stride 1 by default; dtype / device / bias / padding mode reach nn.Conv2d; eps reaches the op;
    weight_standardization standardizes each filter first (NC itself ignores a per-filter offset of the weights,
    not their scale); the errors name the layer (a wrong type, reflect padding too large, a kernel too large)."""
    from gennorm.layers.nc_conv import standardize_weight

    m = NCConv2d(3, 4, 3)
    assert m.stride == (1, 1) and NCConv2d(3, 4, 3, bias=False).bias is None
    assert NCConv2d(3, 4, 3, padding=1, padding_mode="reflect").padding_mode == "reflect"
    made = NCConv2d(3, 4, 3, device="meta", dtype=f64)
    assert made.weight.device.type == "meta" and made.weight.dtype == f64
    x = torch.randn(2, 3, 6, 6, dtype=f64)
    ws = NCConv2d(3, 4, 3, padding=1, eps=0.5, weight_standardization=True).to(f64)
    assert ws.weight_standardization is True
    with torch.no_grad():
        ws.weight.mul_(torch.arange(1, 5, dtype=f64).view(4, 1, 1, 1))
    want = literal.nc_conv(F.pad(x, (1, 1, 1, 1)), standardize_weight(ws.weight, 0.5), ws.bias, (1, 1), (1, 1), 1, 0.5)
    assert_close(ws(x), want, rtol=1e-10, atol=1e-10)
    with pytest.raises(TypeError, match=r"^NCConv2d expects a torch.Tensor, got list$"):
        m([[1.0]])
    with pytest.raises(ValueError, match=r"^NCConv2d"):
        NCConv2d(3, 4, 3, padding=3, padding_mode="reflect")(torch.randn(1, 3, 2, 2))
    with pytest.raises(ValueError, match=r"^NCConv2d: .*larger than the padded input"):
        m(torch.randn(1, 3, 2, 8))


def test_train_eval_modes_do_not_change_nc():
    m = NCConv2d(3, 3, 3, padding=1)
    x = torch.randn(1, 3, 5, 5)
    assert_close(m.train()(x), m.eval()(x))
