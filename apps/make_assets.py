"""Write the demo's example label maps to assets/ (the A halves of built-in test scenes).

    .venv/bin/python apps/make_assets.py

Scenes come from `gennorm.data.generate_scenes` (deterministic: seed 0, 128 px, the size the
scenes presets train at); the A half (colour-coded labels) of each test scene is saved as
assets/scene_labels_N.png. Re-running rewrites byte-identical files.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from PIL import Image

from gennorm.data.scenes import generate_scenes

ASSETS = Path(__file__).resolve().parent.parent / "assets"
SIZE, COUNT, TEST = 128, 12, 4


def main() -> None:
    ASSETS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        generate_scenes(Path(tmp) / "scenes", size=SIZE, count=COUNT, seed=0, test_count=TEST)
        pairs = sorted((Path(tmp) / "scenes" / "paired" / "test").glob("*.png"))
        for n, path in enumerate(pairs, 1):
            with Image.open(path) as pair:  # A|B side by side, [SIZE, 2*SIZE]
                label = pair.convert("RGB").crop((0, 0, SIZE, SIZE))
            label.save(ASSETS / f"scene_labels_{n}.png", optimize=True)
            print(ASSETS / f"scene_labels_{n}.png")


if __name__ == "__main__":
    main()
