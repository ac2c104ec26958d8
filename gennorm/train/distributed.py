"""Data-parallel training under torchrun: process group, gradient averaging, rank-0-only files.

    torchrun --standalone --nproc_per_node=2 -m gennorm train pix2pix-nc train.device=cpu

Backend: nccl on GPU, gloo on CPU. Each rank builds identical nets (same seed; rank 0's
weights are broadcast anyway), trains on its own shard of each epoch's order, and averages
gradients with one flat all-reduce per network before every optimizer step. Averaging by
hand instead of wrapping in DistributedDataParallel keeps GAN training simple: D is frozen
for G's step, the WGAN-GP penalty needs double backward, and CycleGAN updates two nets per
optimizer — all of which fight DDP's reducer. Buffers (BatchNorm statistics) follow rank 0.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn


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


def init_distributed(device_type: str) -> DistInfo:
    """Join the torchrun process group when WORLD_SIZE > 1 (else a single-process DistInfo)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend)
    return DistInfo(rank, world, local)


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def broadcast_module(module: nn.Module, info: DistInfo) -> None:
    """Make every rank's parameters and buffers equal to rank 0's."""
    if not info.enabled:
        return
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src=0)


def broadcast_buffers(module: nn.Module, info: DistInfo) -> None:
    if not info.enabled:
        return
    with torch.no_grad():
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
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def gather_objects(obj, info: DistInfo) -> list | None:
    """Rank 0 gets [obj of rank 0, obj of rank 1, ...]; other ranks get None."""
    if not info.enabled:
        return [obj]
    out = [None] * info.world_size if info.is_main else None
    dist.gather_object(obj, out, dst=0)
    return out


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()
