"""The norm registry: every network asks here for "a conv followed by norm X".

A norm is named by a string (`NORMS`) or given as a callable `f(num_features) -> nn.Module`
(like nn.InstanceNorm2d), resolved once by `get_norm_layer`. Classic norms are a conv plus a
norm layer; NC, KN and ConvNorm replace the pair with one layer; PONO-MS keeps instance norm
and tells the generator to add PONO + moment shortcuts around its resampling convs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch.nn as nn

from gennorm.layers.convnorm import ConvNorm2d
from gennorm.layers.kn_conv import KNConv2d
from gennorm.layers.nc_conv import NCConv2d


def _group_norm(num_features: int) -> nn.GroupNorm:
    groups = next(g for g in (32, 16, 8, 4, 2, 1) if num_features % g == 0)
    return nn.GroupNorm(groups, num_features)


def _plain_conv(in_ch, out_ch, kernel_size, stride, padding, padding_mode, bias):
    return nn.Conv2d(in_ch, out_ch, kernel_size, stride, padding, bias=bias, padding_mode=padding_mode)


def _nc_conv(in_ch, out_ch, kernel_size, stride, padding, padding_mode, bias):
    return NCConv2d(in_ch, out_ch, kernel_size, stride, padding, bias=bias, padding_mode=padding_mode)


def _kn_conv(in_ch, out_ch, kernel_size, stride, padding, padding_mode, bias):
    if padding_mode != "zeros" and padding:
        raise ValueError(f"norm 'kn' supports zero padding only (KNConv2d), got padding_mode={padding_mode!r}")
    return KNConv2d(in_ch, out_ch, kernel_size, stride, padding, bias=bias)


def _convnorm_conv(in_ch, out_ch, kernel_size, stride, padding, padding_mode, bias):
    if padding_mode != "zeros" and padding:
        raise ValueError(f"norm 'convnorm' supports zero padding only (ConvNorm2d), got padding_mode={padding_mode!r}")
    return ConvNorm2d(in_ch, out_ch, kernel_size, stride, padding, bias=False, affine=True)


def _spectral_conv(in_ch, out_ch, kernel_size, stride, padding, padding_mode, bias):
    return nn.utils.spectral_norm(_plain_conv(in_ch, out_ch, kernel_size, stride, padding, padding_mode, True))


@dataclass(frozen=True)
class NormSpec:
    """How to build "conv + norm" for one normalization.

    make_conv(in_ch, out_ch, kernel_size, stride, padding, padding_mode, bias) builds the conv;
    make_norm(num_features) the layer after it (None when the conv itself normalizes);
    conv_bias says whether that conv carries a bias (yes when nothing after it has a shift).
    positional: the generator adds PONO after its downsampling convs and moment shortcuts
    before its upsampling convs ("ms" static, "dms" dynamic).
    """

    name: str
    make_conv: Callable[..., nn.Module]
    make_norm: Callable[[int], nn.Module] | None
    conv_bias: bool
    positional: str | None = None


def _instance(num_features: int) -> nn.InstanceNorm2d:
    return nn.InstanceNorm2d(num_features, affine=False, track_running_stats=False)


def _batch(num_features: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(num_features, affine=True, track_running_stats=True)


NORMS: dict[str, NormSpec] = {
    "batch": NormSpec("batch", _plain_conv, _batch, conv_bias=False),
    "instance": NormSpec("instance", _plain_conv, _instance, conv_bias=True),
    "group": NormSpec("group", _plain_conv, _group_norm, conv_bias=False),
    "none": NormSpec("none", _plain_conv, None, conv_bias=True),
    "nc": NormSpec("nc", _nc_conv, None, conv_bias=True),
    "pono-ms": NormSpec("pono-ms", _plain_conv, _instance, conv_bias=True, positional="ms"),
    "pono-dms": NormSpec("pono-dms", _plain_conv, _instance, conv_bias=True, positional="dms"),
    "kn": NormSpec("kn", _kn_conv, None, conv_bias=True),
    "convnorm": NormSpec("convnorm", _convnorm_conv, None, conv_bias=False),
    "spectral": NormSpec("spectral", _spectral_conv, None, conv_bias=True),
}


def get_norm_layer(norm: str | Callable[[int], nn.Module] | NormSpec) -> NormSpec:
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
        return NormSpec(getattr(norm, "__name__", "custom"), _plain_conv, norm, conv_bias=not has_shift)
    raise TypeError(f"norm must be a name or a callable, got {type(norm).__name__}")


def create_norm(norm, num_features: int) -> nn.Module:
    """The standalone norm layer of a NormSpec (nn.Identity where the conv normalizes itself)."""
    spec = get_norm_layer(norm)
    return spec.make_norm(num_features) if spec.make_norm is not None else nn.Identity()


def conv_norm(norm, in_ch: int, out_ch: int, kernel_size, stride=1, padding=0, padding_mode="zeros",
              bias: bool | None = None) -> nn.Module:
    """"Conv followed by norm" for any norm: nn.Sequential(conv, norm) or one fused layer.

    bias=None uses the norm's default (conv_bias); the classic configurations rely on it.
    """
    spec = get_norm_layer(norm)
    conv = spec.make_conv(in_ch, out_ch, kernel_size, stride, padding, padding_mode,
                          spec.conv_bias if bias is None else bias)
    if spec.make_norm is None:
        return conv
    return nn.Sequential(conv, spec.make_norm(out_ch))
