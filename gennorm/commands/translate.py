"""`gennorm translate MODEL INPUT OUTPUT`: every image of a folder through a model (gennorm.inference).

One load_translator + translate_folder per direction (two with --direction both).
"""
from __future__ import annotations

import sys
from pathlib import Path

from gennorm.commands._types import DEVICE_HELP, device, pixel_limit, positive_int

DESCRIPTION = """\
Translate every image of a folder with a trained model; writes OUTPUT/NAME.png for each input,
and OUTPUT/index.html with input | output (| target) side by side. NAME is the input's path
under INPUT without its extension (INPUT/sub/x.jpg -> OUTPUT/sub/x.png); two inputs that would
write one file (x.png and x.jpg) are refused, naming both. OUTPUT lies apart from INPUT (neither
is inside the other) and is not MODEL's folder (a folder inside it is fine).

MODEL: a run directory (gennorm train's out; the latest checkpoint, EMA weights if used), a
models/ folder (gennorm export) or a zoo model name. INPUT: a folder of images, or of A|B pairs
with --aligned (the A half is translated, the B half shown as the target).

--direction both (CycleGAN run directories): INPUT holds testA/ and testB/ (or A/ and B/); the
A images go through G_A into OUTPUT/AtoB, the B images through G_B into OUTPUT/BtoA.
--naming junyanz writes pytorch-CycleGAN-and-pix2pix's test.py layout (images/NAME_real_A.png,
NAME_fake_B.png, NAME_real_B.png, index.html) with its 8-bit conversion (truncation: --quantize
floor); --train-mode is its default test mode (batch norm on batch statistics, dropout on:
what it does without --eval); --num-test is its --num_test.

examples:
  gennorm translate runs/p2p-nc data/scenes/paired/test out/p2p --aligned
  gennorm translate models/scenes-nc my_label_maps/ out/maps
  gennorm translate scenes-nc my_label_maps/ out/maps              # a zoo name
  gennorm translate runs/cg-nc data/scenes/unpaired/testB out/b2a --direction BtoA
  gennorm translate runs/cg-nc data/scenes/unpaired out/cg --direction both --checkpoint 2000
  gennorm translate models/facades data/facades/test results/ --aligned --naming junyanz --num-test 50
  gennorm translate scenes-nc big_maps/ out/ --tile 512          # any size, bounded memory
"""


def add_arguments(parser) -> None:
    parser.add_argument("model", help="run directory, models/ folder or zoo model name")
    parser.add_argument("input", help="folder of images (A|B pairs with --aligned)")
    parser.add_argument("output", help="output folder")
    parser.add_argument("--aligned", action="store_true", help="inputs are A|B pairs; show B as the target")
    parser.add_argument("--direction", choices=("AtoB", "BtoA", "both"), default=None,
                        help="AtoB (default), BtoA or both (CycleGAN run directories: the second generator)")
    parser.add_argument("--device", type=device, default="cpu", help=f"{DEVICE_HELP} (default cpu)")
    parser.add_argument("--num-test", type=positive_int, default=None, metavar="N", help="only the first N images (sorted)")
    parser.add_argument("--checkpoint", default="latest", metavar="STEP|latest",
                        help="run directories: the checkpoint of this step (default: the latest readable one)")
    parser.add_argument("--train-mode", action="store_true",
                        help="generator in train mode (batch-norm batch statistics, dropout on), as the original "
                             "test.py without --eval")
    parser.add_argument("--naming", choices=("gennorm", "junyanz"), default="gennorm",
                        help="output file names and page: gennorm's (default) or pytorch-CycleGAN-and-pix2pix's")
    parser.add_argument("--tile", type=positive_int, default=None, metavar="PX",
                        help="translate tile by tile (PX x PX output blocks): bounded memory at any size; exact "
                             "for nc / kn / none (local statistics), blended overlaps with a warning otherwise")
    parser.add_argument("--overlap", default="auto", metavar="auto|PX",
                        help="input pixels around each tile (default auto: half the generator's receptive field)")
    parser.add_argument("--max-pixels", type=pixel_limit, default=int(100e6), metavar="N",
                        help="refuse larger images (default 100e6; 0: no limit)")
    parser.add_argument("--quantize", choices=("round", "floor"), default=None,
                        help="8-bit conversion: round (default) or floor (the original's; default with --naming junyanz)")


def _checkpoint(text: str):
    from gennorm.errors import ConfigError

    if text == "latest" or text.isdigit():
        return text if text == "latest" else int(text)
    raise ConfigError(f"--checkpoint {text!r}: a step number or latest")


def _overlap(text: str):
    from gennorm.errors import ConfigError

    if text == "auto" or text.isdigit():
        return text if text == "auto" else int(text)
    raise ConfigError(f"--overlap {text!r}: auto or a number of pixels")


def run(args) -> int:
    from gennorm.data.layouts import ab_folders
    from gennorm.devices import require_device
    from gennorm.inference import load_translator, translate_folder

    require_device(args.device)
    step = _checkpoint(args.checkpoint)
    jobs = [(args.direction or "AtoB", Path(args.input), Path(args.output))]
    if args.direction == "both":
        side_a, side_b = ab_folders(Path(args.input))
        jobs = [("AtoB", side_a, Path(args.output) / "AtoB"), ("BtoA", side_b, Path(args.output) / "BtoA")]
    written = []
    for direction, folder, out in jobs:
        tr = load_translator(args.model, args.device, direction, checkpoint=step, train_mode=args.train_mode,
                             tile=args.tile, overlap=_overlap(args.overlap))
        written += translate_folder(tr, folder, out, aligned=args.aligned, num_test=args.num_test,
                                    naming=args.naming, quantize=args.quantize,
                                    max_pixels=args.max_pixels)
    pages = " and ".join(str(out / "index.html") for _, _, out in jobs)
    print(f"translated {len(written)} images -> {args.output}; open {pages}", file=sys.stderr)
    return 0
