"""Timing and report helpers shared by the benchmarks.

CUDA: torch.cuda.Event around the region, then a synchronize (the events time the device work,
including any gaps where the GPU waited for the CPU to launch). CPU: wall time around the
region (time.perf_counter). Interleaving and medians are the callers' job.
"""
from __future__ import annotations

import datetime
import platform
import time

import torch

from gennorm.errors import ConfigError
from gennorm.ops import has_cuda


def time_ms(fn, device) -> float:
    """Milliseconds of one call of fn()."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end)
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


def first_line(err: BaseException, limit: int = 200) -> str:
    text = str(err).strip().splitlines()
    return (f"{type(err).__name__}: {text[0]}" if text else type(err).__name__)[:limit]


def resolve_device(name: str | None):
    """--device of a bench: cpu or cuda (default: cuda when visible), as a torch.device; ConfigError otherwise."""
    name = name or ("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"--device must be cpu or cuda, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA GPU is visible to PyTorch; use --device cpu")
    return torch.device(name)


def environment(device) -> dict:
    """Device name, torch / CUDA / cuDNN / Python versions, threads, UTC date: the header of every JSON."""
    cuda = device.type == "cuda"
    return {
        "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if cuda else (platform.processor() or platform.machine()),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def cuda_nc_available() -> bool | None:
    """gennorm.ops.has_cuda(), or None when asking fails (the report says so instead of crashing)."""
    try:
        return bool(has_cuda())
    except Exception:  # noqa: BLE001
        return None
