"""`gennorm bench layers`: speed of one conv + norm layer per normalization, at the ResNet-9 shapes.

The layers are those of the CycleGAN ResNet-9 generator on a 256x256 image: the 7x7 reflect stem
3->64 at 256², the 3x3 stride-2 convs 64->128 at 256² and 128->256 at 128², the 3x3 reflect
256->256 residual conv at 64². Each candidate is timed forward (the forward of a training step:
inputs and parameters require grad) and forward + backward, interleaved in one process: a
warm-up first, then round after round over all candidates, so drift in clock speed or load hits
every candidate alike. It reports medians and the ratio to Conv2d + InstanceNorm2d (the classic
CycleGAN/pix2pix layer) measured in the same rounds. With --dtype bfloat16/float16 the layer
runs under torch.autocast, parameters float32 and the input in that dtype (as a layer inside an
AMP network receives it).

After the candidates, each shared-op kernel (gennorm/bench/kernels.py) is timed at the same
shape: the bytes it moves and its GB/s as a % of a plain copy of the same bytes.

The layer shapes and candidate names are in specs.py (torch-free: the command's options and help,
gennorm/commands/bench.py, are built from them).

Run: gennorm bench layers --quick
"""
from __future__ import annotations

import statistics
import sys
import time
from dataclasses import asdict

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from gennorm.atomic import atomic_write_json
from gennorm.bench.kernels import bench_kernels, copy_ceiling, format_kernels
from gennorm.bench.specs import BASELINE, CANDIDATES, COMPILED, QUICK_LAYERS, RESNET9_LAYERS, LayerSpec
from gennorm.bench.timing import cuda_nc_available, environment, first_line, resolve_device, time_ms
from gennorm.errors import ConfigError
from gennorm.layers import PONO, NCConv2d, conv_norm

NO_CUDA_NC = "n/a (no CUDA build/GPU)"
NO_COMPILE = "skipped (--no-compile)"
QUICK_NO_COMPILE = "skipped (--quick: compiling takes 10-30 s; name it in --candidates to time it)"
NOT_SELECTED = "skipped (not in --candidates)"


# ---- options -------------------------------------------------------------------------------


def parse_shape(text: str, batches: list[int]) -> list[tuple[int, LayerSpec]]:
    """'64x128x128' -> [(B, 3x3 64->64 zeros conv at 128x128) for B in batches]; '64x64x64:4' -> batch 4 only."""
    spec, _, batch = text.partition(":")
    try:
        c, h, w = (int(v) for v in spec.lower().split("x"))
        sizes = [int(batch)] if batch else batches
    except ValueError:
        raise ConfigError(f"--shapes: expected CxHxW or CxHxW:B (e.g. 64x128x128:1), got {text!r}") from None
    if min(c, h, w, *sizes) < 1 or h < 3 or w < 3:
        raise ConfigError(f"--shapes: sizes must be positive and H, W >= 3 (3x3 convs), got {text!r}")
    if h != w:
        raise ConfigError(f"--shapes: square inputs only (H == W), got {text!r}")
    return [(b, LayerSpec(f"{c}x{h}x{w}", c, c, 3, 1, 1, "zeros", h)) for b in sizes]


def _settings(args) -> dict:
    device = resolve_device(args.device).type  # "cpu" | "cuda"
    batches = args.batch or ([1] if args.quick or device == "cpu" else [1, 8])
    if args.shapes:
        configs = [cfg for text in args.shapes for cfg in parse_shape(text, batches)]
    else:
        table = QUICK_LAYERS if args.quick else RESNET9_LAYERS
        unknown = [name for name in args.layers or [] if name not in table]
        if unknown:
            raise ConfigError(f"--layers: unknown {', '.join(unknown)}; known: {', '.join(table)}")
        configs = [(b, table[name]) for name in (args.layers or table) for b in batches]
    if min(batches) < 1:
        raise ConfigError(f"--batch sizes must be >= 1, got {batches}")
    chosen = set(args.candidates or CANDIDATES) | {BASELINE}
    unknown = sorted(chosen - set(CANDIDATES))
    if unknown:
        raise ConfigError(f"--candidates: unknown {', '.join(map(repr, unknown))}; known: "
                          f"{', '.join(map(repr, CANDIDATES))}")
    repeats = args.repeats if args.repeats is not None else (3 if args.quick else 10)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    if repeats < 1 or warmup < 0:
        raise ConfigError(f"--repeats must be >= 1 and --warmup >= 0, got {repeats}, {warmup}")
    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    return {"device": torch.device(device), "dtypes": [getattr(torch, d) for d in args.dtype], "configs": configs,
            "modes": list(dict.fromkeys(args.modes)), "candidates": [c for c in CANDIDATES if c in chosen],
            "compile": NO_COMPILE if args.no_compile else (
                QUICK_NO_COMPILE if args.quick and COMPILED not in (args.candidates or []) else None),
            "kernels": not args.no_kernels, "repeats": repeats, "warmup": warmup}


# ---- the candidates ------------------------------------------------------------------------


def literal_nc(x, conv, eps: float = 1e-5):
    """NC by its definition (docs/SPEC.md section 1): im2col, standardize every row, matrix product.

    x [N, C, H, W]; conv an nn.Conv2d (groups 1, any padding mode). Materializes the K = C*kh*kw
    times larger im2col tensor: the reference the fast identity is measured against.
    """
    if conv.padding_mode != "zeros":  # pad as nn.Conv2d does, then unfold without padding
        x, padding = F.pad(x, conv._reversed_padding_repeated_twice, mode=conv.padding_mode), (0, 0)
    else:
        padding = conv.padding
    n, _, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = conv.kernel_size, conv.stride, padding, conv.dilation
    ho, wo = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    cols = F.unfold(x, conv.kernel_size, conv.dilation, padding, conv.stride)  # [N, K, L]
    mean = cols.mean(1, keepdim=True)  # [N, 1, L]
    var = cols.var(1, unbiased=False, keepdim=True)
    rows = (cols - mean) * (var + eps).rsqrt()
    out = conv.weight.flatten(1).to(rows.dtype) @ rows  # [O, K] @ [N, K, L] -> [N, O, L]
    if conv.bias is not None:
        out = out + conv.bias.view(1, -1, 1).to(out.dtype)
    return out.view(n, -1, ho, wo)


def _zero_padded_only(norm: str, spec: LayerSpec):
    """KN and ConvNorm pad with zeros only: other modes get an explicit pad layer, as the networks build them."""
    if spec.mode == "zeros" or not spec.padding:
        return conv_norm(norm, spec.cin, spec.cout, spec.kernel, spec.stride, spec.padding)
    pad = {"reflect": nn.ReflectionPad2d, "replicate": nn.ReplicationPad2d, "circular": nn.CircularPad2d}[spec.mode]
    return nn.Sequential(pad(spec.padding), conv_norm(norm, spec.cin, spec.cout, spec.kernel, spec.stride, 0))


def _nc(spec: LayerSpec, impl: str):
    return NCConv2d(spec.cin, spec.cout, spec.kernel, spec.stride, spec.padding, padding_mode=spec.mode, impl=impl)


def _builders(spec: LayerSpec, device, settings) -> dict:
    """name -> a function building (forward x -> y, modules holding its parameters), or a string: why not."""
    def layer(norm):  # "conv followed by norm X" exactly as the networks build it
        return lambda: conv_norm(norm, spec.cin, spec.cout, spec.kernel, spec.stride, spec.padding,
                                 padding_mode=spec.mode)

    def pono():
        plain, norm = layer("none")(), PONO()
        return (lambda x: norm(plain(x))[0]), [plain]

    def literal():
        conv = nn.Conv2d(spec.cin, spec.cout, spec.kernel, spec.stride, spec.padding, padding_mode=spec.mode)
        return (lambda x: literal_nc(x, conv)), [conv]

    def compiled():
        module = _nc(spec, "torch")
        torch._dynamo.reset()  # a fresh cache per shape: never the recompile limit's silent fall back to eager
        return torch.compile(module), [module]

    cuda_nc = device.type == "cuda"  # tried on every GPU: the first call says why when the op cannot serve
    return {
        "conv+instancenorm": layer("instance"),
        "conv+groupnorm": layer("group"),
        "nc (torch)": lambda: _nc(spec, "torch"),
        COMPILED: settings["compile"] or compiled,
        "nc (cuda)": (lambda: _nc(spec, "cuda")) if cuda_nc else NO_CUDA_NC,
        "nc literal unfold": literal,
        "conv+pono": pono,
        "knconv": lambda: _zero_padded_only("kn", spec),
        "convnorm": lambda: _zero_padded_only("convnorm", spec),
    }


def build_candidates(spec: LayerSpec, device, settings) -> dict:
    """name -> (forward, modules) for each selected candidate that builds, else name -> status string."""
    out = {}
    for name, make in _builders(spec, device, settings).items():
        if name not in settings["candidates"]:
            out[name] = NOT_SELECTED
            continue
        if isinstance(make, str):
            out[name] = make
            continue
        try:
            entry = make()
            if isinstance(entry, nn.Module):
                entry = (entry, [entry])
            for module in entry[1]:
                module.to(device).train()
        except Exception as err:  # noqa: BLE001  (a layer that cannot be built at this shape is a result)
            entry = "error: " + first_line(err)
        out[name] = entry
    return out


# ---- timing --------------------------------------------------------------------------------


def _step(fn, modules, x, grad, dtype, backward: bool) -> None:
    """One training forward (and backward) under autocast when dtype is not float32.

    grad: {dtype: the output gradient in that dtype}, filled on first use (no cast inside the timed steps).
    """
    for module in modules:
        module.zero_grad(set_to_none=True)
    x.grad = None
    with torch.autocast(x.device.type, dtype=dtype, enabled=dtype != torch.float32):
        y = fn(x)
    if backward:
        if y.dtype not in grad:
            grad[y.dtype] = grad[torch.float32].to(y.dtype)
        y.backward(grad[y.dtype])


def _peak_mib(fn, modules, x, grad, dtype) -> float | None:
    """Peak CUDA memory of one forward + backward above what was allocated before it; None on the CPU."""
    if not x.is_cuda:
        return None  # no reliable per-op peak on the CPU without a profiler run; reported as n/a
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    _step(fn, modules, x, grad, dtype, True)
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - before) / 2**20


def _prime(live: dict, results: dict, x, grad, dtype, device) -> None:
    """One untimed forward + backward per candidate: compiles, autotunes, loads; drops those that fail."""
    for name in list(live):
        fn, modules = live[name]
        t0 = time.perf_counter()
        try:
            _step(fn, modules, x, grad, dtype, True)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
        except Exception as err:  # noqa: BLE001  (OOM, dtype unsupported on this device, compile failure)
            results[name]["status"] = "error: " + first_line(err)
            del live[name]
            if device.type == "cuda":
                torch.cuda.empty_cache()
            continue
        results[name]["first_call_s"] = time.perf_counter() - t0  # torch.compile: the compile time


def bench_config(batch: int, spec: LayerSpec, dtype, settings, progress) -> dict:
    """Every candidate at one (batch, layer, dtype): {name: {status, <mode>: {median_ms, ratio_vs_baseline, ...}}}."""
    device, modes = settings["device"], settings["modes"]
    torch.manual_seed(0)
    candidates = build_candidates(spec, device, settings)
    x = torch.randn(batch, spec.cin, spec.size, spec.size, device=device, dtype=dtype, requires_grad=True)
    grad = {torch.float32: torch.randn(batch, spec.cout, spec.out_size, spec.out_size, device=device)}
    results = {name: {"status": entry if isinstance(entry, str) else "ok"} for name, entry in candidates.items()}
    live = {name: entry for name, entry in candidates.items() if not isinstance(entry, str)}
    _prime(live, results, x, grad, dtype, device)
    times = {(name, mode): [] for name in live for mode in modes}
    for r in range(settings["warmup"] + settings["repeats"]):
        for name in list(live):
            fn, modules = live[name]
            for mode in modes:
                progress.update(1)
                ms = time_ms(lambda: _step(fn, modules, x, grad, dtype, mode == "fwdbwd"), device)
                if r >= settings["warmup"]:
                    times[name, mode].append(ms)
    for name, (fn, modules) in live.items():
        for mode in modes:
            samples = times[name, mode]
            results[name][mode] = {"median_ms": statistics.median(samples), "times_ms": samples}
        results[name]["peak_mib"] = _peak_mib(fn, modules, x, grad, dtype)
    for mode in modes:
        base = results[BASELINE].get(mode, {}).get("median_ms")
        for entry in results.values():
            if mode in entry and base:
                entry[mode]["ratio_vs_baseline"] = entry[mode]["median_ms"] / base
    return results


# ---- report --------------------------------------------------------------------------------


def format_table(batch: int, spec: LayerSpec, dtype_name: str, results: dict, modes) -> str:
    heads = "".join(f" {m + ' ms':>11} {'vs IN':>6}" for m in modes)
    lines = [f"{spec.label()}, batch {batch}, {dtype_name}",
             f"  {'candidate':<21}{heads} {'peak MiB':>9} {'first s':>8}"]
    for name, entry in results.items():
        if entry["status"] != "ok":
            lines.append(f"  {name:<21} {entry['status']}")
            continue
        cells = ""
        for mode in modes:
            ratio = entry[mode].get("ratio_vs_baseline")
            cells += f" {entry[mode]['median_ms']:>11.3f} {(f'{ratio:.2f}x' if ratio else '-'):>6}"
        peak = "n/a" if entry.get("peak_mib") is None else f"{entry['peak_mib']:.1f}"
        lines.append(f"  {name:<21}{cells} {peak:>9} {entry.get('first_call_s', 0):>8.2f}")
    mode = modes[-1]
    nc, literal = (results[n].get(mode, {}).get("median_ms") for n in ("nc (torch)", "nc literal unfold"))
    if nc and literal:
        lines.append(f"  literal unfold / nc (torch), {mode}: {literal / nc:.2f}x")
    return "\n".join(lines)


def _write(path: str, report: dict) -> None:
    atomic_write_json(path, report)


def run(args) -> int:
    settings = _settings(args)
    device = settings["device"]
    env = environment(device)
    dtype_names = [str(d).replace("torch.", "") for d in settings["dtypes"]]
    print(f"gennorm bench layers: {env['device_name']} ({env['device']}), torch {env['torch']}, CUDA {env['cuda']}, "
          f"{' '.join(dtype_names)}; median of {settings['repeats']} interleaved rounds after {settings['warmup']} "
          f"warm-up (+1 untimed first call)", flush=True)
    report = {**env, "dtypes": dtype_names, "dtype": dtype_names[0] if len(dtype_names) == 1 else dtype_names,
              "cuda_nc": cuda_nc_available(), "baseline": BASELINE, "modes": settings["modes"],
              "repeats": settings["repeats"], "warmup": settings["warmup"],
              "timing": "torch.cuda.Event around each call" if device.type == "cuda" else "perf_counter wall time",
              "forward": "training forward: input and parameters require grad",
              "peak_memory": "CUDA max_memory_allocated above the fwd+bwd step's start" if device.type == "cuda"
              else "n/a on the CPU", "results": []}
    if settings["kernels"]:
        report["copy_ceiling"] = copy_ceiling(device)
        print(f"copy bandwidth ceiling: {report['copy_ceiling']['gbps']:.0f} GB/s (read + write, "
              f"{report['copy_ceiling']['bytes'] / 2**20:.0f} MiB moved)", flush=True)
    per_config = len(settings["candidates"]) * len(settings["modes"]) * (settings["warmup"] + settings["repeats"])
    total = len(settings["dtypes"]) * len(settings["configs"]) * per_config
    with tqdm(total=total, desc="bench layers", unit="step", disable=args.no_progress, leave=False,
              file=sys.stderr) as bar:
        for batch, spec in settings["configs"]:  # each shape in every dtype before the next shape
            for dtype, dtype_name in zip(settings["dtypes"], dtype_names):
                results = bench_config(batch, spec, dtype, settings, bar)
                row = {"dtype": dtype_name, "batch": batch, "layer": spec.name, "spec": asdict(spec),
                       "channels": spec.cin, "height": spec.size, "width": spec.size, "candidates": results}
                text = format_table(batch, spec, dtype_name, results, settings["modes"])
                if settings["kernels"]:
                    row["kernels"] = bench_kernels(spec, batch, dtype, device, settings["warmup"], settings["repeats"])
                    text += "\n" + "\n".join(format_kernels(row["kernels"]))
                report["results"].append(row)
                tqdm.write(text, file=sys.stdout)
                sys.stdout.flush()
                if args.json:
                    _write(args.json, report)
    report["cuda_nc"] = cuda_nc_available()  # after the runs: a lazily loaded library counts
    if args.json:
        _write(args.json, report)
        print(f"wrote {args.json}")
    return 0
