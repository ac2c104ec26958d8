"""Weight initialization of the classic CycleGAN/pix2pix code (normal / xavier / kaiming / orthogonal).

Conv and linear weights get the chosen init with `gain` (N(0, gain) for "normal") and zero bias;
affine norm layers get weight ~ N(1, gain) and zero bias. Differences from the classic code:
- spectral-norm convs: the trained parameter is `weight_orig` (`weight` is recomputed from it);
- the dynamic moment shortcut keeps its own init (its last conv starts at zero so that a fresh
  DMS equals the plain moment shortcut);
- ConvNorm2d keeps its own affine init (scale 1, shift 0); only its conv weight is re-drawn.
"""
from __future__ import annotations

import torch.nn as nn
from torch.nn import init

from gennorm.layers import DynamicMomentShortcut

INIT_TYPES = ("normal", "xavier", "kaiming", "orthogonal")
_NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm, nn.LayerNorm)


def _init_weight(weight, init_type: str, gain: float) -> None:
    if init_type == "normal":
        init.normal_(weight, 0.0, gain)
    elif init_type == "xavier":
        init.xavier_normal_(weight, gain=gain)
    elif init_type == "kaiming":
        init.kaiming_normal_(weight, a=0, mode="fan_in")
    else:  # orthogonal
        init.orthogonal_(weight, gain=gain)


def _skipped(net: nn.Module) -> set[int]:
    """ids of modules that keep their own init (everything inside a DynamicMomentShortcut)."""
    return {id(m) for dms in net.modules() if isinstance(dms, DynamicMomentShortcut) for m in dms.modules()}


def init_weights(net: nn.Module, init_type: str = "normal", init_gain: float = 0.02) -> nn.Module:
    """Initialize `net` in place (classic pix2pix/CycleGAN scheme) and return it."""
    if init_type not in INIT_TYPES:
        raise ValueError(f"unknown init_type {init_type!r}; known: {', '.join(INIT_TYPES)}")
    skipped = _skipped(net)
    for module in net.modules():
        if id(module) in skipped:
            continue
        if isinstance(module, (nn.modules.conv._ConvNd, nn.Linear)):
            weight = getattr(module, "weight_orig", None)  # spectral norm's trained parameter
            if not isinstance(weight, nn.Parameter):
                weight = module.weight
            _init_weight(weight.data, init_type, init_gain)
            if module.bias is not None:
                init.zeros_(module.bias.data)
        elif isinstance(module, _NORM_TYPES) and getattr(module, "weight", None) is not None:
            init.normal_(module.weight.data, 1.0, init_gain)
            if module.bias is not None:
                init.zeros_(module.bias.data)
    return net
