"""gennorm: image-to-image translation with convolution-centric normalization.

    from gennorm import NCConv2d, PONO, MomentShortcut, KernelNorm2d, KNConv2d, ConvNorm2d
"""
__version__ = "0.1.0"

from gennorm.layers import (  # noqa: E402
    PONO,
    ConvNorm2d,
    DynamicMomentShortcut,
    KernelNorm2d,
    KNConv2d,
    MomentShortcut,
    NCConv2d,
    conv_norm,
    create_norm,
    get_norm_layer,
)

__all__ = [
    "NCConv2d", "PONO", "MomentShortcut", "DynamicMomentShortcut", "KernelNorm2d", "KNConv2d", "ConvNorm2d",
    "get_norm_layer", "create_norm", "conv_norm", "__version__",
]
