"""Tests that kill mutmut's survivors in the core math (issue 35, docs/mutation.md).

Each test checks a value that a surviving mutant changed: the mutant's name (as `mutmut show NAME`
prints it) is in the test's docstring, so a rerun of that mutant says which test now catches it.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
from torch.testing import assert_close

from gennorm.train.gan import ImagePool, gradient_penalty
from gennorm.train.optim import EMA, epoch_lr_factor, lr_factor, make_scheduler, refresh_lr, schedule_factor


class _T:
    """A train config with only what the schedules read."""

    def __init__(self, **kw):
        self.n_epochs, self.n_epochs_decay, self.lr_decay_iters, self.lr_policy = None, 0, 1, "linear"
        self.max_steps, self.decay_start, self.decay_start_factor = 10, None, 1.0
        self.__dict__.update(kw)


# ---------------------------------------------------------------------------------------- lr schedules

def test_lr_factor_at_its_edges():
    """decay_start == max_steps: constant, then 0 at max_steps (span 1, not 0); past max_steps: 0, not
    negative; a span of one step: 1 then 0 (kills `step <= start`, `max(span, 2)`, a dropped `max(0.0, ...)`)."""
    assert [lr_factor(s, 10, 10) for s in (0, 9, 10)] == [1.0, 1.0, 0.0]
    assert [lr_factor(s, 10, 9) for s in (8, 9, 10)] == [1.0, 1.0, 0.0]
    assert lr_factor(12, 10, 4) == 0.0 and lr_factor(15, 10, None) == 0.0
    assert [lr_factor(s, 11, None) for s in (4, 5, 6, 11)] == pytest.approx([1, 1, 5 / 6, 0])  # start 11 // 2 = 5


def test_plateau_schedule_after_its_patience():
    """plateau: lr * 0.2 ** ((e - 2) // 6) from epoch 2; the existing test stops at epoch 5, where it is 1."""
    t = _T(n_epochs=20, lr_policy="plateau")
    assert [epoch_lr_factor(e, t) for e in (1, 2, 7, 8, 13, 14, 20)] == pytest.approx(
        [1, 1, 1, 0.2, 0.2, 0.04, 0.008], abs=1e-15)


def test_step_and_cosine_schedules_with_other_periods():
    """step with lr_decay_iters 3 (not the 2 of the existing test), cosine over 4 epochs."""
    t = _T(n_epochs=4, n_epochs_decay=0, lr_policy="step", lr_decay_iters=3)
    assert [epoch_lr_factor(e, t) for e in (1, 3, 4, 6, 7)] == pytest.approx([1, 1, 0.1, 0.1, 0.01], abs=1e-15)
    t.lr_policy = "cosine"
    assert [epoch_lr_factor(e, t) for e in (1, 2, 3, 4, 5)] == pytest.approx(
        [1, 0.5 + 0.5 ** 1.5, 0.5, 0.5 - 0.5 ** 1.5, 0], abs=1e-12)


def test_epoch_schedule_with_fewer_steps_than_epochs():
    """max_steps < n_epochs + n_epochs_decay: one step per epoch (the floor of max(., 1)); an epoch is a
    whole number of steps (kills `max_steps / epochs`)."""
    t = _T(n_epochs=2, n_epochs_decay=3, max_steps=3)
    assert [schedule_factor(s, t) for s in range(5)] == pytest.approx([1, 1, 0.75, 0.5, 0.25])
    # an epoch is max_steps // epochs steps (7 // 2 = 3, not 3.5): the 7th step is epoch 3's
    t = _T(n_epochs=1, n_epochs_decay=1, max_steps=7)
    assert [schedule_factor(s, t) for s in range(7)] == pytest.approx([1, 1, 1, 0.5, 0.5, 0.5, 0])


def test_refresh_lr_recomputes_the_lr_of_the_next_step():
    """After a resumed run changes max_steps, the optimizer's lr and the scheduler's last lr are
    base_lr * factor(last_epoch) of the new config."""
    t = _T(max_steps=10, decay_start=0)
    p = nn.Parameter(torch.zeros(2))
    opt = torch.optim.Adam([p], lr=0.5)
    sched = make_scheduler(opt, t)
    for _ in range(4):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5 * 6 / 10)
    t.max_steps = 20  # the resumed run: 16 of 20 steps to go
    refresh_lr(sched)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5 * 16 / 20)
    assert sched.get_last_lr() == pytest.approx([0.5 * 16 / 20])


# ---------------------------------------------------------------------------------------- EMA, pool state

def test_ema_state_round_trip():
    torch.manual_seed(0)
    net = nn.Linear(3, 2)
    ema = EMA(net, decay=0.5)
    with torch.no_grad():
        net.weight.add_(1.0)
    ema.update(net)
    other = EMA(nn.Linear(3, 2), decay=0.5)
    other.load_state_dict(ema.state_dict())
    for k, v in ema.module.state_dict().items():
        assert torch.equal(other.module.state_dict()[k], v), k
    assert other.decay == 0.5


def test_image_pool_state_round_trip_draws_the_same():
    """A pool restored from its state_dict (onto the default device) stores the same images and makes
    the same choices as the original from there on."""
    pool = ImagePool(3, seed=7)
    for i in range(5):
        pool.query(torch.full((2, 1, 2, 2), float(i)))
    state = pool.state_dict()
    restored = ImagePool(3, seed=99)
    restored.load_state_dict(state)
    assert [im.device.type for im in restored.images] == ["cpu"] * 3
    for i in range(5, 12):
        x = torch.full((2, 1, 2, 2), float(i))
        assert torch.equal(pool.query(x), restored.query(x)), i
    assert all(torch.equal(a, b) for a, b in zip(pool.images, restored.images, strict=True))
    on_meta = ImagePool(3)  # the images go to the device asked for (a GPU run's; "meta" here, no GPU)
    on_meta.load_state_dict(state, device="meta")
    assert [im.device.type for im in on_meta.images] == ["meta"] * 3


def test_image_pool_default_seed_is_zero():
    a, b = ImagePool(2), ImagePool(2, seed=0)
    for i in range(20):
        x = torch.full((1, 1, 1, 1), float(i))
        assert torch.equal(a.query(x), b.query(x)), i


# ---------------------------------------------------------------------------------------- KID

def test_kid_edges_and_defaults():
    """Two images per set is enough (one is not); a set exactly subset_size large keeps it without a
    warning; the defaults are 100 subsets of 1000, seed 0 (torchmetrics' and clean-fid's)."""
    import warnings

    import numpy as np

    from gennorm.metrics.kid import kernel_inception_distance

    g = np.random.default_rng(0)
    x, y = g.normal(size=(6, 2)), g.normal(size=(6, 2)) + 0.3
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "subset size lowered" at n == subset_size
        two = kernel_inception_distance(x[:2], y[:2], subsets=3, subset_size=2)
        assert two["kid_subset_size"] == 2 and np.isfinite(two["kid"])
        with pytest.raises(ValueError, match="at least 2"):
            kernel_inception_distance(x[:1], y[:5], subsets=1, subset_size=1)
        assert kernel_inception_distance(x, y, subsets=4, subset_size=5) == kernel_inception_distance(
            x, y, subsets=4, subset_size=5, seed=0)
    # called without them (mutmut's trampoline keeps the original signature, so inspect.signature would not see
    # a mutated default): 6 images, so the subsets are cheap and the warning names the default size
    with pytest.warns(UserWarning, match="subset size lowered from 1000 to 6"):
        default = kernel_inception_distance(x, y)
    with pytest.warns(UserWarning):
        assert default == kernel_inception_distance(x, y, subsets=100, subset_size=1000, seed=0)
    assert default["kid_subsets"] == 100


@pytest.mark.cuda
def test_gradient_penalty_and_pool_on_the_gpu():
    """Equivalent on the CPU, wrong on a GPU: alpha drawn without `device=real.device` (on the CPU, or
    from a CUDA generator on the CPU: an error), and pool images restored without `.to(device)`."""
    D = nn.Conv2d(2, 1, 3).cuda()
    real, fake = torch.randn(3, 2, 5, 5, device="cuda"), torch.randn(3, 2, 5, 5, device="cuda")
    gen = torch.Generator("cuda").manual_seed(0)
    gp = gradient_penalty(D, real, fake, generator=gen)
    assert gp.device.type == "cuda" and torch.isfinite(gp)
    alpha = torch.rand(3, 1, 1, 1, device="cuda", generator=torch.Generator("cuda").manual_seed(0))
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    grad, = torch.autograd.grad(D(x_hat).sum(), x_hat)
    assert_close(gp, ((grad.reshape(3, -1).norm(dim=1) - 1) ** 2).mean())
    pool = ImagePool(2)
    pool.query(torch.randn(2, 1, 2, 2))
    pool.load_state_dict(pool.state_dict(), device="cuda")
    assert [im.device.type for im in pool.images] == ["cuda", "cuda"]


def test_gan_loss_default_mode_is_lsgan():
    """GANLoss() is the least-squares loss (the default of the module docstring's example)."""
    from gennorm.train.gan import GANLoss

    pred = torch.tensor([[[[-1.0, 0.5], [2.0, 0.0]]]])
    assert GANLoss().mode == "lsgan"
    assert GANLoss()(pred, True).item() == pytest.approx(((pred - 1) ** 2).mean().item())


# ---------------------------------------------------------------------------------------- KID (run of 2026-12-07)

def test_kid_error_and_warning_name_the_right_things():
    """The error names both set sizes (kills `x.shape[1]` / `y.shape[1]` in its text); the subset-size warning
    names the caller's line (stacklevel=2: evaluate_folders keeps warnings by the file they name), not kid.py.
    Under mutmut the caller's frame is its trampoline (mutmut/mutation/trampoline.py), one frame in between."""
    import numpy as np

    import gennorm.metrics.kid as kid

    g = np.random.default_rng(1)
    x, y = g.normal(size=(6, 2)), g.normal(size=(5, 2))
    with pytest.raises(ValueError, match="got 1 real and 5 fake"):
        kid.kernel_inception_distance(x[:1], y, subsets=1, subset_size=1)
    with pytest.warns(UserWarning, match="subset size lowered from 9 to 5") as record:
        kid.kernel_inception_distance(x, y, subsets=1, subset_size=9)
    under_mutmut = hasattr(kid, "MutantDict")  # the mutated copy imports mutmut's trampoline helpers
    want = "trampoline.py" if under_mutmut else __file__
    assert [w.filename.endswith(want) for w in record] == [True], [w.filename for w in record]


def test_polynomial_mmd_with_its_kernel_given():
    """An explicit gamma, degree and coef are used (KID passes none; kills `gamma is None or True`):
    k(a, b) = (0.5 a.b + 0)^2 here, against the three sums written out."""
    from gennorm.metrics.kid import polynomial_mmd

    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(4, 3, generator=g, dtype=torch.float64), torch.randn(4, 3, generator=g, dtype=torch.float64)
    k = lambda a, b: (0.5 * (a @ b)) ** 2  # noqa: E731
    m = 4
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    assert_close(polynomial_mmd(x, y, degree=2, gamma=0.5, coef=0.0), xx + yy - 2 * xy)


# ---------------------------------------------------------------------------------------- Frechet distance

def test_frechet_of_two_samples_per_set():
    """Two feature vectors per set is the smallest allowed (kills `N < 3` / `N <= 2` in feature_stats and
    frechet_distance_features), by hand: mu (1,1,1) and (1,2,1), S1 = [[2,0,-2],[0,0,0],[-2,0,2]],
    S2 = diag(0,2,0), S1 S2 = 0: d^2 = 1 + 4 + 2 - 0 = 7."""
    import numpy as np

    from gennorm.metrics.frechet import feature_stats, frechet_distance, frechet_distance_features

    x = np.array([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]])
    y = np.array([[1.0, 1.0, 1.0], [1.0, 3.0, 1.0]])
    mu, s = feature_stats(x)
    np.testing.assert_array_equal(mu, [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(s, [[2.0, 0.0, -2.0], [0.0, 0.0, 0.0], [-2.0, 0.0, 2.0]])
    assert frechet_distance(*feature_stats(x), *feature_stats(y)) == pytest.approx(7.0, rel=1e-12)
    assert frechet_distance_features(x, y) == pytest.approx(7.0, rel=1e-12)  # N <= D: the nuclear-norm route


def test_frechet_input_checks():
    """Mismatched means or covariances, and features that are not [N >= 2, D] with one D, raise the function's
    own ValueError (kills the `and`/`==` swaps of the checks, which fail later with other errors or not at all)."""
    import numpy as np

    from gennorm.metrics.frechet import frechet_distance, frechet_distance_features

    for mu1, s1, mu2, s2 in [(3, 3, 4, 4), (3, 3, 3, 4), (3, 4, 3, 4), (3, 4, 3, 3)]:
        with pytest.raises(ValueError, match=r"frechet_distance: shapes differ: mu \(3,\)/"):
            frechet_distance(np.zeros(mu1), np.eye(s1), np.zeros(mu2), np.eye(s2))
    g = np.random.default_rng(0)
    for a, b in [((5, 4, 2), (5, 4)), ((5, 4), (5, 4, 2)), ((5, 4), (5, 3)), ((1, 4), (5, 4)), ((5, 4), (1, 4)),
                 ((1, 8), (5, 8)), ((5, 8), (1, 8))]:
        with pytest.raises(ValueError, match=r"frechet_distance_features needs \[N, D\] features with N >= 2, "
                                             + rf"got {tuple(a)} and {tuple(b)}".replace("(", r"\(").replace(")", r"\)")):
            frechet_distance_features(g.normal(size=a), g.normal(size=b))


def test_frechet_features_route_by_set_size(monkeypatch):
    """More samples than dimensions in either set: the D x D covariance route; otherwise (N <= D for both, N = D
    included) the N x N nuclear-norm route; both give the same number (kills `max(D, N2)`, `max(N1, D)`, `>=`)."""
    import numpy as np

    import gennorm.metrics.frechet as fr

    calls = []
    covariance_route = fr.frechet_distance
    monkeypatch.setattr(fr, "frechet_distance", lambda *a, **k: calls.append(1) or covariance_route(*a, **k))
    g = np.random.default_rng(5)
    for n1, n2, route in [(5, 3, 1), (3, 5, 1), (4, 4, 0), (3, 2, 0)]:
        x, y = g.normal(size=(n1, 4)), g.normal(size=(n2, 4)) * 1.2 + 0.1
        calls.clear()
        got = fr.frechet_distance_features(x, y)
        assert len(calls) == route, (n1, n2)
        assert got == pytest.approx(covariance_route(*fr.feature_stats(x), *fr.feature_stats(y)), rel=1e-9)


def test_frechet_at_tiny_scales():
    """d(s x, s y) = s^2 d(x, y): at s = 1e-9 the covariances' eigenvalues are ~1e-18, far below D * eps; the
    round-off cut is relative to the largest eigenvalue (kills `clamp_min(1.0)` and `eps / max` in _clean)."""
    import numpy as np

    from gennorm.metrics.frechet import feature_stats, frechet_distance, frechet_distance_features

    g = np.random.default_rng(6)
    x, y = g.normal(size=(30, 6)), g.normal(size=(40, 6)) * 1.3 + 0.2
    ref = frechet_distance(*feature_stats(x), *feature_stats(y))
    s = 1e-9
    # (abs=0: pytest.approx's default absolute tolerance, 1e-12, would accept any value this small)
    assert frechet_distance(*feature_stats(x * s), *feature_stats(y * s)) == pytest.approx(ref * s * s, rel=1e-6, abs=0)
    assert frechet_distance_features(x[:5] * s, y[:5] * s) == pytest.approx(
        frechet_distance_features(x[:5], y[:5]) * s * s, rel=1e-6, abs=0)


def test_kid_and_fid_compute_in_float64_whatever_the_input():
    """float32 features (the Inception network's) are computed in float64: the same numbers, exactly, as their
    float64 copies (kills `dtype=None` / no dtype in KID's and both FID functions' as_tensor)."""
    import numpy as np

    from gennorm.metrics.frechet import feature_stats, frechet_distance, frechet_distance_features
    from gennorm.metrics.kid import kernel_inception_distance

    g = np.random.default_rng(2)
    x32, y32 = g.normal(size=(9, 5)).astype(np.float32), (g.normal(size=(8, 5)) + 0.3).astype(np.float32)
    x64, y64 = x32.astype(np.float64), y32.astype(np.float64)
    assert kernel_inception_distance(x32, y32, subsets=3, subset_size=4) == kernel_inception_distance(
        x64, y64, subsets=3, subset_size=4)
    assert kernel_inception_distance(x64, y32, subsets=3, subset_size=4) == kernel_inception_distance(
        x64, y64, subsets=3, subset_size=4)
    assert frechet_distance_features(x32[:4], y32[:4]) == frechet_distance_features(x64[:4], y64[:4])
    assert frechet_distance_features(x64[:4], y32[:4]) == frechet_distance_features(x64[:4], y64[:4])
    (m1, s1), (m2, s2) = feature_stats(x64), feature_stats(y64)
    f32 = [a.astype(np.float32) for a in (m1, s1, m2, s2)]
    assert frechet_distance(*f32) == frechet_distance(*(a.astype(np.float64) for a in f32))


@pytest.mark.cuda
def test_kid_and_feature_fid_on_the_gpu_equal_the_cpu():
    """Equivalent on the CPU, wrong on a GPU: KID's or the feature FID's set made without `device=device` (kid
    x_kernel_inception_distance__mutmut_9, _17; frechet x_frechet_distance_features__mutmut_6, _14) stays on the
    CPU, and the indexing with the GPU's subset ids (KID) or the product with the other set (FID) fails."""
    import numpy as np

    from gennorm.metrics.frechet import frechet_distance_features
    from gennorm.metrics.kid import kernel_inception_distance

    g = np.random.default_rng(0)
    x, y = g.normal(size=(12, 5)), g.normal(size=(10, 5)) + 0.2
    cpu = kernel_inception_distance(x, y, subsets=4, subset_size=6)
    gpu = kernel_inception_distance(x, y, subsets=4, subset_size=6, device="cuda")
    assert gpu["kid"] == pytest.approx(cpu["kid"], rel=1e-9) and gpu["kid_std"] == pytest.approx(cpu["kid_std"], rel=1e-6)
    assert frechet_distance_features(x[:4], y[:4], device="cuda") == pytest.approx(
        frechet_distance_features(x[:4], y[:4]), rel=1e-9)


# ---------------------------------------------------------------------------------------- PSNR / SSIM

def test_ssim_size_limit_and_psnr_per_image():
    """SSIM works from 11x11 (its window) and refuses 10 pixels in either dimension, naming the size (kills
    `<= 11`, `< 12`, `shape[-3:]`); PSNR is per image: 10 log10(1 / MSE) of each pair."""
    from gennorm.metrics.pixel import psnr_per_image, ssim_per_image

    g = torch.Generator().manual_seed(0)
    real = torch.rand(2, 3, 11, 11, generator=g)
    fake = (real + 0.05 * torch.randn(2, 3, 11, 11, generator=g)).clamp(0, 1)
    s = ssim_per_image(real, fake)
    assert s.shape == (2,) and bool(((s > 0) & (s < 1)).all())
    assert ssim_per_image(real, real).tolist() == pytest.approx([1.0, 1.0], abs=1e-12)
    for h, w in [(10, 11), (11, 10)]:
        with pytest.raises(ValueError, match=rf"at least 11x11 pixels, got \({h}, {w}\)"):
            ssim_per_image(real[..., :h, :w], fake[..., :h, :w])
    real = real.double()  # the differences exact enough for rel 1e-9
    fake = real.clone()
    fake[0] += 0.1
    fake[1, 0, 0, 0] += 0.3
    mse = [0.01, 0.09 / (3 * 11 * 11)]
    assert psnr_per_image(real, fake).tolist() == pytest.approx([10 * math.log10(1 / m) for m in mse], rel=1e-9)


# ---------------------------------------------------------------------------------------- pix2pix, CycleGAN, CUT tasks

_TINY = ["train.device=cpu", "train.seed=3", "model.ngf=4", "model.ndf=4", "model.g_arch=resnet_6blocks"]


def _batch(n=1, cin=3, cout=3, size=32):
    g = torch.Generator().manual_seed(0)
    return {"A": torch.rand(n, cin, size, size, generator=g) * 2 - 1,
            "B": torch.rand(n, cout, size, size, generator=g) * 2 - 1}


def test_pix2pix_and_cyclegan_build_their_nets_from_the_channel_counts():
    """The tasks' own build_nets (the objectives tests replace them with tiny nets): with 1 input and 3 output
    channels, pix2pix's G is 1 -> 3 and its conditional D reads 1 + 3; CycleGAN's G_A is 1 -> 3, G_B 3 -> 1,
    D_A judges the 3-channel B domain, D_B the 1-channel A domain."""
    from gennorm.config import load_config
    from gennorm.train.cyclegan import CycleGANTask
    from gennorm.train.pix2pix import Pix2PixTask

    def channels_in(net):
        return next(m for m in net.modules() if isinstance(m, nn.Conv2d)).in_channels

    x1, x3 = torch.zeros(1, 1, 32, 32), torch.zeros(1, 3, 32, 32)
    cpu = torch.device("cpu")
    p2p = Pix2PixTask(load_config("pix2pix-instance", _TINY + ["model.input_nc=1"]), cpu)
    assert set(p2p.nets) == {"G", "D"}
    with torch.no_grad():
        assert p2p.nets["G"](x1).shape == (1, 3, 32, 32)
    assert channels_in(p2p.nets["D"]) == 4
    cyc = CycleGANTask(load_config("cyclegan-instance", _TINY + ["model.input_nc=1", "train.lambda_identity=0"]), cpu)
    assert set(cyc.nets) == {"G_A", "G_B", "D_A", "D_B"}
    with torch.no_grad():
        assert cyc.nets["G_A"](x1).shape == (1, 3, 32, 32) and cyc.nets["G_B"](x3).shape == (1, 1, 32, 32)
    assert (channels_in(cyc.nets["D_A"]), channels_in(cyc.nets["D_B"])) == (3, 1)


def test_task_seeds_per_rank_and_pool_sizes():
    """CycleGAN's pools: size train.pool_size, seeds seed * 1000 + 101 * rank + 1 (A) and + 2 (B); the gradient
    penalty's generator: seed + 7919 * rank; CUT's own generator: seed * 1000 + 211 + 101 * rank (rank 1 here:
    DistInfo without a process group). No EMA copies when train.ema is 0."""
    from gennorm.config import load_config
    from gennorm.train.cut import CUTTask
    from gennorm.train.cyclegan import CycleGANTask
    from gennorm.train.distributed import DistInfo

    cpu = torch.device("cpu")

    def seeded(seed):
        return torch.Generator().manual_seed(seed).get_state()

    cfg = load_config("cyclegan-instance", _TINY + ["train.pool_size=7"])
    for rank in (0, 1):
        task = CycleGANTask(cfg, cpu, DistInfo(rank=rank))
        assert sorted(task.pools) == ["A", "B"]
        for name, offset in (("A", 1), ("B", 2)):
            assert task.pools[name].size == 7
            assert torch.equal(task.pools[name].gen.get_state(), seeded(3000 + 101 * rank + offset)), (rank, name)
        assert torch.equal(task.gp_gen.get_state(), seeded(3 + 7919 * rank))  # the gradient penalty's draws
        assert task.ema == {} and task.state_dict()["ema"] == {}  # train.ema 0: no EMA copies
    cut = CUTTask(load_config("cut-nc", _TINY + ["train.num_patches=16", "train.netf_nc=8"]), cpu, DistInfo(rank=1))
    assert torch.equal(cut.cut_gen.get_state(), seeded(3000 + 211 + 101))


def test_tasks_sample_rows_and_leave_the_discriminators_trainable():
    """sample_rows: pix2pix [A, G(A), B], CycleGAN [A, G_A(A), G_B(G_A(A)), B, G_B(B), G_A(G_B(B))], CUT
    [A, G(A), B, G(B)] (eval-mode generators); after a step every discriminator parameter requires grad again."""
    from gennorm.config import load_config
    from gennorm.train.cut import CUTTask
    from gennorm.train.cyclegan import CycleGANTask
    from gennorm.train.pix2pix import Pix2PixTask

    cpu = torch.device("cpu")
    b = _batch()
    A, B = b["A"], b["B"]
    for cls, preset, extra in ((Pix2PixTask, "pix2pix-instance", []), (CycleGANTask, "cyclegan-instance", []),
                               (CUTTask, "cut-nc", ["train.num_patches=16", "train.netf_nc=8"])):
        task = cls(load_config(preset, _TINY + extra), cpu)
        run = lambda name, x: task.run_generator(name, x)  # noqa: E731
        rows = task.sample_rows(b)
        if cls is Pix2PixTask:
            want = [A, run("G", A), B]
        elif cls is CycleGANTask:
            fb, fa = run("G_A", A), run("G_B", B)
            want = [A, fb, run("G_B", fb), B, fa, run("G_A", fa)]
        else:
            want = [A, run("G", A), B, run("G", B)]
        assert len(rows) == len(want) == len(cls.SAMPLE_COLUMNS), cls
        for i, (r, w) in enumerate(zip(rows, want, strict=True)):
            assert torch.equal(r, w), (cls, i)
        task.train_step(b, 1)
        for name in cls.DISCRIMINATORS:
            assert all(p.requires_grad for p in task.nets[name].parameters()), (cls, name)


def test_generators_use_the_generator_side_of_the_hinge_loss_and_forward_once():
    """hinge: a generator's GAN term is -mean D(G(x)) (for_discriminator=False), not the discriminator's
    mean clamp(1 - D) (the objectives tests run CycleGAN with lsgan/vanilla/wgangp and CUT with lsgan, where
    both sides agree); without identity terms CycleGAN runs each generator twice per step, no third forward
    (an unused G_B(A) still moves batch-norm statistics), with both discriminators frozen during the G step."""
    import copy

    from gennorm.config import load_config
    from gennorm.train.cut import CUTTask
    from gennorm.train.cyclegan import CycleGANTask
    from gennorm.train.loop import Callback

    class Losses(Callback):
        def __init__(self, task=None):
            self.seen, self.d_trainable, self.task = [], [], task

        def on_losses(self, step, losses):
            self.seen.append({k: v.detach().clone() for k, v in losses.items()})
            if self.task is not None:  # are the discriminators' parameters trainable in this step?
                self.d_trainable.append([all(p.requires_grad for p in self.task.nets[d].parameters())
                                         for d in self.task.DISCRIMINATORS])

    cpu = torch.device("cpu")
    b = _batch()
    A, B = b["A"], b["B"]
    cyc = CycleGANTask(load_config("cyclegan-instance", _TINY + ["train.gan_mode=hinge", "train.lambda_identity=0"]), cpu)
    rec, before, calls = Losses(cyc), copy.deepcopy(cyc.nets), {"G_A": 0, "G_B": 0}
    cyc.callbacks = [rec]
    for name in calls:
        cyc.nets[name].register_forward_hook(lambda m, i, o, name=name: calls.__setitem__(name, calls[name] + 1))
    out = cyc.train_step(b, 1)
    assert calls == {"G_A": 2, "G_B": 2}
    logged = {k: v.item() for k, v in rec.seen[0].items() if k != "G"} | {d: rec.seen[1][d].item() for d in ("D_A", "D_B")}
    assert out == pytest.approx(logged)  # the step's logged losses: each generator term and each D's total
    assert rec.d_trainable == [[False, False], [True, True]]  # frozen in the G step: no backward into D_A, D_B
    with torch.no_grad():  # the G step comes first: the discriminators as they were
        want = {"G_A": -before["D_A"](before["G_A"](A)).mean(), "G_B": -before["D_B"](before["G_B"](B)).mean()}
    for k, v in want.items():
        assert_close(rec.seen[0][k], v, rtol=1e-5, atol=1e-6, msg=lambda m: f"{k}: {m}")

    cut = CUTTask(load_config("fastcut-instance", _TINY + ["train.gan_mode=hinge", "train.flip_equivariance=false",
                                                           "train.num_patches=16", "train.netf_nc=8"]), cpu)
    rec, g_before = Losses(), copy.deepcopy(cut.nets["G"])
    cut.callbacks = [rec]
    cut.train_step(b, 1)
    with torch.no_grad():  # the D step comes first: G's loss reads the updated D (not changed by the G step)
        want = -cut.nets["D"](g_before(A)).mean() * cut.cfg.train.lambda_gan
    assert_close(rec.seen[1]["G_GAN"], want, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------- CUT (gennorm/train/cut.py)

_CUT = _TINY + ["train.num_patches=16", "train.netf_nc=8"]


def test_patch_nce_defaults_are_cuts():
    """patch_nce's defaults: temperature 0.07 and per-image negatives (the other calls pass both explicitly;
    kills a changed default `temperature` or `batch_negatives`)."""
    from gennorm.train.cut import patch_nce

    g = torch.Generator().manual_seed(7)
    q, k = torch.randn(2, 5, 4, generator=g, dtype=torch.float64), torch.randn(2, 5, 4, generator=g, dtype=torch.float64)
    q, k = q / q.norm(dim=-1, keepdim=True), k / k.norm(dim=-1, keepdim=True)
    want = patch_nce(q, k, 0.07, False)
    assert_close(patch_nce(q, k), want, rtol=0, atol=0)
    assert not torch.allclose(patch_nce(q, k, 0.07, True), want) and not torch.allclose(patch_nce(q, k, 0.08), want)


def test_patch_nce_of_half_inputs_is_float32():
    """Half inputs (autocast): q and k both cast to float32 before the products, the loss float32 and equal to the
    loss of the float32 inputs (kills `dtype = None`, `q.to(None)`, `k.to(None)`: the float32/64 tests pass them)."""
    from gennorm.train.cut import patch_nce

    g = torch.Generator().manual_seed(8)
    q, k = torch.randn(2, 6, 4, generator=g), torch.randn(2, 6, 4, generator=g)
    q, k = (q / q.norm(dim=-1, keepdim=True)).bfloat16(), (k / k.norm(dim=-1, keepdim=True)).bfloat16()
    for bn in (False, True):
        got = patch_nce(q, k, 0.07, bn)
        assert got.dtype == torch.float32
        assert_close(got, patch_nce(q.float(), k.float(), 0.07, bn), rtol=0, atol=0)


def test_cut_generator_losses_weigh_their_terms():
    """G = lambda_gan * gan(D(G(A)), real) + 0.5 * (NCE + NCE_Y), NCE = mean over taps of lambda_nce *
    mean PatchNCE(F(G.encode(G(A))), F(G.encode(A))) with the same patch ids for q and k, at weights that are
    neither 1 nor FastCUT's 10 and a temperature that is not the default (the CUTModel comparison of test_cut
    runs lambda_gan 1, lambda_nce 1 / 10, nce_t 0.07: a `/ lambda` or a dropped temperature passes there).
    lambda_nce 0: no NCE at all (no patch ids drawn: the run's generator is untouched); lambda_gan 0: D not run."""
    from gennorm.config import load_config
    from gennorm.networks.patch_sample import sample_patch_ids
    from gennorm.train.cut import CUTTask, patch_nce

    cfg = load_config("cut-nc", _CUT + ["train.lambda_gan=0.5", "train.lambda_nce=2.5", "train.nce_t=0.2",
                                        "train.nce_batch_negatives=true"])
    task = CUTTask(cfg, torch.device("cpu"))
    G, D, netF, t = task.nets["G"], task.nets["D"], task.nets["F"], cfg.train
    b = _batch(n=2)
    A, B = b["A"], b["B"]
    with torch.no_grad():
        fake_B, idt_B = G(A), G(B)
    d_calls = []
    D.register_forward_hook(lambda m, i, o: d_calls.append(1))
    start = task.cut_gen.get_state()
    with torch.no_grad():
        got = task.generator_losses(A, B, fake_B, idt_B, False)
        gen = torch.Generator()
        gen.set_state(start)

        def nce(src, tgt, flipped=False):
            feat_k, feat_q = G.encode(src, task.taps), G.encode(tgt, task.taps)
            if flipped:  # the query features of the flipped translation, flipped back
                feat_q = [f.flip(3) for f in feat_q]
            ids = sample_patch_ids(feat_k, t.num_patches, gen)
            terms = [(2.5 * patch_nce(q, k, 0.2, True)).mean() for q, k in zip(netF(feat_q, ids), netF(feat_k, ids))]
            return sum(terms) / len(terms)

        want_gan = 0.5 * ((D(fake_B) - 1) ** 2).mean()  # lsgan, the generator's side
        want_nce, want_nce_y = nce(A, fake_B), nce(B, idt_B)
    assert set(got) == {"G_GAN", "NCE", "NCE_Y", "G"}
    assert_close(got["G_GAN"], want_gan, rtol=1e-5, atol=1e-7)
    assert_close(got["NCE"], want_nce, rtol=1e-5, atol=1e-6)
    assert_close(got["NCE_Y"], want_nce_y, rtol=1e-5, atol=1e-6)
    assert_close(got["G"], want_gan + 0.5 * (want_nce + want_nce_y), rtol=1e-5, atol=1e-6)
    assert torch.equal(task.cut_gen.get_state(), gen.get_state())  # one draw of ids per NCE term
    start = task.cut_gen.get_state()  # CUT with flip_equivariance: both NCE terms see the flip (kills NCE_Y's
    with torch.no_grad():             # `flipped` -> None, which no preset reaches: FastCUT has no NCE_Y)
        got = task.generator_losses(A, B, fake_B, idt_B, True)
        gen.set_state(start)
        want_nce, want_nce_y = nce(A, fake_B, True), nce(B, idt_B, True)
    assert_close(got["NCE"], want_nce, rtol=1e-5, atol=1e-6)
    assert_close(got["NCE_Y"], want_nce_y, rtol=1e-5, atol=1e-6)

    t.lambda_nce = 0.0
    before = task.cut_gen.get_state()
    with torch.no_grad():
        got = task.generator_losses(A, B, fake_B, idt_B, False)
    assert set(got) == {"G_GAN", "NCE", "G"} and got["NCE"].item() == 0.0
    assert_close(got["G"], got["G_GAN"], rtol=0, atol=0)
    assert torch.equal(task.cut_gen.get_state(), before)
    t.lambda_nce, t.lambda_gan = 2.5, 0.0
    d_calls.clear()
    with torch.no_grad():
        got = task.generator_losses(A, B, fake_B, idt_B, False)
    assert got["G_GAN"].item() == 0.0 and d_calls == []
    assert_close(got["G"], 0.5 * (got["NCE"] + got["NCE_Y"]), rtol=1e-6, atol=0)


def test_cut_step_freezes_d_for_g_and_averages_g_and_f():
    """CUT's step: D trainable for its own loss, frozen while G's loss is computed and back-propagated, trainable
    again after; one gradient average over [G, F] with the task's DistInfo (a no-op on one process, so no
    value test sees a wrong list); the state holds the optimizers and schedules of G, D and F."""
    import gennorm.train.cut as cut
    from gennorm.config import load_config
    from gennorm.train.loop import Callback

    task = cut.CUTTask(load_config("cut-nc", _CUT), torch.device("cpu"))

    class Frozen(Callback):
        def __init__(self):
            self.seen = []

        def on_losses(self, step, losses):
            self.seen.append((sorted(losses), all(p.requires_grad for p in task.nets["D"].parameters())))

    rec, averaged = Frozen(), []
    task.callbacks = [rec]
    real_average = cut.average_gradients

    def spy(modules, info):
        averaged.append((list(modules), info))
        return real_average(modules, info)

    mp = pytest.MonkeyPatch()
    try:
        mp.setattr(cut, "average_gradients", spy)
        task.train_step(_batch(), 1)
    finally:
        mp.undo()
    assert rec.seen == [(["D", "D_fake", "D_real"], True), (["G", "G_GAN", "NCE", "NCE_Y"], False)]
    assert all(p.requires_grad for p in task.nets["D"].parameters())
    assert len(averaged) == 1 and averaged[0][1] is task.dist
    assert [id(m) for m in averaged[0][0]] == [id(task.nets["G"]), id(task.nets["F"])]
    state = task.state_dict()
    for part in ("optims", "scheds"):
        assert set(state[part]) == {"G", "D", "F"}, part
    assert set(state["scalers"]) == {"G", "D"}  # F has none: G's scaler steps both
    assert set(task.scheds) == {"G", "D", "F"} and task.scheds["F"].optimizer is task.optims["F"]


def test_fastcut_runs_g_on_a_only():
    """FastCUT (nce_idt false): G translates the N images of A, not A and B together (a 2N batch would cost a
    second forward and, with batch norm, change the statistics that fake_B is normalized with); no NCE_Y."""
    import gennorm.train.cut as cut
    from gennorm.config import load_config

    task = cut.CUTTask(load_config("fastcut-nc", _CUT), torch.device("cpu"))
    assert not task.cfg.train.nce_idt
    sizes = []
    hook = task.nets["G"].register_forward_hook(lambda m, args, out: sizes.append(args[0].shape[0]))
    try:
        losses = task.train_step(_batch(n=2), 1)
    finally:
        hook.remove()
    assert sizes == [2]  # one translation of A, never the 4 images of cat(A, B) (the NCE features run the taps)
    assert "NCE_Y" not in losses


def test_cut_local_state_round_trip_and_nce_layers_checks():
    """The run's own generator (flip coins, patch ids) is saved and restored (exact resume); train.nce_layers
    rejects an empty list and a repeated tap; F is initialized with model.init_gain; the taps' channel probe
    leaves G in the mode it found it in."""
    from gennorm.config import load_config
    from gennorm.errors import ConfigError
    from gennorm.train.cut import CUTTask, tap_channels

    cpu = torch.device("cpu")
    cfg = load_config("cut-nc", _CUT)
    one, two = CUTTask(cfg, cpu), CUTTask(cfg, cpu)
    torch.rand(5, generator=one.cut_gen)
    assert not torch.equal(one.cut_gen.get_state(), two.cut_gen.get_state())
    two.load_local_state(one.local_state())
    assert torch.equal(one.cut_gen.get_state(), two.cut_gen.get_state())
    for layers in (",", "input,input", "input, down1,input"):
        with pytest.raises(ConfigError, match="train.nce_layers"):
            CUTTask(load_config("cut-nc", _CUT + [f"train.nce_layers={layers}"]), cpu)
    gained = CUTTask(load_config("cut-nc", _CUT + ["model.init_gain=0.3"]), cpu)  # F initialized with the model's
    weights = torch.cat([m.weight.flatten() for m in gained.nets["F"].modules() if isinstance(m, nn.Linear)])
    assert 0.27 < weights.std().item() < 0.33  # init_type / init_gain (not PatchSampleF's default 0.02)
    G = one.nets["G"]
    for mode in (False, True):
        G.train(mode)
        assert tap_channels(G, one.taps) == [3, 8, 16, 16, 16] and G.training is mode  # ngf 4, the five nce_taps
