"""Reading checkpoints: `step_*.pt` files (weights_only) and strict, explained state-dict loading.

A run's checkpoints/ holds `step_NNNNNNNN.pt` files written by gennorm.train.checkpoint; they are
read here with `torch.load(weights_only=True)`, so a file can hold no code.

load_network_state: strict loading with an explanation instead of a wall of key names.

With the checkpoint's saved build options (`net.options` of the network that was saved), a
mismatch names the options that differ ("checkpoint was built with norm='instance', ngf=64;
this network has norm='nc', ngf=32"). Without them the message summarizes the key mismatch:
counts of missing and unexpected keys, the first few names, and shape mismatches.
Options that do not change the network (init) are not compared; an option difference that
leaves the keys identical (e.g. instance vs pono-ms) is still an error, since the weights
would load into a different network.
"""
from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn as nn

from gennorm.errors import CheckpointError

CKPT_RE = re.compile(r"^step_(\d+)\.pt$")
IGNORED_OPTIONS = ("init_type", "init_gain")
SHOWN = 5


def _fmt(options: Mapping, keys) -> str:
    return ", ".join(f"{k}={options.get(k)!r}" for k in keys)


def _differing_options(saved: Mapping, current: Mapping) -> list[str]:
    """Options recorded on both sides that differ (an option an older checkpoint lacks is not compared)."""
    return [k for k in current if k in saved and k not in IGNORED_OPTIONS and saved[k] != current[k]]


def _names(keys: list[str]) -> str:
    more = f", ... ({len(keys) - SHOWN} more)" if len(keys) > SHOWN else ""
    return ", ".join(keys[:SHOWN]) + more


def _key_summary(expected: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor]) -> str | None:
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    # an empty buffer (ConvNorm2d's running_V before its first step) takes any shape on loading
    shapes = [f"{k} {tuple(given[k].shape)} vs {tuple(expected[k].shape)}" for k in expected
              if k in given and hasattr(given[k], "shape") and expected[k].numel() > 0
              and tuple(given[k].shape) != tuple(expected[k].shape)]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing key(s) ({_names(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s) ({_names(unexpected)})")
    if shapes:
        parts.append(f"{len(shapes)} shape mismatch(es) (checkpoint vs network: {_names(shapes)})")
    return "; ".join(parts) or None


def _strip_data_parallel(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if state_dict and all(k.startswith("module.") for k in state_dict):
        return {k[len("module."):]: v for k, v in state_dict.items()}
    return dict(state_dict)


def load_network_state(net: nn.Module, state_dict: Mapping[str, torch.Tensor],
                       saved_options: Mapping | None = None) -> nn.Module:
    """Load `state_dict` into `net` strictly; raise CheckpointError explaining any mismatch."""
    state_dict = _strip_data_parallel(state_dict)
    current = getattr(net, "options", None) or {}
    summary = _key_summary(net.state_dict(), state_dict)
    if saved_options is not None and current:
        differing = _differing_options(saved_options, current)
        if differing:
            detail = f" ({summary})" if summary else ""
            raise CheckpointError(f"checkpoint was built with {_fmt(saved_options, differing)}; "
                                  f"this network has {_fmt(current, differing)}{detail}")
    if summary:
        what = f"{current.get('kind', 'network')} {current.get('arch', '')}".strip() if current else "the network"
        raise CheckpointError(f"checkpoint does not match {what}: {summary}")
    try:
        net.load_state_dict(state_dict, strict=True)
    except RuntimeError as err:  # a layer's own check (e.g. a size mismatch it refuses); keep it short
        lines = [line.strip() for line in str(err).splitlines()[1:] if line.strip()]
        detail = f"{len(lines)} problem(s): {_names(lines)}" if lines else str(err).splitlines()[0]
        raise CheckpointError(f"checkpoint could not be loaded: {detail}") from None
    return net


# ----------------------------------------------------------------------------------------------
# checkpoint files


def load_torch(path: Path, map_location="cpu"):
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except Exception as err:  # truncated / not a checkpoint / pickled code
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(err).__name__}: {err})") from None


def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}.pt"


def list_checkpoints(ckpt_dir: Path) -> list[tuple[int, Path]]:
    """(step, path), oldest first."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return []
    found = []
    for p in ckpt_dir.iterdir():
        m = CKPT_RE.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)


def load_latest(ckpt_dir: Path, map_location="cpu") -> tuple[dict, Path]:
    """The newest readable checkpoint (an unreadable newest one is skipped with a warning)."""
    found = list_checkpoints(ckpt_dir)
    if not found:
        raise CheckpointError(f"no checkpoints (step_*.pt) in {ckpt_dir}")
    errors = []
    for _, path in reversed(found):
        try:
            return load_torch(path, map_location), path
        except CheckpointError as err:
            errors.append(str(err))
            print(f"warning: {err}; trying the previous checkpoint", file=sys.stderr)
    raise CheckpointError(f"no readable checkpoint in {ckpt_dir}: {'; '.join(errors)}")
