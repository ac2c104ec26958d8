"""Metric weight files made locally (nothing downloaded): the real architectures, random values.

Inception (torch-fidelity's FID network) with He-normal convs, so activations keep their scale
through the deep network, then torchvision's AlexNet (and SqueezeNet), all from seed 0.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gennorm.metrics import weights

INCEPTION = weights.WEIGHT_FILES["inception"].filename
ALEXNET = weights.WEIGHT_FILES["alexnet"].filename
SQUEEZE = weights.WEIGHT_FILES["squeezenet1_1"].filename


def write_random_metric_weights(folder: Path, squeezenet: bool = False) -> Path:
    """folder/INCEPTION, folder/ALEXNET (and SQUEEZE) with random values of the right shapes."""
    import torchvision
    from torch_fidelity import feature_extractor_inceptionv3 as fe

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    with pytest.MonkeyPatch.context() as mp:  # build the module without its download/load step
        mp.setattr(fe, "load_state_dict_from_url", lambda *a, **k: {})
        mp.setattr(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd, *a, **k: None)
        net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    for mod in net.modules():
        if isinstance(mod, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(mod.weight, nonlinearity="relu")
    torch.save(net.state_dict(), folder / INCEPTION)
    torch.save(torchvision.models.alexnet().state_dict(), folder / ALEXNET)
    if squeezenet:
        torch.save(torchvision.models.squeezenet1_1().state_dict(), folder / SQUEEZE)
    return folder
