"""The CycleGAN ResNet generator (Johnson et al.; the classic `ResnetGenerator`), any norm.

    stem: reflect-pad 3, 7x7 conv + norm, ReLU                       [N, ngf, H, W]
    down: 2 x (3x3 stride-2 conv + norm, ReLU)                         [N, 4ngf, H/4, W/4]
    blocks: n_blocks residual blocks (reflect-pad, 3x3 conv + norm, ReLU, [dropout], ..., + x)
    up: 2 x (x2 upsampling conv + norm, ReLU)                          [N, ngf, H, W]
    head: reflect-pad 3, 7x7 conv (bias, no norm), tanh                [N, output_nc, H, W]

antialias (CUT's default generator; model.antialias): each down stage is a 3x3 stride-1 conv +
norm, ReLU, then BlurDownsample (gennorm.layers.blur), as CUT's ResnetGenerator without
--no_antialias. Its antialiased upsampling (without --no_antialias_up) is the decoder mode
upsample="antialias" (BlurUpsample, then 3x3 conv + norm, ReLU). With both, the layers holding
tensors are CUT's, in CUT's order, with CUT's shapes (its `filt` buffers included).

PONO-MS (docs/SPEC.md section 2; norm "pono-ms"/"pono-dms"): each downsampling block (conv, norm, ReLU;
with antialias also the blur) is followed by PONO whose moments are kept; before each upsampling conv the moments of the
same resolution are put back by a moment shortcut (H/4 first, then H/2). Static MS adds no
parameters; the dynamic one adds its small conv stack per shortcut.

Encoder taps (`encode(x, taps)`, for CUT's PatchNCE), by role:
    "input"       the reflect-padded input                 [N, in, H+6, W+6]    (CUT's nce layer 0)
    "down1/2"     the output of each downsampling conv      [N, 2ngf, H/2, W/2], [N, 4ngf, H/4, W/4]
                  before its norm and ReLU                                      (CUT's 4, 8)
                  antialias: the stride-1 conv's output,    [N, 2ngf, H, W],     [N, 4ngf, H/2, W/2]
                  before its norm, ReLU and blur
    "blockK"      the output of residual block K (1-based)  [N, 4ngf, H/4, W/4] (CUT's 12, 16: K = 1, 5)
CUT's nce_layers 0,4,8,12,16 index its ResnetGenerator's nn.Sequential, which with antialias (its
default) is: 0 pad, 1-3 stem conv/norm/ReLU, 4-7 down1 conv/norm/ReLU/Downsample, 8-11 down2,
12-20 blocks 1-9, then the decoder; so 0,4,8,12,16 are these roles, `nce_taps`, on either layout.
(CUT with --no_antialias has no Downsample modules and the same numbers point elsewhere: 8 the
norm of down2, 12 block 3, 16 block 7; gennorm keeps the roles.) With NC, KN (and ConvNorm,
spectral) the conv and its normalization are one layer, so "down1/2" are their normalized
outputs (per-window standardized for NC / KN), where the other norms give the raw conv output;
PONO-MS taps before its PONO.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from gennorm.layers import PONO, BlurDownsample, DynamicMomentShortcut, MomentShortcut, NormSpec, conv_norm
from gennorm.networks.blocks import check_image, check_taps, conv_then_norm, up_conv_norm

N_DOWNSAMPLING = 2


class ResnetBlock(nn.Module):
    """x + [reflect-pad 1, conv3x3 + norm, ReLU, (dropout 0.5), reflect-pad 1, conv3x3 + norm](x)."""

    def __init__(self, dim: int, spec: NormSpec, use_dropout: bool):
        super().__init__()
        layers = [nn.ReflectionPad2d(1), conv_norm(spec, dim, dim, 3), nn.ReLU(True)]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), conv_norm(spec, dim, dim, 3)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)  # [N, dim, h, w]


def _shortcut(positional: str) -> nn.Module:
    return DynamicMomentShortcut() if positional == "dms" else MomentShortcut()


def _down(spec: NormSpec, in_ch: int, out_ch: int, antialias: bool) -> nn.Sequential:
    """One x2 down stage, [N, in_ch, h, w] -> [N, out_ch, h/2, w/2]; [0] is the conv + norm (encode's tap)."""
    if antialias:  # CUT: conv stride 1 + norm, ReLU ([N, out_ch, h, w]), then the blur with stride 2
        return nn.Sequential(conv_norm(spec, in_ch, out_ch, 3, stride=1, padding=1), nn.ReLU(True),
                             BlurDownsample(out_ch))
    return nn.Sequential(conv_norm(spec, in_ch, out_ch, 3, stride=2, padding=1), nn.ReLU(True))


class ResnetGenerator(nn.Module):
    """ResNet generator; H and W must be multiples of 4 (two stride-2 convs and their inverse)."""

    size_multiple = 2 ** N_DOWNSAMPLING

    def __init__(self, input_nc: int, output_nc: int, ngf: int, spec: NormSpec, use_dropout: bool,
                 n_blocks: int, upsample: str, arch: str = "resnet", antialias: bool = False):
        super().__init__()
        if n_blocks < 0:
            raise ValueError(f"n_blocks must be >= 0, got {n_blocks}")
        self.arch, self.input_nc = arch, input_nc
        self.stem = nn.Sequential(nn.ReflectionPad2d(3), conv_norm(spec, input_nc, ngf, 7), nn.ReLU(True))
        self.down = nn.ModuleList(_down(spec, ngf * 2 ** i, ngf * 2 ** (i + 1), antialias)
                                  for i in range(N_DOWNSAMPLING))
        dim = ngf * 2 ** N_DOWNSAMPLING
        self.blocks = nn.Sequential(*(ResnetBlock(dim, spec, use_dropout) for _ in range(n_blocks)))
        self.up = nn.ModuleList(
            nn.Sequential(up_conv_norm(spec, upsample, dim // 2 ** i, dim // 2 ** (i + 1), 3, 1), nn.ReLU(True))
            for i in range(N_DOWNSAMPLING))
        self.head = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh())
        self.positional = spec.positional
        if spec.positional:
            self.pono = PONO()
            # shortcuts[i] runs before up[i]: i = 0 at H/4 (moments of down[1]), i = 1 at H/2 (down[0])
            self.shortcuts = nn.ModuleList(_shortcut(spec.positional) for _ in range(N_DOWNSAMPLING))

    @property
    def taps(self) -> tuple[str, ...]:
        """The encoder taps `encode` knows, in forward order."""
        return ("input", *(f"down{i + 1}" for i in range(N_DOWNSAMPLING)),
                *(f"block{k + 1}" for k in range(len(self.blocks))))

    @property
    def nce_taps(self) -> tuple[str, ...]:
        """CUT's default taps (nce_layers 0,4,8,12,16): input, down1, down2, block1, block5."""
        blocks = len(self.blocks)
        return ("input", "down1", "down2") + tuple(dict.fromkeys(f"block{k}" for k in (1, 5) if k <= blocks))

    def encode(self, x: torch.Tensor, taps) -> list[torch.Tensor]:
        """The encoder features named by `taps` (see the module docstring), in the order given;
        stops after the deepest one."""
        check_image(x, self.arch, self.input_nc, self.size_multiple)
        check_taps(self.arch, taps, self.taps)
        want, got = set(taps), {}
        h = self.stem[0](x)  # [N, in, H+6, W+6]
        got["input"] = h
        h = self.stem[1:](h)  # [N, ngf, H, W]
        for i, down in enumerate(self.down):
            if want <= got.keys():
                break
            conv_out, h = conv_then_norm(down[0], h)  # [N, 2^(i+1) ngf, H/2^(i+1), W/2^(i+1)] (antialias: H/2^i)
            got[f"down{i + 1}"] = conv_out
            h = down[1:](h)  # ReLU (and the blur): [N, 2^(i+1) ngf, H/2^(i+1), W/2^(i+1)]
            if self.positional:
                h = self.pono(h)[0]
        for k, block in enumerate(self.blocks):
            if want <= got.keys():
                break
            h = block(h)  # [N, 4ngf, H/4, W/4]
            got[f"block{k + 1}"] = h
        return [got[t] for t in taps]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, self.arch, self.input_nc, self.size_multiple)
        h = self.stem(x)  # [N, ngf, H, W]
        moments = []
        for down in self.down:
            h = down(h)  # [N, 2ngf, H/2, W/2], then [N, 4ngf, H/4, W/4]
            if self.positional:
                h, mean, std = self.pono(h)  # mean, std [N, 1, h, w]
                moments.append((mean, std))
        h = self.blocks(h)  # [N, 4ngf, H/4, W/4]
        for i, up in enumerate(self.up):
            if self.positional:
                mean, std = moments[-1 - i]
                h = self.shortcuts[i](h, mean, std)
            h = up(h)  # [N, 2ngf, H/2, W/2], then [N, ngf, H, W]
        return self.head(h)  # [N, output_nc, H, W]
