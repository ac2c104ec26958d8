"""`gennorm bench train`: training-step time and peak memory, CycleGAN and pix2pix, per norm.

Each configuration builds the full task (generators, discriminators, Adam, losses) and runs
whole training steps on synthetic batches (no data loading, so the number is the model's):
warm-up steps first, then the median of the timed steps. CUDA: ResNet-9, ngf/ndf 64, 256x256,
batch 1 (the papers' setting; --amp bf16 for bfloat16 autocast), peak memory from
torch.cuda.max_memory_allocated. CPU: a small setting (ResNet-6, ngf 16, 64x64; --quick: ngf 8,
32x32), peak memory as the growth of the process's peak RSS (an upper bound that only grows; the
CUDA number is the exact one). --arch picks another generator (e.g. unet_256 for pix2pix).

Run: gennorm bench train --device cpu --quick --json bench_train.json
"""
from __future__ import annotations

import json
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

from gennorm.atomic import atomic_write_bytes
from gennorm.bench.timing import environment, first_line, resolve_device
from gennorm.config import load_config
from gennorm.errors import ConfigError, GennormError
from gennorm.train.loop import make_task


def _setting(args, device: str) -> dict:
    if device == "cuda":
        s = {"g_arch": "resnet_9blocks", "ngf": 64, "size": 256, "steps": 10, "warmup": 3}
    elif args.quick:
        s = {"g_arch": "resnet_6blocks", "ngf": 8, "size": 32, "steps": 3, "warmup": 1}
    else:
        s = {"g_arch": "resnet_6blocks", "ngf": 16, "size": 64, "steps": 5, "warmup": 2}
    if args.quick and device == "cuda":
        s.update(steps=3, warmup=1)
    for key in ("steps", "size", "ngf", "warmup"):
        if getattr(args, key) is not None:
            s[key] = getattr(args, key)
    if args.arch:
        s["g_arch"] = args.arch
    s["batch"] = args.batch
    return s


def _rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def bench_one(task_name: str, norm: str, setting: dict, device, amp: str, d_norm: str) -> dict:
    cfg = load_config({
        "model": {"g_arch": setting["g_arch"], "ngf": setting["ngf"], "ndf": setting["ngf"], "g_norm": norm,
                  "d_norm": d_norm},
        "data": {"mode": "aligned" if task_name == "pix2pix" else "unaligned", "crop_size": setting["size"],
                 "load_size": setting["size"]},
        "train": {"task": task_name, "amp": amp, "max_steps": 10_000, "batch_size": setting["batch"]},
    })
    torch.manual_seed(0)
    rss0 = _rss_mb()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    task = make_task(cfg, device)
    shape = (setting["batch"], 3, setting["size"], setting["size"])
    batch = {"A": torch.rand(shape, device=device) * 2 - 1, "B": torch.rand(shape, device=device) * 2 - 1}
    times, first = [], None
    for i in range(setting["warmup"] + setting["steps"]):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        task.train_step(batch, i + 1)  # .item() of the losses syncs
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        first = time.perf_counter() - start if first is None else first
        if i >= setting["warmup"]:
            times.append(time.perf_counter() - start)
    row = {"task": task_name, "norm": norm, "step_ms": 1000 * statistics.median(times),
           "step_ms_min": 1000 * min(times), "first_step_ms": 1000 * first, "steps_ms": [1000 * t for t in times],
           "g_params": sum(p.numel() for n in task.GENERATORS for p in task.nets[n].parameters())}
    if device.type == "cuda":
        row["peak_mem_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        row["peak_rss_growth_mb"] = max(0.0, _rss_mb() - rss0)
    del task
    return row


def _line(row: dict) -> str:
    if "error" in row:
        return f"{row['task']:<9} {row['norm']:<9} {row['error']}"
    mem = (f"{row['peak_mem_mb']:8.0f} MB peak" if "peak_mem_mb" in row
           else f"{row['peak_rss_growth_mb']:8.0f} MB RSS growth")
    return f"{row['task']:<9} {row['norm']:<9} {row['step_ms']:9.1f} ms/step  {mem}  G params {row['g_params']:,}"


def run(args) -> int:
    device = resolve_device(args.device)
    setting = _setting(args, device.type)
    if min(setting["steps"], setting["size"], setting["ngf"], setting["batch"]) < 1 or setting["warmup"] < 0:
        raise ConfigError("--steps, --size, --ngf and --batch must be >= 1 and --warmup >= 0")
    print(f"bench train on {device.type}: {setting['g_arch']} ngf {setting['ngf']}, {setting['size']}x"
          f"{setting['size']}, batch {setting['batch']}, amp {args.amp}, D norm {args.d_norm}, "
          f"median of {setting['steps']} steps after {setting['warmup']} warm-up", file=sys.stderr)
    env = environment(device)
    info = {**env, "hardware": env["device_name"], "setting": setting, "amp": args.amp, "d_norm": args.d_norm,
            "peak_memory": "torch.cuda.max_memory_allocated over the task's build and steps" if device.type == "cuda"
            else "growth of the process's peak RSS (upper bound)", "results": []}
    failed = 0
    for task_name in args.tasks:
        for norm in args.norms:
            try:
                row = bench_one(task_name, norm, setting, device, args.amp, args.d_norm)
            except (GennormError, ValueError) as err:  # a norm the task cannot build: the user's input
                raise ConfigError(f"{task_name} with g_norm {norm!r}: {err}") from err
            except (RuntimeError, NotImplementedError) as err:  # OOM, a kernel failing: record, go on
                row, failed = {"task": task_name, "norm": norm, "error": "error: " + first_line(err)}, failed + 1
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            info["results"].append(row)
            print(_line(row), flush=True)
            if args.json:
                _write(args.json, info)
    return 1 if failed else 0


def _write(path: str, info: dict) -> None:
    atomic_write_bytes(Path(path), json.dumps(info, indent=2).encode())
