"""InceptionV3 pool3 features for FID/KID under three preprocessing protocols, built from the
local torch-fidelity weight file.

The resize before the network moves FID by several points (Parmar et al. 2022, "On Aliased
Resizing and Surprising Subtleties in GAN Evaluation"), so a FID is comparable only with FIDs of
the same protocol. Each image arrives as 8-bit RGB [3, H, W] (gennorm.data.images.load_image)
and becomes the network's 299x299 input in [-1, 1]:

    clean    clean-fid's mode "clean" (the default): per channel, PIL bicubic resize of the
             float32 image ('F' mode, [0, 255]) to 299x299, clipped to [0, 255], no requantization;
             then (x - 128) / 128. Float inputs (tensors) are first quantized to 8 bits (round), as
             clean-fid evaluates saved 8-bit images.
    legacy   pytorch-fid's preprocessing (the protocol of the CycleGAN/CUT/PONO-era numbers):
             ToTensor (x / 255), F.interpolate(size=299, mode='bilinear', align_corners=False)
             without antialiasing, then 2 x - 1.
    gennorm  gennorm's first protocol: float32 [0, 255], F.interpolate bilinear with antialias=True
             (torchmetrics' FrechetInceptionDistance(antialias=True) path), then (x - 128) / 128.

The network is the same for all three: torch-fidelity's port of the TF `inception-2015-12-05`
graph (pytorch-fid's weight file is byte-for-byte the same file, and clean-fid's TorchScript is
a port of the same graph); features are the 2048-d pool3 activations.

Loading: torch-fidelity reads the file with `torch.load(weights_only=False)`; we load it
ourselves with `weights_only=True` and hand torch-fidelity an in-memory copy of that plain
tensor dict, so no pickled code from disk is ever executed.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from gennorm.metrics.protocols import DEFAULT_PROTOCOL, PROTOCOLS, check_protocol  # noqa: F401

SIZE = 299
LAYERS = ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "MaxPool_1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
          "MaxPool_2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
          "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c", "AvgPool")  # torch-fidelity's modules, input to pool3


def load_inception(weights_path: str | Path, device: str | torch.device = "cpu") -> torch.nn.Module:
    """torch-fidelity's InceptionV3 (pool3 only) with weights from a local file, eval mode."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3  # only FID/KID need it

    state = torch.load(weights_path, map_location="cpu", weights_only=True)
    buf = io.BytesIO()
    torch.save(state, buf)  # plain tensors only: safe to hand to torch-fidelity's unrestricted load
    buf.seek(0)
    net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=buf)
    return net.to(device).eval()


def preprocess(images: list[torch.Tensor], protocol: str = DEFAULT_PROTOCOL) -> torch.Tensor:
    """[3, H, W] images (uint8, or float in [0, 255]; any sizes) -> float32 [N, 3, 299, 299], the
    network input of `protocol` (module doc)."""
    resize = {"clean": _clean, "legacy": _legacy, "gennorm": _antialiased}[check_protocol(protocol)]
    return torch.cat([resize(img) for img in images])


def _clean(img: torch.Tensor) -> torch.Tensor:
    img = img.detach().cpu()  # PIL resizes on the host; the features run on the net's device
    if img.dtype != torch.uint8:  # clean-fid sees 8-bit files
        img = img.float().round().clamp(0, 255).to(torch.uint8)
    hwc = img.permute(1, 2, 0).numpy().astype(np.float32)  # [H, W, 3] in [0, 255]
    planes = [np.asarray(Image.fromarray(np.ascontiguousarray(hwc[:, :, c]), mode="F")
                         .resize((SIZE, SIZE), resample=Image.BICUBIC)).clip(0, 255) for c in range(3)]
    x = torch.from_numpy(np.stack(planes)).unsqueeze(0)  # [1, 3, 299, 299]
    return (x - 128) / 128


def _legacy(img: torch.Tensor) -> torch.Tensor:
    x = img.unsqueeze(0).float() / 255  # [1, 3, H, W] in [0, 1]
    x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    return 2 * x - 1


def _antialiased(img: torch.Tensor) -> torch.Tensor:
    x = img.unsqueeze(0).float()  # [1, 3, H, W] in [0, 255]
    if x.shape[-2:] != (SIZE, SIZE):
        x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False, antialias=True)
    return (x - 128) / 128


@torch.inference_mode()
def inception_features(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Pool3 features [N, 2048] of preprocessed x [N, 3, 299, 299] (torch-fidelity's layers)."""
    x = x.to(next(net.parameters()).device, torch.float32)
    for name in LAYERS:
        x = getattr(net, name)(x)
    return torch.flatten(x, 1)  # [N, 2048]
