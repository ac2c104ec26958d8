"""The pix2pix U-Net generator (the classic `UnetGenerator`), any norm, written as a loop.

num_downs levels; level i halves the resolution on the way down and doubles it on the way up
(level 0 is the outermost, level num_downs-1 the innermost at 1x1 for the nominal size):

    down[0]: 4x4 stride-2 conv (no norm)                    x [N, in, H, W] -> d0 [N, ngf, H/2, W/2]
    down[i]: LeakyReLU(0.2), 4x4 stride-2 conv + norm        -> d_i [N, c_i, H/2^(i+1), ...]
    down[last]: LeakyReLU(0.2), 4x4 stride-2 conv (no norm)
    up[last]: ReLU, x2 up conv + norm                        d_last -> u_last
    up[i]: ReLU, x2 up conv + norm (+ dropout 0.5 on levels 4..num_downs-2 with use_dropout)
           on cat(d_i, u_{i+1})  (skip first, as the classic code)
    up[0]: ReLU, x2 up conv (bias, no norm), tanh            -> [N, out, H, W]

Channels: c_i = ngf * min(2^i, 8). Parameter counts equal the classic code's (docs/SPEC.md section 6).
The classic code applies its LeakyReLU in place, so its skips carry LeakyReLU(d_i); the up
path's ReLU makes that identical to the skip carrying d_i, which is what this loop does.

PONO-MS (norm "pono-ms"/"pono-dms"): PONO after the down path of every level whose output is
at least 8x8 at the nominal input size (256 for unet_256, 128 for unet_128), i.e. all levels but
the innermost three (their 4x4, 2x2, 1x1 maps have too few positions for useful moments). The
moments are put back by a moment shortcut right before the same level's up conv, whose input
(cat(d_i, u_{i+1}) after ReLU) has the same resolution.

Encoder taps (`encode(x, taps)`, for CUT's PatchNCE): "input" (x itself) and "levelI", the
output of level I's down conv before its norm [N, c_I, H/2^(I+1), W/2^(I+1)] (level 0 and the
innermost have no norm). `nce_taps`: input, level0..level3. With NC, KN (ConvNorm, spectral) the
conv and its normalization are one layer, so their taps are the normalized outputs.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from gennorm.layers import PONO, DynamicMomentShortcut, MomentShortcut, NormSpec, conv_norm
from gennorm.networks.blocks import check_image, check_taps, conv_then_norm, up_conv_norm, up_conv_plain

INNER_LEVELS_WITHOUT_PONO = 3


def _channels(level: int, ngf: int) -> int:
    return ngf * min(2 ** level, 8)


def _down(level: int, num_downs: int, input_nc: int, ngf: int, spec: NormSpec) -> nn.Module:
    inner = _channels(level, ngf)
    if level == 0:
        return nn.Conv2d(input_nc, inner, 4, 2, 1, bias=spec.conv_bias)
    outer = _channels(level - 1, ngf)
    if level == num_downs - 1:
        return nn.Sequential(nn.LeakyReLU(0.2), nn.Conv2d(outer, inner, 4, 2, 1, bias=spec.conv_bias))
    return nn.Sequential(nn.LeakyReLU(0.2), conv_norm(spec, outer, inner, 4, 2, 1))


def _up(level: int, num_downs: int, output_nc: int, ngf: int, spec: NormSpec, upsample: str,
        use_dropout: bool) -> nn.Module:
    inner = _channels(level, ngf)
    in_ch = inner if level == num_downs - 1 else 2 * inner  # innermost sees d_last only
    if level == 0:
        return nn.Sequential(up_conv_plain(upsample, in_ch, output_nc, 4, 0), nn.Tanh())
    layers = [up_conv_norm(spec, upsample, in_ch, _channels(level - 1, ngf), 4, 0)]
    if use_dropout and 4 <= level < num_downs - 1:
        layers.append(nn.Dropout(0.5))
    return nn.Sequential(*layers)


class UnetGenerator(nn.Module):
    """U-Net generator; H and W must be multiples of 2^num_downs."""

    def __init__(self, input_nc: int, output_nc: int, num_downs: int, ngf: int, spec: NormSpec,
                 use_dropout: bool, upsample: str, arch: str = "unet"):
        super().__init__()
        if num_downs < 5:
            raise ValueError(f"num_downs must be >= 5 (the classic U-Net's fixed outer levels), got {num_downs}")
        self.arch, self.input_nc, self.size_multiple = arch, input_nc, 2 ** num_downs
        self.down = nn.ModuleList(_down(i, num_downs, input_nc, ngf, spec) for i in range(num_downs))
        self.up = nn.ModuleList(_up(i, num_downs, output_nc, ngf, spec, upsample, use_dropout)
                                for i in range(num_downs))
        self.relu = nn.ReLU()
        self.pono_levels = list(range(num_downs - INNER_LEVELS_WITHOUT_PONO)) if spec.positional else []
        if spec.positional:
            self.pono = PONO()
            make = DynamicMomentShortcut if spec.positional == "dms" else MomentShortcut
            self.shortcuts = nn.ModuleDict({str(i): make() for i in self.pono_levels})

    @property
    def taps(self) -> tuple[str, ...]:
        """The encoder taps `encode` knows, in forward order."""
        return ("input", *(f"level{i}" for i in range(len(self.down))))

    @property
    def nce_taps(self) -> tuple[str, ...]:
        """The default CUT taps of a U-Net: the input and the outer four levels."""
        return self.taps[:5]

    def encode(self, x: torch.Tensor, taps) -> list[torch.Tensor]:
        """The encoder features named by `taps` (see the module docstring), in the order given;
        stops after the deepest one."""
        check_image(x, self.arch, self.input_nc, self.size_multiple)
        check_taps(self.arch, taps, self.taps)
        want, got, h = set(taps), {"input": x}, x
        for i, down in enumerate(self.down):
            if want <= got.keys():
                break
            if isinstance(down, nn.Sequential):  # LeakyReLU, then conv (+ norm)
                conv_out, h = conv_then_norm(down[1], down[0](h))
            else:
                conv_out = h = down(h)
            got[f"level{i}"] = conv_out  # [N, c_i, H/2^(i+1), W/2^(i+1)]
            if i in self.pono_levels:
                h = self.pono(h)[0]
        return [got[t] for t in taps]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, self.arch, self.input_nc, self.size_multiple)
        skips, moments, h = [], {}, x
        for i, down in enumerate(self.down):
            h = down(h)  # d_i [N, c_i, H/2^(i+1), W/2^(i+1)]
            if i in self.pono_levels:
                h, mean, std = self.pono(h)  # mean, std [N, 1, H/2^(i+1), W/2^(i+1)]
                moments[i] = (mean, std)
            skips.append(h)
        for i in reversed(range(len(self.up))):
            if i < len(self.up) - 1:
                h = torch.cat([skips[i], h], 1)  # [N, 2c_i, H/2^(i+1), W/2^(i+1)]
            h = self.relu(h)
            if i in moments:
                h = self.shortcuts[str(i)](h, *moments[i])
            h = self.up[i](h)  # u_i [N, c_(i-1), H/2^i, W/2^i]; level 0: [N, output_nc, H, W]
        return h
