"""Checkpoint files: atomic writes, keep-last-K, RNG capture, `weights_only=True` loading.

A checkpoint is one dict of plain state (tensors, numbers, strings, lists, dicts): nets,
optimizers, schedulers, scalers, EMA, image pools, every RNG state, data position and step.
No pickled code, so `torch.load(weights_only=True)` reads it.

Writes go to `RUN/.tmp/` first (temp file, fsync, os.replace into `checkpoints/`), so the
checkpoints folder only ever holds complete files: a crash, SIGKILL or full disk mid-write
leaves the previous checkpoints untouched.
"""
from __future__ import annotations

import random
import re
import sys
from pathlib import Path

import numpy as np
import torch

from gennorm.atomic import atomic_write
from gennorm.errors import CheckpointError

CKPT_RE = re.compile(r"^step_(\d+)\.pt$")


def save_torch(obj, path: Path, tmp_dir: Path | None = None) -> None:
    """torch.save, atomically. Module-level so tests can monkeypatch a failing write."""
    atomic_write(path, lambda f: torch.save(obj, f), tmp_dir=tmp_dir)


def load_torch(path: Path, map_location="cpu"):
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except Exception as err:  # truncated / not a checkpoint / pickled code
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(err).__name__}: {err})") from None


# ----------------------------------------------------------------------------------------------
# the checkpoints/ folder


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


def prune_checkpoints(ckpt_dir: Path, keep_last: int) -> None:
    for _, path in list_checkpoints(ckpt_dir)[:-keep_last]:
        try:
            path.unlink()
        except OSError:
            pass


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


# ----------------------------------------------------------------------------------------------
# RNG states, stored as tensors / lists so that weights_only loading accepts them


def rng_state() -> dict:
    py = random.getstate()  # (version, tuple of 625 ints, gauss_next)
    np_state = np.random.get_state()  # ('MT19937', uint32[624], pos, has_gauss, cached)
    state = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]),
                  int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), n[2], n[3], n[4]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        states = state["cuda"]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
