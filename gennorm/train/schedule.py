"""Optimizers and the learning-rate schedule: Adam, constant then linear decay to 0.

lr(step) = lr                                       for step <  decay_start
         = lr * (max_steps - step) / (max_steps - decay_start)   afterwards (0 at max_steps)
"""
from __future__ import annotations

import torch


def make_adam(params, cfg_train) -> torch.optim.Adam:
    return torch.optim.Adam(params, lr=cfg_train.lr, betas=(cfg_train.beta1, cfg_train.beta2))


def lr_factor(step: int, max_steps: int, decay_start: int | None) -> float:
    start = max_steps // 2 if decay_start is None else decay_start
    if step < start:
        return 1.0
    span = max(max_steps - start, 1)
    return max(0.0, (max_steps - step) / span)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg_train) -> torch.optim.lr_scheduler.LambdaLR:
    # The lambda reads cfg_train each call, so a resumed run with a new max_steps decays to it.
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, cfg_train.max_steps, cfg_train.decay_start))


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
