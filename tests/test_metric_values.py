"""The metric pipelines against independent implementations with the same locally made weights.

FID and KID of two *differing* folders (images of several sizes, one wider than 299 so the
antialiased downscale matters) against torchmetrics' FrechetInceptionDistance and
KernelInceptionDistance fed the same images one at a time (its own resize per image, its own
statistics and matrix square root); LPIPS of a folder pair against torchmetrics'
LearnedPerceptualImagePatchSimilarity (which loads the same AlexNet file from the hub cache);
`feature_stats` against numpy's literal mean and covariance; KID's subset average by its
definition. Weights: random values in the official architectures (nothing downloads).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from gennorm.metrics import evaluate_folders, feature_stats, kernel_inception_distance

from metric_weights import ALEXNET, INCEPTION, write_random_metric_weights  # noqa: E402
SIZES = [(32, 32), (40, 24), (304, 20), (33, 31)]  # (w, h)


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """A torch hub cache holding random-valued Inception (He-normal convs) and AlexNet files."""
    home = tmp_path_factory.mktemp("torch_home")
    write_random_metric_weights(home / "hub" / "checkpoints")
    return home


@pytest.fixture(autouse=True)
def _isolated(hub, tmp_path, monkeypatch):
    monkeypatch.setenv("GENNORM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(hub))
    monkeypatch.delenv("GENNORM_WEIGHTS", raising=False)


def write_set(folder, seed, sizes=SIZES, low=0, high=255):
    folder.mkdir(parents=True, exist_ok=True)
    g = np.random.default_rng(seed)
    for i, (w, h) in enumerate(sizes):
        base = g.uniform(low, high, (4, 4, 3)).astype(np.uint8)
        img = np.asarray(Image.fromarray(base).resize((w, h), Image.BICUBIC), dtype=np.float64)
        img = np.clip(img + g.normal(0, 12, img.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"{i:04d}.png")
    return folder


def uint8_images(folder):
    return [torch.from_numpy(np.asarray(Image.open(p).convert("RGB")).copy()).permute(2, 0, 1)
            for p in sorted(folder.glob("*.png"))]


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("sets")
    return write_set(root / "real", 1), write_set(root / "fake", 2, sizes=SIZES[::-1], low=60)


class Recording(torch.nn.Module):
    """torchmetrics' Inception, keeping every feature batch it returns."""

    def __init__(self, net):
        super().__init__()
        self.net, self.feats = net, []

    def forward(self, x):
        out = self.net(x)
        self.feats.append(out.detach())
        return out


def torchmetrics_fid_on_the_span(fid, feats: torch.Tensor) -> float:
    """torchmetrics' FID (its accumulated statistics, its `_compute_fid`) in the span of the features.

    Both covariances and the mean difference live in the span of the (<= 8) centred features, and
    the Frechet distance is invariant under an orthonormal change of basis, so projecting onto that
    span first is exact and spares torchmetrics' float64 eigvals of a 2048 x 2048 product (~90 s on
    2 cores)."""
    from torchmetrics.image.fid import _compute_fid

    stats = []
    for side in ("real", "fake"):  # as FrechetInceptionDistance.compute does
        n = getattr(fid, f"{side}_features_num_samples")
        mean = (getattr(fid, f"{side}_features_sum") / n).unsqueeze(0)
        cov = (getattr(fid, f"{side}_features_cov_sum") - n * mean.t().mm(mean)) / (n - 1)
        stats.append((mean.squeeze(0), cov))
    q, _ = torch.linalg.qr((feats - feats.mean(0)).t())  # [2048, 8] orthonormal basis of the span
    (m1, s1), (m2, s2) = stats
    return float(_compute_fid(q.t() @ m1, q.t() @ s1 @ q, q.t() @ m2, q.t() @ s2 @ q))


def test_fid_and_kid_equal_torchmetrics_on_differing_sets(sets, hub):
    from torchmetrics.image.fid import FrechetInceptionDistance, NoTrainInceptionV3
    from torchmetrics.image.kid import poly_mmd

    real, fake = sets
    with pytest.warns(UserWarning):
        ours = evaluate_folders(real, fake, metrics=("fid", "kid"), verify_weights=False, batch_size=3,
                                kid_subsets=3, kid_subset_size=len(SIZES), progress=False,
                                protocol="gennorm")["metrics"]  # torchmetrics antialias=True
    net = Recording(NoTrainInceptionV3("inception-v3-compat", ["2048"], str(hub / "hub" / "checkpoints" / INCEPTION),
                                       antialias=True))
    fid = FrechetInceptionDistance(feature=net)
    net.feats.clear()  # (the constructor's probe image)
    with torch.no_grad():
        for folder, is_real in ((real, True), (fake, False)):
            for img in uint8_images(folder):  # one at a time: each resized from its own size
                fid.update(img[None], real=is_real)
    feats = torch.cat(net.feats).double()  # [2 x 4, 2048]: torchmetrics' features, real then fake
    tm_fid = torchmetrics_fid_on_the_span(fid, feats)
    n = len(SIZES)
    tm_kid = poly_mmd(feats[:n], feats[n:]).item()  # torchmetrics' KID kernel; subsets = the whole sets
    assert ours["fid"] > 1.0  # the sets differ
    assert ours["fid"] == pytest.approx(tm_fid, rel=1e-6)
    assert ours["kid"] == pytest.approx(tm_kid, rel=1e-6)
    assert ours["kid_subset_size"] == n and ours["kid_std"] == pytest.approx(0.0, abs=1e-9 * abs(tm_kid))

def test_lpips_equals_torchmetrics(tmp_path, hub):
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    sizes = [(32, 32), (48, 36), (32, 32)]
    real, fake = write_set(tmp_path / "real", 3, sizes), write_set(tmp_path / "fake", 4, sizes, low=40)
    ours = evaluate_folders(real, fake, metrics=("lpips",), verify_weights=False, progress=False)["metrics"]["lpips"]
    tm = LearnedPerceptualImagePatchSimilarity(net_type="alex", normalize=True)  # AlexNet from TORCH_HOME's hub
    scores = []
    with torch.no_grad():
        for r, f in zip(uint8_images(real), uint8_images(fake)):
            scores.append(tm.net(r[None].float() / 255, f[None].float() / 255, normalize=True).item())
    assert ours > 1e-3
    assert ours == pytest.approx(float(np.mean(scores)), rel=1e-5)
    tm.update(torch.stack(uint8_images(real)[::2]).float() / 255, torch.stack(uint8_images(fake)[::2]).float() / 255)
    assert float(tm.compute()) == pytest.approx(np.mean(scores[::2]), rel=1e-5)  # its own reduction agrees


def test_feature_stats_against_numpy_literals():
    x = np.random.default_rng(0).normal(size=(7, 5)).astype(np.float32) * 3 + 1
    mu, sigma = feature_stats(torch.from_numpy(x))
    xd = x.astype(np.float64)
    want_mu = xd.sum(0) / 7
    centred = xd - want_mu
    want_sigma = np.einsum("ni,nj->ij", centred, centred) / (7 - 1)  # unbiased
    assert mu.dtype == np.float64 and sigma.dtype == np.float64
    np.testing.assert_allclose(mu, want_mu, rtol=1e-14)
    np.testing.assert_allclose(sigma, want_sigma, rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="N >= 2"):
        feature_stats(x[:1])


def mmd_literal(x, y):
    """Unbiased MMD^2 with k(a, b) = (a.b / D + 1)^3, as three sums over index pairs."""
    m, d = len(x), x.shape[1]
    k = lambda a, b: (float(a @ b) / d + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_value_is_the_subset_average_of_the_mmd():
    g = np.random.default_rng(3)
    real, fake = g.normal(size=(20, 8)), g.normal(size=(30, 8)) + 0.5
    with pytest.warns(UserWarning, match="subset size lowered from 1000 to 20"):
        out = kernel_inception_distance(real, fake, subsets=10, seed=4)
    gen = torch.Generator().manual_seed(4)  # the documented draws: a permutation of each set per subset
    vals = []
    for _ in range(10):
        xi, yi = torch.randperm(20, generator=gen)[:20], torch.randperm(30, generator=gen)[:20]
        vals.append(mmd_literal(real[xi.numpy()], fake[yi.numpy()]))
    assert out["kid_subset_size"] == 20 and out["kid_subsets"] == 10
    assert out["kid"] == pytest.approx(np.mean(vals), rel=1e-10)
    assert out["kid_std"] == pytest.approx(np.std(vals), rel=1e-8)
    # a fake set of one repeated row: every subset is the same, so KID is that one MMD, std 0
    one = np.repeat(fake[:1], 30, 0)
    with pytest.warns(UserWarning):
        out = kernel_inception_distance(real, one, subsets=5)
    assert out["kid"] == pytest.approx(mmd_literal(real, one[:20]), rel=1e-10)
    assert out["kid_std"] == pytest.approx(0.0, abs=1e-12 * abs(out["kid"]))
