"""Checkpoint files: atomic writes, keep-last-K, RNG capture, `weights_only=True` loading.

A checkpoint is one dict of plain state (tensors, numbers, strings, lists, dicts): nets,
optimizers, schedulers, scalers, EMA, image pools, every RNG state, data position and step.
No pickled code, so `torch.load(weights_only=True)` reads it. Reading checkpoint files is
`gennorm.networks.checkpoint`'s (inference reads them too); writing them is this module's.

Writes go to `RUN/.tmp/` first (temp file, fsync, os.replace into `checkpoints/`), so the
checkpoints folder only ever holds complete files: a crash, SIGKILL or full disk mid-write
leaves the previous checkpoints untouched.
"""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from gennorm.atomic import atomic_write
from gennorm.networks.checkpoint import (CKPT_RE, HASH_KEY, TRAIN_FORMAT, checkpoint_name, content_hash,  # noqa: F401
                                        first_nonfinite, list_checkpoints, load_latest, load_torch)


def save_torch(obj, path: Path, tmp_dir: Path | None = None) -> None:
    """torch.save, atomically. Module-level so tests can monkeypatch a failing write."""
    atomic_write(path, lambda f: torch.save(obj, f), tmp_dir=tmp_dir)


# ----------------------------------------------------------------------------------------------
# the checkpoints/ folder


def prune_checkpoints(ckpt_dir: Path, keep_last: int) -> None:
    for _, path in list_checkpoints(ckpt_dir)[:-keep_last]:
        try:
            path.unlink()
        except OSError:
            pass


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
