"""RNG states survive a checkpoint: python, numpy, torch CPU (and CUDA where present), compared by
the draws that come after, directly and through a stopped-and-resumed tiny run.

The bit-exact resume tests cannot see python's or numpy's state (training draws from neither), so
here a training callback draws from every generator after each step and the resumed run's draws
must equal the straight run's.
"""
from __future__ import annotations

import io
import random

import numpy as np
import pytest
import torch

from gennorm.config import load_config
from gennorm.train import checkpoint as ckpt
from gennorm.train.data_plan import BatchStream, Position, epoch_order, rank_batches
from gennorm.train.loop import Callback, train
from train_hooks import StopAtStep


def draws(n: int = 3) -> dict:
    return {"python": [random.random() for _ in range(n)] + [random.gauss(0, 1)],
            "numpy": np.random.random(n).tolist() + [float(np.random.standard_normal())],
            "torch": torch.rand(n).tolist() + torch.randn(2).tolist()}


def test_rng_state_round_trip_through_a_weights_only_file():
    ckpt.seed_everything(11)
    draws()  # advance each generator somewhere unremarkable
    random.gauss(0, 1), np.random.standard_normal()  # leaves a cached Gaussian in both
    state = ckpt.rng_state()
    want = draws()
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)
    ckpt.seed_everything(99)  # something else entirely
    assert draws() != want
    ckpt.set_rng_state(loaded)
    assert draws() == want


@pytest.mark.parametrize("which", ["python", "numpy", "torch"])
def test_each_generator_is_restored(which):
    ckpt.seed_everything(5)
    state = ckpt.rng_state()
    want = draws()[which]
    ckpt.seed_everything(6)
    ckpt.set_rng_state(state)
    assert draws()[which] == want


@pytest.mark.cuda
def test_cuda_rng_round_trip():
    torch.cuda.init()
    torch.cuda.manual_seed_all(3)
    torch.rand(2, device="cuda")
    state = ckpt.rng_state()
    assert "cuda" in state
    want = torch.rand(4, device="cuda").tolist()
    torch.cuda.manual_seed_all(4)
    ckpt.set_rng_state(state)
    assert torch.rand(4, device="cuda").tolist() == want
    del state["cuda"]  # a CPU run's state resumed on a GPU machine: the GPU generators are left as they are
    ckpt.set_rng_state(state)
    assert torch.rand(4, device="cuda").tolist() != want


class Draw(Callback):
    """After each step: one draw from python, numpy and torch, recorded by step."""

    def __init__(self):
        self.by_step = {}

    def on_step_end(self, trainer):
        self.by_step[trainer.step] = draws(1)


TINY = ["model.ngf=4", "model.ndf=4", "model.g_arch=resnet_6blocks", "model.n_layers=1", "data.load_size=36",
        "data.crop_size=32", "train.device=cpu", "train.progress=false", "train.num_samples=0",
        "train.checkpoint_every=100", "train.sample_every=100", "train.log_every=100", "train.max_steps=4"]


def test_resume_restores_python_numpy_and_torch_rng(scenes, tmp_path):
    over = [f"data.root={scenes / 'paired'}", *TINY]
    straight = Draw()
    train(load_config("pix2pix-instance", [f"out={tmp_path / 'a'}", *over]), callbacks=[straight])
    first = Draw()
    train(load_config("pix2pix-instance", [f"out={tmp_path / 'b'}", *over]), callbacks=[first, StopAtStep(2)])
    resumed = Draw()
    train(resume_dir=tmp_path / "b", callbacks=[resumed])
    assert sorted(first.by_step) == [1, 2] and sorted(resumed.by_step) == [3, 4]
    assert first.by_step == {s: straight.by_step[s] for s in (1, 2)}
    for step in (3, 4):
        for which in ("python", "numpy", "torch"):
            assert resumed.by_step[step][which] == straight.by_step[step][which], (step, which)


def test_the_data_order_literally():
    """Epoch e's order: torch.randperm seeded seed * 1_000_003 + e (or 0..n-1 unshuffled); rank r of W takes
    positions r, r + W, ... of the order padded by wrapping to a multiple of W, in batches, the last partial batch
    dropped unless it is the only one."""
    assert epoch_order(5, 3, 2, shuffle=False) == [0, 1, 2, 3, 4]
    assert epoch_order(5, 3, 2) == torch.randperm(5, generator=torch.Generator().manual_seed(3 * 1_000_003 + 2)).tolist()
    assert epoch_order(9, 3, 2) != epoch_order(9, 3, 3) != epoch_order(9, 4, 2)
    order = epoch_order(10, 1, 4)
    assert rank_batches(10, 3, 1, 4) == [order[0:3], order[3:6], order[6:9]]
    assert rank_batches(10, 3, 1, 4, shuffle=False) == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    padded = (epoch_order(7, 1, 0) * 2)[:8]
    for rank in (0, 1):
        mine = padded[rank::2]
        assert rank_batches(7, 2, 1, 0, rank=rank, world=2) == [mine[0:2], mine[2:4]]
    assert rank_batches(2, 4, 0, 0, shuffle=False) == [[0, 1]]
    assert rank_batches(5, 3, 0, 0, shuffle=False) == [[0, 1, 2]]  # two batches: the partial one is dropped


class _Indexed(torch.utils.data.Dataset):
    """Item i is {"i": i}; records the epochs it is told."""

    def __init__(self, n):
        self.n, self.epochs = n, []

    def __len__(self):
        return self.n

    def set_epoch(self, epoch):
        self.epochs.append(epoch)

    def __getitem__(self, i):
        return {"i": torch.tensor(i)}


def test_the_batch_stream_follows_the_data_order_across_epochs_and_resumes_mid_epoch():
    """BatchStream yields rank_batches(seed, epoch, rank, world) epoch after epoch (telling the dataset its epoch),
    its position names the next batch, a stream started at a position continues there, and starting an epoch draws
    nothing from the global RNG (a resumed run would diverge). Defaults: rank 0 of 1, no workers, no pinning."""
    ds = _Indexed(7)
    stream = BatchStream(ds, 2, seed=5, rank=1, world=2)
    rng = torch.get_rng_state()
    got = [next(stream)["i"].tolist() for _ in range(5)]
    assert torch.equal(torch.get_rng_state(), rng)
    want = rank_batches(7, 2, 5, 0, 1, 2) + rank_batches(7, 2, 5, 1, 1, 2) + rank_batches(7, 2, 5, 2, 1, 2)[:1]
    assert got == want and ds.epochs == [0, 1, 2] and stream.position == Position(2, 1)
    resumed = BatchStream(_Indexed(7), 2, 5, 1, 2, position=Position(1, 1))
    assert next(resumed)["i"].tolist() == rank_batches(7, 2, 5, 1, 1, 2)[1] and resumed.position == Position(1, 2)
    plain = BatchStream(_Indexed(5), 2, 3)
    assert (plain.rank, plain.world, plain.num_workers, plain.pin_memory) == (0, 1, 0, False)
    assert plain.batches_per_epoch() == 2 and next(plain)["i"].tolist() == rank_batches(5, 2, 3, 0)[0]


def test_numpy_cached_gaussian_below_one_survives_the_round_trip():
    """numpy's legacy generator caches every second Gaussian (has_gauss, cached value); both are stored."""
    np.random.seed(0)
    while True:
        np.random.standard_normal()
        state = np.random.get_state()
        if state[3] and abs(state[4]) < 1:  # a cached value whose int() would be 0
            break
    saved = ckpt.rng_state()
    want = np.random.standard_normal()
    np.random.seed(1)
    ckpt.set_rng_state(saved)
    assert np.random.standard_normal() == want


def test_seed_everything_seeds_numpy_with_the_seed_modulo_2_32():
    for seed in (5, 2**32 + 5, 2**62):  # config seeds go up to 2**62; numpy takes 32 bits
        ckpt.seed_everything(seed)
        got = (random.random(), np.random.random(), torch.rand(1).item())
        random.seed(seed), np.random.seed(seed % 2**32), torch.manual_seed(seed)
        assert got == (random.random(), np.random.random(), torch.rand(1).item())
