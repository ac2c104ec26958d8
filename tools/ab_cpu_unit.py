"""Interleaved A/B of the CPU unit's mechanisms on the generator step (docs/performance.md).

    python tools/ab_cpu_unit.py [--rounds 30] [--arch resnet_6blocks --ngf 32 --size 128]

Each variant takes one mechanism of gennorm/ops/nc_conv2d.py's torch unit out, by swapping the
module-level name that implements it (no flags in the library):

  base               the unit as shipped
  autograd-ref       no hand-written backward: nc_conv2d_ref's plain autograd ops

A mechanism proposed for the unit gets a variant here first; it stays only if its variant shows
>= 3% on the training or inference step (docs/performance.md keeps the results, dropped ones too).

One process, one nc network, rounds interleaved (base, variant, base, ...): median times, and the
median of the rounds' variant / base ratios (what drifts during the run cancels in a round). The
ratio is for the nc generator's training step (fwd + bwd) and inference;
> 1 means the mechanism pays. Run on a quiet machine: other processes move these numbers by more
than the effects measured.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gennorm.networks import build_generator  # noqa: E402

unit = sys.modules["gennorm.ops.nc_conv2d"]  # the module (gennorm.ops.nc_conv2d the name is the function)


class _Reference:
    """Stands in for _CpuUnit: the same call, plain autograd."""

    @staticmethod
    def apply(x, weight, bias, stats, cfg, dtype):
        return unit.nc_conv2d_ref(x, weight, bias, stats, cfg, dtype)


VARIANTS = {
    "base": {},
    "autograd-ref": {"_CpuUnit": _Reference},
}


def _patched(swaps: dict):
    saved = {name: getattr(unit, name) for name in swaps}
    for name, value in swaps.items():
        setattr(unit, name, value)
    return saved


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--arch", default="resnet_6blocks")
    ap.add_argument("--ngf", type=int, default=32)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: PyTorch's choice)")
    ap.add_argument("--variants", nargs="+", default=[v for v in VARIANTS if v != "base"], choices=list(VARIANTS))
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = build_generator(args.arch, ngf=args.ngf, norm="nc", upsample="resize").train()
    x = torch.rand(1, 3, args.size, args.size) * 2 - 1

    def train():
        net.zero_grad(set_to_none=True)
        net(x).square().mean().backward()

    def infer():
        with torch.inference_mode():
            net(x)

    print(f"generator {args.arch} ngf {args.ngf} {args.size}px nc, {args.rounds} interleaved rounds, "
          f"{torch.get_num_threads()} threads; ratio = variant / base (> 1: the mechanism pays)")
    for variant in args.variants:
        row = []
        for kind, step in (("train", train), ("infer", infer)):
            times = {"base": [], variant: []}
            for _ in range(2):  # warm-up of both
                for name in times:
                    saved = _patched(VARIANTS[name])
                    step()
                    _patched(saved)
            for _ in range(args.rounds):
                for name in times:
                    saved = _patched(VARIANTS[name])
                    times[name].append(_time(step))
                    _patched(saved)
            base, other = statistics.median(times["base"]), statistics.median(times[variant])
            paired = statistics.median(v / b for v, b in zip(times[variant], times["base"]))  # drift cancels
            row.append(f"{kind} {base:7.2f} -> {other:7.2f} ms ({paired:.3f}x)")
        print(f"  {variant:<13} " + "   ".join(row))


if __name__ == "__main__":
    main()
