"""Run a network once to watch it: forward hooks on chosen modules during one eval pass.

The junyanz key mapping (execution order), the receptive field and gennorm.convert (which conv
feeds which norm) all learn a network's structure this way, so any forward works.
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch
import torch.nn as nn


def run_with_hooks(net: nn.Module, example: torch.Tensor, modules: Iterable[nn.Module], hook: Callable,
                   pre: bool = False):
    """net(example) in eval mode without gradients, `hook` registered on `modules` (a forward hook,
    or a forward pre-hook with pre=True) for that one call; the training mode is restored after."""
    register = (lambda m: m.register_forward_pre_hook(hook)) if pre else (lambda m: m.register_forward_hook(hook))
    handles = [register(m) for m in modules]
    was = net.training
    try:
        net.eval()
        with torch.no_grad():
            return net(example)
    finally:
        net.train(was)
        for h in handles:
            h.remove()
