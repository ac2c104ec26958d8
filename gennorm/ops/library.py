"""`torch.ops.gennorm.*`: the shared op's schemas, kernels, fake kernels and autograd, defined here.

The schemas are DEFINED IN PYTHON on every machine (docs/SPEC.md section 5; the contract with cuda/
is docs/SPEC.md section 5.1). Each op's CompositeExplicitAutograd kernel is the plain-PyTorch
kernel (`kernels.py`; patch_moments': `patch_moments_ref`), so the ops work on any device. The compiled library in cuda/ only adds
CUDA kernels (`TORCH_LIBRARY_IMPL(gennorm, CUDA, m)`), which take precedence for CUDA tensors
once it is loaded. Nothing is loaded at import: the first call of an op on a CUDA tensor lands in
the Python kernel below, which loads (or builds once) the library and dispatches again when the
library did register a CUDA kernel for that op (`extension.ensure_loaded`).

The four fused ops of the NC/KN layers are not differentiable on their own (their gradients are
each other: `gennorm.ops.nc_conv2d` pairs them in one autograd unit). patch_moments is differentiable
(its backward is patch_moments_backward), for PONO and KernelNorm2d.
"""
from __future__ import annotations

import torch

from gennorm.ops import checks, extension, kernels
from gennorm.ops.extension import FUSED_OPS  # noqa: F401  (re-exported: the ops the CUDA unit needs)
from gennorm.ops.kernels import accumulation_dtype as acc_dtype
from gennorm.ops.kernels import memory_format_of as fmt_of
from gennorm.ops.patch_moments import patch_moments_ref

SCHEMAS = {
    "pad_center_sums": "pad_center_sums(Tensor x, int[4] pad, str mode, int groups) -> (Tensor xc, Tensor sums)",
    "window_epilogue": "window_epilogue(Tensor y, Tensor sums, Tensor S, Tensor? bias, int[2] kernel_size, "
                       "int[2] stride, int[2] dilation, int cg, float eps) -> (Tensor out, Tensor mean, Tensor rstd)",
    "window_epilogue_backward": "window_epilogue_backward(Tensor grad_out, Tensor y, Tensor mean, Tensor rstd, "
                                "Tensor S, int cg, int[2] kernel_size) -> (Tensor grad_y, Tensor grad_window, "
                                "Tensor grad_S, Tensor grad_bias)",
    "pad_center_sums_backward": "pad_center_sums_backward(Tensor grad_xc, Tensor xc, Tensor grad_window, "
                                "int[2] kernel_size, int[2] stride, int[2] dilation, int[4] pad, str mode, "
                                "int groups) -> Tensor grad_x",
    "patch_moments": "patch_moments(Tensor x, int[2] kernel_size, int[2] stride, int[2] dilation, int groups, "
                     "float eps) -> (Tensor, Tensor)",
    "patch_moments_backward": "patch_moments_backward(Tensor grad_mean, Tensor grad_rstd, Tensor x, Tensor mean, "
                              "Tensor rstd, int[2] kernel_size, int[2] stride, int[2] dilation, int groups) -> Tensor",
}


# ---- argument checks (shared by the Python and the fake kernels) ----------------------------


def _check_pad_center_sums(x, pad, mode, groups):
    op = "gennorm::pad_center_sums"
    checks.check_4d_float(x, op)
    checks.check_padding(pad, mode, x.shape[2:], op)
    checks.check_groups(x.shape[1], groups, op)
    return checks.padded_size(x.shape[2:], pad)


def _check_window_epilogue(y, sums, S, bias, kernel_size, stride, dilation, cg, op="gennorm::window_epilogue"):
    checks.check_4d_float(y, op, "y")
    checks.check_4d_float(sums, op, "sums")
    checks.check_pairs(op, kernel_size=kernel_size, stride=stride, dilation=dilation)
    n, o = y.shape[:2]
    if sums.shape[0] != n or sums.shape[1] < 2 or sums.shape[1] % 2:
        raise RuntimeError(f"{op}: sums must be [N, 2g, Hp, Wp] with the N of y {tuple(y.shape)}, got {tuple(sums.shape)}")
    g = sums.shape[1] // 2
    if o % g or cg < 1:
        raise RuntimeError(f"{op}: output channels ({o}) must be divisible by the groups of sums ({g}), cg >= 1 (got {cg})")
    ho_wo = checks.window_output(sums.shape[2:], kernel_size, stride, dilation, op)
    if tuple(y.shape[2:]) != ho_wo:
        raise RuntimeError(f"{op}: y {tuple(y.shape)} must have the {ho_wo} windows of sums {tuple(sums.shape)}")
    for name, t in (("S", S), ("bias", bias)):
        if t is not None and (tuple(t.shape) != (o,) or not t.is_floating_point()):
            raise RuntimeError(f"{op}: {name} must be a floating-point tensor of shape [{o}], got {tuple(t.shape)} {t.dtype}")
    checks.same_device(op, y, sums=sums, S=S, bias=bias)
    return g, ho_wo


def _check_window_epilogue_backward(grad_out, y, mean, rstd, S, cg, kernel_size):
    op = "gennorm::window_epilogue_backward"
    checks.check_4d_float(y, op, "y")
    checks.check_4d_float(mean, op, "mean")
    if grad_out.shape != y.shape or mean.shape != rstd.shape:
        raise RuntimeError(f"{op}: grad_out must have y's shape {tuple(y.shape)} and rstd mean's; got "
                           f"{tuple(grad_out.shape)}, {tuple(mean.shape)}, {tuple(rstd.shape)}")
    n, o = y.shape[:2]
    if mean.shape[0] != n or mean.shape[2:] != y.shape[2:] or o % mean.shape[1] or cg < 1:
        raise RuntimeError(f"{op}: mean {tuple(mean.shape)} does not fit y {tuple(y.shape)} (same N, H, W; O divisible by g)")
    if tuple(S.shape) != (o,):
        raise RuntimeError(f"{op}: S must have shape [{o}], got {tuple(S.shape)}")
    checks.check_pairs(op, kernel_size=kernel_size)
    checks.same_device(op, y, grad_out=grad_out, mean=mean, rstd=rstd, S=S)


def _check_pad_center_sums_backward(grad_xc, xc, grad_window, kernel_size, stride, dilation, pad, mode, groups):
    op = "gennorm::pad_center_sums_backward"
    checks.check_4d_float(xc, op, "xc")
    checks.check_pairs(op, kernel_size=kernel_size, stride=stride, dilation=dilation)
    checks.check_groups(xc.shape[1], groups, op)
    if grad_xc.shape != xc.shape:
        raise RuntimeError(f"{op}: grad_xc must have xc's shape {tuple(xc.shape)}, got {tuple(grad_xc.shape)}")
    ho, wo = checks.window_output(xc.shape[2:], kernel_size, stride, dilation, op)
    if tuple(grad_window.shape) != (xc.shape[0], 2 * groups, ho, wo):
        raise RuntimeError(f"{op}: grad_window must have shape {[xc.shape[0], 2 * groups, ho, wo]}, got {tuple(grad_window.shape)}")
    h, w = xc.shape[2] - pad[2] - pad[3], xc.shape[3] - pad[0] - pad[1]
    if h < 1 or w < 1:
        raise RuntimeError(f"{op}: pad {list(pad)} leaves no input inside xc {tuple(xc.shape)}")
    checks.check_padding(pad, mode, (h, w), op)
    checks.same_device(op, xc, grad_xc=grad_xc, grad_window=grad_window)
    return h, w


def _check_patch_moments(x, kernel_size, stride, dilation, groups):
    op = "gennorm::patch_moments"
    checks.check_4d_float(x, op)
    checks.check_pairs(op, kernel_size=kernel_size, stride=stride, dilation=dilation)
    checks.check_groups(x.shape[1], groups, op)
    return checks.window_output(x.shape[2:], kernel_size, stride, dilation, op)


# ---- the Python kernels (CompositeExplicitAutograd: every device without a compiled kernel) ---


def _pad_center_sums(x, pad, mode, groups):
    _check_pad_center_sums(x, pad, mode, groups)
    return kernels.pad_center_sums(x, tuple(pad), mode, groups)


def _window_epilogue(y, sums, S, bias, kernel_size, stride, dilation, cg, eps):
    _check_window_epilogue(y, sums, S, bias, kernel_size, stride, dilation, cg)
    return kernels.window_epilogue(y, sums, S, bias, tuple(kernel_size), tuple(stride), tuple(dilation), cg, eps)


def _window_epilogue_backward(grad_out, y, mean, rstd, S, cg, kernel_size):
    _check_window_epilogue_backward(grad_out, y, mean, rstd, S, cg, kernel_size)
    return kernels.window_epilogue_backward(grad_out, y, mean, rstd, S, cg, tuple(kernel_size))


def _pad_center_sums_backward(grad_xc, xc, grad_window, kernel_size, stride, dilation, pad, mode, groups):
    _check_pad_center_sums_backward(grad_xc, xc, grad_window, kernel_size, stride, dilation, pad, mode, groups)
    return kernels.pad_center_sums_backward(grad_xc, xc, grad_window, tuple(kernel_size), tuple(stride),
                                              tuple(dilation), tuple(pad), mode, groups)


def _patch_moments(x, kernel_size, stride, dilation, groups, eps):
    _check_patch_moments(x, kernel_size, stride, dilation, groups)
    mean, rstd = patch_moments_ref(x, tuple(kernel_size), tuple(stride), tuple(dilation), groups, eps)
    return mean.contiguous(), rstd.contiguous()


def _patch_moments_backward(grad_mean, grad_rstd, x, mean, rstd, kernel_size, stride, dilation, groups):
    _check_patch_moments(x, kernel_size, stride, dilation, groups)
    grad_x = kernels.patch_moments_backward(grad_mean, grad_rstd, x, mean, rstd, tuple(kernel_size), tuple(stride),
                                              tuple(dilation), groups)
    return torch.empty_like(x).copy_(grad_x)


def _serving(name, kernel):
    """The Python kernel of op `name`; on a CUDA tensor it first loads the compiled kernels (once)."""

    def serve(*args):
        if args[0].is_cuda and extension.ensure_loaded() and extension.has_cuda_kernel(name):
            return getattr(torch.ops.gennorm, name).default(*args)  # the compiled CUDA kernel now serves
        with torch.no_grad():
            return kernel(*args)

    serve.__name__ = f"gennorm_{name}_python"
    return serve


_lib = torch.library.Library("gennorm", "DEF")
for _name, _schema in SCHEMAS.items():
    _lib.define(_schema)
PYTHON_KERNELS = {  # op -> its Python kernel (what serves without the compiled library; gennorm ops check's reference)
    "pad_center_sums": _pad_center_sums,
    "window_epilogue": _window_epilogue,
    "window_epilogue_backward": _window_epilogue_backward,
    "pad_center_sums_backward": _pad_center_sums_backward,
    "patch_moments": _patch_moments,
    "patch_moments_backward": _patch_moments_backward,
}
for _name, _kernel in PYTHON_KERNELS.items():
    _lib.impl(_name, _serving(_name, _kernel), "CompositeExplicitAutograd")


# ---- fake (meta) kernels: shapes, dtypes and layouts only, for torch.compile and opcheck ------


def _empty(shape, like, dtype=None, memory_format=torch.contiguous_format):
    return torch.empty(shape, dtype=dtype or like.dtype, device=like.device, memory_format=memory_format)


@torch.library.register_fake("gennorm::pad_center_sums")
def _pad_center_sums_fake(x, pad, mode, groups):
    hp, wp = _check_pad_center_sums(x, pad, mode, groups)
    n, c = x.shape[:2]
    return _empty((n, c, hp, wp), x, memory_format=fmt_of(x)), _empty((n, 2 * groups, hp, wp), x, acc_dtype(x.dtype))


@torch.library.register_fake("gennorm::window_epilogue")
def _window_epilogue_fake(y, sums, S, bias, kernel_size, stride, dilation, cg, eps):
    g, (ho, wo) = _check_window_epilogue(y, sums, S, bias, kernel_size, stride, dilation, cg)
    stats = (y.shape[0], g, ho, wo)
    return (_empty(y.shape, y, memory_format=fmt_of(y)), _empty(stats, y, sums.dtype), _empty(stats, y, sums.dtype))


@torch.library.register_fake("gennorm::window_epilogue_backward")
def _window_epilogue_backward_fake(grad_out, y, mean, rstd, S, cg, kernel_size):
    _check_window_epilogue_backward(grad_out, y, mean, rstd, S, cg, kernel_size)
    n, o, ho, wo = y.shape
    g = mean.shape[1]
    return (_empty(y.shape, y, memory_format=fmt_of(y)), _empty((n, 2 * g, ho, wo), y, mean.dtype),
            _empty((o,), y, mean.dtype), _empty((o,), y, mean.dtype))


@torch.library.register_fake("gennorm::pad_center_sums_backward")
def _pad_center_sums_backward_fake(grad_xc, xc, grad_window, kernel_size, stride, dilation, pad, mode, groups):
    h, w = _check_pad_center_sums_backward(grad_xc, xc, grad_window, kernel_size, stride, dilation, pad, mode, groups)
    return _empty((xc.shape[0], xc.shape[1], h, w), xc, memory_format=fmt_of(xc))


@torch.library.register_fake("gennorm::patch_moments")
def _patch_moments_fake(x, kernel_size, stride, dilation, groups, eps):
    ho, wo = _check_patch_moments(x, kernel_size, stride, dilation, groups)
    dtype = acc_dtype(x.dtype)
    return _empty((x.shape[0], groups, ho, wo), x, dtype), _empty((x.shape[0], groups, ho, wo), x, dtype)


@torch.library.register_fake("gennorm::patch_moments_backward")
def _patch_moments_backward_fake(grad_mean, grad_rstd, x, mean, rstd, kernel_size, stride, dilation, groups):
    _check_patch_moments(x, kernel_size, stride, dilation, groups)
    return torch.empty_like(x)


# ---- autograd of patch_moments -------------------------------------------------------------------


def _patch_moments_setup(ctx, inputs, output):
    x, kernel_size, stride, dilation, groups, eps = inputs
    ctx.save_for_backward(x, *output)
    ctx.window = (kernel_size, stride, dilation, groups)


def _patch_moments_grad(ctx, grad_mean, grad_rstd):
    x, mean, rstd = ctx.saved_tensors
    grad_mean = torch.zeros_like(mean) if grad_mean is None else grad_mean
    grad_rstd = torch.zeros_like(rstd) if grad_rstd is None else grad_rstd
    grad_x = torch.ops.gennorm.patch_moments_backward(grad_mean, grad_rstd, x, mean, rstd, *ctx.window)
    return grad_x, None, None, None, None, None


torch.library.register_autograd("gennorm::patch_moments", _patch_moments_grad, setup_context=_patch_moments_setup)
