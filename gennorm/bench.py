"""`gennorm bench`: speed of the normalization layers (`layers`) and of training (`train`).

`bench layers` times forward + backward of one 3x3 C->C conv layer for every normalization,
interleaved in one process: a warm-up first, then round after round over all candidates, so
drift in clock speed or load hits every candidate alike. It reports medians and the ratio to
Conv2d + InstanceNorm2d, the classic CycleGAN/pix2pix layer. `bench train` is the training
step benchmark of `gennorm.train.bench`.

Run: gennorm bench layers --quick
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

DESCRIPTION = """\
Benchmarks. `layers`: forward + backward median time of one 3x3 C->C conv layer per
normalization (Conv2d+InstanceNorm2d baseline, Conv2d+GroupNorm, NC torch and CUDA paths,
NC literal im2col, Conv2d+PONO, KNConv, ConvNorm) at ResNet-9 shapes for a 256x256 image.
`train`: training-step benchmark (gennorm.train.bench).

examples:
  gennorm bench layers                                  # ResNet-9 shapes, batch 1 and 4
  gennorm bench layers --quick --json bench.json        # seconds; small shapes
  gennorm bench layers --device cpu --shapes 64x128x128:1 64x64x64:4 256x64x64:1
  gennorm bench layers --device cuda --dtype bfloat16 --batch 1 --repeats 50
  gennorm bench train --help
"""

BASELINE = "conv+instancenorm"
CANDIDATES = ["conv+instancenorm", "conv+groupnorm", "nc (torch)", "nc (cuda)", "nc literal unfold",
              "conv+pono", "knconv", "convnorm"]
RESNET9_SHAPES = ["64x256x256", "128x128x128", "256x64x64"]  # C x H x W of its 3x3 convs on 256x256
QUICK_SHAPES = ["16x32x32"]
NO_CUDA_NC = "n/a (no CUDA build/GPU)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="what", metavar="{layers,train}", required=True)
    layers = sub.add_parser("layers", help="forward + backward time of each normalization layer",
                            description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    layers.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    layers.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                        help="float32, or bfloat16/float16 under torch.autocast with float32 parameters (AMP)")
    layers.add_argument("--batch", type=int, nargs="+", default=None, help="batch sizes (default: 1 4)")
    layers.add_argument("--shapes", nargs="+", default=None, metavar="CxHxW[:B]",
                        help="layer shapes, e.g. 64x128x128 (crossed with --batch) or 64x64x64:4 (batch 4 only)")
    layers.add_argument("--repeats", type=int, default=None, help="timed rounds (default 10; 3 with --quick)")
    layers.add_argument("--warmup", type=int, default=None, help="untimed rounds first (default 2; 1 with --quick)")
    layers.add_argument("--json", default=None, metavar="FILE", help="write every number, device, torch version, dtype, date")
    layers.add_argument("--quick", action="store_true", help=f"small shapes ({' '.join(QUICK_SHAPES)}, batch 1): seconds")
    layers.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: PyTorch's choice)")
    layers.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")

    train = sub.add_parser("train", help="training-step benchmark (gennorm.train.bench)",
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    from gennorm.train import bench as train_bench  # the training benchmark owns its options

    train.description = train_bench.DESCRIPTION
    train_bench.add_arguments(train)


def run(args: argparse.Namespace) -> int | None:
    if args.what == "train":
        from gennorm.train import bench as train_bench

        return train_bench.run(args)
    return run_layers(args)


# ---- options -------------------------------------------------------------------------------


def parse_shape(text: str, batches: list[int]) -> list[tuple[int, int, int, int]]:
    """'64x128x128' -> [(B, 64, 128, 128) for B in batches]; '64x64x64:4' -> [(4, 64, 64, 64)]."""
    from gennorm.errors import ConfigError

    spec, _, batch = text.partition(":")
    try:
        c, h, w = (int(v) for v in spec.lower().split("x"))
        sizes = [int(batch)] if batch else batches
    except ValueError:
        raise ConfigError(f"--shapes: expected CxHxW or CxHxW:B (e.g. 64x128x128:1), got {text!r}") from None
    if min(c, h, w, *sizes) < 1 or h < 3 or w < 3:
        raise ConfigError(f"--shapes: sizes must be positive and H, W >= 3 (3x3 convs), got {text!r}")
    return [(b, c, h, w) for b in sizes]


def _settings(args) -> dict:
    import torch

    from gennorm.errors import ConfigError

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"--device must be cpu or cuda, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA GPU is visible to PyTorch")
    batches = args.batch or ([1] if args.quick else [1, 4])
    shapes = args.shapes or (QUICK_SHAPES if args.quick else RESNET9_SHAPES)
    configs = [cfg for text in shapes for cfg in parse_shape(text, batches)]
    repeats = args.repeats if args.repeats is not None else (3 if args.quick else 10)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    if repeats < 1 or warmup < 0:
        raise ConfigError(f"--repeats must be >= 1 and --warmup >= 0, got {repeats}, {warmup}")
    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    return {"device": torch.device(device), "dtype": getattr(torch, args.dtype), "configs": configs,
            "repeats": repeats, "warmup": warmup}


# ---- the candidates ------------------------------------------------------------------------


def literal_nc(x, conv, eps: float = 1e-5):
    """NC by its definition (SPEC.md section 1): im2col, standardize every row, matrix product.

    x [N, C, H, W]; conv an nn.Conv2d (zero padding, groups 1). Materializes the K = C*kh*kw
    times larger im2col tensor: the reference the fast identity is measured against.
    """
    import torch.nn.functional as F

    n, _, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = conv.kernel_size, conv.stride, conv.padding
    ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    cols = F.unfold(x, conv.kernel_size, conv.dilation, conv.padding, conv.stride)  # [N, K, L]
    mean = cols.mean(1, keepdim=True)  # [N, 1, L]
    var = cols.var(1, unbiased=False, keepdim=True)
    rows = (cols - mean) * (var + eps).rsqrt()
    out = conv.weight.flatten(1) @ rows  # [O, K] @ [N, K, L] -> [N, O, L]
    if conv.bias is not None:
        out = out + conv.bias.view(1, -1, 1)
    return out.view(n, -1, ho, wo)


def build_candidates(channels: int, device) -> dict:
    """name -> (forward function x -> y, modules holding its parameters), or a string: why not."""
    import torch.nn as nn

    from gennorm.layers import PONO, NCConv2d, conv_norm
    from gennorm.ops import has_cuda

    c = channels

    def layer(norm):  # "conv followed by norm X" exactly as the networks build it
        return conv_norm(norm, c, c, 3, 1, 1)

    plain, pono, literal = layer("none"), PONO(impl="torch"), nn.Conv2d(c, c, 3, 1, 1)
    found = {
        "conv+instancenorm": layer("instance"),
        "conv+groupnorm": layer("group"),
        "nc (torch)": NCConv2d(c, c, 3, 1, 1, impl="torch"),
        "nc (cuda)": NCConv2d(c, c, 3, 1, 1, impl="cuda") if device.type == "cuda" and has_cuda() else NO_CUDA_NC,
        "nc literal unfold": (lambda x: literal_nc(x, literal), [literal]),
        "conv+pono": (lambda x: pono(plain(x))[0], [plain]),
        "knconv": layer("kn"),
        "convnorm": layer("convnorm"),
    }
    out = {}
    for name, entry in found.items():
        if isinstance(entry, nn.Module):
            entry = (entry, [entry])
        if not isinstance(entry, str):
            for module in entry[1]:
                module.to(device).train()
        out[name] = entry
    return out


# ---- timing --------------------------------------------------------------------------------


def _step(fn, modules, x, grad, dtype) -> float:
    """One forward + backward; returns milliseconds (CUDA events on a GPU, perf_counter on the CPU)."""
    import torch

    for module in modules:
        module.zero_grad(set_to_none=True)
    x.grad = None
    cuda = x.is_cuda
    with torch.autocast(x.device.type, dtype=dtype, enabled=dtype != torch.float32):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
        else:
            t0 = time.perf_counter()
        y = fn(x)
    y.backward(grad.to(y.dtype))
    if cuda:
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end)
    return (time.perf_counter() - t0) * 1e3


def _peak_mib(fn, modules, x, grad, dtype) -> float | None:
    """Peak CUDA memory of one step above what was allocated before it; None on the CPU."""
    import torch

    if not x.is_cuda:
        return None  # no reliable per-op peak on the CPU without a profiler run; reported as n/a
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    _step(fn, modules, x, grad, dtype)
    return (torch.cuda.max_memory_allocated() - before) / 2**20


def bench_config(config, settings, progress) -> dict:
    """Every candidate at one (B, C, H, W): {name: {status, median_ms, times_ms, peak_mib}}."""
    import torch

    b, c, h, w = config
    device, dtype = settings["device"], settings["dtype"]
    torch.manual_seed(0)
    candidates = build_candidates(c, device)
    x = torch.randn(b, c, h, w, device=device, requires_grad=True)
    grad = torch.randn(b, c, h, w, device=device)
    results = {name: {"status": entry, "times_ms": []} if isinstance(entry, str) else {"status": "ok", "times_ms": []}
               for name, entry in candidates.items()}
    live = {name: entry for name, entry in candidates.items() if not isinstance(entry, str)}
    rounds = settings["warmup"] + settings["repeats"]
    for r in range(rounds):
        for name in candidates:
            progress.update(1)
            if name not in live:  # unavailable or failed: nothing to time
                continue
            fn, modules = live[name]
            try:
                ms = _step(fn, modules, x, grad, dtype)
            except (RuntimeError, NotImplementedError) as err:  # OOM, dtype unsupported on this device
                results[name]["status"] = "error: " + str(err).strip().splitlines()[0][:200]
                del live[name]
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            if r >= settings["warmup"]:
                results[name]["times_ms"].append(ms)
    for name, (fn, modules) in live.items():
        entry = results[name]
        entry["median_ms"] = statistics.median(entry["times_ms"])
        entry["peak_mib"] = _peak_mib(fn, modules, x, grad, dtype)
    base = results[BASELINE].get("median_ms")
    for entry in results.values():
        if "median_ms" in entry and base:
            entry["ratio_vs_baseline"] = entry["median_ms"] / base
    return results


# ---- report --------------------------------------------------------------------------------


def format_table(config, results) -> str:
    b, c, h, w = config
    lines = [f"{c}x{h}x{w}, batch {b}", f"  {'candidate':<20} {'median ms':>10} {'vs conv+IN':>11} {'peak MiB':>9}"]
    for name in CANDIDATES:
        entry = results[name]
        if "median_ms" not in entry:
            lines.append(f"  {name:<20} {entry['status']}")
            continue
        ratio = entry.get("ratio_vs_baseline")
        peak = "n/a" if entry["peak_mib"] is None else f"{entry['peak_mib']:.1f}"
        lines.append(f"  {name:<20} {entry['median_ms']:>10.2f} {(f'{ratio:.2f}x' if ratio else '-'):>11} {peak:>9}")
    nc, literal = results["nc (torch)"].get("median_ms"), results["nc literal unfold"].get("median_ms")
    if nc and literal:
        lines.append(f"  literal unfold / nc (torch): {literal / nc:.2f}x")
    return "\n".join(lines)


def environment(settings) -> dict:
    import datetime
    import platform

    import torch

    from gennorm.ops import has_cuda

    device = settings["device"]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or platform.machine())
    return {
        "device": device.type, "device_name": name, "torch": torch.__version__,
        "dtype": str(settings["dtype"]).replace("torch.", ""), "threads": torch.get_num_threads(),
        "cuda_nc": has_cuda(), "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "repeats": settings["repeats"], "warmup": settings["warmup"],
        "peak_memory": "CUDA max_memory_allocated above the step's start" if device.type == "cuda" else "n/a on the CPU",
    }


def run_layers(args) -> int:

    from tqdm import tqdm

    settings = _settings(args)
    env = environment(settings)
    print(f"gennorm bench layers: {env['device_name']} ({env['device']}), torch {env['torch']}, {env['dtype']}, "
          f"fwd+bwd median of {settings['repeats']} interleaved rounds after {settings['warmup']} warm-up")
    total = len(settings["configs"]) * (settings["warmup"] + settings["repeats"]) * len(CANDIDATES)
    report = {**env, "baseline": BASELINE, "results": []}
    with tqdm(total=total, desc="bench layers", unit="step", disable=args.no_progress, leave=False, file=sys.stderr) as bar:
        for config in settings["configs"]:
            results = bench_config(config, settings, bar)
            b, c, h, w = config
            report["results"].append({"batch": b, "channels": c, "height": h, "width": w, "candidates": results})
            tqdm.write(format_table(config, results), file=sys.stdout)
    if args.json:
        from gennorm.atomic import atomic_write_json

        atomic_write_json(args.json, report)
        print(f"wrote {args.json}")
    return 0
