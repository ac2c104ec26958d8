"""Generators (ResNet 6/9, U-Net 128/256) and discriminators (PatchGAN, PixelGAN), any norm.

Every "conv + norm" goes through the norm registry (`gennorm.layers.conv_norm`), so one code
path builds the classic networks and their NC, PONO-MS, KN, ConvNorm and spectral variants.

    from gennorm.networks import build_generator, build_discriminator
    G = build_generator("resnet_9blocks", norm="nc")           # net.options records the build
    D = build_discriminator("basic", norm="convnorm")
"""
from gennorm._lazy import lazy_exports, names

__getattr__, __dir__, __all__ = lazy_exports(globals(), {
    **names("gennorm.networks.factory", "build_generator", "build_discriminator", "GENERATORS", "DISCRIMINATORS"),
    **names("gennorm.networks.init", "init_weights"),
    **names("gennorm.networks.checkpoint", "load_network_state"),
    **names("gennorm.networks.summary", "summarize", "NetSummary"),
    **names("gennorm.networks.resnet", "ResnetGenerator", "ResnetBlock"),
    **names("gennorm.networks.unet", "UnetGenerator"),
    **names("gennorm.networks.patchgan", "NLayerDiscriminator", "PixelDiscriminator"),
})
