"""The norm registry: the one list of norms, and everything callers need to know about each.

Every network asks here for "a conv followed by norm X"; configs, presets, the study, the zoo
and the demo take their choices, labels and order from `NORMS` (tests/test_house.py ties them).
A norm is named by a string or given as a callable `f(num_features) -> nn.Module` (like
nn.InstanceNorm2d), resolved once by `get_norm_layer`. Classic norms are a conv plus a norm
layer; NC, KN and ConvNorm replace the pair with one layer; PONO-MS keeps instance norm and
tells the generator to add PONO + moment shortcuts around its resampling convs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch.nn as nn

from gennorm.layers.convnorm import ConvNorm2d
from gennorm.layers.kernel_norm import KNConv2d
from gennorm.layers.nc_conv import NCConv2d

# ---- builders: conv(in_ch, out_ch, kernel_size, stride, padding, padding_mode, bias), norm(num_features)


def _plain_conv(in_ch, out_ch, kernel_size, stride, padding, padding_mode, bias):
    return nn.Conv2d(in_ch, out_ch, kernel_size, stride, padding, bias=bias, padding_mode=padding_mode)


def _nc_conv(in_ch, out_ch, kernel_size, stride, padding, padding_mode, bias):
    return NCConv2d(in_ch, out_ch, kernel_size, stride, padding, bias=bias, padding_mode=padding_mode)


def _zeros_only(norm: str, padding_mode: str, padding) -> None:
    if padding_mode != "zeros" and padding:
        raise ValueError(f"norm {norm!r} supports zero padding only, got padding_mode={padding_mode!r}")


def _kn_conv(in_ch, out_ch, kernel_size, stride, padding, padding_mode, bias):
    _zeros_only("kn", padding_mode, padding)
    return KNConv2d(in_ch, out_ch, kernel_size, stride, padding, bias=bias)


def _convnorm_conv(in_ch, out_ch, kernel_size, stride, padding, padding_mode, bias):
    _zeros_only("convnorm", padding_mode, padding)
    return ConvNorm2d(in_ch, out_ch, kernel_size, stride, padding, bias=False, affine=True)


def _spectral_conv(in_ch, out_ch, kernel_size, stride, padding, padding_mode, bias):
    return nn.utils.spectral_norm(_plain_conv(in_ch, out_ch, kernel_size, stride, padding, padding_mode, True))


def _instance(num_features: int):
    return nn.InstanceNorm2d(num_features, affine=False, track_running_stats=False)


def _batch(num_features: int):
    return nn.BatchNorm2d(num_features, affine=True, track_running_stats=True)


def _group(num_features: int):
    groups = next(g for g in (32, 16, 8, 4, 2, 1) if num_features % g == 0)
    return nn.GroupNorm(groups, num_features)


# ---- the registry


@dataclass(frozen=True)
class NormSpec:
    """How to build "conv + norm" for one normalization, and what callers show or decide from it.

    make_conv(in_ch, out_ch, kernel_size, stride, padding, padding_mode, bias) builds the conv;
    make_norm(num_features) the layer after it (None when the conv itself normalizes);
    conv_bias: whether that conv carries a bias (yes when nothing after it has a shift).
    positional: the generator adds PONO after its downsampling convs and moment shortcuts
    before its upsampling convs ("ms" static, "dms" dynamic).
    label / description: how the zoo, the demo and the presets name it.
    decoder: the generator's default upsampling ("resize" for the fused norms defined on direct
    convs, else the classic "transpose").
    statistics: what its activation statistics are computed over — "window" (each conv window:
    NC, KN), "instance" (each sample's whole feature map), "batch" (the batch in training, running
    averages in eval), "none" (no activation statistics), "fourier" (ConvNorm: the kernel's
    spectrum at the input's size). A generator translates tile by tile exactly as a whole image
    only when every norm in it is "window" or "none" ("batch" too, in eval): see `tiles_exactly`.
    baseline: a classic norm (the demo's and study's reference column).
    preset: `gennorm train` has pix2pix-NAME and cyclegan-NAME presets for it.
    """

    name: str
    make_conv: Callable
    make_norm: Callable | None
    conv_bias: bool
    label: str
    description: str
    statistics: str
    positional: str | None = None
    decoder: str = "transpose"
    baseline: bool = False
    preset: bool = False

    def tiles_exactly(self, training: bool = False) -> bool:
        """True when a network of this norm gives the same output on tiles as on the whole image."""
        return self.statistics in ("window", "none") or (self.statistics == "batch" and not training)


# In display order: the classic baselines, then the convolution-centric norms.
NORMS: dict[str, NormSpec] = {spec.name: spec for spec in (
    NormSpec("instance", _plain_conv, _instance, True, "InstanceNorm", "instance norm (the classic baseline)",
             "instance", baseline=True, preset=True),
    NormSpec("batch", _plain_conv, _batch, False, "BatchNorm", "batch norm", "batch", baseline=True),
    NormSpec("group", _plain_conv, _group, False, "GroupNorm", "group norm", "instance", baseline=True),
    NormSpec("none", _plain_conv, None, True, "no norm", "no normalization", "none", baseline=True),
    NormSpec("spectral", _spectral_conv, None, True, "spectral", "spectral norm", "none", baseline=True),
    NormSpec("pono-ms", _plain_conv, _instance, True, "PONO-MS", "PONO + moment shortcuts", "instance",
             positional="ms", preset=True),
    NormSpec("pono-dms", _plain_conv, _instance, True, "PONO-DMS", "PONO + dynamic moment shortcuts", "instance",
             positional="dms"),
    NormSpec("nc", _nc_conv, None, True, "NC", "normalized convolution (NC)", "window", decoder="resize",
             preset=True),
    NormSpec("kn", _kn_conv, None, True, "KN", "kernel-normalized convs (KNConv)", "window", decoder="resize",
             preset=True),
    NormSpec("convnorm", _convnorm_conv, None, False, "ConvNorm", "ConvNorm (Fourier preconditioning)", "fourier"),
)}

PRESET_NORMS: tuple[str, ...] = tuple(name for name, spec in NORMS.items() if spec.preset)


def get_norm_layer(norm) -> NormSpec:
    """Resolve a norm name (see NORMS) or a callable norm factory to a NormSpec."""
    if isinstance(norm, NormSpec):
        return norm
    if isinstance(norm, str):
        key = norm.lower().replace("_", "-")
        if key not in NORMS:
            raise ValueError(f"unknown norm {norm!r}; known norms: {', '.join(NORMS)}")
        return NORMS[key]
    if callable(norm):
        # A user's norm layer factory: affine norms make the conv bias redundant, as in the classic code.
        probe = norm(4)
        has_shift = getattr(probe, "bias", None) is not None
        name = getattr(norm, "__name__", "custom")
        return NormSpec(name, _plain_conv, norm, conv_bias=not has_shift, label=name, description=name,
                        statistics="instance")
    raise TypeError(f"norm must be a name or a callable, got {type(norm).__name__}")


def create_norm(norm, num_features: int):
    """The standalone norm layer of a NormSpec (nn.Identity where the conv normalizes itself)."""
    spec = get_norm_layer(norm)
    return spec.make_norm(num_features) if spec.make_norm is not None else nn.Identity()


def conv_norm(norm, in_ch: int, out_ch: int, kernel_size, stride=1, padding=0, padding_mode="zeros",
              bias: bool | None = None):
    """"Conv followed by norm" for any norm: nn.Sequential(conv, norm) or one fused layer.

    bias=None uses the norm's default (conv_bias); the classic configurations rely on it.
    """
    spec = get_norm_layer(norm)
    conv = spec.make_conv(in_ch, out_ch, kernel_size, stride, padding, padding_mode,
                          spec.conv_bias if bias is None else bias)
    if spec.make_norm is None:
        return conv
    return nn.Sequential(conv, spec.make_norm(out_ch))
