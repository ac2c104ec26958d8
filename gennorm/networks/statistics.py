"""What each norm normalizes by, as maps: one eval pass with hooks on a network's norm layers.

    maps = norm_statistics(net, x)          # x [1, C, H, W] in [-1, 1]
    for m in maps:
        m.layer, m.kind, m.name, m.values   # "model.1", "PONO", "mean", float32 [Ho, Wo]

PONO (docs/SPEC.md section 2): its own outputs, the mean and std across channels at every
position, [H, W]. NC and KN convs (sections 1 and 3): the std of every window the conv
standardizes -- the C/groups x kh x kw values of the padded input under each output pixel, eps
inside the sqrt exactly as the layer uses it -- [Ho, Wo] (averaged over groups when there are
several). Norms with per-channel statistics (instance, batch) or none have no spatial map.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from gennorm.layers.kernel_norm import KernelNorm2d, KNConv2d
from gennorm.layers.nc_conv import NCConv2d
from gennorm.layers.pono import PONO
from gennorm.layers.tracing import run_with_hooks
from gennorm.ops import kernels, patch_moments

KINDS = {NCConv2d: "NC", KNConv2d: "KN", KernelNorm2d: "KN", PONO: "PONO"}


@dataclass
class StatMap:
    layer: str  # module name in the network, e.g. "model.1"
    kind: str  # "PONO" | "NC" | "KN"
    name: str  # "mean" | "std" | "window std"
    values: np.ndarray  # float32 [Ho, Wo] of the first image
    input_shape: tuple[int, ...]  # the layer's input [C, H, W]

    @property
    def caption(self) -> str:
        c, h, w = self.input_shape
        return f"{self.kind} {self.name} at {self.layer} (input {c}x{h}x{w}, map {self.values.shape[1]}x{self.values.shape[0]})"


def has_statistics(net: nn.Module) -> bool:
    """Whether the network has a layer with spatial statistics (PONO, NC or KN)."""
    return any(type(m) in KINDS for m in net.modules())


def norm_statistics(net: nn.Module, x: torch.Tensor) -> list[StatMap]:
    """The maps of every PONO / NC / KN layer of `net` for x [1, C, H, W], in execution order."""
    names = {m: n for n, m in net.named_modules() if type(m) in KINDS}
    maps: list[StatMap] = []
    calls: dict[nn.Module, int] = {}

    def hook(module, args, output):
        kind, inp = KINDS[type(module)], args[0]
        shape = tuple(inp.shape[1:])
        calls[module] = calls.get(module, 0) + 1  # a parameter-free PONO may serve several places
        layer = names[module] + (f" (call {calls[module]})" if calls[module] > 1 or kind == "PONO" else "")
        if kind == "PONO":
            _, mean, std = output  # [N, 1, H, W] each
            maps.extend(StatMap(layer, kind, n, t[0, 0].float().cpu().numpy(), shape)
                        for n, t in (("mean", mean), ("std", std)))
        else:
            maps.append(StatMap(layer, kind, "window std", _window_std(module, inp)[0].cpu().numpy(), shape))

    run_with_hooks(net, x, names, hook)
    return maps


def _window_std(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """sqrt(var + eps) of each window the layer standardizes: x [N, C, H, W] -> [N, Ho, Wo] float32."""
    if isinstance(module, NCConv2d):
        pad, mode, dilation, groups = tuple(module._reversed_padding_repeated_twice), module.padding_mode, \
            module.dilation, module.groups
    elif isinstance(module, KNConv2d):
        pad, mode, dilation, groups = module.kn_padding, "zeros", (1, 1), 1  # KN: one window over all channels
    else:  # KernelNorm2d
        pad, mode, dilation, groups = module.padding, "zeros", (1, 1), 1
    xp = kernels.pad(x, pad, mode)  # x~ [N, C, Hp, Wp]
    shifted = xp - kernels.center_shift(x, groups).repeat_interleave(x.shape[1] // groups, 1)[:, :, None, None]
    _, rstd = patch_moments(shifted.float(), module.kernel_size, module.stride, dilation, groups, module.eps)
    return rstd.reciprocal().mean(1)  # [N, groups, Ho, Wo] -> [N, Ho, Wo]
