"""`gennorm translate MODEL INPUT OUTPUT`: every image of a folder through a model (gennorm.inference)."""
from __future__ import annotations

import sys
from pathlib import Path

DESCRIPTION = """\
Translate every image of a folder with a trained model; writes OUTPUT/NAME.png for each input,
and OUTPUT/index.html with input | output (| target) side by side.

MODEL: a run directory (gennorm train's out; the latest checkpoint, EMA weights if used), a
models/ folder (gennorm export) or a zoo model name. INPUT: a folder of images, or of A|B pairs
with --aligned (the A half is translated, the B half shown as the target).

examples:
  gennorm translate runs/p2p-nc data/scenes/paired/test out/p2p --aligned
  gennorm translate models/scenes-nc my_label_maps/ out/maps
  gennorm translate scenes-nc my_label_maps/ out/maps              # a zoo name
  gennorm translate runs/cg-nc data/scenes/unpaired/testB out/b2a --direction BtoA
"""


def add_arguments(parser) -> None:
    parser.add_argument("model", help="run directory, models/ folder or zoo model name")
    parser.add_argument("input", help="folder of images (A|B pairs with --aligned)")
    parser.add_argument("output", help="output folder")
    parser.add_argument("--aligned", action="store_true", help="inputs are A|B pairs; show B as the target")
    parser.add_argument("--direction", choices=("AtoB", "BtoA"), default=None,
                        help="AtoB (default) or BtoA (CycleGAN run directories: the second generator)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")


def run(args) -> int:
    from gennorm.inference import translate_folder

    written = translate_folder(args.model, args.input, args.output, aligned=args.aligned, direction=args.direction,
                               device=args.device)
    print(f"translated {len(written)} images -> {args.output}; open {Path(args.output) / 'index.html'}",
          file=sys.stderr)
    return 0
