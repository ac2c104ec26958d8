"""One check that a named device exists, for every verb and library entry that takes a device.

Why: torch accepts `torch.device("cuda")` on a machine without a GPU and fails later, deep in
a `.to()`, with "Found no NVIDIA driver" (or `meta` with a StopIteration); the user then sees
an "unexpected RuntimeError" that names no option. `require_device` turns a name into a
torch.device up front, or raises a ConfigError naming the option: "--device cuda: no CUDA
device on this machine; use --device cpu". Used by train (train.device), eval, translate,
demo (gennorm.train.loop, gennorm.metrics.evaluate, gennorm.commands.translate, gennorm.apps.demo).
torch is imported inside, so importing this module stays cheap.
"""
from __future__ import annotations

from gennorm.errors import ConfigError

KNOWN = ("cpu", "cuda", "mps")


def require_device(name, option: str = "--device"):
    """torch.device for `name` ("auto": cuda when available, else cpu), or a ConfigError naming `option`."""
    import torch

    text = str(name).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise ConfigError(f"{option} {name}: not a device; expected auto, cpu, cuda, cuda:N or mps") from None
    if dev.type not in KNOWN:
        raise ConfigError(f"{option} {name}: not supported; expected auto, cpu, cuda, cuda:N or mps")
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"{option} {name}: no CUDA device on this machine; use cpu")
        if dev.index is not None and dev.index >= count:
            raise ConfigError(f"{option} {name}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError(f"{option} {name}: no MPS device on this machine; use cpu")
    return dev
