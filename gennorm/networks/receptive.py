"""The receptive field of a network: how far an output pixel can see into its input.

Tiled inference (gennorm.inference) needs it: an output tile computed from its input tile plus a
margin of the receptive field's half-width equals the whole-image result exactly when every norm
in the network uses local statistics (NC, KN, none; batch norm in eval), since then nothing else
reaches the tile.

Computed from the architecture by one dummy forward pass: every conv adds dilation * (k - 1)
input pixels times its input's stride relative to the image (jump = image size / feature size,
read from the conv's output size, so resampling and padding modules need no special case); a transposed conv adds
(ceil(k / s) - 1) * jump; nearest upsampling, padding modules, PONO and the moment shortcuts add
nothing. The fixed blurs of antialiased networks count as what they are: BlurDownsample a 3x3
stride-2 conv; BlurUpsample (bilinear x2) a 4x4 stride-2 transposed conv plus half an input
pixel, since a span of L output pixels reaches L/2 + 1 or, starting on an even pixel with L odd,
L/2 + 1.5 input pixels (so the sum stays an upper bound; tests/test_antialias.py measures it). Summing over every conv of the forward pass follows the longest path (ResNet blocks
and U-Net skips only add shorter ones), so the result is exact for these generators and an upper
bound for side branches (dynamic moment shortcuts).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from gennorm.layers.blur import BlurDownsample, BlurUpsample
from gennorm.layers.tracing import run_with_hooks


def receptive_field(net: nn.Module, input_nc: int, size: int) -> int:
    """Receptive field (pixels, along one axis) of `net` on a size x size image."""
    total = [0.0]

    def hook(module, args, output):
        k, s, d = module.kernel_size[0], module.stride[0], module.dilation[0]
        if isinstance(module, (nn.ConvTranspose2d, BlurUpsample)):
            jump = size / args[0].shape[-2]  # image pixels per input pixel of this layer
            total[0] += (math.ceil(k / s) - 1) * jump + (jump / 2 if isinstance(module, BlurUpsample) else 0)
        else:  # from the output size: the input may carry a padding module's border
            jump = size / (output.shape[-2] * s)
            total[0] += d * (k - 1) * jump

    convs = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, BlurDownsample, BlurUpsample))]
    run_with_hooks(net, torch.zeros(1, input_nc, size, size), convs, hook)
    return int(math.ceil(total[0])) + 1


def tile_margin(net: nn.Module, input_nc: int) -> int:
    """The margin (pixels on each side) that makes tiles exact: half the receptive field plus one
    stride of the coarsest layer, rounded up to the network's size multiple (tiles must stay on its grid)."""
    m = getattr(net, "size_multiple", 1)
    rf = receptive_field(net, input_nc, max(m, 16) * 2)
    return int(math.ceil((rf // 2 + m) / m) * m)
