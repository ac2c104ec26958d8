"""The argument checks of the shared op, each in one place (docs/SPEC.md section 5).

The registered ops raise RuntimeError (what a C++ TORCH_CHECK raises, so a CUDA kernel and the
Python kernels fail alike); the public functions and the layers pass `error=ValueError` /
`TypeError`, as library argument errors are in gennorm (CONTRIBUTING.md). Every message names
the op or layer (`where`) and the problem.
"""
from __future__ import annotations

import torch

PAD_MODES = ("zeros", "reflect", "replicate", "circular")


def output_size(size: int, kernel: int, stride: int, dilation: int) -> int:
    """Number of valid window positions along one axis (no further padding)."""
    return (size - dilation * (kernel - 1) - 1) // stride + 1


def pair(value, name: str) -> tuple[int, int]:
    """An int or a pair of positive ints as a pair (ValueError naming `name` otherwise)."""
    result = (value, value) if isinstance(value, int) else tuple(value)
    if len(result) != 2 or not all(isinstance(v, int) and v >= 1 for v in result):
        raise ValueError(f"{name} must be a positive int or a pair of positive ints, got {value!r}")
    return result


def check_4d_float(x: torch.Tensor, where: str, name: str = "x", error=RuntimeError, type_error=None) -> None:
    """x must be a floating-point [N, C, H, W] tensor."""
    if x.dim() != 4:
        raise error(f"{where}: {name} must have shape [N, C, H, W] (4 dims), got {x.dim()} dims: {tuple(x.shape)}")
    if not x.is_floating_point():
        raise (type_error or error)(f"{where}: {name} must be a floating-point tensor (float32/float64/float16/bfloat16), "
                                    f"got {x.dtype}")


def check_pairs(where: str, error=RuntimeError, **pairs) -> None:
    """Each of kernel_size / stride / dilation must be 2 positive ints."""
    for name, pair in pairs.items():
        if len(pair) != 2 or min(pair) < 1:
            raise error(f"{where}: {name} must be 2 positive ints, got {list(pair)}")


def check_groups(channels: int, groups: int, where: str, error=RuntimeError) -> None:
    if groups < 1 or channels % groups:
        raise error(f"{where}: channels ({channels}) must be divisible by groups ({groups})")


def window_output(padded_hw, kernel_size, stride, dilation, where: str, error=RuntimeError) -> tuple[int, int]:
    """(Ho, Wo) of the windows on a padded [Hp, Wp] input; the (dilated) kernel must fit inside it."""
    for axis in (0, 1):
        if dilation[axis] * (kernel_size[axis] - 1) + 1 > padded_hw[axis]:
            raise error(f"{where}: kernel size {tuple(kernel_size)} (dilation {tuple(dilation)}) is larger than "
                        f"the padded input {tuple(padded_hw)}")
    return tuple(output_size(padded_hw[a], kernel_size[a], stride[a], dilation[a]) for a in (0, 1))


def check_padding(pad, mode: str, hw, where: str, error=RuntimeError) -> None:
    """pad = (left, right, top, bottom) >= 0; reflect needs pad < size, circular pad <= size."""
    if len(pad) != 4 or min(pad) < 0:
        raise error(f"{where}: pad must be 4 non-negative ints (left, right, top, bottom), got {list(pad)}")
    if mode not in PAD_MODES:
        raise error(f"{where}: mode must be one of {PAD_MODES}, got {mode!r}")
    h, w = hw
    for size, (a, b) in ((w, pad[:2]), (h, pad[2:])):
        if (mode == "reflect" and max(a, b) >= size) or (mode == "circular" and max(a, b) > size):
            raise error(f"{where}: {mode} padding {list(pad)} is too large for an input of size {tuple(hw)}")


def padded_size(hw, pad) -> tuple[int, int]:
    return hw[0] + pad[2] + pad[3], hw[1] + pad[0] + pad[1]


def same_device(where: str, ref: torch.Tensor, error=RuntimeError, **tensors) -> None:
    for name, t in tensors.items():
        if t is not None and t.device != ref.device:
            raise error(f"{where}: {name} is on {t.device} but the input is on {ref.device}; all inputs must be on "
                        "the same device")
