"""Evaluate a set of generated images against real ones: FID, KID, LPIPS, PSNR, SSIM.

    evaluate_folders(real, fake, metrics=("fid", "kid", "psnr", "ssim")) -> dict
    evaluate_tensors(real, fake, metrics=...)                             -> dict

Every weight file is checked *before* any image is read, so a missing file costs nothing but
one `MissingWeightsError`. Unpaired metrics (fid, kid) compare the two sets as distributions;
paired metrics (lpips*, psnr, ssim) compare real/fake images matched by file name (folders) or
by index (tensors) and report the mean over pairs. FID/KID follow one of three preprocessing
protocols (`protocol=`: "clean" as clean-fid, the default; "legacy" as pytorch-fid; "gennorm"),
see gennorm.metrics.inception; its name is in every result. The result dict is what `gennorm eval`
writes as JSON:

    {"metrics": {"fid": .., "kid": .., "kid_std": .., "lpips": .., "psnr": .., "ssim": ..},
     "counts": {"real": N, "fake": M, "pairs": K}, "protocol": {"name": "clean", ...}, "weights": {...},
     "versions": {...}, "cache": {...}, "warnings": [...], "device": "cpu", ...}
"""
from __future__ import annotations

import importlib.metadata as md
import os
import platform
import warnings
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from gennorm.devices import require_device
from gennorm.errors import ConfigError, DataError
from gennorm.metrics import cache, images, inception, pixel, weights
from gennorm.metrics.frechet import frechet_distance_features
from gennorm.metrics.kid import kernel_inception_distance
from gennorm.metrics.lpips import NETS as LPIPS_NETS
from gennorm.metrics.lpips import load_lpips, lpips_scores

METRICS = ("fid", "kid", "lpips", "lpips-vgg", "lpips-squeeze", "psnr", "ssim")
UNPAIRED = ("fid", "kid")
PAIRED = ("lpips", "lpips-vgg", "lpips-squeeze", "psnr", "ssim")
_ALIASES = {"lpips-alex": "lpips", "lpips_alex": "lpips", "lpips_vgg": "lpips-vgg", "lpips_squeeze": "lpips-squeeze"}

Batches = Callable[[], Iterator[list[torch.Tensor]]]  # yields lists of [3, H, W] tensors in [0, 255]


def parse_metrics(metrics: str | Iterable[str]) -> list[str]:
    """'fid,kid' or ["fid", "kid"] -> canonical names in METRICS order; `ConfigError` if unknown."""
    names = metrics.split(",") if isinstance(metrics, str) else list(metrics)
    names = [_ALIASES.get(n.strip().lower(), n.strip().lower()) for n in names if n.strip()]
    unknown = [n for n in names if n not in METRICS]
    if unknown or not names:
        raise ConfigError(f"unknown metric(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(METRICS)}")
    return [m for m in METRICS if m in names]


def available_metrics(weights_dir: str | os.PathLike | None = None, verify: bool = True) -> list[str]:
    """Metrics whose weight files are on disk (psnr, ssim: always): with the official size, or any
    file of the right name with verify=False (--no-verify-weights, as the metrics themselves take it)."""
    return usable_metrics(METRICS, weights_dir, verify)[0]


def usable_metrics(names: Iterable[str], weights_dir: str | os.PathLike | None = None,
                   verify: bool = True) -> tuple[list[str], dict[str, list[str]]]:
    """Split `names` into (those whose weight files are all on disk, {metric: [its missing weight
    files, as `missing_weights_message` names them]}); psnr and ssim need none."""
    ok, missing = [], {}
    for m in names:
        absent = []
        for w in weights.files_for(m):
            path = weights.locate(w, weights_dir)
            if path is None:
                absent.append(w.filename + (f" (ships with {w.bundled}: reinstall it)" if w.bundled else ""))
            elif verify and path.stat().st_size != w.size:
                absent.append(f"{w.filename} ({path} is not the official file)")
        if absent:
            missing[m] = absent
        else:
            ok.append(m)
    return ok, missing


def missing_weights_message(missing: dict[str, list[str]], weights_dir=None) -> str:
    """One line naming every missing weight file of `usable_metrics` and where to put them."""
    by_file: dict[str, list[str]] = {}
    for m, files in missing.items():
        for f in files:
            by_file.setdefault(f, []).append(m)
    dirs = weights.search_dirs(weights_dir)
    files = ", ".join(f"{f} for {'/'.join(ms)}" for f, ms in by_file.items())
    return (f"{', '.join(missing)} skipped: weight files not on disk: {files}; put them in {dirs[0]} "
            f"(looked in: {', '.join(map(str, dirs))}) or run `gennorm weights fetch` (see `gennorm weights status`)")


def resolve_device(device: str | torch.device | None, option: str = "--device") -> torch.device:
    """torch.device for a name (None / "auto": cuda when available); a ConfigError naming `option` if absent."""
    return require_device("auto" if device is None else device, option)


def evaluate_folders(real, fake, metrics=("psnr", "ssim"), device="cpu", batch_size: int = 16,
                     weights_dir=None, *, kid_subset_size: int = 1000, kid_subsets: int = 100, seed: int = 0,
                     use_cache: bool = True, progress: bool | None = None, verify_weights: bool = True,
                     max_pixels: int | None = images.DEFAULT_MAX_PIXELS,
                     protocol: str = inception.DEFAULT_PROTOCOL) -> dict:
    """Metrics between the images in folder `real` and folder `fake` (see module doc).

    max_pixels: an image above it stops the evaluation before any is decoded (DataError naming it)."""
    names, protocol = parse_metrics(metrics), inception.check_protocol(protocol)
    weights_used = _require_weights(names, weights_dir, verify_weights)
    real, fake = Path(real), Path(fake)
    real_paths, fake_paths = images.list_folder(real, "real"), images.list_folder(fake, "fake")
    for path in real_paths + fake_paths:  # headers only: a bad file stops us before hours of compute
        images.check_size(path, max_pixels)
    pairs = images.pair_by_name(real, fake, real_paths, fake_paths) if set(names) & set(PAIRED) else None

    def batches(paths):
        return lambda: images.iter_batches(paths, batch_size)

    def pair_batches():
        for i in range(0, len(pairs), batch_size):
            chunk = pairs[i:i + batch_size]
            yield [images.read_uint8(r) for r, _ in chunk], [images.read_uint8(f) for _, f in chunk]

    real_key = None
    if use_cache and set(names) & set(UNPAIRED):
        real_key = cache.folder_key(real, real_paths, inception.PROTOCOLS[protocol], weights_used["inception"]["sha256"])
    result = _evaluate(names, batches(real_paths), len(real_paths), batches(fake_paths), len(fake_paths),
                       pair_batches if pairs else None, len(pairs or ()), weights_used, device,
                       kid_subset_size, kid_subsets, seed, progress, real_key,
                       [images.stem_key(real, p) for p in real_paths], protocol)
    result.update(real=str(real), fake=str(fake))
    return result


def evaluate_tensors(real: torch.Tensor, fake: torch.Tensor, metrics=("psnr", "ssim"), device="cpu",
                     batch_size: int = 16, weights_dir=None, *, kid_subset_size: int = 1000, kid_subsets: int = 100,
                     seed: int = 0, progress: bool | None = False, verify_weights: bool = True,
                     protocol: str = inception.DEFAULT_PROTOCOL) -> dict:
    """Metrics between image batches [N, 3, H, W] (uint8, or float in [0, 1]); pairs by index."""
    names, protocol = parse_metrics(metrics), inception.check_protocol(protocol)
    weights_used = _require_weights(names, weights_dir, verify_weights)
    r, f = _to_255(real, "real"), _to_255(fake, "fake")
    if set(names) & set(PAIRED) and (r.shape[0] != f.shape[0] or r.shape[2:] != f.shape[2:]):
        raise ValueError(f"paired metrics need real and fake of the same shape, got {tuple(real.shape)} and "
                         f"{tuple(fake.shape)}")

    def batches(x):
        return lambda: (list(x[i:i + batch_size]) for i in range(0, x.shape[0], batch_size))

    def pair_batches():
        for i in range(0, r.shape[0], batch_size):
            yield list(r[i:i + batch_size]), list(f[i:i + batch_size])

    return _evaluate(names, batches(r), r.shape[0], batches(f), f.shape[0], pair_batches, r.shape[0],
                     weights_used, device, kid_subset_size, kid_subsets, seed, progress, None, None, protocol)


def _to_255(x: torch.Tensor, name: str) -> torch.Tensor:
    if not torch.is_tensor(x) or x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"{name}: expected a tensor [N, 3, H, W], got {getattr(x, 'shape', type(x))}")
    if x.dtype == torch.uint8:
        return x.float()
    if x.min() < 0 or x.max() > 1:
        raise ValueError(f"{name}: float images must be in [0, 1], got [{float(x.min()):.3g}, {float(x.max()):.3g}]")
    return x.float() * 255


def _require_weights(names: list[str], weights_dir, verify: bool) -> dict:
    used: dict[str, dict] = {}
    for m in names:
        used.update(weights.require(m, weights_dir, verify=verify))
    return used


def _evaluate(names, real_batches: Batches, n_real: int, fake_batches: Batches, n_fake: int, pair_batches,
              n_pairs: int, weights_used: dict, device, kid_subset_size, kid_subsets, seed, progress,
              real_key, real_names, protocol) -> dict:
    dev = resolve_device(device)
    result = {"metrics": {}, "counts": {"real": n_real, "fake": n_fake}, "device": str(dev),
              "protocol": {"name": protocol}, "weights": weights_used, "versions": library_versions(), "cache": {}}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if set(names) & set(UNPAIRED):
            result["metrics"].update(_unpaired(names, real_batches, n_real, fake_batches, n_fake, weights_used,
                                               dev, kid_subset_size, kid_subsets, seed, progress, real_key,
                                               real_names, result, protocol))
        if set(names) & set(PAIRED):
            result["counts"]["pairs"] = n_pairs
            result["metrics"].update(_paired(names, pair_batches, n_pairs, weights_used, dev, progress, result))
    result["warnings"] = list(dict.fromkeys(str(w.message) for w in caught
                                            if issubclass(w.category, UserWarning) and "gennorm" in w.filename))
    for text in result["warnings"]:
        warnings.warn(text, stacklevel=3)
    return result


def _unpaired(names, real_batches, n_real, fake_batches, n_fake, weights_used, dev, kid_subset_size,
              kid_subsets, seed, progress, real_key, real_names, result, protocol) -> dict:
    if min(n_real, n_fake) < 2:
        raise DataError(f"FID/KID need at least 2 images per set, got {n_real} real and {n_fake} fake")
    result["protocol"]["inception"] = inception.PROTOCOLS[protocol]
    net = inception.load_inception(weights_used["inception"]["file"], dev)
    real_feats = cache.load(real_key) if real_key else None
    result["cache"] = {"real_features": "hit" if real_feats is not None else ("miss" if real_key else "off")}
    if real_feats is None or real_feats.shape[0] != n_real:
        real_feats = _features(net, real_batches, n_real, "real features", progress, protocol)
        if real_key:
            result["cache"]["file"] = str(cache.save(real_key, real_feats, real_names))
    elif real_key:
        result["cache"]["file"] = str(cache.cache_dir() / f"{real_key}.npz")
    fake_feats = _features(net, fake_batches, n_fake, "fake features", progress, protocol)
    out = {}
    if "fid" in names:
        if min(n_real, n_fake) < 2048:
            warnings.warn(f"FID on {min(n_real, n_fake)} images (< 2048) is biased upwards; compare only FIDs "
                          "computed on the same number of images")
        out["fid"] = frechet_distance_features(real_feats, fake_feats, device=dev)
    if "kid" in names:
        out.update(kernel_inception_distance(real_feats, fake_feats, kid_subsets, kid_subset_size, seed, dev))
    return out


def _features(net, batches: Batches, total: int, desc: str, progress, protocol: str) -> np.ndarray:
    feats = []
    with images.progress_bar(total, desc, progress) as bar:
        for batch in batches():
            feats.append(inception.inception_features(net, inception.preprocess(batch, protocol)).cpu().numpy())
            bar.update(len(batch))
    return np.concatenate(feats)  # [N, 2048] float32


def _paired(names, pair_batches, n_pairs, weights_used, dev, progress, result) -> dict:
    lp_nets = {m: load_lpips(m, weights_used[LPIPS_NETS[m][1]]["file"], dev) for m in names if m in LPIPS_NETS}
    scores: dict[str, list[torch.Tensor]] = {m: [] for m in names if m in PAIRED}
    resized = 0
    with images.progress_bar(n_pairs, "pairs", progress) as bar:
        for reals, fakes in pair_batches():
            for r, f, n_resized in _group_by_size(reals, fakes):
                resized += n_resized
                # [B, 3, H, W] in [0, 1], float64 so that 8-bit data stays exact for PSNR/SSIM
                r, f = (r.to(dev, torch.float64) / 255).clamp(0, 1), (f.to(dev, torch.float64) / 255).clamp(0, 1)
                if "psnr" in scores:
                    scores["psnr"].append(pixel.psnr_per_image(r, f).cpu())
                if "ssim" in scores:
                    scores["ssim"].append(pixel.ssim_per_image(r, f).cpu())
                for m, net in lp_nets.items():
                    scores[m].append(lpips_scores(net, r.float(), f.float()).double().cpu())
            bar.update(len(reals))
    if resized:
        warnings.warn(f"{resized} fake image(s) differ in size from their real pair and were resized to it "
                      "(antialiased bilinear) for the paired metrics")
    result["counts"]["pairs_resized"] = resized
    result["protocol"]["paired"] = {"match": "by file name without extension (folders) or by index (tensors)",
                                    "size_mismatch": "fake resized to the real image's size, antialiased bilinear",
                                    **{m: pixel.SETTINGS[m] for m in ("psnr", "ssim") if m in scores}}
    if lp_nets:
        result["protocol"]["paired"]["lpips"] = ("torchmetrics LPIPS v0.1 heads, normalize=True on [0,1] inputs, "
                                                 "native resolution, mean over pairs")
    values = {m: torch.cat(v) for m, v in scores.items()}  # [n_pairs] each
    if "psnr" in values:
        _note_identical_pairs(values["psnr"], result)
    return {m: float(v.mean()) for m, v in values.items()}


def _note_identical_pairs(psnr: torch.Tensor, result: dict) -> None:
    """PSNR is +inf for an identical pair, and so is the mean: say why in result["notes"]["psnr"]
    (the table prints it; the JSON writes psnr null with the note, gennorm.atomic.json_safe)."""
    same = int(torch.isinf(psnr).sum())
    if same:
        rest = psnr[torch.isfinite(psnr)]
        other = f"; the mean over the other {rest.numel()} pairs is {float(rest.mean()):.4f} dB" if rest.numel() else ""
        result.setdefault("notes", {})["psnr"] = (f"infinite: {same} of {psnr.numel()} pairs are identical "
                                                  f"(MSE 0){other}")


def _group_by_size(reals: list[torch.Tensor], fakes: list[torch.Tensor]):
    """Yield (real [B,3,H,W], fake [B,3,H,W], n_resized) for runs of pairs sharing the real's size."""
    groups: dict[tuple, tuple[list, list, int]] = {}
    for r, f in zip(reals, fakes):
        r, f = r.float(), f.float()
        n = 0
        if f.shape != r.shape:
            f = F.interpolate(f[None], size=r.shape[-2:], mode="bilinear", align_corners=False, antialias=True)[0]
            n = 1
        g = groups.setdefault(tuple(r.shape), ([], [], 0))
        g[0].append(r), g[1].append(f)
        groups[tuple(r.shape)] = (g[0], g[1], g[2] + n)
    for rs, fs, n in groups.values():
        yield torch.stack(rs), torch.stack(fs), n


def library_versions() -> dict:
    out = {"python": platform.python_version()}
    for dist in ("gennorm", "torch", "torchvision", "torchmetrics", "torch-fidelity", "numpy", "scipy", "pillow"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = None
    return out
