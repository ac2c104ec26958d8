"""The shared op under every gennorm normalization (docs/SPEC.md section 5).

    out = nc_conv2d(x, W, b, pad4, mode, stride, dilation, groups, eps)   # NC / KN: one autograd unit
    mean, rstd = patch_moments(x_padded, kernel_size, stride, dilation, groups, eps)  # PONO, KernelNorm2d

The registered ops `torch.ops.gennorm.{pad_center_sums, window_epilogue, window_epilogue_backward,
pad_center_sums_backward, patch_moments, patch_moments_backward}` are defined in `library.py`
(schemas, Python kernels, fake kernels); the compiled library in cuda/ adds CUDA kernels, loaded on
the first CUDA call, never at import (`extension.py`).

Training calls of the "torch" unit on the CPU keep two per-thread workspace buffers between calls
(fused.py, "CPU workspaces"); `release_workspace()` frees the calling thread's.

`impl` chooses the implementation per call:
  "auto"  the compiled CUDA kernels for CUDA tensors when they are available, else "torch";
  "cuda"  the CUDA kernels (error if unavailable);
  "op"    the registered `torch.ops.gennorm.*` ops on whatever device x is on;
  "torch" plain PyTorch (fused.py for NC/KN, reference.py for patch_moments): any device.
"""
from __future__ import annotations

import torch

from gennorm.ops import checks, extension, reference
from gennorm.ops import library  # noqa: F401  (defines torch.ops.gennorm.*; loads nothing)
from gennorm.ops.fused import IMPLS, has_cuda, nc_conv2d, release_workspace, resolve_impl

__all__ = ["nc_conv2d", "patch_moments", "has_cuda", "resolve_impl", "release_workspace", "IMPLS", "checks",
           "extension", "reference"]


def _pair(value, name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and v >= 1 for v in pair):
        raise ValueError(f"{name} must be a positive int or a pair of positive ints, got {value!r}")
    return pair


def patch_moments(x, kernel_size, stride=1, dilation=1, groups=1, eps=1e-5, impl="auto"):
    """Mean and rstd of every (C/groups) x kh x kw window of an already padded x [N, C, Hp, Wp].

    Returns (mean, rstd), each [N, groups, Ho, Wo] (float32 for half inputs); differentiable.
    """
    checks.check_4d_float(x, "patch_moments", error=ValueError, type_error=TypeError)
    kernel_size, stride, dilation = _pair(kernel_size, "kernel_size"), _pair(stride, "stride"), _pair(dilation, "dilation")
    checks.check_groups(x.shape[1], groups, "patch_moments", error=ValueError)
    checks.window_output(x.shape[2:], kernel_size, stride, dilation, "patch_moments", error=ValueError)
    # On CUDA the op loads the compiled kernels on first use and falls back to its Python kernel.
    if resolve_impl(x, impl) == "op" or (impl == "auto" and x.is_cuda):
        return torch.ops.gennorm.patch_moments(x, kernel_size, stride, dilation, groups, float(eps))
    return reference.patch_moments(x, kernel_size, stride, dilation, groups, eps)
