"""Optimization state of a task: Adam, the learning-rate schedule, and the EMA of the generators.

The schedule, by steps (train.n_epochs unset): Adam at a constant lr, then linear decay to 0.

lr(step) = lr                                       for step <  decay_start
         = lr * f * (max_steps - step) / (max_steps - decay_start)   afterwards (0 at max_steps)

f = train.decay_start_factor, 1 unless a resumed run continues a decay it was in (see below).

By epochs (train.n_epochs set), as pytorch-CycleGAN-and-pix2pix, whose scheduler steps once at
the end of each epoch: during epoch e = 1, 2, ... (n = n_epochs, d = n_epochs_decay)

    linear   lr * (1 - max(0, e - n) / (d + 1))           ends at lr / (d + 1)
    step     lr * 0.1 ** ((e - 1) // lr_decay_iters)       (StepLR, gamma 0.1)
    cosine   lr * (1 + cos(pi * (e - 1) / n)) / 2          (CosineAnnealingLR, T_max n, eta_min 0)
    plateau  lr * 0.2 ** ((e - 2) // 6) from epoch 2      (ReduceLROnPlateau(factor 0.2, patience 5,
             threshold 0.01) fed that project's metric, which its pix2pix and CycleGAN never set: 0)

A resumed run may change max_steps and decay_start: the lr of its next step then follows the new
schedule, and `resume_lr_note` says how it changed (printed at resume), with the keys that
continue the decay instead of raising the lr again.

The EMA: exponential moving average of a generator's weights (used for samples, translate, export).

    ema = EMA(netG, decay=0.999); ...; ema.update(netG)   # after each optimizer step
    ema.module                                           # the averaged copy (eval mode)

ema_p = decay * ema_p + (1 - decay) * p for parameters; buffers (e.g. BatchNorm statistics,
ConvNorm's running V) are copied.
"""
from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn


def make_adam(params, cfg_train) -> torch.optim.Adam:
    return torch.optim.Adam(params, lr=cfg_train.lr, betas=(cfg_train.beta1, cfg_train.beta2))


def lr_factor(step: int, max_steps: int, decay_start: int | None, start_factor: float = 1.0) -> float:
    """The by-steps schedule's multiplier after `step` optimizer steps."""
    start = max_steps // 2 if decay_start is None else decay_start  # decay_start_of
    if step < start:
        return 1.0
    span = max(max_steps - start, 1)
    return start_factor * max(0.0, (max_steps - step) / span)


def epoch_lr_factor(epoch: int, t) -> float:
    """The epoch schedule's multiplier during `epoch` (counted from 1); t: the train config."""
    n, d = t.n_epochs, t.n_epochs_decay
    if t.lr_policy == "linear":
        return 1.0 - max(0, epoch - n) / float(d + 1)
    if t.lr_policy == "step":
        return 0.1 ** ((epoch - 1) // t.lr_decay_iters)
    if t.lr_policy == "cosine":
        return (1 + math.cos(math.pi * (epoch - 1) / n)) / 2
    return 0.2 ** max(0, (epoch - 2) // 6)  # plateau


def schedule_factor(step: int, t) -> float:
    """lr multiplier of the optimizer step after `step` steps (LambdaLR's argument) under config t.

    Epoch schedules need max_steps = (n_epochs + n_epochs_decay) x batches per epoch, which the
    trainer sets from the data before the first step (so the epoch length is max_steps // epochs)."""
    if t.n_epochs is None:
        return lr_factor(step, t.max_steps, t.decay_start, t.decay_start_factor)
    per_epoch = max(t.max_steps // (t.n_epochs + t.n_epochs_decay), 1)
    return epoch_lr_factor(step // per_epoch + 1, t)


def decay_start_of(t) -> int:
    """Where the by-steps schedule's linear decay starts under train config t."""
    return t.max_steps // 2 if t.decay_start is None else t.decay_start


def resume_lr_note(old, new, step: int) -> str | None:
    """What `--resume` changes in the lr of step `step` (old, new: the saved and the resumed train
    configs), as one line naming the keys, or None when that lr stays the same.

    A larger max_steps moves the decay (its start is max_steps // 2 unless train.decay_start is
    set), so a run in its decay gets a higher lr again. The note gives the keys that continue the
    decay instead: from the current lr factor f at this step linearly to 0 at the new max_steps
    (train.decay_start=step train.decay_start_factor=f; in the constant phase: the old start)."""
    if old.n_epochs is not None or new.n_epochs is not None:  # epoch schedules: max_steps comes from the data
        return None
    f_old, f_new = schedule_factor(step, old), schedule_factor(step, new)
    before, after = old.lr * f_old, new.lr * f_new
    if math.isclose(before, after, rel_tol=1e-9, abs_tol=1e-15):
        return None
    text = (f"the lr schedule changes at resume: step {step} lr {before:.3g} -> {after:.3g} (train.max_steps "
            f"{old.max_steps} -> {new.max_steps}, linear decay from step {decay_start_of(old)} -> "
            f"{decay_start_of(new)} to 0 at step {new.max_steps})")
    if f_old == 0:
        return text + "; the run had finished its decay (lr 0), so any longer schedule raises the lr again"
    if f_old == 1:
        keys = f"train.decay_start={min(max(decay_start_of(old), step), new.max_steps)}"
    else:
        keys = f"train.decay_start={step} train.decay_start_factor={f_old:.6g}"
    return text + f"; to continue the decay from lr {before:.3g} instead, resume with {keys}"


def make_scheduler(optimizer: torch.optim.Optimizer, cfg_train) -> torch.optim.lr_scheduler.LambdaLR:
    # The lambda reads cfg_train each call, so a resumed run with a new max_steps decays to it.
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: schedule_factor(step, cfg_train))


def refresh_lr(scheduler: torch.optim.lr_scheduler.LambdaLR) -> None:
    """Set the optimizer's lr for the scheduler's current step from the lambda (after loading state).

    A checkpoint stores the lr that the *saved* config gave the next step (0 at the old max_steps);
    a resumed run may change train.max_steps / decay_start, so the next step's lr is recomputed
    with the same expression LambdaLR.step() uses (unchanged config: the identical float).
    """
    groups = scheduler.optimizer.param_groups
    for group, lmbda, base_lr in zip(groups, scheduler.lr_lambdas, scheduler.base_lrs, strict=True):
        group["lr"] = base_lr * lmbda(scheduler.last_epoch)
    scheduler._last_lr = [group["lr"] for group in groups]


class EMA:
    def __init__(self, module: nn.Module, decay: float):
        self.decay = decay
        self.module = copy.deepcopy(module).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        for e, p in zip(self.module.parameters(), module.parameters()):
            e.lerp_(p.detach(), 1.0 - self.decay)
        for e, b in zip(self.module.buffers(), module.buffers()):
            e.copy_(b)

    def state_dict(self) -> dict:
        return self.module.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state)
