"""Exponential moving average of a generator's weights (used for samples, translate, export).

    ema = EMA(netG, decay=0.999); ...; ema.update(netG)   # after each optimizer step
    ema.module                                           # the averaged copy (eval mode)

ema_p = decay * ema_p + (1 - decay) * p for parameters; buffers (e.g. BatchNorm statistics,
ConvNorm's running V) are copied.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn


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
