"""The demo's temp folder: one per demo process, removed when it stops, swept when it died.

Why: Gradio keeps every upload and output in one shared temp folder ($GRADIO_TEMP_DIR, default
TMPDIR/gradio) and removes them only on a clean close; a demo stopped with SIGTERM or kill -9
left them there for good (221 MB after one session of the fault probe). Each `gennorm demo`
process uses BASE/gennorm-demo-PID instead, holding an flock on its `.alive` file while it
runs; at start, every gennorm-demo-* folder whose lock can be taken belongs to a dead process
and is removed (a lock, not the PID, so a reused PID cannot keep a leftover alive). No gradio
import here: `private_temp_dir` must run before gradio reads GRADIO_TEMP_DIR at its import.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from pathlib import Path

PREFIX = "gennorm-demo-"
ALIVE = ".alive"
_HELD: list = []  # the open lock files of this process (closing one would release its lock)


def base_dir() -> Path:
    """Where Gradio would put its files: $GRADIO_TEMP_DIR, else TMPDIR/gradio."""
    return Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio")


def sweep_dead(base: Path) -> list[Path]:
    """Remove the gennorm-demo-* folders under `base` whose process is gone; return them."""
    removed = []
    for folder in sorted(base.glob(PREFIX + "*")) if base.is_dir() else []:
        if folder.is_dir() and not _alive(folder):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _alive(folder: Path) -> bool:
    try:
        with open(folder / ALIVE, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released when f closes
    except BlockingIOError:
        return True  # a running demo holds it
    except OSError:
        return False  # no lock file (or unreadable): nothing holds the folder
    return False


def private_temp_dir(base: Path | None = None) -> Path:
    """Sweep dead demos' folders, then make, lock and return BASE/gennorm-demo-PID, and point
    GRADIO_TEMP_DIR at it (call before gradio is imported)."""
    base = base_dir() if base is None else Path(base)
    sweep_dead(base)
    folder = base / f"{PREFIX}{os.getpid()}"
    folder.mkdir(parents=True, exist_ok=True)
    lock = open(folder / ALIVE, "a")  # noqa: SIM115  held until the process ends
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    _HELD.append(lock)
    os.environ["GRADIO_TEMP_DIR"] = str(folder)
    return folder


def remove(folder: Path) -> None:
    """Remove this process's folder (on every way out of the demo)."""
    shutil.rmtree(folder, ignore_errors=True)
