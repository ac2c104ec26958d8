"""`gennorm export RUN_DIR models/NAME`: a run's generator as a models/ folder.

A models/ folder holds one translation direction (AtoB of its config.yaml):

    config.yaml             the run's resolved config (for --direction BtoA of a CycleGAN run:
                            channels and data.direction swapped so that it reads as AtoB)
    generator.safetensors   the generator's state dict (EMA weights when the run used EMA);
                            float32 (float16 with --half; loaded back as float32);
                            metadata: format, task, step, dtype, direction, source
    card.md                 task, data, the command that trained it, steps, hardware, wall
                            time, and metrics (from `gennorm eval --json`, via --metrics-json)

`gennorm translate models/NAME INPUT OUTPUT`, `gennorm.load` and the demo load it (gennorm.inference).
This module is the verb; writing the folder and its card is gennorm.inference.release (export_run,
write_card), the graph files gennorm.inference.export.
"""
from __future__ import annotations

import json
import sys

from gennorm.commands._types import positive_int

DESCRIPTION = """\
Export a run directory's generator (latest checkpoint, EMA weights if used) as a models/
folder: config.yaml, generator.safetensors (float32; float16 with --half), card.md.

examples:
  gennorm export runs/p2p-nc models/scenes-pix2pix-nc
  gennorm eval out/real out/fake --json m.json && gennorm export runs/p2p-nc models/x --metrics-json m.json
  gennorm export runs/cg-nc models/scenes-cyclegan-nc-BtoA --direction BtoA
  gennorm export scenes-nc scenes-nc.onnx --format onnx          # any model: run dir, folder, zoo name
  gennorm export models/scenes-nc scenes-nc.pt2 --format torch-export

--format onnx | torch-export write one file (OUT) holding the generator as a graph that takes any
height and width: ONNX with standard operators only (NC and KN decompose into convolutions,
pooling and arithmetic; run it with onnxruntime), or a torch.export program (torch.export.load).
Input [1, C, H, W] in [-1, 1], output the same size. The generator's size grid (multiples of 4
for the ResNet generators, of 2**downsamplings for the U-Nets: 256 for unet_256) is inside the
graph: as gennorm.load, it resizes the input (bicubic) to the nearest size on the grid and the
output back, so a size on the grid (e.g. 128x128, 96x160) goes through unresized.
"""

FORMATS = ("safetensors", "onnx", "torch-export")  # --format: a models/ folder, or one graph file


def add_arguments(parser) -> None:
    parser.add_argument("run_dir", metavar="MODEL", help="a training run directory (any model for onnx / torch-export)")
    parser.add_argument("out", help="the models/ folder to write (e.g. models/scenes-pix2pix-nc), or the file")
    parser.add_argument("--format", choices=FORMATS, default="safetensors",
                        help="safetensors: a models/ folder (default); onnx / torch-export: one graph file")
    parser.add_argument("--size", type=positive_int, default=256, help="onnx / torch-export: the example input's side")
    parser.add_argument("--direction", choices=("AtoB", "BtoA"), default="AtoB",
                        help="which generator (BtoA: a CycleGAN run's second generator)")
    parser.add_argument("--metrics-json", metavar="FILE", help="metrics to put in the card (gennorm eval --json)")
    parser.add_argument("--name", help="title of the card (default: the folder name)")
    parser.add_argument("--half", action="store_true", help="store the weights as float16 (half the size)")


def run(args) -> int:
    from gennorm.errors import ConfigError

    from gennorm.yamlio import read_text

    metrics = None
    if args.metrics_json:
        try:  # at most 1 MB read (a /dev/zero or a huge file is refused, not read to the end)
            metrics = json.loads(read_text(args.metrics_json))
        except ConfigError as err:
            raise ConfigError(f"--metrics-json {err}") from None
        except ValueError as err:
            raise ConfigError(f"--metrics-json {args.metrics_json}: cannot read a JSON object ({err})") from None
        if not isinstance(metrics, dict):
            raise ConfigError(f"--metrics-json {args.metrics_json}: expected a JSON object of metrics")
    if args.format != "safetensors":
        from gennorm.inference import export_onnx, export_program, load_translator

        translator = load_translator(args.run_dir, "cpu", args.direction)
        write = export_onnx if args.format == "onnx" else export_program
        out = write(translator, args.out, args.size)
        print(f"exported {args.run_dir} -> {out} ({args.format}; any height and width, resized inside the graph to "
              f"multiples of {translator.multiple}, the generator's size grid)", file=sys.stderr)
        return 0
    from gennorm.inference.release import export_run
    from gennorm.zoo import TRAINING_LOG, in_checkout_zoo

    if in_checkout_zoo(args.out):
        print(f"gennorm export: warning: {args.out} is in the checkout's models/ folder, the built-in zoo: it will show "
              "in `git status`, ship in any wheel built from this checkout (setup.py copies models/) and appear in "
              "the demo; to keep it apart, export to another folder and use `gennorm demo --models DIR` "
              "(or GENNORM_MODELS=DIR)", file=sys.stderr)

    out = export_run(args.run_dir, args.out, args.direction, metrics, args.name, args.half)
    files = ", ".join(f for f in ("config.yaml", "generator.safetensors", "card.md", TRAINING_LOG) if (out / f).is_file())
    print(f"exported {args.run_dir} -> {out} ({files})", file=sys.stderr)
    return 0
