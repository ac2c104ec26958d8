"""Folders gennorm writes: who made one (its marker), who writes it now (its lock), and what killed
writers left in it (the sweep). Nothing a user owns is overwritten (issue 30).

    marker   DIR/.gennorm, JSON {"kind": "run" | "model" | "scenes", "version": ...}, written when
             gennorm creates a folder (or adopts one an older gennorm made, see `own_folder`). A
             non-empty folder without it is the user's: never written into.
    lock     an advisory fcntl.flock on a lock file (DIR/.gennorm.lock; for a folder replaced as a
             whole, PARENT/.NAME.lock) held for the whole write; the file holds the holder's pid,
             host, start time and command, so the refusal names them. The kernel releases a dead
             process's flock, so a stale lock file is simply one whose flock is free.
    sweep    hidden leftovers of killed writes: `.NAME.PID-HOST.tmp` files (gennorm.atomic) and
             `.NAME.partial-PID-HOST-*` / `.NAME.old-PID-HOST-*` folders (HOST: gennorm.atomic.HOST;
             names without it, from older gennorm, count as this machine's). This machine's are
             removed when PID is no live process here. Another machine's (a shared folder) are
             removed only by a sweep under the folder's lock (`locked`): every writer of a locked
             folder holds its lock, so a lock that could be taken means that writer is gone; an
             unlocked sweep cannot tell and keeps them. An in-flight temp of a live writer is never touched.

A leaf module: no heavy imports.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import socket
import sys
import time
from pathlib import Path

from gennorm import __version__
from gennorm.atomic import HOST, atomic_write_json
from gennorm.errors import GennormError

MARKER = ".gennorm"
LOCK = ".gennorm.lock"
LEFTOVER = re.compile(r"^\..+?\.(?:(?P<tmp>\d+)(?:-(?P<tmp_host>[0-9a-f]{8}))?\.tmp"
                      r"|(?:partial|old)-(?P<dir>\d+)(?:-(?P<dir_host>[0-9a-f]{8}))?-.*)$")
# files a folder may hold and still count as empty (macOS / Windows litter, a lock of ours)
IGNORED = {".DS_Store", "Thumbs.db", LOCK}


# ----------------------------------------------------------------------------------------------
# the lock


class FolderLock:
    """An exclusive advisory lock on `path` (a lock file); `what` names the folder in messages.

        with FolderLock(run / ".gennorm.lock", f"the run {run}"):
            ...   # the only writer

    acquire() raises GennormError naming the holder (pid, host, start time, command) when another
    process (or another FolderLock of this one) holds it."""

    def __init__(self, path, what: str):
        self.path, self.what, self.fd = Path(path), what, None

    def acquire(self) -> "FolderLock":
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise GennormError(f"{self.what} is being written by another gennorm process, {holder}; wait for it "
                               f"to finish (or stop it), or choose another folder") from None
        except BaseException:
            os.close(fd)
            raise
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                "command": " ".join(["gennorm", *sys.argv[1:]] if sys.argv[0].endswith("gennorm") else sys.argv)[:300]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, 0)  # the file stays (removing it would race a waiting locker)
            os.close(self.fd)  # closing drops the flock
            self.fd = None

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode("utf-8", "replace") or "{}")
        command = str(info.get("command", "?"))
        return f"pid {info['pid']} on {info['host']} since {info['started']} ({command[:60]}{'...' if len(command) > 60 else ''})"
    except (OSError, ValueError, KeyError, TypeError):
        return "its pid not recorded yet"


# ----------------------------------------------------------------------------------------------
# leftovers


def pid_alive(pid: int) -> bool:
    """Whether `pid` is a live process on this machine (a zombie counts as live: it may be reaped)."""
    if pid <= 0:
        return True  # not a pid we know: keep what carries it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_leftovers(folder, prefix: str = "", locked: bool = False) -> list[Path]:
    """Remove the leftovers (module doc) in `folder` whose name starts with `prefix` and whose
    writer is gone: a dead pid of this machine, or (`locked`: the caller holds the lock that every
    writer of these names holds) any other machine's; returns what was removed. Never a live
    process's file or folder."""
    folder = Path(folder)
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = LEFTOVER.match(entry.name)
        if not match or not entry.name.startswith(prefix):
            continue
        pid, host = int(match["tmp"] or match["dir"]), match["tmp_host"] or match["dir_host"]
        if host not in (None, HOST):  # another machine's writer: its pid says nothing here
            if not locked:
                continue
        elif pid == os.getpid() or pid_alive(pid):
            continue
        try:
            if match["dir"] and entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            elif match["tmp"] and (entry.is_file() or entry.is_symlink()):
                entry.unlink()
            else:
                continue
        except FileNotFoundError:
            continue
        removed.append(entry)
    return removed


# ----------------------------------------------------------------------------------------------
# markers and owned folders


def read_marker(folder) -> dict | None:
    """The marker of `folder` ({"kind": ...}), or None when it has none (or an unreadable one)."""
    try:
        marker = json.loads((Path(folder) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and isinstance(marker.get("kind"), str) else None


def write_marker(folder, kind: str) -> None:
    atomic_write_json(Path(folder) / MARKER, {"kind": kind, "version": __version__})


def check_owned(folder, kind: str, what: str, adopt=None) -> None:
    """Raise GennormError unless gennorm may write `folder` as a `kind` folder (`what`: "the run", "the
    model folder", named in the message): it does not exist,
    is empty, carries the marker of `kind`, or (made before markers) `adopt(folder)` is true."""
    folder = Path(folder)
    if not folder.exists():
        return
    if not folder.is_dir():
        raise GennormError(f"cannot write {what} into {folder}: it exists and is not a folder; choose a new folder")
    marker = read_marker(folder)
    if marker is not None:
        if marker["kind"] != kind:
            raise GennormError(f"cannot write {what} into {folder}: it is a gennorm {marker['kind']} folder, "
                               f"not a {kind} folder; choose a new folder")
        return
    if all(p.name in IGNORED for p in folder.iterdir()) or (adopt is not None and adopt(folder)):
        return
    raise GennormError(f"cannot write {what} into {folder}: it is not empty and was not made by gennorm "
                       f"(no {MARKER} marker in it); choose a new folder or remove it")


def holds(*names: str):
    """An `adopt` test for folders an older gennorm made: all of `names` are in the folder."""
    return lambda folder: all((Path(folder) / name).exists() for name in names)


@contextlib.contextmanager
def own_folder(folder, kind: str, what: str, adopt=None, sweep=(".",)):
    """Check `folder` is gennorm's to write as `kind` (check_owned), create it, take its lock, sweep
    leftovers of dead writers from it and the subfolders `sweep` (relative names), write the marker;
    yields the list of removed leftovers. The lock is held until the block ends."""
    folder = Path(folder)
    check_owned(folder, kind, what, adopt)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with FolderLock(folder / LOCK, f"{what} {folder}"):
            removed = [p for sub in sweep for p in sweep_leftovers(folder / sub, locked=True)]
            if read_marker(folder) is None:
                write_marker(folder, kind)
            yield removed
    except BaseException:
        if created and {p.name for p in folder.iterdir()} <= {MARKER, LOCK}:  # failed before writing anything
            for name in (MARKER, LOCK):
                with contextlib.suppress(OSError):
                    (folder / name).unlink()
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
