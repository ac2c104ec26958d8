"""The FID/KID preprocessing protocols by name: what each one does, as recorded in every result
and in the real-feature cache key. Plain data (no torch) so that `gennorm eval --help` and the
zoo can list them for free; the code that applies them is gennorm.metrics.inception.preprocess.
"""
from __future__ import annotations

from gennorm.errors import ConfigError

_NETWORK = {
    "network": "torch-fidelity FeatureExtractorInceptionV3 (port of TF inception-2015-12-05), weights "
               "weights-inception-2015-12-05-6726825d.pth",
    "features": "pool3, 2048-d, float32",
    "input": "8-bit RGB (gennorm.data.images.load_image: grayscale/RGBA/palette/16-bit converted, EXIF applied); "
             "for 8-bit RGB or grayscale files without alpha or EXIF rotation this is clean-fid's and pytorch-fid's "
             "Image.open(path).convert('RGB'); they drop alpha (gennorm composites it onto white) and do not "
             "rotate or rescale 16-bit files",
    "statistics": "float64 mean and unbiased covariance; Frechet distance exact in float64 "
                  "(gennorm.metrics.frechet: nuclear norm when N <= 2048, eigh otherwise)",
}
PROTOCOLS = {  # name -> what is recorded in every result (and the real-feature cache key)
    "clean": {
        "name": "clean",
        "reference": "clean-fid (Parmar et al. 2022) mode='clean', cleanfid.resize.build_resizer('clean')",
        "resize": "per channel, PIL Image.fromarray(float32, mode='F').resize((299, 299), Image.BICUBIC), "
                  "clipped to [0, 255], no requantization; float inputs quantized to 8 bits (round) first",
        "normalize": "(x - 128) / 128",
        **_NETWORK,
    },
    "legacy": {
        "name": "legacy",
        "reference": "pytorch-fid (mseitzer) InceptionV3(resize_input=True, normalize_input=True)",
        "resize": "x / 255 (ToTensor), torch.nn.functional.interpolate(size=(299, 299), mode='bilinear', "
                  "align_corners=False), no antialiasing",
        "normalize": "2 x - 1",
        **_NETWORK,
    },
    "gennorm": {
        "name": "gennorm",
        "reference": "torchmetrics FrechetInceptionDistance(antialias=True)",
        "resize": "per image, float32 in [0,255], torch.nn.functional.interpolate(size=(299,299), mode='bilinear', "
                  "align_corners=False, antialias=True); no requantization",
        "normalize": "(x - 128) / 128",
        **_NETWORK,
    },
}
DEFAULT_PROTOCOL = "clean"


def check_protocol(protocol: str) -> str:
    """The protocol name, or a `ConfigError` listing the choices."""
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown FID protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")
    return protocol
