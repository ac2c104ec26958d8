"""The shared op under every gennorm normalization (docs/SPEC.md section 5), one file per op:

    nc_conv2d.py      out = nc_conv2d(x, W, b, pad4, mode, stride, dilation, groups, eps)   NC / KN
                      its reference (nc_conv2d_ref), the "torch" unit and the "op" unit (CUDA kernels)
    patch_moments.py  mean, rstd = patch_moments(x_padded, kernel_size, stride, dilation, groups, eps)
                      PONO, KernelNorm2d; its reference (patch_moments_ref) and the registered op
    library.py        torch.ops.gennorm.*: schemas, Python kernels, fake kernels, patch_moments' autograd
    kernels.py        the registered ops' Python kernels (the CUDA contract, docs/SPEC.md 5.1) and the
                      padding / window-sum pieces every path shares
    extension.py      building and loading the CUDA kernels (cuda/), and which implementation serves a call
    checks.py         argument checks, each in one place

`impl` chooses the implementation per call: "auto" (the compiled CUDA kernels for CUDA tensors when
available, else "torch"), "cuda" (error if unavailable), "op" (the registered ops on x's device),
"torch" (plain PyTorch, any device). Importing this package defines the ops and loads nothing.
"""
from __future__ import annotations

from gennorm.ops import library  # noqa: F401  (defines torch.ops.gennorm.*)
from gennorm.ops.extension import IMPLS, has_cuda, resolve_impl
from gennorm.ops.nc_conv2d import nc_conv2d
from gennorm.ops.patch_moments import patch_moments

__all__ = ["nc_conv2d", "patch_moments", "has_cuda", "resolve_impl", "IMPLS"]
