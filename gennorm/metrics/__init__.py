"""FID, KID, LPIPS, PSNR, SSIM on folders or tensors, offline-friendly (nothing downloads).

    from gennorm.metrics import evaluate_folders, evaluate_tensors, available_metrics
    res = evaluate_folders("data/testB", "out/fakeB", metrics=("fid", "kid", "psnr", "ssim"))
    res["metrics"]["fid"], res["counts"], res["protocol"], res["weights"]

Weight files (Inception for FID/KID, torchvision backbones for LPIPS) are looked up locally,
see `gennorm.metrics.weights` and `gennorm weights status`; a missing one raises
`gennorm.errors.MissingWeightsError` naming the file and where to put it.
"""
from gennorm.metrics.evaluate import (
    METRICS,
    PAIRED,
    UNPAIRED,
    available_metrics,
    evaluate_folders,
    evaluate_tensors,
    parse_metrics,
)
from gennorm.metrics.frechet import feature_stats, frechet_distance, frechet_distance_features
from gennorm.metrics.kid import kernel_inception_distance, polynomial_mmd

__all__ = [
    "METRICS", "PAIRED", "UNPAIRED", "available_metrics", "evaluate_folders", "evaluate_tensors", "parse_metrics",
    "feature_stats", "frechet_distance", "frechet_distance_features", "kernel_inception_distance", "polynomial_mmd",
]
