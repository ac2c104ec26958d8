"""gennorm.metrics: Frechet/KID math against literal definitions, FID/KID/LPIPS through the real
loading code with locally made random-valued weights (nothing downloads), PSNR/SSIM against
scikit-image, and the CLI's errors (missing weights, unmatched names, --run contract).

Inception at 299x299 costs ~0.1-0.3 s per image on CPU, so the FID tests use a handful of 32x32
images and share one module-scoped evaluation.
"""
from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import linalg
from torch.testing import assert_close

from gennorm.errors import DataError, MissingWeightsError
from gennorm.metrics import (
    available_metrics,
    evaluate_folders,
    evaluate_tensors,
    feature_stats,
    frechet_distance,
    frechet_distance_features,
    kernel_inception_distance,
    polynomial_mmd,
)
from gennorm.metrics import cache, inception, weights

from metric_weights import ALEXNET, INCEPTION, SQUEEZE, write_random_metric_weights  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """No user cache, no user weights: the hub cache and the feature cache point into tmp."""
    monkeypatch.setenv("GENNORM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv("GENNORM_WEIGHTS", raising=False)


def _write_images(folder: Path, seed: int, n: int = 6, size=(32, 32), names=None, low=0) -> list[Path]:
    """Smooth random RGB PNGs (plus one grayscale file, to go through the RGB conversion);
    colours drawn from [low, 255]."""
    folder.mkdir(parents=True, exist_ok=True)
    g = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        h, w = size
        base = g.uniform(low, 255, (4, 4, 3))
        img = np.asarray(Image.fromarray(base.astype(np.uint8)).resize((w, h), Image.BICUBIC), dtype=np.float64)
        img = np.clip(img + g.normal(0, 12, img.shape), 0, 255).astype(np.uint8)
        im = Image.fromarray(img).convert("L") if i == n - 1 else Image.fromarray(img)
        path = folder / f"{(names[i] if names else f'{i:04d}')}.png"
        im.save(path)
        paths.append(path)
    return paths


# ---------------------------------------------------------------- Frechet distance and KID math

def _sqrtm_fid(mu1, s1, mu2, s2):
    """The classic pytorch-fid formula with scipy.linalg.sqrtm (full-rank covariances)."""
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_frechet_closed_form_diagonal_and_1d():
    g = np.random.default_rng(0)
    mu1, mu2 = g.normal(size=5), g.normal(size=5)
    a, b = g.uniform(0.1, 3, 5), g.uniform(0.1, 3, 5)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()  # commuting covariances
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-12)
    # 1-D: (m1 - m2)^2 + (s1 - s2)^2 with standard deviations s
    assert frechet_distance([1.0], [[4.0]], [-2.0], [[9.0]]) == pytest.approx(9.0 + 1.0, rel=1e-12)


def test_frechet_matches_scipy_sqrtm_on_general_covariances():
    g = np.random.default_rng(1)
    d = 16
    x, y = g.normal(size=(200, d)), g.normal(size=(300, d)) @ g.normal(size=(d, d)) * 0.5 + 1.0
    (mu1, s1), (mu2, s2) = feature_stats(x), feature_stats(y)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(_sqrtm_fid(mu1, s1, mu2, s2), rel=1e-9)


def test_frechet_from_few_features_equals_the_covariance_route():
    g = np.random.default_rng(4)
    x, y = g.normal(size=(7, 40)), g.normal(size=(9, 40)) * 1.5 + 0.3  # N < D: the nuclear-norm route
    expected = frechet_distance(*feature_stats(x), *feature_stats(y))
    assert frechet_distance_features(x, y) == pytest.approx(expected, rel=1e-9)
    assert abs(frechet_distance_features(x, x)) < 1e-12 * expected


def test_frechet_of_rank_deficient_set_with_itself_is_zero():
    x = np.random.default_rng(2).normal(size=(8, 64))  # N < D: singular covariance, like 8 images in 2048-d
    mu, s = feature_stats(x)
    assert abs(frechet_distance(mu, s, mu, s)) < 1e-9 * np.trace(s)


def test_polynomial_mmd_matches_literal_definition():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(5, 3, generator=g, dtype=torch.float64)
    k = lambda a, b: (a @ b / 3 + 1) ** 3  # noqa: E731
    m = 5
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    assert_close(polynomial_mmd(x, y), xx + yy - 2 * xy)


def test_kid_lowers_subset_size_with_a_warning():
    g = np.random.default_rng(3)
    x, y = g.normal(size=(20, 8)), g.normal(size=(30, 8)) + 2
    with pytest.warns(UserWarning, match="subset size lowered from 1000 to 20"):
        out = kernel_inception_distance(x, y, subsets=10)
    gen = torch.Generator().manual_seed(0)  # seed 0: per subset a permutation of each set, first 20 kept
    vals = [polynomial_mmd(torch.from_numpy(x)[torch.randperm(20, generator=gen)[:20]],
                           torch.from_numpy(y)[torch.randperm(30, generator=gen)[:20]]) for _ in range(10)]
    assert out["kid_subset_size"] == 20
    assert out["kid"] == pytest.approx(float(torch.stack(vals).mean()), rel=1e-12)
    assert out["kid_std"] == pytest.approx(float(torch.stack(vals).std(unbiased=False)), rel=1e-9)


# ---------------------------------------------------------------- FID/KID through the real loading code

@pytest.fixture(scope="module")
def random_weights(tmp_path_factory) -> Path:
    """A weights folder with Inception, AlexNet and SqueezeNet files of the right architecture and
    random values (He-normal convs so activations keep their scale through the deep Inception)."""
    return write_random_metric_weights(tmp_path_factory.mktemp("weights"), squeezenet=True)


@pytest.fixture(scope="module")
def fid_runs(random_weights, tmp_path_factory):
    """Set A against a copy of A (self), then against a different set B (cache hit on A)."""
    root = tmp_path_factory.mktemp("fid")
    _write_images(root / "a", seed=10)
    shutil.copytree(root / "a", root / "a_copy")
    _write_images(root / "b", seed=11, size=(40, 24), low=160)  # brighter, another size (per-image resize)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GENNORM_CACHE", str(root / "cache"))
        kw = dict(metrics=("fid", "kid"), weights_dir=random_weights, verify_weights=False, batch_size=4,
                  kid_subsets=20, progress=False)
        with pytest.warns(UserWarning):
            same = evaluate_folders(root / "a", root / "a_copy", **kw)
            other = evaluate_folders(root / "a", root / "b", **kw)
    return same, other


def test_fid_and_kid_of_a_set_with_itself_are_zero(fid_runs):
    same, other = fid_runs
    assert other["metrics"]["fid"] > 1e-3  # the random network still tells the sets apart
    assert abs(same["metrics"]["fid"]) < 1e-6 * other["metrics"]["fid"]
    # unbiased MMD of a set with itself: not exactly 0 (diagonal terms), but tiny next to another set
    assert abs(same["metrics"]["kid"]) < 0.2 * other["metrics"]["kid"]
    assert same["metrics"]["kid_subset_size"] == 6 and any("subset size lowered" in w for w in same["warnings"])


def test_fid_result_records_protocol_weights_counts_and_cache(fid_runs, random_weights):
    same, other = fid_runs
    assert same["counts"] == {"real": 6, "fake": 6}
    assert same["protocol"]["name"] == "clean" and same["protocol"]["inception"] == inception.PROTOCOLS["clean"]
    w = same["weights"]["inception"]
    assert w["file"] == str(random_weights / INCEPTION) and w["verified"] is False and len(w["sha256"]) == 64
    assert same["cache"]["real_features"] == "miss" and other["cache"]["real_features"] == "hit"
    assert Path(other["cache"]["file"]).is_file()
    assert {"torch", "torchmetrics", "torch-fidelity"} <= set(same["versions"])


def test_inception_features_match_torchmetrics_antialiased_path(random_weights):
    from torchmetrics.image.fid import NoTrainInceptionV3

    gen = torch.Generator().manual_seed(0)
    imgs = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=gen)
    ours = inception.inception_features(inception.load_inception(random_weights / INCEPTION),
                                        inception.preprocess(list(imgs), "gennorm"))
    tm = NoTrainInceptionV3("inception-v3-compat", ["2048"], str(random_weights / INCEPTION), antialias=True)
    with torch.no_grad():
        assert_close(ours, tm(imgs), rtol=1e-4, atol=1e-4 * float(ours.abs().max()))


def test_cache_key_changes_when_a_file_changes(tmp_path):
    paths = _write_images(tmp_path / "r", seed=0, n=2)
    key = cache.folder_key(tmp_path / "r", paths, inception.PROTOCOLS["clean"], "x")
    os.utime(paths[0], ns=(1, 1))  # the key is the content's (tests/test_integrity.py): touching keeps it
    assert cache.folder_key(tmp_path / "r", paths, inception.PROTOCOLS["clean"], "x") == key
    paths[0].write_bytes(paths[1].read_bytes())
    assert cache.folder_key(tmp_path / "r", paths, inception.PROTOCOLS["clean"], "x") != key
    assert cache.folder_key(tmp_path / "r", paths, inception.PROTOCOLS["clean"], "y") != cache.folder_key(
        tmp_path / "r", paths, inception.PROTOCOLS["clean"], "x")


# ---------------------------------------------------------------- LPIPS, PSNR, SSIM

def test_lpips_of_identical_images_is_zero(random_weights):
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(3, 3, 32, 32, generator=g), torch.rand(3, 3, 32, 32, generator=g)
    kw = dict(metrics=("lpips", "lpips-squeeze"), weights_dir=random_weights, verify_weights=False)
    same, diff = evaluate_tensors(x, x.clone(), **kw), evaluate_tensors(x, y, **kw)
    for m in ("lpips", "lpips-squeeze"):
        assert same["metrics"][m] == pytest.approx(0.0, abs=1e-7) and diff["metrics"][m] > 1e-4
    assert same["weights"]["lpips_alex"]["verified"] is True  # the heads shipped with torchmetrics


def test_psnr_ssim_equal_scikit_image_on_png_files(tmp_path):
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    names = ["cat", "dog", "sub_a"]
    _write_images(tmp_path / "real", seed=1, n=3, names=names)
    _write_images(tmp_path / "fake", seed=2, n=3, names=names)
    (tmp_path / "real" / "dog.png").unlink()  # one pair of another size: 24x40
    _write_images(tmp_path / "tmp", seed=3, n=1, size=(24, 40), names=["dog"])
    shutil.move(tmp_path / "tmp" / "dog.png", tmp_path / "real" / "dog.png")
    fake_dog = np.asarray(Image.open(tmp_path / "real" / "dog.png").convert("RGB")).astype(int) + 9
    Image.fromarray(np.clip(fake_dog, 0, 255).astype(np.uint8)).save(tmp_path / "fake" / "dog.jpg", quality=95)
    (tmp_path / "fake" / "dog.png").unlink()  # pairs match by name without extension

    _write_images(tmp_path / "fake" / "inputs", seed=4, n=2)  # subfolders (gennorm translate's) are ignored
    res = evaluate_folders(tmp_path / "real", tmp_path / "fake", metrics="psnr,ssim", batch_size=2, progress=False)
    psnr, ssim = [], []
    for n in names:
        a = np.asarray(Image.open(tmp_path / "real" / f"{n}.png").convert("RGB"))
        b = np.asarray(Image.open(next((tmp_path / "fake").glob(f"{n}.*"))).convert("RGB"))
        # data_range=255 on uint8 == our data_range=1 on x/255; Gaussian 11x11 window, sigma 1.5
        psnr.append(peak_signal_noise_ratio(a, b, data_range=255))
        ssim.append(structural_similarity(a, b, data_range=255, channel_axis=-1, gaussian_weights=True,
                                          sigma=1.5, use_sample_covariance=False))
    assert res["metrics"]["psnr"] == pytest.approx(np.mean(psnr), rel=1e-12)
    assert res["metrics"]["ssim"] == pytest.approx(np.mean(ssim), rel=1e-12)
    assert res["counts"] == {"real": 3, "fake": 3, "pairs": 3, "pairs_resized": 0}
    assert available_metrics() == ["psnr", "ssim"]  # no official network files in the isolated dirs


def test_paired_metrics_with_mismatched_names_fail_clearly(tmp_path):
    _write_images(tmp_path / "real", seed=1, n=3, names=["a", "b", "c"])
    _write_images(tmp_path / "fake", seed=2, n=2, names=["a", "x"])
    with pytest.raises(DataError, match=r"3 real vs 2 fake.*only in .*real: b, c.*only in .*fake: x"):
        evaluate_folders(tmp_path / "real", tmp_path / "fake", metrics=("psnr",))


# ---------------------------------------------------------------- weights and the CLI

def test_missing_weights_raise_before_reading_images(tmp_path):
    with pytest.raises(MissingWeightsError, match=INCEPTION.replace(".", r"\.") + r".*put it in " + str(tmp_path)):
        evaluate_folders(tmp_path / "nope", tmp_path / "nope", metrics=("fid",), weights_dir=tmp_path)


def test_non_official_weight_file_is_refused_when_verifying(random_weights):
    with pytest.raises(MissingWeightsError, match="is not the official"):
        weights.require("lpips", random_weights, verify=True)


def test_cli_missing_weights_message_exit_2_no_traceback(tmp_path):
    _write_images(tmp_path / "real", seed=1, n=2)
    empty = tmp_path / "empty_weights"
    empty.mkdir()
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "th"), "GENNORM_CACHE": str(tmp_path / "c")}
    env.pop("GENNORM_WEIGHTS", None)
    proc = subprocess.run([sys.executable, "-m", "gennorm", "eval", str(tmp_path / "real"), str(tmp_path / "real"),
                           "--metrics", "fid", "--weights-dir", str(empty)], capture_output=True, text=True, env=env)
    assert proc.returncode == 2, proc.stderr
    assert INCEPTION in proc.stderr and str(empty) in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_cli_eval_writes_json_and_run_contract(tmp_path, monkeypatch, capsys):
    import json

    from gennorm.cli import main

    _write_images(tmp_path / "real", seed=1, n=3)
    _write_images(tmp_path / "fake", seed=2, n=3)
    assert main(["eval", str(tmp_path / "real"), str(tmp_path / "fake"), "--metrics", "psnr,ssim",
                 "--json", str(tmp_path / "e.json")]) == 0
    data = json.loads((tmp_path / "e.json").read_text())
    assert set(data["metrics"]) == {"psnr", "ssim"} and data["counts"]["pairs"] == 3 and "versions" in data

    # --run: gennorm.inference.translate_test_split's real/fake folders + paired flag are evaluated
    def translate_test_split(run_dir, out_dir, *, device="cpu"):
        shutil.copytree(tmp_path / "fake", out_dir)
        return {"real": tmp_path / "real", "fake": Path(out_dir), "paired": True}

    import gennorm.study.evaluate  # eval --run's library side: it calls translate_test_split

    monkeypatch.setattr(gennorm.study.evaluate, "translate_test_split", translate_test_split)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    assert main(["eval", "--run", str(run_dir), "--metrics", "psnr,ssim", "--quiet"]) == 0
    data = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert data["run"] == str(run_dir) and data["counts"]["pairs"] == 3


def test_which_metrics_run_follows_the_weights_folder_and_verification(random_weights, tmp_path):
    """available / usable metrics honour the weights folder and `verify` (the random files have the wrong
    size: verified, they are not the official files); `--metrics auto` picks fid, kid (+ the paired metrics
    for paired folders) of those; the skip message names each missing file, its metrics and the folders."""
    from gennorm.metrics.evaluate import missing_weights_message, usable_metrics
    from gennorm.metrics.results import auto_metrics, names_pair_up

    empty = tmp_path / "empty"
    empty.mkdir()
    assert available_metrics(empty) == available_metrics(random_weights) == ["psnr", "ssim"]
    assert available_metrics(random_weights, verify=False) == ["fid", "kid", "lpips", "lpips-squeeze", "psnr", "ssim"]
    ok, missing = usable_metrics(["fid", "lpips", "psnr"], empty)
    assert ok == ["psnr"] and missing == {"fid": [INCEPTION], "lpips": [ALEXNET]}
    assert usable_metrics(["fid"], random_weights) == ([], {"fid": [f"{INCEPTION} ({random_weights / INCEPTION} is "
                                                                   "not the official file)"]})
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    assert missing_weights_message(usable_metrics(["fid", "kid", "lpips"], empty)[1], empty) == (
        f"fid, kid, lpips skipped: weight files not on disk: {INCEPTION} for fid/kid, {ALEXNET} for lpips; put them "
        f"in {empty} (looked in: {empty}, {hub}) or run `gennorm weights fetch` (see `gennorm weights status`)")
    assert auto_metrics(True, random_weights, False) == (["fid", "kid", "lpips", "psnr", "ssim"], {})
    assert auto_metrics(False, random_weights, False) == (["fid", "kid"], {})
    assert auto_metrics(True, random_weights) == (["psnr", "ssim"], {m: "weights not on disk" for m in
                                                                      ("fid", "kid", "lpips")})
    assert auto_metrics(False, empty) == ([], {"fid": "weights not on disk", "kid": "weights not on disk"})
    _write_images(tmp_path / "r", seed=1, n=2, names=["a", "b"])
    _write_images(tmp_path / "f", seed=2, n=2, names=["b", "a"])
    _write_images(tmp_path / "g", seed=2, n=2, names=["a", "c"])
    assert names_pair_up(tmp_path / "r", tmp_path / "f") and not names_pair_up(tmp_path / "r", tmp_path / "g")
    for real, fake, role in ((empty, tmp_path / "f", "real"), (tmp_path / "r", empty, "fake")):
        with pytest.raises(DataError, match=rf"^no images in {empty}; expected a folder of {role} images "):
            names_pair_up(real, fake)


def test_identical_pairs_give_an_infinite_psnr_and_a_note_with_the_other_pairs_mean():
    real = torch.rand(3, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    fake = torch.stack([real[0], (real[1] * 0.9).clamp(0, 1), real[2] * 0.5])
    others = evaluate_tensors(real[1:], fake[1:], metrics=("psnr",))
    assert "notes" not in others and math.isfinite(others["metrics"]["psnr"])
    result = evaluate_tensors(real, fake, metrics=("psnr", "ssim"))
    assert result["metrics"]["psnr"] == math.inf and result["notes"] == {
        "psnr": f"infinite: 1 of 3 pairs are identical (MSE 0); the mean over the other 2 pairs is "
                f"{others['metrics']['psnr']:.4f} dB"}
    same = evaluate_tensors(real[:1], fake[:1], metrics=("psnr",))
    assert same["notes"] == {"psnr": "infinite: 1 of 1 pairs are identical (MSE 0)"}


def test_unmatched_names_show_five_and_count_the_rest(tmp_path):
    from gennorm.metrics.images import pair_by_name

    real = [tmp_path / "r" / f"{i}.png" for i in range(8)]
    fake = [tmp_path / "f" / "0.png", tmp_path / "f" / "x.png"]
    with pytest.raises(DataError, match=rf"^paired metrics \(lpips, psnr, ssim\) need the same file names in both "
                                        rf"folders; 8 real vs 2 fake images; only in {tmp_path / 'r'}: 1, 2, 3, 4, 5 "
                                        rf"and 2 more; only in {tmp_path / 'f'}: x$"):
        pair_by_name(tmp_path / "r", tmp_path / "f", real, fake)
    assert pair_by_name(tmp_path / "r", tmp_path / "f", real[:1], fake[:1]) == [(real[0], fake[0])]


def test_fid_needs_two_images_per_set(random_weights):
    """Two images per set are enough for FID (a covariance of rank 1); one is refused naming both counts."""
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    kw = dict(metrics=("fid",), weights_dir=random_weights, verify_weights=False)
    result = evaluate_tensors(x[:2], x[1:], **kw)
    assert math.isfinite(result["metrics"]["fid"]) and result["cache"] == {"real_features": "off"}  # tensors: no cache
    with pytest.raises(DataError, match=r"^FID/KID need at least 2 images per set, got 1 real and 2 fake$"):
        evaluate_tensors(x[:1], x[1:], **kw)


def test_cached_real_features_of_another_count_are_recomputed(random_weights, tmp_path):
    """The real features come from the cache when its entry has one row per image; an entry with another
    count (a damaged or hand-edited cache) is recomputed and rewritten, never used."""
    _write_images(tmp_path / "real", seed=1, n=3, size=(16, 16))
    _write_images(tmp_path / "fake", seed=2, n=3, size=(16, 16))
    kw = dict(metrics=("fid",), weights_dir=random_weights, verify_weights=False, progress=False)
    with pytest.warns(UserWarning):
        first = evaluate_folders(tmp_path / "real", tmp_path / "fake", **kw)
    assert first["cache"]["real_features"] == "miss"
    path = Path(first["cache"]["file"])
    with np.load(path) as z:
        features, names = z["features"], z["names"]
    np.savez(path, features=features[:2] + 1, names=names[:2])  # the right key, two rows, other values
    with pytest.warns(UserWarning):
        again = evaluate_folders(tmp_path / "real", tmp_path / "fake", **kw)
    assert again["metrics"]["fid"] == pytest.approx(first["metrics"]["fid"], rel=1e-9)
    with np.load(path) as z:
        assert np.array_equal(z["features"], features)
    np.savez(path, features=features + 1, names=names)  # a full entry is used as it is
    with pytest.warns(UserWarning):
        used = evaluate_folders(tmp_path / "real", tmp_path / "fake", **kw)
    assert used["cache"]["real_features"] == "hit" and used["metrics"]["fid"] != pytest.approx(first["metrics"]["fid"])


def test_fakes_of_another_size_are_resized_and_counted(tmp_path):
    """Each fake whose size differs from its real pair is resized to it (antialiased bilinear) and counted."""
    _write_images(tmp_path / "real", seed=1, n=3, size=(16, 16), names=["a", "b", "c"])
    _write_images(tmp_path / "fake", seed=2, n=1, size=(16, 16), names=["a"])
    _write_images(tmp_path / "fake", seed=3, n=2, size=(20, 24), names=["b", "c"])
    with pytest.warns(UserWarning, match=r"^2 fake image\(s\) differ in size from their real pair and were resized"):
        result = evaluate_folders(tmp_path / "real", tmp_path / "fake", metrics=("psnr",), progress=False)
    assert result["counts"]["pairs_resized"] == 2 and result["counts"]["pairs"] == 3
