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
    replace  a folder written whole (`replace_folder`: model folders): written into
             `.NAME.partial-*` beside it, then swapped in at once, so a kill leaves the old or the new.

A leaf module: no heavy imports.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import glob
import json
import os
import re
import secrets
import shutil
import socket
import stat
import sys
import time
from pathlib import Path

from gennorm import __version__
from gennorm.atomic import HOST, atomic_write_json, fsync_path, writer_tag
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


# ----------------------------------------------------------------------------------------------
# folders replaced whole


@contextlib.contextmanager
def replace_folder(out, kind: str, what: str, replaced=(), adopt=None):
    """Write the folder `out` whole: yields a hidden sibling `.OUT.partial-PID-HOST-*` to write
    every file into; when the block ends it takes `out`'s place in one step, so a reader or a kill
    at any moment sees the old folder or the new one, never a mix.

    `out` must be gennorm's to write as `kind` (check_owned: new, empty, a `kind` folder, or an
    older one `adopt` accepts). One writer at a time: the lock is PARENT/.OUT.lock (the folder itself
    is replaced), under which leftovers of killed writers (`.OUT.partial-*`, `.OUT.old-*`) are swept
    first. What the user keeps in `out` beside the `replaced` names (translations in a subfolder,
    notes) is carried into the new folder as hard links (copies where links fail) before the swap.
    The swap is renameat2(RENAME_EXCHANGE) where the system has it; elsewhere two renames (old
    aside to `.OUT.old-*`, new in), and a kill between them is undone by the next writer."""
    out = Path(out)
    if out.is_symlink():  # replace the folder it points at, not the link
        out = Path(os.path.realpath(out))
    check_owned(out, kind, what, adopt)
    out.parent.mkdir(parents=True, exist_ok=True)
    with FolderLock(out.parent / f".{out.name}.lock", f"{what} {out}"):
        _restore_aside(out)
        for leftover in ("partial", "old"):
            sweep_leftovers(out.parent, prefix=f".{out.name}.{leftover}-", locked=True)
        check_owned(out, kind, what, adopt)  # again, under the lock
        tag = f"{writer_tag()}-{secrets.token_hex(4)}"
        new = out.parent / f".{out.name}.partial-{tag}"
        new.mkdir()
        try:
            if out.is_dir():
                os.chmod(new, stat.S_IMODE(out.stat().st_mode))
            write_marker(new, kind)
            yield new
            if out.is_dir():
                _carry(out, new, replaced)
            fsync_path(new)
            if out.exists() and _exchange(new, out):  # `new` now holds the old folder
                fsync_path(out.parent)
                shutil.rmtree(new, ignore_errors=True)
                return
            old = out.parent / f".{out.name}.old-{tag}"
            if out.exists():
                os.replace(out, old)
            os.replace(new, out)
            fsync_path(out.parent)
            shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(new, ignore_errors=True)
            _restore_aside(out, mine=True)
            raise


def _restore_aside(out: Path, mine: bool = False) -> None:
    """When `out` is missing and a writer (this one, or a dead one) moved the old folder aside to
    `.OUT.old-*` before it was killed between its two renames: move it back."""
    if out.exists() or out.is_symlink():
        return
    for entry in sorted(out.parent.glob(f".{glob.escape(out.name)}.old-*")):
        match = LEFTOVER.match(entry.name)
        if not match or not match["dir"] or not entry.is_dir() or entry.is_symlink():
            continue
        pid = int(match["dir"])
        if mine != (pid == os.getpid() and match["dir_host"] in (None, HOST)):
            continue
        if not mine and match["dir_host"] in (None, HOST) and pid_alive(pid):
            continue
        os.replace(entry, out)
        return


def _carry(old: Path, new: Path, replaced) -> None:
    """The user's entries of `old` (not `replaced`, the marker, the lock or leftovers) into `new`."""
    for entry in old.iterdir():
        if entry.name in replaced or entry.name in (MARKER, LOCK) or LEFTOVER.match(entry.name):
            continue
        target = new / entry.name
        if entry.is_symlink():
            os.symlink(os.readlink(entry), target)
        elif entry.is_dir():
            shutil.copytree(entry, target, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(entry, target)


def _link_or_copy(src, dst) -> None:
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError:
        shutil.copy2(src, dst, follow_symlinks=False)


def _exchange(a: Path, b: Path) -> bool:
    """Swap the paths `a` and `b` in one step (Linux renameat2 RENAME_EXCHANGE); False where the
    system or the filesystem cannot (the caller renames twice instead)."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))
