"""Cache of real-image Inception features, so re-evaluating against the same real set is fast.

Location: `$GENNORM_CACHE/fid_stats/<key>.npz` (default `~/.cache/gennorm`). The key is a
sha256 over the feature protocol, the weight file's sha256 and, for every image in the folder,
its relative path and the sha256 of its bytes: adding, removing or changing a file gives a new
key, even when the replacement keeps size and mtime (`cp -p`, `rsync -a`). Hashing reads every
image once (a test split is small next to computing its features).
The file holds the float32 features [N, 2048] (FID statistics and KID both derive from them)
plus the list of names, written atomically. A damaged file (a flipped byte fails the zip CRC)
is a miss, with a one-line warning naming it; the recomputed features replace it.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np

from gennorm.atomic import atomic_write
from gennorm.locks import sweep_leftovers


def cache_dir() -> Path:
    return Path(os.environ.get("GENNORM_CACHE") or Path.home() / ".cache" / "gennorm").expanduser() / "fid_stats"


def folder_key(folder: str | os.PathLike, paths: list[Path], protocol: dict, weights_sha256: str) -> str:
    """Content key of a folder's image list under a protocol and a weight file."""
    h = hashlib.sha256()
    h.update(json.dumps({"protocol": protocol, "weights": weights_sha256}, sort_keys=True).encode())
    for p in paths:
        h.update(f"{p.relative_to(folder).as_posix()}\0{file_sha256(p)}\n".encode())
    return h.hexdigest()[:32]


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def load(key: str) -> np.ndarray | None:
    """Cached features [N, D] for `key`, or None (a damaged cache file counts as absent)."""
    path = cache_dir() / f"{key}.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            features = z["features"]
        if features.ndim != 2 or features.dtype != np.float32:
            raise ValueError(f"features of shape {features.shape} and dtype {features.dtype}")
        return features
    except Exception as err:  # noqa: BLE001 (BadZipFile, EOFError, zlib.error, ...: any damage is a miss)
        print(f"warning: feature cache {path} is damaged ({type(err).__name__}: {' '.join(str(err).split())[:200]}); "
              "recomputing and rewriting it", file=sys.stderr)
        return None


def save(key: str, features: np.ndarray, names: list[str]) -> Path | None:
    """Write the features atomically; returns the path, or None if the cache is not writable.
    The temp files of writes killed before (`.KEY.npz.PID-HOST.tmp`, this machine's dead pids) go first."""
    folder = cache_dir()
    sweep_leftovers(folder)
    try:
        atomic_write(folder / f"{key}.npz", lambda f: np.savez(
            f, features=np.asarray(features, dtype=np.float32), names=np.asarray(names, dtype=str)))
    except OSError:
        return None
    return folder / f"{key}.npz"
