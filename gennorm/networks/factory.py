"""build_generator / build_discriminator: the networks by name, any norm, initialized.

Each network gets `net.options`, the dict of its build options (arch, kind, channels, width,
norm, ...), which checkpoints save next to the weights so that a mismatch can be explained
(`load_network_state`).
"""
from __future__ import annotations

from typing import Callable

import torch.nn as nn

from gennorm.errors import ConfigError
from gennorm.layers import NormSpec, get_norm_layer
from gennorm.networks.blocks import resolve_upsample
from gennorm.networks.init import init_weights
from gennorm.networks.patchgan import NLayerDiscriminator, PixelDiscriminator
from gennorm.networks.resnet import ResnetGenerator
from gennorm.networks.unet import UnetGenerator

GENERATORS = {"resnet_9blocks": 9, "resnet_6blocks": 6, "unet_256": 8, "unet_128": 7}  # arch -> blocks / downs
DISCRIMINATORS = ("basic", "n_layers", "pixel")


def _norm_name(norm, spec: NormSpec) -> str:
    return spec.name if isinstance(norm, (str, NormSpec)) else f"callable:{spec.name}"


def _check_channels(**channels: int) -> None:
    for name, value in channels.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def build_generator(arch: str, input_nc: int = 3, output_nc: int = 3, ngf: int = 64,
                    norm: str | Callable[[int], nn.Module] | NormSpec = "instance", use_dropout: bool = False,
                    init_type: str = "normal", init_gain: float = 0.02, upsample: str | None = None,
                    n_blocks: int | None = None, antialias: bool = False) -> nn.Module:
    """A generator by name: resnet_9blocks | resnet_6blocks | unet_256 | unet_128.

    upsample: "resize" (nearest x2 + 3x3 conv + norm), "transpose" (classic) or "antialias"
    (CUT's blur upsampling + 3x3 conv + norm); None = "resize" for nc/kn, "transpose" otherwise.
    n_blocks overrides the ResNet's residual block count (or the U-Net's number of
    downsamplings). antialias: CUT's blur-pooled downsampling (ResNets only; CUT's network is
    antialias=True with upsample="antialias").
    """
    if arch not in GENERATORS:
        raise ValueError(f"unknown generator arch {arch!r}; known: {', '.join(GENERATORS)}")
    _check_channels(input_nc=input_nc, output_nc=output_nc, ngf=ngf)
    spec = get_norm_layer(norm)
    mode = resolve_upsample(upsample, spec)
    depth = GENERATORS[arch] if n_blocks is None else int(n_blocks)
    if antialias and not arch.startswith("resnet"):
        raise ValueError(f"antialias (CUT's blur-pooled downsampling) is defined for the ResNet generators, not {arch}")
    if arch.startswith("resnet"):
        net = ResnetGenerator(input_nc, output_nc, ngf, spec, use_dropout, depth, mode, arch, bool(antialias))
    else:
        net = UnetGenerator(input_nc, output_nc, depth, ngf, spec, use_dropout, mode, arch)
    init_weights(net, init_type, init_gain)
    net.options = {"kind": "generator", "arch": arch, "input_nc": input_nc, "output_nc": output_nc, "ngf": ngf,
                   "norm": _norm_name(norm, spec), "use_dropout": bool(use_dropout), "upsample": mode,
                   "n_blocks": depth, "antialias": bool(antialias), "init_type": init_type, "init_gain": init_gain}
    return net


def build_discriminator(arch: str, input_nc: int = 3, ndf: int = 64, n_layers: int = 3,
                        norm: str | Callable[[int], nn.Module] | NormSpec = "instance", init_type: str = "normal",
                        init_gain: float = 0.02, antialias: bool = False) -> nn.Module:
    """A discriminator by name: basic (70x70 PatchGAN, n_layers=3) | n_layers (PatchGAN) | pixel (1x1).
    antialias: CUT's blur-pooled PatchGAN (the PixelGAN has nothing to antialias, as in CUT)."""
    if arch not in DISCRIMINATORS:
        raise ValueError(f"unknown discriminator arch {arch!r}; known: {', '.join(DISCRIMINATORS)}")
    _check_channels(input_nc=input_nc, ndf=ndf)
    spec = get_norm_layer(norm)
    if arch == "pixel":
        net, n_layers = PixelDiscriminator(input_nc, ndf, spec), 1
    else:
        n_layers = 3 if arch == "basic" else int(n_layers)
        net = NLayerDiscriminator(input_nc, ndf, n_layers, spec, bool(antialias))
    init_weights(net, init_type, init_gain)
    net.options = {"kind": "discriminator", "arch": arch, "input_nc": input_nc, "ndf": ndf, "n_layers": n_layers,
                   "norm": _norm_name(norm, spec), "antialias": bool(antialias) and arch != "pixel",
                   "init_type": init_type, "init_gain": init_gain}
    return net


def build_generator_from(model_cfg, input_nc: int, output_nc: int) -> nn.Module:
    """The generator a run config's `model` section describes (gennorm.config.ModelConfig); ConfigError if bad."""
    try:
        return build_generator(model_cfg.g_arch, input_nc=input_nc, output_nc=output_nc, ngf=model_cfg.ngf,
                               norm=model_cfg.g_norm, use_dropout=model_cfg.use_dropout,
                               init_type=model_cfg.init_type, init_gain=model_cfg.init_gain,
                               upsample=model_cfg.upsample, antialias=model_cfg.antialias)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"model.* (generator {model_cfg.g_arch!r}, norm {model_cfg.g_norm!r}): {err}") from None


def build_discriminator_from(model_cfg, input_nc: int) -> nn.Module:
    """The discriminator of a run config's `model` section."""
    try:
        return build_discriminator(model_cfg.d_arch, input_nc=input_nc, ndf=model_cfg.ndf,
                                   n_layers=model_cfg.n_layers, norm=model_cfg.d_norm,
                                   init_type=model_cfg.init_type, init_gain=model_cfg.init_gain,
                                   antialias=model_cfg.antialias)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"model.* (discriminator {model_cfg.d_arch!r}, norm {model_cfg.d_norm!r}): {err}") from None
