"""Cache of real-image Inception features, so re-evaluating against the same real set is fast.

Location: `$GENNORM_CACHE/fid_stats/<key>.npz` (default `~/.cache/gennorm`). The key is a
sha256 over the feature protocol, the weight file's sha256 and, for every image in the folder,
its relative path, size and mtime (ns): touching, adding or replacing a file gives a new key.
The file holds the float32 features [N, 2048] (FID statistics and KID both derive from them)
plus the list of names, written atomically.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from gennorm.atomic import atomic_write


def cache_dir() -> Path:
    return Path(os.environ.get("GENNORM_CACHE") or Path.home() / ".cache" / "gennorm").expanduser() / "fid_stats"


def folder_key(folder: str | os.PathLike, paths: list[Path], protocol: dict, weights_sha256: str) -> str:
    """Content key of a folder's image list under a protocol and a weight file."""
    h = hashlib.sha256()
    h.update(json.dumps({"protocol": protocol, "weights": weights_sha256}, sort_keys=True).encode())
    for p in paths:
        st = p.stat()
        h.update(f"{p.relative_to(folder).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:32]


def load(key: str) -> np.ndarray | None:
    """Cached features [N, D] for `key`, or None (a damaged cache file counts as absent)."""
    path = cache_dir() / f"{key}.npz"
    try:
        with np.load(path, allow_pickle=False) as z:
            return z["features"]
    except (OSError, KeyError, ValueError):
        return None


def save(key: str, features: np.ndarray, names: list[str]) -> Path | None:
    """Write the features atomically; returns the path, or None if the cache is not writable."""
    folder = cache_dir()
    try:
        atomic_write(folder / f"{key}.npz", lambda f: np.savez(
            f, features=np.asarray(features, dtype=np.float32), names=np.asarray(names, dtype=str)))
    except OSError:
        return None
    return folder / f"{key}.npz"
