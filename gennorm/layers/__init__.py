"""gennorm's normalization layers (SPEC.md), one concept per file."""
from gennorm.layers.convnorm import ConvNorm2d
from gennorm.layers.kernel_norm import KernelNorm2d
from gennorm.layers.kn_conv import KNConv2d
from gennorm.layers.nc_conv import NCConv2d
from gennorm.layers.pono import PONO, DynamicMomentShortcut, MomentShortcut
from gennorm.layers.registry import NORMS, NormSpec, conv_norm, create_norm, get_norm_layer

__all__ = [
    "NCConv2d", "PONO", "MomentShortcut", "DynamicMomentShortcut", "KernelNorm2d", "KNConv2d", "ConvNorm2d",
    "NORMS", "NormSpec", "get_norm_layer", "create_norm", "conv_norm",
]
