"""docs/tiling.png: whole-image vs tiled translation for an instance-norm and an NC generator.

    python tools/tiling_figure.py [--tile 96] [--out docs/tiling.png]

Rows: scenes-instance, scenes-nc (models/). Columns: input label map, whole image, tiled
(--tile px tiles, margin auto), |whole - tiled| x 4. Prints each model's max |difference|.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tile", type=int, default=96)
    parser.add_argument("--size", type=int, default=288)
    parser.add_argument("--out", default=str(ROOT / "docs" / "tiling.png"))
    args = parser.parse_args()

    import torch

    import gennorm
    from gennorm.data.scenes import render_scene
    from gennorm.data.transforms import to_image, to_tensor

    labels = Image.fromarray(render_scene(7, args.size, seed=3)[0])
    x = to_tensor(labels)[None]
    rows = []
    for name in ("scenes-instance", "scenes-nc"):
        whole = gennorm.load(ROOT / "models" / name)(x)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # instance norm's "different statistics" warning: the point here
            tiled = gennorm.load(ROOT / "models" / name, tile=args.tile)(x)
        diff = (whole - tiled).abs()
        print(f"{name}: tile {args.tile}, max |whole - tiled| = {diff.max().item():.2e}")
        heat = to_image((diff * 4).clamp(0, 1)[0] * 2 - 1)
        rows.append((name, [labels, to_image(whole[0]), to_image(tiled[0]), heat]))
    s, pad, top = args.size, 8, 22
    sheet = Image.new("RGB", (4 * s + 5 * pad, len(rows) * (s + top + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    titles = ["input", "whole image", f"{args.tile}px tiles", "|difference| x 4"]
    for r, (name, images) in enumerate(rows):
        y = pad + r * (s + top + pad)
        for c, im in enumerate(images):
            x0 = pad + c * (s + pad)
            draw.text((x0, y + 4), f"{name}: {titles[c]}", fill="black")
            sheet.paste(im, (x0, y + top))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, optimize=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
