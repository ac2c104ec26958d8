"""InceptionV3 pool3 features for FID/KID, built from the local torch-fidelity weight file.

The resize protocol (recorded in every result as `PROTOCOL`): each image is read as 8-bit RGB,
converted to float32 in [0, 255], resized *with antialiasing* to 299x299 (bilinear,
`antialias=True`, `align_corners=False`; clean-fid, Parmar et al. 2022, shows that a
non-antialiased resize changes FID a lot), then mapped to [-1, 1] by (x - 128) / 128 and fed
to torch-fidelity's port of the TF `inception-2015-12-05` graph; the 2048-d pool3 activations
are the features. For same-sized uint8 batches this is exactly torchmetrics'
`FrechetInceptionDistance(antialias=True)` path (the tests check the features match); resizing
per image lets a folder mix sizes, and there is no requantization to uint8 after the resize.

Loading: torch-fidelity reads the file with `torch.load(weights_only=False)`; we load it
ourselves with `weights_only=True` and hand torch-fidelity an in-memory copy of that plain
tensor dict, so no pickled code from disk is ever executed.
"""
from __future__ import annotations

import io
from pathlib import Path

import torch
import torch.nn.functional as F

SIZE = 299
PROTOCOL = {
    "name": "inception-2015-12-05/pool3-2048/rgb8/antialiased-bilinear-299",
    "network": "torch-fidelity FeatureExtractorInceptionV3 (port of TF inception-2015-12-05), weights "
               "weights-inception-2015-12-05-6726825d.pth",
    "features": "pool3, 2048-d, float32",
    "input": "8-bit RGB (gennorm.data.images.load_image: grayscale/RGBA/palette/16-bit converted, EXIF applied)",
    "resize": "per image, float32 in [0,255], torch.nn.functional.interpolate(size=(299,299), mode='bilinear', "
              "align_corners=False, antialias=True); no requantization",
    "normalize": "(x - 128) / 128",
    "statistics": "float64 mean and unbiased covariance; Frechet distance exact in float64 "
                  "(gennorm.metrics.frechet: nuclear norm when N <= 2048, eigh otherwise)",
}


def load_inception(weights_path: str | Path, device: str | torch.device = "cpu") -> torch.nn.Module:
    """torch-fidelity's InceptionV3 (pool3 only) with weights from a local file, eval mode."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    state = torch.load(weights_path, map_location="cpu", weights_only=True)
    buf = io.BytesIO()
    torch.save(state, buf)  # plain tensors only: safe to hand to torch-fidelity's unrestricted load
    buf.seek(0)
    net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=buf)
    return net.to(device).eval()


def preprocess(images: list[torch.Tensor]) -> torch.Tensor:
    """uint8 [3, H, W] images (any sizes) -> float32 [N, 3, 299, 299] in [-1, 1] (protocol above)."""
    out = []
    for img in images:
        x = img.unsqueeze(0).float()  # [1, 3, H, W] in [0, 255]
        if x.shape[-2:] != (SIZE, SIZE):
            x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False, antialias=True)
        out.append(x)
    return (torch.cat(out) - 128) / 128


@torch.inference_mode()
def inception_features(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Pool3 features [N, 2048] of preprocessed x [N, 3, 299, 299] (torch-fidelity's layers)."""
    x = x.to(next(net.parameters()).device, torch.float32)
    for name in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "MaxPool_1", "Conv2d_3b_1x1",
                 "Conv2d_4a_3x3", "MaxPool_2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b",
                 "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c", "AvgPool"):
        x = getattr(net, name)(x)
    return torch.flatten(x, 1)  # [N, 2048]
