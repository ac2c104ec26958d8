"""Generators (ResNet 6/9, U-Net 128/256) and discriminators (PatchGAN, PixelGAN), any norm.

Every "conv + norm" goes through the norm registry (`gennorm.layers.conv_norm`), so one code
path builds the classic networks and their NC, PONO-MS, KN, ConvNorm and spectral variants.

    from gennorm.networks import build_generator, build_discriminator
    G = build_generator("resnet_9blocks", norm="nc")           # net.options records the build
    D = build_discriminator("basic", norm="convnorm")
"""
from gennorm.networks.checkpoint import load_network_state
from gennorm.networks.factory import DISCRIMINATORS, GENERATORS, build_discriminator, build_generator
from gennorm.networks.init import init_weights
from gennorm.networks.patchgan import NLayerDiscriminator, PixelDiscriminator
from gennorm.networks.resnet import ResnetBlock, ResnetGenerator
from gennorm.networks.summary import NetSummary, summarize
from gennorm.networks.unet import UnetGenerator

__all__ = [
    "build_generator", "build_discriminator", "init_weights", "load_network_state", "summarize", "NetSummary",
    "GENERATORS", "DISCRIMINATORS", "ResnetGenerator", "ResnetBlock", "UnetGenerator", "NLayerDiscriminator",
    "PixelDiscriminator",
]
