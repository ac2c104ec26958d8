"""PatchGAN and PixelGAN discriminators (the classic `NLayerDiscriminator`, `PixelDiscriminator`).

PatchGAN with n_layers = 3 is the 70x70 PatchGAN: every output value sees a 70x70 patch, and a
256x256 input gives a 30x30 map. The first conv and the last conv have no norm (plain Conv2d);
every conv in between is "conv + norm" from the registry (`conv_norm`), so a ConvNorm, NC or KN
discriminator is the same code. PONO-MS norms mean instance norm here (moment shortcuts are a
generator feature).

antialias (CUT's default discriminator; model.antialias): each stride-2 conv becomes the same 4x4
conv with stride 1 (+ norm), LeakyReLU, then BlurDownsample (gennorm.layers.blur), as CUT's
NLayerDiscriminator without --no_antialias; the last two convs are unchanged. The sizes are the
same (ceil((h - 1) / 2) = floor(h / 2) = the strided conv's), so is the output map; the PixelGAN
has no strided conv (CUT ignores the flag there too).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from gennorm.layers import BlurDownsample, NormSpec, conv_norm


def _blur(channels: int, antialias: bool) -> list[nn.Module]:
    return [BlurDownsample(channels)] if antialias else []


class NLayerDiscriminator(nn.Module):
    """[N, input_nc, H, W] -> [N, 1, H', W'] logits; H' = H/2^n_layers - 2 for H divisible by 2^n_layers."""

    def __init__(self, input_nc: int, ndf: int, n_layers: int, spec: NormSpec, antialias: bool = False):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        stride = 1 if antialias else 2  # antialias: stride-1 conv ([N, C, h-1, w-1]), the blur halves after the ReLU
        layers = [nn.Conv2d(input_nc, ndf, 4, stride, 1), nn.LeakyReLU(0.2, True), *_blur(ndf, antialias)]
        # [N, ndf, H/2, W/2]
        mult = 1
        for n in range(1, n_layers):  # [N, ndf*min(2^n, 8), H/2^(n+1), W/2^(n+1)]
            prev, mult = mult, min(2 ** n, 8)
            layers += [conv_norm(spec, ndf * prev, ndf * mult, 4, stride, 1), nn.LeakyReLU(0.2, True),
                       *_blur(ndf * mult, antialias)]
        prev, mult = mult, min(2 ** n_layers, 8)
        layers += [conv_norm(spec, ndf * prev, ndf * mult, 4, 1, 1), nn.LeakyReLU(0.2, True)]  # size - 1
        layers += [nn.Conv2d(ndf * mult, 1, 4, 1, 1)]  # size - 1
        self.model = nn.Sequential(*layers)
        self.input_nc, self.n_layers, self.min_size = input_nc, n_layers, 2 ** n_layers * 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.input_nc:
            raise ValueError(f"PatchGAN: expected input [N, {self.input_nc}, H, W], got {tuple(x.shape)}")
        if min(x.shape[-2:]) < self.min_size:
            raise ValueError(f"PatchGAN with n_layers={self.n_layers} needs inputs of at least "
                             f"{self.min_size}x{self.min_size}, got {x.shape[-2]}x{x.shape[-1]}")
        return self.model(x)


class PixelDiscriminator(nn.Module):
    """1x1 PixelGAN: [N, input_nc, H, W] -> [N, 1, H, W] logits, one per pixel."""

    def __init__(self, input_nc: int, ndf: int, spec: NormSpec):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(input_nc, ndf, 1), nn.LeakyReLU(0.2, True),
            conv_norm(spec, ndf, ndf * 2, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, 1, 1, bias=spec.conv_bias))  # the classic code: bias only with instance norm
        self.input_nc = input_nc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.input_nc:
            raise ValueError(f"PixelGAN: expected input [N, {self.input_nc}, H, W], got {tuple(x.shape)}")
        return self.net(x)
