"""Bandwidth of each shared-op kernel at one layer shape, against a plain copy of the same bytes.

The kernels are memory-bound, so the figure of merit is the bytes each one must move (every
input read once, every output written once, as docs/SPEC.md section 5.1 defines their tensors) over
its time, as a fraction of what a plain device copy of the same number of bytes reaches in the
same run (copy bandwidth = bytes read + bytes written, the way the kernels are counted).

For a layer conv C -> O, kernel k, stride s, padding p (mode), input [N, C, H, W], one statistics
group (g = 1, as NC uses in every ResNet layer), Hp = H + 2p, Ho = (Hp - k) // s + 1:

    pad_center_sums           reads x                                writes xc, sums
    window_epilogue           reads y, sums, S, bias                 writes out, mean, rstd
    window_epilogue_backward  reads grad_out, y, mean, rstd, S       writes grad_y, grad_window, grad_S, grad_bias
    pad_center_sums_backward  reads grad_xc, xc, grad_window         writes grad_x
    patch_moments             reads x padded [N, C, Hp, Wp]          writes mean, rstd

x, xc, y, out, grad_* of activations are in the activation dtype; sums, mean, rstd, grad_window,
S, bias, grad_S, grad_bias in the accumulation dtype (float32; float64 for float64 inputs).

An op that is not registered (yet) reports "n/a (op not available)". On the CPU, and on a GPU
where no compiled CUDA kernel is registered, the rows time the plain-PyTorch reference kernel and
are labelled so. Inputs rotate among several sets when one set would sit in the cache: one timed
sample calls the kernel once on each set, back to back, and counts the time per call (the copy
likewise), so launch gaps are amortized over the sets as a training step's stream of kernels would.
"""
from __future__ import annotations

import math
import statistics

import torch

import gennorm.ops  # noqa: F401  (registers torch.ops.gennorm.*)
from gennorm.bench.timing import first_line, time_ms

KERNELS = ("pad_center_sums", "window_epilogue", "window_epilogue_backward", "pad_center_sums_backward",
           "patch_moments")
NOT_AVAILABLE = "n/a (op not available)"
ROTATE_BYTES = 256 * 2**20  # distinct input bytes per rotation: several times a GPU's L2 (H200: 60 MB)
MAX_SETS = 8
EPS = 1e-5


def kernel_bytes(spec, batch: int, elem: int) -> dict[str, dict[str, int]]:
    """{kernel: {"read": bytes, "write": bytes, "bytes": both}} from the contract's tensors."""
    acc = 8 if elem == 8 else 4
    c, o, k, s, p, g = spec.cin, spec.cout, spec.kernel, spec.stride, spec.padding, 1
    h = spec.size
    hp, ho = h + 2 * p, spec.out_size
    x, xc = batch * c * h * h * elem, batch * c * hp * hp * elem
    sums = batch * 2 * g * hp * hp * acc
    y = batch * o * ho * ho * elem
    stat = batch * g * ho * ho * acc  # one of mean / rstd; grad_window is two of these
    vec = o * acc
    rw = {
        "pad_center_sums": (x, xc + sums),
        "window_epilogue": (y + sums + 2 * vec, y + 2 * stat),
        "window_epilogue_backward": (2 * y + 2 * stat + vec, y + 2 * stat + 2 * vec),
        "pad_center_sums_backward": (2 * xc + 2 * stat, x),
        "patch_moments": (xc, 2 * stat),
    }
    return {name: {"read": r, "write": w, "bytes": r + w} for name, (r, w) in rw.items()}


def _op(name: str):
    try:
        return getattr(torch.ops.gennorm, name)
    except (AttributeError, RuntimeError):
        return None


def _impl_label(name: str, device) -> str:
    if device.type == "cpu":
        return "reference (cpu)"
    if torch._C._dispatch_has_kernel_for_dispatch_key(f"gennorm::{name}", "CUDA"):
        return "cuda kernel"
    return "reference on cuda (no compiled CUDA kernel registered)"


def _input_set(spec, batch: int, dtype, device) -> dict:
    """One set of every kernel's inputs (random values of the right shapes; sums are real sums of xc)."""
    c, o, p, g = spec.cin, spec.cout, spec.padding, 1
    h, hp, ho = spec.size, spec.size + 2 * p, spec.out_size
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    new = dict(device=device, dtype=dtype)
    xc = torch.randn(batch, c, hp, hp, **new)
    wide = xc.to(acc)
    sums = torch.cat([wide.sum(1, keepdim=True), wide.square().sum(1, keepdim=True)], 1).contiguous()
    return {
        "x": torch.randn(batch, c, h, h, **new), "xc": xc, "sums": sums,  # [N, 2g, Hp, Wp]
        "y": torch.randn(batch, o, ho, ho, **new), "grad_out": torch.randn(batch, o, ho, ho, **new),
        "mean": torch.randn(batch, g, ho, ho, device=device, dtype=acc),
        "rstd": torch.rand(batch, g, ho, ho, device=device, dtype=acc) + 0.5,
        "grad_window": torch.randn(batch, 2 * g, ho, ho, device=device, dtype=acc),
        "grad_xc": torch.randn(batch, c, hp, hp, **new),
        "S": torch.randn(o, device=device, dtype=acc), "bias": torch.randn(o, device=device, dtype=acc),
    }


def _arguments(name: str, t: dict, spec) -> tuple:
    k, s, d, p = [spec.kernel] * 2, [spec.stride] * 2, [1, 1], [spec.padding] * 4
    mode, cg = spec.mode, spec.cin
    return {
        "pad_center_sums": lambda: (t["x"], p, mode, 1),
        "window_epilogue": lambda: (t["y"], t["sums"], t["S"], t["bias"], k, s, d, cg, EPS),
        "window_epilogue_backward": lambda: (t["grad_out"], t["y"], t["mean"], t["rstd"], t["S"], cg, k),
        "pad_center_sums_backward": lambda: (t["grad_xc"], t["xc"], t["grad_window"], k, s, d, p, mode, 1),
        "patch_moments": lambda: (t["xc"], k, s, d, 1, EPS),
    }[name]()


def bench_kernels(spec, batch: int, dtype, device, warmup: int, repeats: int, names=KERNELS) -> dict:
    """{kernel: {status, impl, read, write, bytes, median_ms, gbps, copy_median_ms, copy_gbps, pct_of_copy}}."""
    elem = torch.empty((), dtype=dtype).element_size()
    sizes = kernel_bytes(spec, batch, elem)
    smallest = min(sizes[n]["bytes"] for n in names)
    n_sets = max(1, min(MAX_SETS, math.ceil(ROTATE_BYTES / max(smallest, 1)))) if device.type == "cuda" else 2
    results, live = {}, {}
    sets = None
    for name in names:
        results[name] = {**sizes[name], "status": NOT_AVAILABLE}
        op = _op(name)
        if op is None:
            continue
        try:
            if sets is None:
                torch.manual_seed(0)
                sets = [_input_set(spec, batch, dtype, device) for _ in range(n_sets)]
            calls = [(lambda a=_arguments(name, t, spec), f=op: f(*a)) for t in sets]
            with torch.no_grad():
                calls[0]()  # the first call may load the compiled library (and checks the arguments)
        except Exception as err:  # noqa: BLE001  (a kernel that rejects its inputs is a result, not a crash)
            results[name]["status"] = "error: " + first_line(err)
            continue
        half = sizes[name]["bytes"] // 2  # a copy of `half` bytes reads half and writes half
        buffers = [(torch.empty(half, dtype=torch.uint8, device=device).random_(),
                    torch.empty(half, dtype=torch.uint8, device=device)) for _ in range(n_sets)]
        results[name].update(status="ok", impl=_impl_label(name, device), input_sets=n_sets)
        live[name] = (calls, [(lambda src=src, dst=dst: dst.copy_(src)) for src, dst in buffers])
    times = {name: ([], []) for name in live}
    with torch.no_grad():
        for r in range(warmup + repeats):  # interleaved: each round times every kernel and its copy
            for name, (calls, copies) in live.items():
                # one sample = one call on each input set, back to back (launch gaps amortized), per call
                op_ms = time_ms(lambda c=calls: [f() for f in c], device) / len(calls)
                copy_ms = time_ms(lambda c=copies: [f() for f in c], device) / len(copies)
                if r >= warmup:
                    times[name][0].append(op_ms)
                    times[name][1].append(copy_ms)
    for name, (op_times, copy_times) in times.items():
        entry = results[name]
        entry["median_ms"], entry["copy_median_ms"] = statistics.median(op_times), statistics.median(copy_times)
        entry["times_ms"] = op_times
        entry["gbps"] = entry["bytes"] / entry["median_ms"] / 1e6
        entry["copy_gbps"] = entry["bytes"] / entry["copy_median_ms"] / 1e6
        entry["pct_of_copy"] = 100 * entry["gbps"] / entry["copy_gbps"]
    return results


def copy_ceiling(device, repeats: int = 10) -> dict:
    """The device's copy bandwidth on a buffer far larger than any cache (512 MiB CUDA, 64 MiB CPU): the ceiling."""
    half = (512 if device.type == "cuda" else 64) * 2**20
    src = torch.empty(half, dtype=torch.uint8, device=device).random_()
    dst = torch.empty_like(src)
    dst.copy_(src)  # warm-up
    ms = statistics.median(time_ms(lambda: dst.copy_(src), device) for _ in range(repeats))
    del src, dst
    return {"bytes": 2 * half, "median_ms": ms, "gbps": 2 * half / ms / 1e6}


def format_kernels(results: dict) -> list[str]:
    lines = [f"  {'kernel':<26} {'MB moved':>9} {'median ms':>10} {'GB/s':>8} {'copy GB/s':>10} {'% of copy':>9}  impl"]
    for name, e in results.items():
        if "median_ms" not in e:
            lines.append(f"  {name:<26} {e['bytes'] / 1e6:>9.2f} {e['status']}")
            continue
        lines.append(f"  {name:<26} {e['bytes'] / 1e6:>9.2f} {e['median_ms']:>10.3f} {e['gbps']:>8.1f} "
                     f"{e['copy_gbps']:>10.1f} {e['pct_of_copy']:>8.1f}%  {e['impl']}")
    return lines
