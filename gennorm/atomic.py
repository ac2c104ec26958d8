"""Atomic file writes: a reader (or a crash, SIGKILL, a full disk) never sees a half-written file.

Write to a temp file in the same folder (or `tmp_dir` on the same filesystem), flush, fsync,
then os.replace onto the target and fsync the folder. On any failure the temp file is removed
and the previous version of the target is untouched. A leaf module: no heavy imports.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import socket
from pathlib import Path

# 8 hex digits of this machine's name: in the names of temp files and folders beside the writer's
# pid, so a sweep (gennorm.locks) can tell this machine's dead writers from another machine's
# writers in a shared folder, whose pids mean nothing here.
HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def writer_tag() -> str:
    """`PID-HOST` of this process: the part of a temp name that says who writes it."""
    return f"{os.getpid()}-{HOST}"


def fsync_path(path: Path) -> None:
    """fsync a file or folder (a folder: its entries, so a rename in it survives a crash); best effort."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path, write_fn, tmp_dir=None) -> None:
    """Write `path` via write_fn(binary file object) on a temp file, fsync, os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tmp_dir) if tmp_dir is not None else path.parent
    tmp_dir.mkdir(parents=True, exist_ok=True)
    tmp = tmp_dir / f".{path.name}.{writer_tag()}.tmp"
    try:
        with open(tmp, "wb") as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        try:
            tmp.unlink()
        except OSError:
            pass
        if isinstance(err, OSError) and err.filename is None:
            err.filename = str(path)  # a write on the open file (full disk) names no file: the target's name
        raise
    fsync_path(path.parent)


def atomic_write_bytes(path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def json_safe(obj):
    """`obj` with every non-finite float (inf, -inf, nan) made JSON-valid: null, and beside it in
    its dict a key NAME_note ("infinite", "-infinite", "not a number") unless one is there
    already. Python's json writes `Infinity`/`NaN`, which strict parsers (JavaScript, jq) refuse."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            out[key] = json_safe(value)
            if isinstance(value, float) and out[key] is None:
                note = "not a number" if value != value else ("infinite" if value > 0 else "-infinite")
                out.setdefault(f"{key}_note", obj.get(f"{key}_note", note))
        return out
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def atomic_write_json(path, obj, **dump_kwargs) -> None:
    """JSON that every parser reads: non-finite floats written as null plus a note (json_safe)."""
    text = json.dumps(json_safe(obj), indent=2, allow_nan=False, **dump_kwargs)
    atomic_write_text(path, text + "\n")
