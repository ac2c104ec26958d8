"""`gennorm bench metrics`: throughput of FID/KID feature extraction (images/s), resize to 299 + InceptionV3 pool3.

Uses the official Inception file when present; otherwise a random-valued network of the same
architecture (the speed does not depend on the values, and nothing is downloaded). Input images
are random 256x256 uint8 tensors, so disk and PNG decoding are not included. Needs torch-fidelity
(the network's code).

Run: gennorm bench metrics --images 50 --batch-size 16 --device cpu
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from gennorm.errors import ConfigError
from gennorm.metrics import inception, weights
from gennorm.metrics.evaluate import resolve_device


def _network(device):
    path = weights.locate(weights.WEIGHT_FILES["inception"])
    if path is not None:
        return inception.load_inception(path, device), str(path)
    # torch-fidelity is optional (absent on the GPU image): imported here, only when the official file is absent
    from torch_fidelity import feature_extractor_inceptionv3 as fe

    load, fe.FeatureExtractorInceptionV3.load_state_dict = fe.FeatureExtractorInceptionV3.load_state_dict, \
        lambda self, *a, **k: None
    url, fe.load_state_dict_from_url = fe.load_state_dict_from_url, lambda *a, **k: {}
    try:
        net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    finally:
        fe.FeatureExtractorInceptionV3.load_state_dict, fe.load_state_dict_from_url = load, url
    with tempfile.TemporaryDirectory() as tmp:  # go through the real loading code anyway
        torch.save(net.state_dict(), Path(tmp) / "w.pth")
        return inception.load_inception(Path(tmp) / "w.pth", device), "random values (official file absent)"


def run(args) -> int:
    if args.images < 1 or args.batch_size < 1 or args.size < 1:
        raise ConfigError("--images, --batch-size and --size must be >= 1")
    dev = resolve_device(args.device)
    net, source = _network(dev)
    imgs = torch.randint(0, 256, (args.images, 3, args.size, args.size), dtype=torch.uint8)
    inception.inception_features(net, inception.preprocess(list(imgs[:2])))  # warm-up
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for i in range(0, args.images, args.batch_size):
        inception.inception_features(net, inception.preprocess(list(imgs[i:i + args.batch_size])))
    if dev.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    print(f"{args.images} images {args.size}x{args.size} -> 299 -> pool3 on {dev} "
          f"(batch {args.batch_size}, {torch.get_num_threads()} threads, weights: {source}): "
          f"{dt:.2f} s, {args.images / dt:.2f} images/s")
    return 0
