"""Graph exports of a Translator's generator: torch.export programs (.pt2) and ONNX, both with
dynamic height and width (multiples of the network's size grid). NC / KN layers trace as plain
PyTorch ops (no custom ops), so the graphs run anywhere. torch.onnx needs onnx and onnxscript,
imported by torch only when export_onnx runs."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from gennorm.atomic import atomic_write
from gennorm.inference.translator import Translator


def _example_and_shapes(tr: Translator, size: int):
    """An example input and dynamic height / width (multiples of the network's size grid)."""
    k = tr.multiple
    side = max(tr.min_side(), -(-size // k) * k)
    x = torch.rand(1, tr.input_nc, side, side, generator=torch.Generator().manual_seed(0)) * 2 - 1
    h = torch.export.Dim("h", min=max(1, tr.min_side() // k), max=max(side // k, 16384 // k))
    w = torch.export.Dim("w", min=max(1, tr.min_side() // k), max=max(side // k, 16384 // k))
    return x, ({2: k * h, 3: k * w},)


def trace(tr: Translator, size: int = 256):
    """torch.export of the generator with dynamic height and width (multiples of net.size_multiple).
    NC / KN layers trace as plain PyTorch ops (no custom ops), so the program runs anywhere."""
    x, shapes = _example_and_shapes(tr, size)
    return torch.export.export(tr.net.eval().float().cpu(), (x,), dynamic_shapes=shapes)


def export_program(tr: Translator, path: str | Path, size: int = 256, program=None) -> Path:
    """The generator as a torch.export program file (.pt2; load it with torch.export.load)."""
    program = program if program is not None else trace(tr, size)
    atomic_write(Path(path), lambda f: torch.export.save(program, f))
    return Path(path)


def export_onnx(tr: Translator, path: str | Path, size: int = 256, program=None, opset: int = 18) -> Path:
    """The generator as ONNX with standard operators only (NC / KN decompose into convs, pooling and
    arithmetic) and dynamic height and width; input "image" [1, C, H, W] in [-1, 1]."""
    path = Path(path)
    program = program if program is not None else trace(tr, size)
    # optimize=False: onnxscript's graph optimizer triples the export time and changes no result here
    onnx_program = torch.onnx.export(program, dynamo=True, input_names=["image"], output_names=["translated"],
                                     opset_version=opset, optimize=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        onnx_program.save(str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
