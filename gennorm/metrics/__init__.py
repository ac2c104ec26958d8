"""FID, KID, LPIPS, PSNR, SSIM on folders or tensors, offline-friendly (nothing downloads).

    from gennorm.metrics import evaluate_folders, evaluate_tensors, available_metrics
    res = evaluate_folders("data/testB", "out/fakeB", metrics=("fid", "kid", "psnr", "ssim"))
    res["metrics"]["fid"], res["counts"], res["protocol"], res["weights"]

Weight files (Inception for FID/KID, torchvision backbones for LPIPS) are looked up locally,
see `gennorm.metrics.weights` and `gennorm weights status`; a missing one raises
`gennorm.errors.MissingWeightsError` naming the file and where to put it.
"""
from gennorm._lazy import lazy_exports, names

__getattr__, __dir__, __all__ = lazy_exports(globals(), {
    **names("gennorm.metrics.evaluate", "METRICS", "PAIRED", "UNPAIRED", "available_metrics", "evaluate_folders",
            "evaluate_tensors", "parse_metrics"),
    **names("gennorm.metrics.frechet", "feature_stats", "frechet_distance", "frechet_distance_features"),
    **names("gennorm.metrics.kid", "kernel_inception_distance", "polynomial_mmd"),
})
