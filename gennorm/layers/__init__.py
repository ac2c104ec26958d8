"""gennorm's normalization layers (docs/SPEC.md), one family per file; names load on first use."""
from gennorm._lazy import lazy_exports, names

__getattr__, __dir__, __all__ = lazy_exports(globals(), {
    **names("gennorm.layers.nc_conv", "NCConv2d"),
    **names("gennorm.layers.pono", "PONO", "MomentShortcut", "DynamicMomentShortcut"),
    **names("gennorm.layers.kernel_norm", "KernelNorm2d", "KNConv2d"),
    **names("gennorm.layers.convnorm", "ConvNorm2d"),
    **names("gennorm.layers.blur", "BlurDownsample", "BlurUpsample"),
    **names("gennorm.layers.registry", "NORMS", "NormSpec", "PRESET_NORMS", "get_norm_layer", "create_norm",
            "conv_norm"),
})
