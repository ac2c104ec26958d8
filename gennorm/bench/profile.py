"""`gennorm bench profile`: where the time of one ResNet residual block goes, kernel by kernel.

One CycleGAN ResNet block (reflect-pad, 3x3 conv + norm, ReLU, reflect-pad, 3x3 conv + norm,
+ x; gennorm.networks.resnet.ResnetBlock) at 256 x 64 x 64, batch 1 by default, forward +
backward under torch.profiler: on CUDA a table of the GPU kernels by total CUDA time (what the
device spends on each kernel name, summed over the profiled steps) and of the operators that
launched them; on the CPU the operators by self CPU time. Also the median step time without the
profiler (CUDA events / wall time) and each kernel's share of the kernel time.

Run: gennorm bench profile --device cuda --norms nc instance --dtype float32 bfloat16
"""
from __future__ import annotations

import statistics
import sys

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from gennorm.atomic import atomic_write_json
from gennorm.bench.timing import environment, first_line, resolve_device, time_ms
from gennorm.errors import ConfigError
from gennorm.layers import get_norm_layer
from gennorm.networks.resnet import ResnetBlock


def _total(event, *names) -> float:
    for name in names:
        value = getattr(event, name, None)
        if value is not None:
            return float(value)
    return 0.0


def _rows(prof, cuda: bool) -> tuple[list[dict], list[dict]]:
    """(kernel rows, operator rows), each {name, calls, total_us, ...}, biggest first."""
    averages = prof.key_averages()
    kernels, ops = [], []
    for e in averages:
        on_device = getattr(e, "device_type", DeviceType.CPU) != DeviceType.CPU
        if cuda and on_device:
            kernels.append({"name": e.key, "calls": e.count,
                            "total_us": _total(e, "device_time_total", "cuda_time_total")})
        elif not on_device:
            ops.append({"name": e.key, "calls": e.count, "self_cpu_us": _total(e, "self_cpu_time_total"),
                        "cpu_total_us": _total(e, "cpu_time_total"),
                        "self_device_us": _total(e, "self_device_time_total", "self_cuda_time_total"),
                        "device_total_us": _total(e, "device_time_total", "cuda_time_total")})
    kernels.sort(key=lambda r: -r["total_us"])
    ops.sort(key=lambda r: -(r["device_total_us"] if cuda else r["self_cpu_us"]))
    all_kernels = sum(r["total_us"] for r in kernels) or 1.0
    for r in kernels:
        r["share"] = r["total_us"] / all_kernels
    return kernels, ops


def profile_block(norm: str, dtype, args, device) -> dict:
    torch.manual_seed(0)
    block = ResnetBlock(args.channels, get_norm_layer(norm), use_dropout=False).to(device).train()
    x = torch.randn(args.batch, args.channels, args.size, args.size, device=device, dtype=dtype, requires_grad=True)
    grad = torch.randn_like(x)

    def step():
        block.zero_grad(set_to_none=True)
        x.grad = None
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            y = block(x)
        y.backward(grad.to(y.dtype))

    for _ in range(args.warmup):
        step()
    step_ms = statistics.median(time_ms(step, device) for _ in range(args.steps))
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(args.steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    kernels, ops = _rows(prof, device.type == "cuda")
    kernel_ms = sum(r["total_us"] for r in kernels) / 1e3 / args.steps
    return {"norm": norm, "dtype": str(dtype).replace("torch.", ""), "step_ms": step_ms,
            "kernel_ms_per_step": kernel_ms if kernels else None,
            "kernel_launches_per_step": sum(r["calls"] for r in kernels) / args.steps if kernels else None,
            "kernels": kernels, "ops": ops[:100]}


def format_profile(result: dict, rows: int, steps: int) -> str:
    head = f"block {result['norm']}, {result['dtype']}: {result['step_ms']:.3f} ms/step (no profiler)"
    if result["kernels"]:
        head += (f"; kernels {result['kernel_ms_per_step']:.3f} ms/step in "
                 f"{result['kernel_launches_per_step']:.0f} launches")
        lines = [head, f"  {'CUDA us/step':>12} {'share':>6} {'calls/step':>10}  kernel"]
        for r in result["kernels"][:rows]:
            lines.append(f"  {r['total_us'] / steps:>12.1f} {100 * r['share']:>5.1f}% {r['calls'] / steps:>10.1f}  "
                         f"{r['name'][:110]}")
        lines.append(f"  {'CUDA us/step':>12} {'calls/step':>17}  operator (CUDA time incl. children)")
        for r in result["ops"][:rows]:
            lines.append(f"  {r['device_total_us'] / steps:>12.1f} {r['calls'] / steps:>17.1f}  {r['name'][:110]}")
        return "\n".join(lines)
    lines = [head, f"  {'self CPU us/step':>16} {'calls/step':>10}  operator"]
    for r in result["ops"][:rows]:
        lines.append(f"  {r['self_cpu_us'] / steps:>16.1f} {r['calls'] / steps:>10.1f}  {r['name'][:110]}")
    return "\n".join(lines)


def run(args) -> int:
    device = resolve_device(args.device)
    if min(args.channels, args.size, args.batch, args.steps) < 1 or args.warmup < 0:
        raise ConfigError("--channels, --size, --batch, --steps must be >= 1 and --warmup >= 0")
    report = {**environment(device), "shape": [args.batch, args.channels, args.size, args.size],
              "steps": args.steps, "warmup": args.warmup, "results": []}
    failed = 0
    for dtype_name in args.dtype:
        for norm in args.norms:
            try:
                result = profile_block(norm, getattr(torch, dtype_name), args, device)
                text = format_profile(result, args.rows, args.steps)
            except ValueError as err:
                raise ConfigError(f"--norms {norm!r}: {err}") from err
            except (RuntimeError, NotImplementedError) as err:
                failed += 1
                result = {"norm": norm, "dtype": dtype_name, "error": "error: " + first_line(err)}
                text = f"block {norm}, {dtype_name}: {result['error']}"
            report["results"].append(result)
            print(text, flush=True)
            if args.json:
                atomic_write_json(args.json, report)
    print(f"shape {report['shape']}, {args.steps} profiled steps on {report['device_name']}", file=sys.stderr)
    return 1 if failed else 0
