"""ConvNorm2d against the literal definition of docs/SPEC.md section 4, in float64."""
from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from gennorm.layers.convnorm import ConvNorm2d, schedule_momentum

@pytest.fixture(autouse=True)
def _float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def literal_V(weight: torch.Tensor, P: int, Q: int, eps: float) -> torch.Tensor:
    """V[o, u, v] = (sum_c |FFT2_PxQ(W[o, c])[u, v]|^2 + eps)^(-1/2): each kernel zero-padded to P x Q."""
    o, c, kh, kw = weight.shape
    padded = torch.zeros(o, c, P, Q, dtype=torch.complex128)
    padded[:, :, :kh, :kw] = weight.detach().to(torch.complex128)
    spectrum = torch.fft.fft2(padded)  # complex [O, C, P, Q]
    power = (spectrum * spectrum.conj()).real.sum(1)  # sum_c |.|^2
    return (power + eps) ** -0.5  # [O, P, Q]


def literal_convnorm(layer: ConvNorm2d, x: torch.Tensor, V_weight: torch.Tensor | None = None) -> torch.Tensor:
    """The definition, step by step, with complex FFTs; V from V_weight (default: the layer's weight)."""
    W = layer.weight
    (kh, kw), (sh, sw), (ph, pw) = layer.kernel_size, layer.stride, layer.padding
    H, Wd = x.shape[-2:]
    Ho, Wo = (H + 2 * ph - kh) // sh + 1, (Wd + 2 * pw - kw) // sw + 1
    # Padding beyond k-1: ConvNorm of x zero-padded by the excess (module docstring).
    eh, ew = max(ph - kh + 1, 0), max(pw - kw + 1, 0)
    x = F.pad(x, (ew, ew, eh, eh))
    y = F.conv2d(x, W, None, 1, (kh - 1, kw - 1))  # full conv [N, O, P, Q]
    P, Q = y.shape[-2:]
    V = literal_V(W if V_weight is None else V_weight, P, Q, layer.eps)
    z = torch.fft.ifft2(torch.fft.fft2(y.to(torch.complex128)) * V).real
    rows = [kh - 1 - ph + eh + sh * i for i in range(Ho)]
    cols = [kw - 1 - pw + ew + sw * j for j in range(Wo)]
    out = z[:, :, rows][:, :, :, cols]
    if layer.bias is not None:
        out = out + layer.bias.view(1, -1, 1, 1)
    if layer.affine:
        out = out * layer.scale.view(1, -1, 1, 1) + layer.shift.view(1, -1, 1, 1)
    return out


def _randomize(layer: ConvNorm2d) -> ConvNorm2d:
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn_like(p))
    return layer


CASES = list(itertools.product([1, 3, 4], [1, 2], [0, 1, 2], [True, False], [True, False]))


@pytest.mark.parametrize("k,s,p,bias,affine", CASES)
def test_matches_literal_definition(k, s, p, bias, affine):
    torch.manual_seed(k * 100 + s * 10 + p)
    layer = _randomize(ConvNorm2d(3, 4, k, s, p, bias=bias, affine=affine))
    x = torch.randn(2, 3, 7, 6)
    out = layer(x)
    reference = nn.Conv2d(3, 4, k, s, p)(x)
    assert out.shape == reference.shape
    torch.testing.assert_close(out, literal_convnorm(layer, x), rtol=1e-10, atol=1e-10)


def test_patchgan_layer_and_rectangular_kernel():
    torch.manual_seed(0)
    layer = _randomize(ConvNorm2d(3, 5, 4, stride=2, padding=1, bias=False))
    x = torch.randn(1, 3, 16, 16)
    out = layer(x)
    assert out.shape == (1, 5, 8, 8) == nn.Conv2d(3, 5, 4, 2, 1)(x).shape
    torch.testing.assert_close(out, literal_convnorm(layer, x), rtol=1e-10, atol=1e-10)
    rect = _randomize(ConvNorm2d(2, 3, (2, 3), stride=(1, 2), padding=(0, 3)))
    x = torch.randn(1, 2, 5, 6)
    assert rect(x).shape == nn.Conv2d(2, 3, (2, 3), (1, 2), (0, 3))(x).shape
    torch.testing.assert_close(rect(x), literal_convnorm(rect, x), rtol=1e-10, atol=1e-10)


def test_input_smaller_than_kernel_lags_alias():
    torch.manual_seed(1)
    layer = _randomize(ConvNorm2d(2, 2, 4, padding=2))  # 2x2 input: P = 5 < 2k-1 = 7
    x = torch.randn(1, 2, 2, 2)
    torch.testing.assert_close(layer(x), literal_convnorm(layer, x), rtol=1e-10, atol=1e-10)


def test_gradcheck():
    torch.manual_seed(2)
    layer = _randomize(ConvNorm2d(2, 2, 3, stride=2, padding=1))
    x = torch.randn(1, 2, 5, 4, requires_grad=True)
    layer(x)  # one training step sets running_V for this size
    layer.eval()  # eval: V is the stored running_V, a constant, so every gradient is exact
    params = (x, layer.weight, layer.bias, layer.scale, layer.shift)
    assert torch.autograd.gradcheck(lambda *_: layer(x), params)
    layer.train()  # training: V is detached, so the gradient w.r.t. x is exact too
    assert torch.autograd.gradcheck(lambda inp: layer(inp), (x,))


def test_running_V_schedule():
    assert schedule_momentum(0) == 1.0
    assert schedule_momentum(20000) == pytest.approx(0.5)
    assert schedule_momentum(10000) == pytest.approx((math.cos(math.pi / 4) + 1) / 2)
    assert schedule_momentum(10**6) == 0.01
    torch.manual_seed(3)
    layer = _randomize(ConvNorm2d(2, 3, 3, padding=1))
    x = torch.randn(1, 2, 6, 5)
    assert layer.running_V.numel() == 0 and int(layer.num_batches_tracked) == 0
    layer(x)  # t = 0: running_V is V
    P, Q = 8, 7
    first = literal_V(layer.weight, P, Q, layer.eps)[..., : Q // 2 + 1]
    torch.testing.assert_close(layer.running_V, first)
    assert layer.running_V_size.tolist() == [P, Q] and int(layer.num_batches_tracked) == 1
    layer.num_batches_tracked.fill_(10000)
    _randomize(layer)
    layer(x)
    a = (math.cos(math.pi / 4) + 1) / 2
    expected = a * literal_V(layer.weight, P, Q, layer.eps)[..., : Q // 2 + 1] + (1 - a) * first
    torch.testing.assert_close(layer.running_V, expected)
    assert int(layer.num_batches_tracked) == 10001


def test_fixed_momentum_and_1x1():
    torch.manual_seed(4)
    layer = _randomize(ConvNorm2d(3, 2, 1, momentum=0.25))
    x = torch.randn(1, 3, 4, 4)
    layer(x)
    first = (layer.weight.detach().square().sum((1, 2, 3)) + layer.eps) ** -0.5
    torch.testing.assert_close(layer.running_V, first)
    _randomize(layer)
    layer(torch.randn(1, 3, 5, 3))  # 1x1: V does not depend on the size
    second = (layer.weight.detach().square().sum((1, 2, 3)) + layer.eps) ** -0.5
    torch.testing.assert_close(layer.running_V, 0.25 * second + 0.75 * first)


def test_eval_uses_running_V_or_recomputes_for_other_sizes():
    torch.manual_seed(5)
    layer = _randomize(ConvNorm2d(2, 3, 3, stride=2, padding=1))
    x = torch.randn(1, 2, 6, 6)
    layer(x)
    old_weight = layer.weight.detach().clone()
    _randomize(layer)  # now the running V and V of the current weights differ
    layer.eval()
    with torch.no_grad():
        torch.testing.assert_close(layer(x), literal_convnorm(layer, x, V_weight=old_weight))
        other = torch.randn(2, 2, 9, 7)
        torch.testing.assert_close(layer(other), literal_convnorm(layer, other))
    assert int(layer.num_batches_tracked) == 1  # eval changes nothing


def test_eval_before_any_training_step():
    layer = _randomize(ConvNorm2d(2, 2, 3, padding=1)).eval()
    x = torch.randn(1, 2, 4, 4)
    torch.testing.assert_close(layer(x), literal_convnorm(layer, x))


def test_state_dict_round_trip(tmp_path):
    torch.manual_seed(6)
    layer = _randomize(ConvNorm2d(2, 3, 4, stride=2, padding=1))
    x = torch.randn(1, 2, 8, 8)
    for _ in range(3):
        layer(x)
    state = layer.state_dict()
    assert {"weight", "bias", "scale", "shift", "running_V", "running_V_size", "num_batches_tracked"} <= set(state)
    torch.save(state, tmp_path / "convnorm.pt")
    fresh = ConvNorm2d(2, 3, 4, stride=2, padding=1)
    fresh.load_state_dict(torch.load(tmp_path / "convnorm.pt", weights_only=True))
    assert int(fresh.num_batches_tracked) == 3
    torch.testing.assert_close(fresh.running_V, layer.running_V)
    torch.testing.assert_close(fresh.eval()(x), layer.eval()(x))
    conv_keys = set(nn.Conv2d(2, 3, 4).state_dict())
    assert conv_keys <= set(state)  # same names as nn.Conv2d for weight and bias


def test_errors():
    layer = ConvNorm2d(3, 2, 3)
    with pytest.raises(ValueError, match="4 dims"):
        layer(torch.randn(3, 5, 5))
    with pytest.raises(ValueError, match="3 input channels"):
        layer(torch.randn(1, 2, 5, 5))
    with pytest.raises(TypeError, match="floating-point"):
        layer(torch.ones(1, 3, 5, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="larger than the padded input"):
        layer(torch.randn(1, 3, 2, 5))
    with pytest.raises(ValueError, match="momentum"):
        ConvNorm2d(3, 2, 3, momentum=0)


def test_padding_beyond_the_kernel_in_one_direction():
    """Padding larger than k - 1 in height only (2 extra rows; the width's padding is inside the kernel): the
    full grid of the zero-padded input, P = H + 2 * 2 + kh - 1, against the literal definition."""
    torch.manual_seed(9)
    layer = _randomize(ConvNorm2d(3, 4, (2, 3), 1, (3, 1)))
    x = torch.randn(2, 3, 5, 6)
    out = layer(x)
    assert out.shape == nn.Conv2d(3, 4, (2, 3), 1, (3, 1))(x).shape
    torch.testing.assert_close(out, literal_convnorm(layer, x), rtol=1e-10, atol=1e-10)
    assert tuple(layer.running_V_size.tolist()) == (5 + 2 * 2 + 1, 6 + 2)


def test_defaults_factory_and_affine_off():
    """ConvNorm2d's defaults (stride 1, no padding, eps 1e-5, the cosine schedule, affine, a bias), every parameter
    and buffer made with the given dtype / device (the step counters as int64), bias=False without a bias,
    affine=False without scale / shift (None, not in the state dict)."""
    layer = ConvNorm2d(3, 4, 3)
    assert (layer.stride, layer.padding, layer.eps, layer.momentum, layer.affine) == ((1, 1), (0, 0), 1e-5, None, True)
    assert layer.bias is not None and ConvNorm2d(3, 4, 3, bias=False).bias is None
    for device in ("cpu", "meta"):
        made = ConvNorm2d(3, 4, 3, device=device, dtype=torch.float32)
        assert {k: (v.dtype, v.device.type) for k, v in made.state_dict().items()} == {
            "weight": (torch.float32, device), "bias": (torch.float32, device), "scale": (torch.float32, device),
            "shift": (torch.float32, device), "running_V": (torch.float32, device),
            "running_V_size": (torch.int64, device), "num_batches_tracked": (torch.int64, device)}
    plain = ConvNorm2d(3, 4, 3, affine=False)
    assert plain.scale is None and plain.shift is None and not {"scale", "shift"} & set(plain.state_dict())


def test_momentum_range_and_error_messages():
    """momentum in (0, 1]: 1 is allowed, 1.5 is not; the errors name the layer, the argument and the sizes."""
    ConvNorm2d(3, 2, 3, momentum=1)
    with pytest.raises(ValueError, match=r"^ConvNorm2d: momentum must be in \(0, 1\] or None"):
        ConvNorm2d(3, 2, 3, momentum=1.5)
    for kwargs, name in (({"kernel_size": 0}, "kernel_size"), ({"kernel_size": 3, "stride": 0}, "stride"),
                         ({"kernel_size": 3, "padding": -1}, "padding")):
        with pytest.raises(ValueError, match=rf"^ConvNorm2d: {name} must be an int >= "):
            ConvNorm2d(3, 2, **kwargs)
    layer = ConvNorm2d(3, 2, 5, padding=1)
    with pytest.raises(ValueError, match=r"^ConvNorm2d expects input of shape"):
        layer(torch.randn(3, 5, 5))
    with pytest.raises(ValueError, match=r"^ConvNorm2d: kernel size \(5, 5\) is larger than the padded input "
                                         r"\(4, 7\) \(input \(2, 5\), padding \(1, 1\)\)$"):
        layer(torch.randn(1, 3, 2, 5))
    with pytest.raises(ValueError, match=r"\(7, 4\) \(input \(5, 2\)"):
        layer(torch.randn(1, 3, 5, 2))
    assert layer(torch.randn(1, 3, 3, 3)).shape == (1, 2, 1, 1)  # exactly the kernel's size fits


@pytest.mark.parametrize("k", [1, 3])
def test_half_inputs_keep_their_dtype(k):
    """A bfloat16 layer on bfloat16 input: the FFT runs in float32, the output and running_V stay bfloat16 and
    equal the float64 layer to bfloat16 precision (1x1: V is one scale per output channel)."""
    torch.manual_seed(k)
    layer = _randomize(ConvNorm2d(3, 4, k, padding=k // 2))
    x = torch.randn(2, 3, 6, 6)
    want = layer(x)
    half = ConvNorm2d(3, 4, k, padding=k // 2).to(torch.bfloat16)
    half.load_state_dict(layer.state_dict())
    half.running_V = half.running_V.new_empty(0)
    half.num_batches_tracked.zero_()
    got = half(x.to(torch.bfloat16))
    assert got.dtype == torch.bfloat16 and half.running_V.dtype == torch.bfloat16
    assert ((got.double() - want).norm() / want.norm()) < 3e-2


def test_reset_running_stats_and_a_state_without_running_V():
    """reset_running_stats empties running_V and zeroes the size and the step (eval then recomputes V); a state
    dict without running_V loads with strict=False and reports it missing."""
    torch.manual_seed(4)
    layer = _randomize(ConvNorm2d(2, 2, 3, padding=1))
    x = torch.randn(1, 2, 5, 5)
    layer(x)
    layer(x)
    layer.reset_running_stats()
    assert layer.running_V.shape == (0,) and layer.running_V.dtype == layer.weight.dtype
    assert layer.running_V_size.tolist() == [0, 0] and int(layer.num_batches_tracked) == 0
    torch.testing.assert_close(layer.eval()(x), literal_convnorm(layer, x))
    state = {k: v for k, v in layer.state_dict().items() if k != "running_V"}
    result = ConvNorm2d(2, 2, 3, padding=1).load_state_dict(state, strict=False)
    assert result.missing_keys == ["running_V"]
