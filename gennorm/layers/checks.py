"""Input validation shared by the layers: errors that name the layer and the problem.

The window checks (kernel fits the padded input, padding sizes) live once in gennorm.ops.checks;
the layers call them with ValueError.
"""
from __future__ import annotations

import torch

from gennorm.ops import checks as op_checks


def check_input(x: torch.Tensor, layer: str, channels: int | None = None) -> None:
    """x must be a floating-point [N, C, H, W] tensor with `channels` channels."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{layer} expects a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{layer} expects input of shape [N, C, H, W] (4 dims), got {x.dim()} dims: {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{layer} expects a floating-point input (float32/float64/float16/bfloat16), got {x.dtype}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{layer} expects {channels} input channels, got {x.shape[1]} (input shape {tuple(x.shape)})")


def check_windows(x: torch.Tensor, pad4, mode: str, kernel_size, stride, dilation, layer: str) -> tuple[int, int]:
    """The padding suits x and the (dilated) kernel fits the padded input; returns (Ho, Wo)."""
    op_checks.check_padding(pad4, mode, x.shape[2:], layer, error=ValueError)
    padded = op_checks.padded_size(x.shape[2:], pad4)
    return op_checks.window_output(padded, kernel_size, stride, dilation, layer, error=ValueError)


def int_pair(value, name: str, layer: str, minimum: int = 1) -> tuple[int, int]:
    """An int or a pair of ints (each >= minimum) as a pair, as nn.Conv2d accepts its sizes."""
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and v >= minimum for v in pair):
        raise ValueError(f"{layer}: {name} must be an int >= {minimum} or a pair of them, got {value!r}")
    return pair
