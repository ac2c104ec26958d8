"""The training data order: which items each step (and each rank) sees, resumable mid-epoch.

Epoch e's order is a permutation drawn from a generator seeded by (seed, e), identical on
every rank; rank r takes positions r, r + W, r + 2W, ... (the DistributedSampler scheme,
padded by wrapping so all ranks have equally many batches; the last partial batch is dropped
when an epoch has at least one full batch). The position (epoch, batch index) is all a
checkpoint needs to restart the stream exactly, because items themselves depend only on
(seed, epoch, index) (see gennorm.data).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader


@dataclass
class Position:
    epoch: int = 0
    batch: int = 0  # index of the next batch within the epoch (on this rank)


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool = True) -> list[int]:
    if not shuffle:
        return list(range(n))
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))
    return torch.randperm(n, generator=g).tolist()


def rank_batches(n: int, batch_size: int, seed: int, epoch: int, rank: int = 0, world: int = 1,
                 shuffle: bool = True) -> list[list[int]]:
    order = epoch_order(n, seed, epoch, shuffle)
    per_rank = -(-n // world)  # ceil
    order = (order * (-(-per_rank * world // n)))[: per_rank * world]  # pad by wrapping
    mine = order[rank::world]
    batches = [mine[i:i + batch_size] for i in range(0, len(mine), batch_size)]
    if len(batches) > 1 and len(batches[-1]) < batch_size:
        batches.pop()
    return batches


class BatchStream:
    """Endless batches from `dataset`, starting at `position`; `position` always names the next batch."""

    def __init__(self, dataset, batch_size: int, seed: int, rank: int = 0, world: int = 1,
                 num_workers: int = 0, position: Position | None = None, pin_memory: bool = False):
        self.dataset, self.batch_size, self.seed = dataset, batch_size, seed
        self.rank, self.world, self.num_workers, self.pin_memory = rank, world, num_workers, pin_memory
        self.position = position or Position()
        self._iter = None

    def batches_per_epoch(self) -> int:
        return len(rank_batches(len(self.dataset), self.batch_size, self.seed, 0, self.rank, self.world))

    def _start_epoch(self) -> None:
        pos = self.position
        self.dataset.set_epoch(pos.epoch)
        batches = rank_batches(len(self.dataset), self.batch_size, self.seed, pos.epoch, self.rank, self.world)
        remaining = batches[pos.batch:]
        # A private generator: creating the loader's iterator must not consume the global RNG
        # (that would make a resumed run diverge from a straight one).
        loader = DataLoader(self.dataset, batch_sampler=remaining, num_workers=self.num_workers,
                            pin_memory=self.pin_memory, generator=torch.Generator().manual_seed(self.seed))
        self._iter = iter(loader)

    def __next__(self) -> dict:
        for _ in range(2):
            if self._iter is None:
                self._start_epoch()
            try:
                batch = next(self._iter)
                self.position.batch += 1
                return batch
            except StopIteration:
                self._iter = None
                self.position = Position(self.position.epoch + 1, 0)
        raise RuntimeError("the dataset yields no batches")

    def __iter__(self):
        return self
