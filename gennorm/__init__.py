"""gennorm: image-to-image translation with convolution-centric normalization.

    from gennorm import NCConv2d, PONO, MomentShortcut, KernelNorm2d, KNConv2d, ConvNorm2d
    t = gennorm.load("scenes-nc"); out = t(pil_image)          # inference (gennorm.inference)
    model = gennorm.convert(torchvision.models.resnet18(), "nc")  # every conv + norm -> NC conv

`import gennorm` is cheap: it imports neither torch nor any submodule; each public name is
imported from its home module on first use (gennorm/_lazy.py).
"""
from gennorm._lazy import lazy_exports, names

__version__ = "0.1.0"

__getattr__, __dir__, __all__ = lazy_exports(globals(), {
    **names("gennorm.layers", "NCConv2d", "PONO", "MomentShortcut", "DynamicMomentShortcut", "KernelNorm2d",
            "KNConv2d", "ConvNorm2d", "get_norm_layer", "create_norm", "conv_norm"),
    **names("gennorm.inference", "load", "Translator"),
    **names("gennorm.layers.convert", "convert"),
})
__all__ += ["__version__"]
