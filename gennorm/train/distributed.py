"""Data-parallel training under torchrun: process group, gradient averaging, rank-0-only files.

    torchrun --standalone --nproc_per_node=2 -m gennorm train pix2pix-nc train.device=cpu

Backend: nccl on GPU, gloo on CPU. Each rank builds identical nets (same seed; rank 0's
weights are broadcast anyway), trains on its own shard of each epoch's order, and averages
gradients with one flat all-reduce per network before every optimizer step. Averaging by
hand instead of wrapping in DistributedDataParallel keeps GAN training simple: D is frozen
for G's step, the WGAN-GP penalty needs double backward, and CycleGAN updates two nets per
optimizer — all of which fight DDP's reducer. Buffers (BatchNorm statistics) follow rank 0.

A rank cannot hang silently (a frozen peer used to block the others for gloo's 30 minutes
without a word, deaf to SIGTERM): the process group times out after GENNORM_DIST_TIMEOUT
seconds (default 600; init_process_group(timeout=...)), and every collective runs inside
`_collective`, which a watchdog thread watches: past a tenth of the timeout (at most a minute)
it prints "rank R has waited N s for the other ranks ...", and a SIGTERM that arrives while the
main thread is blocked in a collective (its Python handler cannot run there) ends the rank after
SIGTERM_GRACE_S with a line saying so. A collective that fails (timeout, peer gone) is a
GennormError naming the rank and the collective.
"""
from __future__ import annotations

import contextlib
import datetime
import math
import os
import select
import signal
import sys
import threading
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn

from gennorm.errors import ConfigError, GennormError

TIMEOUT_ENV = "GENNORM_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 600.0  # gloo's own default is 30 minutes
SIGTERM_GRACE_S = 10.0  # a blocked collective may still finish this long after SIGTERM


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def timeout_seconds() -> float:
    """GENNORM_DIST_TIMEOUT (seconds, > 0) or the default; a ConfigError naming it if malformed."""
    text = os.environ.get(TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{TIMEOUT_ENV}={text!r}: expected a number of seconds > 0 (default {DEFAULT_TIMEOUT_S:g})")
    return value


def init_distributed(device_type: str) -> DistInfo:
    """Join the torchrun process group when WORLD_SIZE > 1 (else a single-process DistInfo), with
    a timeout (GENNORM_DIST_TIMEOUT) and the watchdog (liveness lines, SIGTERM while blocked)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    timeout = timeout_seconds()
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout))
    _WATCH.start(rank, timeout)
    return DistInfo(rank, world, local)


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        with _collective("the final barrier", info):
            dist.barrier()
        dist.destroy_process_group()
    _WATCH.stop()


class _Watchdog:
    """A daemon thread: liveness lines while the main thread waits in a collective, and the exit
    on a SIGTERM that arrives then (read from signal.set_wakeup_fd: the C-level handler writes
    the signal number even while the main thread is blocked)."""

    def __init__(self):
        self.rank, self.timeout = 0, DEFAULT_TIMEOUT_S
        self.waiting: tuple[str, float] | None = None  # (collective, since: time.monotonic())
        self.thread: threading.Thread | None = None
        self.fds: tuple[int, int] | None = None
        self.old_fd = -1
        self.running = False

    def start(self, rank: int, timeout: float) -> None:
        if self.thread is not None:
            return
        self.rank, self.timeout, self.running = rank, timeout, True
        if threading.current_thread() is threading.main_thread():  # set_wakeup_fd: main thread only
            r, w = os.pipe()
            os.set_blocking(w, False)
            self.fds, self.old_fd = (r, w), signal.set_wakeup_fd(w)
        self.thread = threading.Thread(target=self._run, name="gennorm-dist-watchdog", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.running = False
        if self.fds is not None and threading.current_thread() is threading.main_thread():
            signal.set_wakeup_fd(self.old_fd)
            os.write(self.fds[1], b"\0")  # wake the thread; it closes the pipe
        self.thread = None

    def _run(self) -> None:
        every = min(60.0, self.timeout / 10)
        told = 0.0
        fds = self.fds
        while self.running:
            ready = select.select([fds[0]], [], [], 1.0)[0] if fds else time.sleep(1.0)
            if ready and signal.SIGTERM in os.read(fds[0], 64):
                self._on_sigterm()
            waiting = self.waiting
            if waiting is None:
                told = 0.0
                continue
            waited = time.monotonic() - waiting[1]
            if waited >= every and waited - told >= every:
                told = waited
                print(f"gennorm train: rank {self.rank} has waited {waited:.0f} s for the other ranks ({waiting[0]}); "
                      f"a rank stopped or frozen? The process group gives up after {self.timeout:g} s "
                      f"({TIMEOUT_ENV})", file=sys.stderr, flush=True)
        if fds:
            os.close(fds[0])
            os.close(fds[1])

    def _on_sigterm(self) -> None:
        deadline = time.monotonic() + SIGTERM_GRACE_S
        while self.waiting is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        waiting = self.waiting
        if waiting is None:
            return  # the main thread is free: its own handler stops the run cleanly (checkpoint)
        print(f"gennorm train: rank {self.rank}: SIGTERM while blocked {time.monotonic() - waiting[1]:.0f} s in "
              f"{waiting[0]} (the other ranks do not answer); stopping without a checkpoint", file=sys.stderr,
              flush=True)
        os._exit(128 + signal.SIGTERM)


_WATCH = _Watchdog()


@contextlib.contextmanager
def _collective(what: str, info: DistInfo):
    """Mark the main thread as waiting in `what` for the watchdog; a failure is a GennormError."""
    _WATCH.waiting = (what, time.monotonic())
    try:
        yield
    except RuntimeError as err:
        reason = " ".join(str(err).split())[:300]
        raise GennormError(f"rank {info.rank}: {what} failed: the other ranks did not answer (a rank stopped, "
                           f"crashed or froze; the limit is {TIMEOUT_ENV}={_WATCH.timeout:g} s): {reason}") from err
    finally:
        _WATCH.waiting = None


def broadcast_module(module: nn.Module, info: DistInfo) -> None:
    """Make every rank's parameters and buffers equal to rank 0's."""
    if not info.enabled:
        return
    with torch.no_grad(), _collective("a broadcast of the weights", info):
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src=0)


def broadcast_buffers(module: nn.Module, info: DistInfo) -> None:
    if not info.enabled:
        return
    with torch.no_grad(), _collective("a broadcast of the buffers", info):
        for b in module.buffers():
            if b.is_floating_point():
                dist.broadcast(b.data, src=0)


def average_gradients(modules: list[nn.Module], info: DistInfo) -> None:
    """Average .grad over ranks: one flat all-reduce (missing grads count as zeros)."""
    if not info.enabled:
        return
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    if not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])  # [total]
    with _collective("the gradient all-reduce", info):
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= info.world_size
    offset = 0
    for p in params:
        n = p.numel()
        chunk = flat[offset:offset + n].view_as(p)
        if p.grad is None:
            p.grad = chunk.clone()
        else:
            p.grad.copy_(chunk)
        offset += n


def any_rank(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every rank when `flag` is true on any rank (used for stop requests)."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    with _collective("the stop-request all-reduce", info):
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def gather_objects(obj, info: DistInfo) -> list | None:
    """Rank 0 gets [obj of rank 0, obj of rank 1, ...]; other ranks get None."""
    if not info.enabled:
        return [obj]
    out = [None] * info.world_size if info.is_main else None
    with _collective("a gather", info):
        dist.gather_object(obj, out, dst=0)
    return out


def barrier(info: DistInfo) -> None:
    if info.enabled:
        with _collective("a barrier", info):
            dist.barrier()
