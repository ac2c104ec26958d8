"""The compiled kernels checked against the Python kernels before they serve (gennorm ops check).

    rows = self_check("cuda")        # [Row(op, case, error, tolerance, status)], well under a second

Each registered op (library.SCHEMAS) runs on `device` through torch.ops.gennorm (the compiled
CUDA kernel once loaded) and, on the same inputs copied to the CPU, through its Python kernel
(library.PYTHON_KERNELS). Cases: odd widths, every padding mode, strides 1 and 2, one and two
statistics groups, float32 and bfloat16. extension.has_cuda() runs it once per process before
the CUDA kernels serve; a mismatch or a CUDA error there warns once, naming the op, and the
PyTorch path serves. `ops` maps an op name to the callable under test (tests inject a wrong one).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from gennorm.ops import kernels, library
from gennorm.ops.patch_moments import patch_moments_ref

MODES = ("zeros", "reflect", "replicate", "circular")
TOLERANCE = {torch.float32: 1e-4, torch.bfloat16: 3e-2}  # of the max |reference|, per output


class Row(NamedTuple):
    op: str
    case: str
    error: float | None  # max |got - want| / max(|want|, 1); None when the op raised
    tolerance: float
    status: str  # "ok", "MISMATCH" or "error: ..."


def _calls(x, mode, stride, g, dtype):
    """The six ops' argument tuples for one case, on x's device, chained as a layer call chains them."""
    pad4, k, dil, cg, eps = (1, 1, 1, 1), (3, 3), (1, 1), x.shape[1] // g, 1e-5
    xc, sums = kernels.pad_center_sums(x, pad4, mode, g)
    w = torch.randn(4, x.shape[1], 3, 3, generator=torch.Generator().manual_seed(1)).to(x.device, dtype)
    y = F.conv2d(xc, w, None, stride)
    S, bias = w.sum((1, 2, 3), dtype=torch.float32), torch.linspace(-1, 1, 4).to(x.device)
    out, mean, rstd = kernels.window_epilogue(y, sums, S, bias, k, stride, dil, cg, eps)
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(2)).to(x.device, dtype)
    _, grad_window, _, _ = kernels.window_epilogue_backward(grad_out, y, mean, rstd, S, cg, k)
    grad_xc = torch.randn(xc.shape, generator=torch.Generator().manual_seed(3)).to(x.device, dtype)  # the conv's
    pm, pr = patch_moments_ref(x, k, stride, dil, g, eps)
    return {
        "pad_center_sums": (x, list(pad4), mode, g),
        "window_epilogue": (y, sums, S, bias, list(k), list(stride), list(dil), cg, eps),
        "window_epilogue_backward": (grad_out, y, mean, rstd, S, cg, list(k)),
        "pad_center_sums_backward": (grad_xc, xc, grad_window, list(k), list(stride), list(dil), list(pad4), mode, g),
        "patch_moments": (x, list(k), list(stride), list(dil), g, eps),
        "patch_moments_backward": (torch.ones_like(pm), torch.ones_like(pr), x, pm, pr, list(k), list(stride),
                                   list(dil), g),
    }


def _error(got, want) -> float:
    pairs = [(got, want)] if isinstance(got, torch.Tensor) else list(zip(got, want))
    if any(a.shape != b.shape for a, b in pairs):
        return float("inf")
    return max(float((a.double().cpu() - b.double()).abs().max()) / max(float(b.abs().max()), 1.0) for a, b in pairs)


def self_check(device="cuda", ops: dict | None = None) -> list[Row]:
    """Every op on every case: the callable under test on `device` against the Python kernel on the CPU."""
    rows = []
    for dtype in TOLERANCE:
        for i, mode in enumerate(MODES):
            stride, g = ((1, 1), 1) if i % 2 == 0 else ((2, 2), 2)
            x = torch.randn(2, 4, 7, 9, generator=torch.Generator().manual_seed(i)).to(dtype) + 0.5
            case = f"{mode} stride {stride[0]} g {g} {str(dtype).replace('torch.', '')}"
            for name, args in _calls(x, mode, stride, g, dtype).items():
                call = (ops or {}).get(name) or getattr(torch.ops.gennorm, name)
                on_device = [a.to(device) if isinstance(a, torch.Tensor) else a for a in args]
                try:
                    err = _error(call(*on_device), library.PYTHON_KERNELS[name](*args))
                    status = "ok" if err <= TOLERANCE[dtype] else "MISMATCH"
                except Exception as exc:  # a CUDA error, a bad launch, a wrong shape: the op fails the check
                    err, status = None, f"error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                rows.append(Row(name, case, err, TOLERANCE[dtype], status))
    return rows
