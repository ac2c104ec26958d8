"""`gennorm bench SUBCOMMAND`: every benchmark in one place, one subcommand per gennorm/bench/ module.

The registry of subcommands lives here; each module under gennorm/bench/ defines its own
DESCRIPTION, add_arguments and run (importing torch inside run), so `gennorm bench --help`
imports no torch.
"""
from __future__ import annotations

import argparse
import importlib

# subcommand -> (module, one-line help). Order is the order of `gennorm bench --help`.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "layers": ("gennorm.bench.layers", "time of each normalization layer at ResNet-9 shapes; kernel bandwidth"),
    "train": ("gennorm.bench.train", "training-step time and peak memory, CycleGAN and pix2pix, per norm"),
    "generator": ("gennorm.bench.generator", "generator forward+backward per norm, interleaved, same decoder"),
    "profile": ("gennorm.bench.profile", "per-kernel profiler table of one ResNet residual block fwd+bwd"),
    "metrics": ("gennorm.bench.metrics", "FID/KID feature-extraction throughput (images/s)"),
    "report": ("gennorm.bench.report", "Markdown ratio / bandwidth tables from bench layers JSON; merge files"),
}

DESCRIPTION = """\
Benchmarks, one subcommand each (gennorm bench SUBCOMMAND --help for its options):
""" + "\n".join(f"  {name:<8} {summary}" for name, (_, summary) in SUBCOMMANDS.items()) + """

examples:
  gennorm bench layers --quick --json bench.json
  gennorm bench layers --device cuda --dtype float32 bfloat16 --json docs/bench_layers_cuda.json
  gennorm bench train --device cuda --amp bf16 --tasks cyclegan --norms instance nc
  gennorm bench generator --device cpu --norms instance nc --repeats 10
  gennorm bench profile --device cuda --norms nc instance
  gennorm bench metrics --images 50 --device cpu
  gennorm bench report bench_layers_fp32.json bench_layers_bf16.json --merge docs/bench_layers_cuda.json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="what", metavar="{" + ",".join(SUBCOMMANDS) + "}", required=True)
    for name, (module_name, summary) in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)  # torch-free at import: only argparse setup here
        child = sub.add_parser(name, help=summary, description=module.DESCRIPTION,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(child)


def run(args: argparse.Namespace) -> int | None:
    return importlib.import_module(SUBCOMMANDS[args.what][0]).run(args)
