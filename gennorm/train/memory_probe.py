"""The measurement the memory planner (gennorm.networks.memory) is checked against for CUT: the
bytes autograd keeps saved for backward during one real CUTTask.train_step, per phase.

    peaks = measure_cut_step(task, {"A": a, "B": b})   # {"D backward", "G backward", "G at backward"}

Every tensor autograd saves goes through a saved_tensors_hooks pack hook that returns a small
holder (weakly tracked); a holder lives exactly as long as its graph node keeps it, so the live
holders at any moment are the saved tensors alive then. After each pack the live bytes are summed,
each storage once, parameters' storages excluded (the planner counts them as state), as the
planner's saved_bytes does. The same step runs as in training: the D phase ends with D's backward,
the G phase with G's and F's backward.
"""
from __future__ import annotations

import gc
import weakref

import torch


class _Held:
    """The pack hook's result: a storage alias without grad_fn (returning the saved tensor itself
    ties an op's saved output to its own grad_fn, a cycle that outlives the graph)."""
    __slots__ = ("t", "__weakref__")

    def __init__(self, t: torch.Tensor):
        self.t = t.detach()


def measure_cut_step(task, batch: dict) -> dict[str, int]:
    """The most bytes saved for backward at once in one task.train_step(batch, 1) of a CUTTask: in the D
    phase ("D backward"), in the G phase ("G backward": its forward's peak, the last NCE term's key
    graph included) and when G's backward starts ("G at backward": the key graphs freed)."""
    live = weakref.WeakSet()  # one _Held per saved tensor
    params = {p.untyped_storage()._cdata for net in task.nets.values() for p in net.parameters()}
    peak, phase = {"D backward": 0, "G backward": 0}, ["D backward"]

    def live_bytes() -> int:
        storages = {h.t.untyped_storage()._cdata: h.t.untyped_storage().nbytes() for h in list(live)}
        return sum(n for key, n in storages.items() if key not in params)

    def pack(t: torch.Tensor) -> _Held:
        held = _Held(t)
        live.add(held)
        if phase[0] in peak:
            peak[phase[0]] = max(peak[phase[0]], live_bytes())
        return held

    optimize, optimize_g = task.optimize, task._optimize_g_and_f

    def optimize_d(name, loss, nets):  # D's backward ends the D phase; G's losses follow
        out = optimize(name, loss, nets)
        phase[0] = "G backward"
        return out

    def optimize_g_and_f(loss):
        gc.collect()
        peak["G at backward"] = live_bytes()
        phase[0] = "done"
        return optimize_g(loss)

    task.optimize, task._optimize_g_and_f = optimize_d, optimize_g_and_f
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda held: held.t):
            task.train_step(batch, 1)
    finally:
        del task.optimize, task._optimize_g_and_f  # the instance attributes: back to the class's methods
    return peak
