"""LPIPS (Zhang et al. 2018) on torchmetrics' implementation, built from local weight files.

torchmetrics' `LearnedPerceptualImagePatchSimilarity` asks torchvision for the pretrained
backbone, which downloads. We build its network (`_NoTrainLpips`) with a randomly initialised
backbone (`pnet_rand=True`: nothing downloads), its linear heads loaded from the copy that ships
inside torchmetrics, then load the torchvision backbone file ourselves (`weights_only=True`),
mapping torchvision's `features.<i>.*` onto LPIPS' slices (`slice<k>.<i>.*` / `slices.<k>.<i>.*`).

Inputs are [N, 3, H, W] in [0, 1] (torchmetrics `normalize=True`); scores are per pair.
"""
from __future__ import annotations

from pathlib import Path

import torch

NETS = {"lpips": ("alex", "alexnet"), "lpips-vgg": ("vgg", "vgg16"), "lpips-squeeze": ("squeeze", "squeezenet1_1")}


def load_lpips(metric: str, backbone_path: str | Path, device: str | torch.device = "cpu") -> torch.nn.Module:
    """The LPIPS network for `metric` ("lpips" = AlexNet, "lpips-vgg", "lpips-squeeze")."""
    from torchmetrics.functional.image.lpips import _NoTrainLpips  # lazy: absent on the GPU image

    net_type, _ = NETS[metric]
    net = _NoTrainLpips(net=net_type, pretrained=True, pnet_rand=True)  # heads from torchmetrics' files
    tv_state = torch.load(backbone_path, map_location="cpu", weights_only=True)
    own = net.net.state_dict()
    mapped = {}
    for key in own:  # "slice2.3.weight" or "slices.1.3.squeeze.weight" -> "features.3..."
        parts = key.split(".")
        rest = parts[2:] if parts[0] == "slices" else parts[1:]
        mapped[key] = tv_state["features." + ".".join(rest)]
    net.net.load_state_dict(mapped, strict=True)
    return net.to(device).eval()


@torch.inference_mode()
def lpips_scores(net: torch.nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Per-pair LPIPS [N] for images [N, 3, H, W] in [0, 1]."""
    return net(real, fake, normalize=True).reshape(real.shape[0])
