"""Tests that kill mutmut's survivors in the core math (issue 35, docs/mutation.md).

Each test checks a value that a surviving mutant changed: the mutant's name (as `mutmut show NAME`
prints it) is in the test's docstring, so a rerun of that mutant says which test now catches it.
"""
from __future__ import annotations

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
