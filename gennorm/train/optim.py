"""Optimization state of a task: Adam, the learning-rate schedule, and the EMA of the generators.

The schedule: Adam at a constant lr, then linear decay to 0.

lr(step) = lr                                       for step <  decay_start
         = lr * (max_steps - step) / (max_steps - decay_start)   afterwards (0 at max_steps)

The EMA: exponential moving average of a generator's weights (used for samples, translate, export).

    ema = EMA(netG, decay=0.999); ...; ema.update(netG)   # after each optimizer step
    ema.module                                           # the averaged copy (eval mode)

ema_p = decay * ema_p + (1 - decay) * p for parameters; buffers (e.g. BatchNorm statistics,
ConvNorm's running V) are copied.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn


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
