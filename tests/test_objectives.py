"""The training objectives by value: every pix2pix and CycleGAN loss term against a hand-written
formula with its weight, which network each optimizer step moves, the image pool, EMA, the lr schedule.

The tasks run their real `train_step` on tiny fixed networks (two convs each, set by overriding
`build_nets`) and a fixed 10x10 batch; a `loop.Callback` (`on_losses`, called just before every
optimizer step) snapshots the losses and all weights between the steps. References are written
here in float64 from the papers' formulas with the weights as literal numbers (L1 100, cycle 10,
identity 0.5 x 10, D's 1/2, WGAN-GP 10), so a changed weight or default fails here too.
"""
from __future__ import annotations

import copy
import re

import pytest
import torch
import torch.nn as nn
from torch.testing import assert_close

from gennorm.config import load_config
from gennorm.train.cyclegan import CycleGANTask
from gennorm.train.gan import GANLoss, ImagePool
from gennorm.train.loop import Callback
from gennorm.train.loop import make_task as build_task
from gennorm.train.optim import EMA, epoch_lr_factor, lr_factor, schedule_factor
from gennorm.train.pix2pix import Pix2PixTask

CPU = torch.device("cpu")
GAN_MODES = ("lsgan", "vanilla", "hinge", "wgangp")
# the real networks at their smallest, for the tests that need a preset's own generator and discriminator
TINY_NETS = ["model.ngf=4", "model.ndf=4", "model.g_arch=resnet_6blocks", "train.device=cpu"]


def tiny_g(cin: int, cout: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(cin, 4, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(4, cout, 1), nn.Tanh())


def tiny_d(cin: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)  # 10x10 -> 4x4 -> 2x2 patch scores
    return nn.Sequential(nn.Conv2d(cin, 4, 3, stride=2), nn.LeakyReLU(0.2), nn.Conv2d(4, 1, 3))


class TinyPix2Pix(Pix2PixTask):
    def build_nets(self):
        return {"G": tiny_g(3, 3, 1), "D": tiny_d(6, 2)}


class TinyCycleGAN(CycleGANTask):
    def build_nets(self):
        return {"G_A": tiny_g(3, 3, 1), "G_B": tiny_g(3, 3, 2), "D_A": tiny_d(3, 3), "D_B": tiny_d(3, 4)}


class Snapshots(Callback):
    """Before each optimizer step: the losses about to be back-propagated and every net's weights."""

    def __init__(self, task):
        self.task, self.losses, self.weights = task, [], []

    def on_losses(self, step, losses):
        self.losses.append({k: v.detach().clone() for k, v in losses.items()})
        self.weights.append(weights_of(self.task))


def weights_of(task) -> dict:
    return {n: copy.deepcopy(net.state_dict()) for n, net in task.nets.items()}


def make_task(cls, preset, *overrides):
    cfg = load_config(preset, ["train.device=cpu", "train.seed=3", *overrides])
    task = cls(cfg, CPU)
    snaps = Snapshots(task)
    task.callbacks = [snaps]
    return task, snaps


def batch(seed=0, n=2):
    g = torch.Generator().manual_seed(seed)
    return {"A": torch.rand(n, 3, 10, 10, generator=g) * 2 - 1, "B": torch.rand(n, 3, 10, 10, generator=g) * 2 - 1}


def net64(state: dict, build) -> nn.Module:
    """A float64 copy of a tiny net with the given weights."""
    net = build().double()
    net.load_state_dict({k: v.double() for k, v in state.items()})
    return net


def gan_ref(pred: torch.Tensor, real: bool, mode: str, for_d: bool = True) -> torch.Tensor:
    """The GAN losses as written in the papers (mean over the patch map)."""
    p = pred.double()
    if mode == "lsgan":  # (D - 1)^2 for real, D^2 for fake
        return ((p - 1) ** 2).mean() if real else (p ** 2).mean()
    if mode == "vanilla":  # -log sigmoid(D) for real, -log(1 - sigmoid(D)) for fake
        return -torch.log(torch.sigmoid(p)).mean() if real else -torch.log(1 - torch.sigmoid(p)).mean()
    if mode == "wgangp":
        return -p.mean() if real else p.mean()
    if not for_d:  # hinge, generator
        return -p.mean()
    return torch.clamp(1 - p, min=0).mean() if real else torch.clamp(1 + p, min=0).mean()


def penalty_ref(D, real, fake, alpha):
    """WGAN-GP: mean over samples of (||grad_x D(x_hat)||_2 - 1)^2, x_hat = alpha real + (1 - alpha) fake."""
    x_hat = (alpha * real + (1 - alpha) * fake).detach().requires_grad_(True)
    grad, = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)
    return torch.stack([(grad[i].flatten().norm() - 1) ** 2 for i in range(real.shape[0])]).mean()


def grads_of(net: nn.Module) -> list[torch.Tensor]:
    return [p.grad.detach().clone() for p in net.parameters()]


def assert_grads(got: list[torch.Tensor], loss: torch.Tensor, net: nn.Module, what: str):
    want = torch.autograd.grad(loss, list(net.parameters()), retain_graph=True)
    for i, (a, b) in enumerate(zip(got, want, strict=True)):
        assert_close(a.double(), b, rtol=2e-4, atol=1e-6 * max(1.0, b.abs().max().item()),
                     msg=lambda m: f"{what}, parameter {i}: {m}")


def assert_same(a: dict, b: dict, what: str):
    for k in a:
        assert torch.equal(a[k], b[k]), f"{what}: {k} changed"


def assert_moved(a: dict, b: dict, what: str):
    """The first conv's weight changed (a zero-gradient bias, e.g. the last one under WGAN, may not)."""
    assert not torch.equal(a["0.weight"], b["0.weight"]), f"{what}: did not change"


def adam_first_step(state: dict, grads: list[torch.Tensor], build, lr=2e-4, betas=(0.5, 0.999)) -> dict:
    """The weights after one torch Adam step from `state` with these gradients."""
    net = build()
    net.load_state_dict(state)
    for p, g in zip(net.parameters(), grads, strict=True):
        p.grad = g.clone()
    opt = torch.optim.Adam(net.parameters(), lr=lr, betas=betas)
    opt.step()
    return net.state_dict()


# ---------------------------------------------------------------------------------------- pix2pix

@pytest.mark.parametrize("mode", GAN_MODES)
def test_pix2pix_losses_gradients_and_updates(mode):
    task, snaps = make_task(TinyPix2Pix, "pix2pix-instance", f"train.gan_mode={mode}")
    t = task.cfg.train
    assert (t.lambda_l1, t.lambda_gp, t.lr, t.beta1, t.beta2) == (100.0, 10.0, 2e-4, 0.5, 0.999)
    b = batch()
    gp_state = task.gp_gen.get_state()
    out = task.train_step(b, 1)
    (d_losses, w0), (g_losses, w1) = (snaps.losses[0], snaps.weights[0]), (snaps.losses[1], snaps.weights[1])
    w2 = weights_of(task)
    A, B = b["A"].double(), b["B"].double()

    # the D step moves D only, the G step moves G only
    assert_same(w0["G"], w1["G"], "G during the D step")
    assert_moved(w0["D"], w1["D"], "D during the D step")
    assert_same(w1["D"], w2["D"], "D during the G step")
    assert_moved(w1["G"], w2["G"], "G during the G step")

    # D: 1/2 (gan(D(A,B), real) + gan(D(A,G(A)), fake)); WGAN-GP: real + fake + 10 penalty, no 1/2
    G0 = net64(w0["G"], lambda: tiny_g(3, 3, 0))
    D0 = net64(w0["D"], lambda: tiny_d(6, 0))
    fake = G0(A).detach()
    real_ab, fake_ab = torch.cat([A, B], 1), torch.cat([A, fake], 1)
    d_real, d_fake = gan_ref(D0(real_ab), True, mode), gan_ref(D0(fake_ab), False, mode)
    if mode == "wgangp":
        alpha = torch.rand(2, 1, 1, 1, generator=torch.Generator().set_state(gp_state)).double()
        d_total = d_real + d_fake + 10 * penalty_ref(D0, real_ab, fake_ab, alpha)
    else:
        d_total = 0.5 * (d_real + d_fake)
    assert_close(d_losses["D_real"].double(), d_real.detach(), rtol=1e-5, atol=1e-6)
    assert_close(d_losses["D_fake"].double(), d_fake.detach(), rtol=1e-5, atol=1e-6)
    assert_close(d_losses["D"].double(), d_total.detach(), rtol=1e-5, atol=1e-6)
    assert_grads(grads_of(task.nets["D"]), d_total, D0, "D's gradient")

    # G: gan(D'(A, G(A)), real) + 100 |G(A) - B|_1 with D' = D after its step
    G0 = net64(w0["G"], lambda: tiny_g(3, 3, 0))
    D1 = net64(w1["D"], lambda: tiny_d(6, 0))
    fake = G0(A)
    g_gan = gan_ref(D1(torch.cat([A, fake], 1)), True, mode, for_d=False)
    g_l1 = 100 * (fake - B).abs().mean()
    assert_close(g_losses["G_GAN"].double(), g_gan.detach(), rtol=1e-5, atol=1e-6)
    assert_close(g_losses["G_L1"].double(), g_l1.detach(), rtol=1e-5, atol=1e-6)
    assert_close(g_losses["G"].double(), (g_gan + g_l1).detach(), rtol=1e-5, atol=1e-6)
    assert_grads(grads_of(task.nets["G"]), g_gan + g_l1, G0, "G's gradient")
    assert out == pytest.approx({k: g_losses[k].item() for k in ("G_GAN", "G_L1")}
                                | {k: d_losses[k].item() for k in ("D_real", "D_fake")})

    # each step is one Adam(2e-4, (0.5, 0.999)) step with those gradients
    for name, before, after, build in (("D", w0, w1, lambda: tiny_d(6, 0)), ("G", w1, w2, lambda: tiny_g(3, 3, 0))):
        want = adam_first_step(before[name], grads_of(task.nets[name]), build)
        for k in want:
            assert_close(after[name][k], want[k], rtol=1e-6, atol=1e-9, msg=lambda m: f"{name}.{k}: {m}")


# ---------------------------------------------------------------------------------------- CycleGAN

@pytest.mark.parametrize("mode", ["lsgan", "vanilla", "wgangp"])
def test_cyclegan_losses_gradients_pools_and_updates(mode):
    task, snaps = make_task(TinyCycleGAN, "cyclegan-instance", f"train.gan_mode={mode}")
    t = task.cfg.train
    assert (t.lambda_cycle, t.lambda_identity, t.pool_size) == (10.0, 0.5, 50)
    b = batch(1)
    gp_state = task.gp_gen.get_state()
    task.train_step(b, 1)
    (g_losses, w0), (d_losses, w1) = (snaps.losses[0], snaps.weights[0]), (snaps.losses[1], snaps.weights[1])
    w2 = weights_of(task)
    A, B = b["A"].double(), b["B"].double()

    for d in ("D_A", "D_B"):  # the G step moves both Gs and no D; the D step both Ds and no G
        assert_same(w0[d], w1[d], f"{d} during the G step")
        assert_moved(w1[d], w2[d], f"{d} during the D step")
    for g in ("G_A", "G_B"):
        assert_moved(w0[g], w1[g], f"{g} during the G step")
        assert_same(w1[g], w2[g], f"{g} during the D step")

    G = {n: net64(w0[n], lambda: tiny_g(3, 3, 0)) for n in ("G_A", "G_B")}
    D = {n: net64(w0[n], lambda: tiny_d(3, 0)) for n in ("D_A", "D_B")}
    fake_B, fake_A = G["G_A"](A), G["G_B"](B)
    want = {
        "G_A": gan_ref(D["D_A"](fake_B), True, mode, for_d=False),
        "G_B": gan_ref(D["D_B"](fake_A), True, mode, for_d=False),
        "cycle_A": 10 * (G["G_B"](fake_B) - A).abs().mean(),
        "cycle_B": 10 * (G["G_A"](fake_A) - B).abs().mean(),
        "idt_A": 0.5 * 10 * (G["G_A"](B) - B).abs().mean(),
        "idt_B": 0.5 * 10 * (G["G_B"](A) - A).abs().mean(),
    }
    want["G"] = sum(want.values())
    assert set(g_losses) == set(want)
    for k, v in want.items():
        assert_close(g_losses[k].double(), v.detach(), rtol=1e-5, atol=1e-6, msg=lambda m: f"{k}: {m}")
    for n in ("G_A", "G_B"):
        assert_grads(grads_of(task.nets[n]), want["G"], G[n], f"{n}'s gradient")

    # D_A judges B-domain images: real B against G_A(A) (through the pool, empty: the fakes themselves)
    alpha = torch.Generator().set_state(gp_state)
    for d, real, fake in (("D_A", B, fake_B.detach()), ("D_B", A, fake_A.detach())):
        lr, lf = gan_ref(D[d](real), True, mode), gan_ref(D[d](fake), False, mode)
        if mode == "wgangp":
            total = lr + lf + 10 * penalty_ref(D[d], real, fake, torch.rand(2, 1, 1, 1, generator=alpha).double())
        else:
            total = 0.5 * (lr + lf)
        assert_close(d_losses[d].double(), total.detach(), rtol=1e-5, atol=1e-6, msg=lambda m: f"{d}: {m}")
        assert_grads(grads_of(task.nets[d]), total, D[d], f"{d}'s gradient")
    for pool, fake in (("B", fake_B), ("A", fake_A)):  # the pools now hold this step's fakes
        assert_close(torch.stack(task.pools[pool].images).double(), fake.detach(), rtol=1e-5, atol=1e-6)


def test_cyclegan_without_identity_has_no_identity_terms():
    task, snaps = make_task(TinyCycleGAN, "cyclegan-instance", "train.lambda_identity=0")
    task.train_step(batch(2), 1)
    assert set(snaps.losses[0]) == {"G_A", "G_B", "cycle_A", "cycle_B", "G"}


def test_gan_loss_targets_per_mode():
    pred = torch.tensor([[[[-2.0, -0.5], [0.25, 3.0]]]])
    p = pred.double()
    sig = 1 / (1 + torch.exp(-p))
    table = {  # (real, fake, generator) by the formulas, hand-expanded
        "lsgan": (((p - 1) ** 2).mean(), (p ** 2).mean(), ((p - 1) ** 2).mean()),
        "vanilla": (-torch.log(sig).mean(), -torch.log(1 - sig).mean(), -torch.log(sig).mean()),
        "wgangp": (-p.mean(), p.mean(), -p.mean()),
        "hinge": (torch.tensor((3 + 1.5 + 0.75 + 0) / 4), torch.tensor((0 + 0.5 + 1.25 + 4) / 4), -p.mean()),
    }
    for mode, (real, fake, gen) in table.items():
        loss = GANLoss(mode)
        assert loss(pred, True).item() == pytest.approx(real.item(), rel=1e-6), mode
        assert loss(pred, False).item() == pytest.approx(fake.item(), rel=1e-6), mode
        assert loss(pred, True, for_discriminator=False).item() == pytest.approx(gen.item(), rel=1e-6), mode


# ---------------------------------------------------------------------------------------- image pool

def test_image_pool_swap_probability_and_contents():
    size, n = 4, 800
    pool = ImagePool(size, seed=5)
    inputs = [torch.full((1, 1, 2, 2), float(i)) for i in range(n)]
    returned, swaps, slots = [], 0, [0] * size
    for i, x in enumerate(inputs):
        before = [int(im[0, 0, 0]) for im in pool.images]
        out = int(pool.query(x)[0, 0, 0, 0])
        after = [int(im[0, 0, 0]) for im in pool.images]
        returned.append(out)
        if i < size:  # filling: the image is returned and stored
            assert out == i and after == before + [i]
        elif out == i:  # kept: the pool is unchanged
            assert after == before
        else:  # swapped: an old image comes out, the new one takes its slot
            slot = before.index(out)
            assert after == before[:slot] + [i] + before[slot + 1:]
            swaps += 1
            slots[slot] += 1
    # nothing is lost or duplicated: what came out plus what is stored is what went in (the first
    # `size` images twice: returned and stored while filling)
    stored = [int(im[0, 0, 0]) for im in pool.images]
    assert sorted(returned + stored) == sorted(list(range(n)) + list(range(size)))
    p = swaps / (n - size)  # 1/2; binomial sd ~0.018
    assert abs(p - 0.5) < 0.08, p
    for count in slots:  # the replaced slot is uniform
        assert abs(count / swaps - 1 / size) < 0.08, slots


def test_image_pool_batches_and_size_zero():
    x = torch.randn(3, 2, 4, 4)
    assert ImagePool(0).query(x) is x
    pool = ImagePool(5, seed=0)
    assert torch.equal(pool.query(x), x) and len(pool.images) == 3
    out = pool.query(x + 10)
    assert out.shape == x.shape and len(pool.images) == 5


# ---------------------------------------------------------------------------------------- EMA

def test_ema_step_parameters_and_buffers():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3))
    ema = EMA(net, decay=0.9)
    start = copy.deepcopy(net.state_dict())
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p))
    net.train()(torch.randn(4, 2, 5, 5))  # moves the BatchNorm statistics
    ema.update(net)
    got, now = ema.module.state_dict(), net.state_dict()
    for name, _ in net.named_parameters():  # 0.9 * old average + 0.1 * new weight
        assert_close(got[name], 0.9 * start[name] + 0.1 * now[name], rtol=1e-6, atol=1e-7)
    for name, _ in net.named_buffers():  # statistics are copied
        assert torch.equal(got[name], now[name]), name
    assert not ema.module.training and not any(p.requires_grad for p in ema.module.parameters())


def test_task_ema_follows_the_generator():
    task, _ = make_task(TinyPix2Pix, "pix2pix-instance", "train.ema=0.8")
    w0 = weights_of(task)["G"]
    task.train_step(batch(), 1)
    w1, e = task.nets["G"].state_dict(), task.ema["G"].module.state_dict()
    for k in w0:
        assert_close(e[k], 0.8 * w0[k] + 0.2 * w1[k], rtol=1e-6, atol=1e-8)
    assert task.generator("G") is task.ema["G"].module


# ---------------------------------------------------------------------------------------- lr schedule

def test_lr_factor_at_chosen_steps():
    # constant until decay_start, then lr (max_steps - step) / (max_steps - decay_start)
    assert [lr_factor(s, 10, 4) for s in (0, 3, 4, 5, 7, 9, 10)] == pytest.approx([1, 1, 1, 5 / 6, 0.5, 1 / 6, 0])
    assert [lr_factor(s, 10, None) for s in (4, 5, 6, 8, 10)] == pytest.approx([1, 1, 0.8, 0.4, 0])  # start 10 // 2


def test_epoch_lr_factor_at_chosen_epochs():
    class T:
        n_epochs, n_epochs_decay, lr_decay_iters = 2, 3, 2

    for policy, want in {"linear": [1, 1, 0.75, 0.5, 0.25], "step": [1, 1, 0.1, 0.1, 0.01],
                         "cosine": [1, 0.5, 0, 0.5, 1], "plateau": [1, 1, 1, 1, 1]}.items():
        T.lr_policy = policy
        assert [epoch_lr_factor(e, T) for e in range(1, 6)] == pytest.approx(want, abs=1e-12), policy
    T.lr_policy, T.max_steps = "linear", 10  # 2 steps per epoch
    assert [schedule_factor(s, T) for s in (0, 3, 4, 5, 8, 9)] == pytest.approx([1, 1, 0.75, 0.75, 0.25, 0.25])


def test_task_lr_follows_the_schedule():
    task, _ = make_task(TinyPix2Pix, "pix2pix-instance", "train.max_steps=4", "train.decay_start=2", "train.lr=1e-3")
    seen = []
    for step in range(1, 5):
        task.train_step(batch(step), step)
        seen.append([o.param_groups[0]["lr"] for o in task.optims.values()])
    want = [1e-3, 1e-3, 0.5e-3, 0.0]  # the lr of the next step after steps 1..4
    assert seen == [pytest.approx([w, w]) for w in want]
    assert task.lr() == pytest.approx(0.0)


# ---------------------------------------------------------------------------------------- Adam

def adam_by_definition(p0: torch.Tensor, grads: list[torch.Tensor], lr: float, beta1: float, beta2: float,
                       eps: float = 1e-8) -> torch.Tensor:
    """Kingma & Ba, Algorithm 1, written out (float64)."""
    p, m, v = p0.double().clone(), torch.zeros_like(p0, dtype=torch.float64), torch.zeros_like(p0, dtype=torch.float64)
    for t, g in enumerate(grads, 1):
        g = g.double()
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        p = p - lr * (m / (1 - beta1 ** t)) / ((v / (1 - beta2 ** t)).sqrt() + eps)
    return p


@pytest.mark.parametrize("cls, preset", [(TinyPix2Pix, "pix2pix-instance"), (TinyCycleGAN, "cyclegan-instance")])
def test_every_optimizer_is_adam_with_the_configured_betas_over_several_steps(cls, preset):
    """Adam's first step is lr * g / (|g| + eps) whatever the betas: only the second step on shows them,
    so this runs three steps of each of the task's optimizers against Adam written from its definition
    (swapping beta1 and beta2, or dropping the bias correction, changes the third step by far more than 1e-6)."""
    task, _ = make_task(cls, preset)
    t = task.cfg.train
    assert (t.beta1, t.beta2) == (0.5, 0.999)
    gen = torch.Generator().manual_seed(0)
    for name, opt in task.optims.items():
        assert [tuple(g["betas"]) for g in opt.param_groups] == [(0.5, 0.999)] * len(opt.param_groups), name
        p = opt.param_groups[0]["params"][0]
        p0 = p.detach().clone()
        grads = [torch.randn(p.shape, generator=gen) * s for s in (1.0, 0.1, 3.0)]
        for g in grads:
            opt.zero_grad(set_to_none=True)
            p.grad = g.clone()
            opt.step()
        want = adam_by_definition(p0, grads, opt.param_groups[0]["lr"], 0.5, 0.999)
        assert_close(p.detach().double(), want, rtol=1e-6, atol=1e-9)
        assert not torch.allclose(want, adam_by_definition(p0, grads, opt.param_groups[0]["lr"], 0.999, 0.5), atol=1e-6)


def test_task_state_round_trip_and_refusals():
    """load_state_dict restores nets, optimizers, schedules and EMA; a state of another kind of run names the
    networks on both sides; an optimizer state that does not fit the nets is one CheckpointError naming the
    error; a state without EMA (a run that had none) starts the EMA from the net."""
    from gennorm.errors import CheckpointError

    src, _ = make_task(TinyPix2Pix, "pix2pix-nc", "train.ema=0.5")
    src.train_step(batch(0), 1)
    src.after_step()
    state = copy.deepcopy(src.state_dict())
    dst, _ = make_task(TinyPix2Pix, "pix2pix-nc", "train.ema=0.5")
    dst.load_state_dict(copy.deepcopy(state))
    for name in ("G", "D"):
        assert all(torch.equal(a, b) for a, b in zip(src.nets[name].state_dict().values(), dst.nets[name].state_dict().values()))
    assert all(torch.equal(a, b) for a, b in zip(src.ema["G"].module.state_dict().values(),
                                                 dst.ema["G"].module.state_dict().values()))
    assert dst.optims["G"].state_dict()["state"][0]["exp_avg"].equal(src.optims["G"].state_dict()["state"][0]["exp_avg"])
    assert dst.scheds["G"].last_epoch == src.scheds["G"].last_epoch == 2 and dst.lr() == src.lr()
    for bad, says in (({}, r"^it holds the networks none, but this pix2pix run has G, D \(a checkpoint of another "
                           r"kind of run\?\)$"),
                      ({"nets": {"G_A": {}, "G_B": {}}}, r"^it holds the networks G_A, G_B, but this pix2pix run has G, D")):
        with pytest.raises(CheckpointError, match=says):
            dst.load_state_dict(bad)
    broken = copy.deepcopy(state)
    broken["ema"]["G"].popitem()
    with pytest.raises(CheckpointError, match=r"^EMA: checkpoint does not match the network: 1 missing"):
        dst.load_state_dict(broken)
    broken = copy.deepcopy(state)
    del broken["optims"]["D"]
    with pytest.raises(CheckpointError, match=r"^its optimizer/scheduler state does not match the configured networks "
                                              r"\(KeyError: 'D'\)$"):
        dst.load_state_dict(broken)
    fresh, _ = make_task(TinyPix2Pix, "pix2pix-nc", "train.ema=0.5")
    no_ema = copy.deepcopy(state)
    del no_ema["ema"]
    fresh.load_state_dict(no_ema)
    assert all(torch.equal(a, b) for a, b in zip(fresh.ema["G"].module.state_dict().values(),
                                                 src.nets["G"].state_dict().values()))
    scaled, _ = make_task(TinyPix2Pix, "pix2pix-nc", "train.amp=fp16")  # the fp16 loss scales are restored
    scaled.scalers["G"].scale(torch.ones(()))
    scaled.scalers["G"].update(new_scale=8.0)
    loaded, _ = make_task(TinyPix2Pix, "pix2pix-nc", "train.amp=fp16")
    loaded.load_state_dict(scaled.state_dict())
    assert loaded.scalers["G"].get_scale() == 8.0 and loaded.scalers["D"].get_scale() == 65536.0


def test_init_from_needs_the_generator_file(tmp_path):
    """model.init_from: the generator file is required, the discriminator file optional; the file's header is
    checked against the network before any tensor is read."""
    from gennorm.errors import ConfigError

    with pytest.raises(ConfigError, match=rf"^config key 'model.init_from': {tmp_path / 'generator.safetensors'} does not "
                                          r"exist \(a model folder made by gennorm export or gennorm import\)$"):
        make_task(TinyPix2Pix, "pix2pix-nc", f"model.init_from={tmp_path}")
    from safetensors.torch import save_file

    state = {k: v.clone() for k, v in tiny_g(3, 3, 5).state_dict().items()}
    save_file(state, str(tmp_path / "generator.safetensors"))
    task, _ = make_task(TinyPix2Pix, "pix2pix-nc", f"model.init_from={tmp_path}")  # no discriminator file: D as built
    assert all(torch.equal(task.nets["G"].state_dict()[k], v) for k, v in state.items())
    assert all(torch.equal(a, b) for a, b in zip(task.nets["D"].state_dict().values(), tiny_d(6, 2).state_dict().values()))
    save_file({**state, "extra.weight": torch.zeros(2)}, str(tmp_path / "generator.safetensors"))
    with pytest.raises(ConfigError, match=rf"^config key 'model.init_from': {tmp_path / 'generator.safetensors'}: 1 "
                                          r"tensor\(s\) the network does not have \(extra.weight\); nothing was loaded$"):
        make_task(TinyPix2Pix, "pix2pix-nc", f"model.init_from={tmp_path}")  # the header is checked before reading


def test_task_state_compares_the_saved_build_options():
    """A checkpoint's task.options (each net's build options) are compared when loading: an instance-norm G's
    weights recorded as another norm's are refused naming the network and both options."""
    from gennorm.errors import CheckpointError

    task = build_task(load_config("pix2pix-instance", TINY_NETS), CPU)
    state = copy.deepcopy(task.state_dict())
    assert state["options"]["G"]["norm"] == "instance"
    task.load_state_dict(copy.deepcopy(state))
    state["options"]["G"]["norm"] = "pono-ms"
    with pytest.raises(CheckpointError, match=r"^network G: checkpoint was built with .*pono-ms.*; this network has "
                                              r".*instance"):
        task.load_state_dict(state)


def test_task_local_state_restores_the_image_pools_and_the_penalty_generator():
    src, _ = make_task(TinyCycleGAN, "cyclegan-nc", "train.pool_size=3", "train.gan_mode=wgangp")
    for i in range(2):
        src.train_step(batch(i), i + 1)
    state = copy.deepcopy(src.local_state())
    assert set(state["pools"]) == {"A", "B"} and all(len(p["images"]) == 3 for p in state["pools"].values())
    dst, _ = make_task(TinyCycleGAN, "cyclegan-nc", "train.pool_size=3", "train.gan_mode=wgangp")
    dst.load_local_state(state)
    for name in ("A", "B"):
        mine, theirs = dst.pools[name].state_dict(), src.pools[name].state_dict()
        assert all(torch.equal(a, b) for a, b in zip(mine["images"], theirs["images"]))
        assert torch.equal(dst.pools[name].gen.get_state(), src.pools[name].gen.get_state())
    assert torch.equal(dst.gp_gen.get_state(), src.gp_gen.get_state())
    partial = copy.deepcopy(state)
    del partial["pools"]["B"], partial["gp_gen"]  # an older checkpoint: what is there is loaded
    other, _ = make_task(TinyCycleGAN, "cyclegan-nc", "train.pool_size=3", "train.gan_mode=wgangp")
    other.load_local_state(partial)
    assert len(other.pools["A"].images) == 3 and other.pools["B"].images == []
    assert not torch.equal(other.gp_gen.get_state(), src.gp_gen.get_state())
    other.load_local_state({})  # no pools, no generator state: nothing to load
    assert len(other.pools["A"].images) == 3


def test_the_finite_check_covers_every_state_tensor_and_names_the_first_bad_one():
    """check_state_finite looks at every net's weights and buffers, the EMA copies and the optimizers' moments
    (not their step counts), names the first non-finite tensor and counts the others."""
    from gennorm.train.task import TrainingDiverged

    task, _ = make_task(TinyPix2Pix, "pix2pix-nc", "train.ema=0.5", "train.lr=0.001")
    task.train_step(batch(0), 1)
    task.check_state_finite(1)
    moments = task.optims["D"].state[next(iter(task.nets["D"].parameters()))]
    step = moments["step"].clone()
    moments["step"].fill_(float("inf"))  # Adam's step count (a float tensor) is not a weight: not checked
    task.check_state_finite(1)
    moments["step"].copy_(step)
    tensors = {"nets.G.0.weight": task.nets["G"][0].weight, "nets.D.2.bias": task.nets["D"][2].bias,
               "ema.G.2.weight": task.ema["G"].module[2].weight, "optims.D.param0.exp_avg_sq": moments["exp_avg_sq"]}
    for name, t in tensors.items():
        saved = t.detach().clone()
        t.detach().view(-1)[0] = float("inf")
        with pytest.raises(TrainingDiverged, match=rf"^the update of step 7 made the weights non-finite: {re.escape(name)} "
                                                    rf"has 1 of {t.numel()} values NaN/inf; stopping before a checkpoint "
                                                    r"holds them; train again with a lower train.lr \(now 0.001\) or "
                                                    r"train.amp=none$"):
            task.check_state_finite(7)
        t.detach().copy_(saved)
    for t in tensors.values():
        t.detach().view(-1)[-1] = float("nan")
    with pytest.raises(TrainingDiverged, match=r": nets.G.0.weight has 1 of 108 values NaN/inf \(and 3 more tensors\);"):
        task.check_state_finite(7)


def test_a_batch_norm_task_off_ddp_keeps_batch_norm_and_checks_its_statistics():
    """SyncBatchNorm is for DDP on GPUs only; the finite check skips integer buffers (BatchNorm's
    num_batches_tracked) and covers the running statistics."""
    from gennorm.train.task import TrainingDiverged

    task = build_task(load_config("pix2pix-instance", [*TINY_NETS, "model.g_norm=batch", "model.d_norm=batch"]), CPU)
    norms = [m for net in task.nets.values() for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert norms and all(type(m) is nn.BatchNorm2d for m in norms)
    task.check_state_finite(1)
    norms[0].running_var[0] = float("nan")
    with pytest.raises(TrainingDiverged, match=r"running_var has 1 of"):
        task.check_state_finite(1)


def test_task_autocast_uses_the_configured_dtype():
    for amp, dtype in (("fp16", torch.float16), ("bf16", torch.bfloat16)):
        task, _ = make_task(TinyPix2Pix, "pix2pix-nc", f"train.amp={amp}")
        with task.autocast():
            assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == dtype
            assert task.nets["G"](batch(0)["A"]).dtype == dtype
    task, _ = make_task(TinyPix2Pix, "pix2pix-nc")
    with task.autocast():
        assert not torch.is_autocast_enabled("cpu")
