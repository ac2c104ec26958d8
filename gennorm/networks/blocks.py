"""Pieces shared by the generators: upsampling "conv + norm", the input-size check.

Upsampling comes in three flavours, all available for every generator and every norm:
- "resize": nearest x2, then a 3x3 conv + norm through `conv_norm` (padding 1, zeros). The only
  way to upsample with a fused norm (NC, KN, ConvNorm), which are defined on direct convs
  (docs/SPEC.md section 1), and free of checkerboard artifacts. The default where the registry's
  NormSpec.decoder says so (nc, kn).
- "transpose": the classic ConvTranspose2d followed by the norm layer. Fused norms have no
  transposed form, so for them (NormSpec.make_norm is None) it is a ConvTranspose2d with bias
  and no norm ("spectral" wraps it in spectral norm, which is defined for transposed convs).
- "antialias": CUT's antialiased upsampling (its default; `--no_antialias_up` gives "transpose"):
  BlurUpsample (fixed binomial x2 interpolation, gennorm.layers.blur), then a 3x3 conv + norm
  through `conv_norm` (padding 1, zeros). "resize" with the nearest upsampling made bilinear.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from gennorm.layers import BlurUpsample, NormSpec, conv_norm

UPSAMPLE_MODES = ("resize", "transpose", "antialias")


def default_upsample(spec: NormSpec) -> str:
    return spec.decoder


def resolve_upsample(upsample: str | None, spec: NormSpec) -> str:
    if upsample is None:
        return default_upsample(spec)
    if upsample not in UPSAMPLE_MODES:
        raise ValueError(f"unknown upsample {upsample!r}; known: {', '.join(UPSAMPLE_MODES)}")
    return upsample


def _transpose(spec: NormSpec, in_ch: int, out_ch: int, kernel_size: int, output_padding: int,
               bias: bool) -> nn.Module:
    conv = nn.ConvTranspose2d(in_ch, out_ch, kernel_size, stride=2, padding=1, output_padding=output_padding,
                              bias=bias)
    return nn.utils.spectral_norm(conv) if spec.name == "spectral" else conv


def up_conv_norm(spec: NormSpec, mode: str, in_ch: int, out_ch: int, kernel_size: int = 3,
                 output_padding: int = 1) -> nn.Module:
    """x2 upsampling conv + norm: [N, in_ch, H, W] -> [N, out_ch, 2H, 2W].

    kernel_size/output_padding are the transposed conv's (ResNet: 3/1, U-Net: 4/0).
    """
    if mode == "resize":
        return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), conv_norm(spec, in_ch, out_ch, 3, 1, 1))
    if mode == "antialias":  # CUT: Upsample(in_ch), then Conv2d(in_ch, out_ch, 3, padding=1) + norm
        return nn.Sequential(BlurUpsample(in_ch), conv_norm(spec, in_ch, out_ch, 3, 1, 1))
    if spec.make_norm is None:  # fused norm: no transposed form -> plain transposed conv with bias
        return _transpose(spec, in_ch, out_ch, kernel_size, output_padding, bias=True)
    conv = _transpose(spec, in_ch, out_ch, kernel_size, output_padding, bias=spec.conv_bias)
    return nn.Sequential(conv, spec.make_norm(out_ch))


def up_conv_plain(mode: str, in_ch: int, out_ch: int, kernel_size: int = 4, output_padding: int = 0) -> nn.Module:
    """x2 upsampling conv without norm and with bias (the U-Net's last layer)."""
    if mode == "resize":
        return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(in_ch, out_ch, 3, 1, 1))
    if mode == "antialias":
        return nn.Sequential(BlurUpsample(in_ch), nn.Conv2d(in_ch, out_ch, 3, 1, 1))
    return nn.ConvTranspose2d(in_ch, out_ch, kernel_size, stride=2, padding=1, output_padding=output_padding)


def conv_then_norm(layer: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(conv output, normalized output) of a `conv_norm` layer: nn.Sequential(conv, norm) gives its
    conv's output before the norm; a fused layer (NC, KN, ConvNorm, spectral, or a plain conv)
    gives its output twice: there the conv's output is already normalized."""
    if isinstance(layer, nn.Sequential):
        conv_out = layer[0](x)
        return conv_out, layer[1:](conv_out)
    out = layer(x)
    return out, out


def check_taps(arch: str, taps, known: tuple[str, ...]) -> None:
    """A ValueError naming the known taps when `taps` is empty or has an unknown one."""
    unknown = [t for t in taps if t not in known]
    if unknown or not taps:
        what = f"unknown encoder tap {unknown[0]!r}" if unknown else "no encoder taps given"
        raise ValueError(f"{arch}: {what}; known taps: {', '.join(known)}")


def check_image(x: torch.Tensor, arch: str, channels: int, multiple: int) -> None:
    """A clear ValueError when x is not [N, channels, H, W] with H, W multiples of `multiple`."""
    if x.dim() != 4:
        raise ValueError(f"{arch}: expected a 4-D input [N, C, H, W], got shape {tuple(x.shape)}")
    if x.shape[1] != channels:
        raise ValueError(f"{arch}: expected {channels} input channels, got {x.shape[1]} (shape {tuple(x.shape)})")
    h, w = x.shape[-2:]
    if h % multiple or w % multiple or h == 0 or w == 0:
        raise ValueError(f"{arch}: input height and width must be positive multiples of {multiple}, got {h}x{w}"
                         f" (e.g. resize or crop to {max(multiple, h // multiple * multiple)}x"
                         f"{max(multiple, w // multiple * multiple)})")
