"""Graph exports of a Translator's generator: torch.export programs (.pt2) and ONNX, both taking
any height and width. As gennorm.load (Translator.translate_tensor), the graph resizes the input
(bicubic, clamped) to the nearest size on the network's grid (multiples of net.size_multiple: 4
for the ResNets, 2**downs for the U-Nets; at least the smallest side it runs on), runs the
generator and resizes the output back (GridResized); on the grid both resizes are identities. NC /
KN layers trace as plain PyTorch ops (no custom ops), so the graphs run anywhere. torch.onnx needs
onnx and onnxscript, imported by torch only when export_onnx runs."""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from gennorm.atomic import atomic_write, writer_tag
from gennorm.inference.translator import Translator


MAX_SIDE = 16384  # the largest height / width the graphs are traced for


class GridResized(nn.Module):
    """net on any [N, C, H, W]: resized to Translator.valid_size and back. The size on the grid is
    computed as a tensor and read back (.item()): a fresh size symbol, checked to lie in
    [min_side, MAX_SIDE], so that torch.export keeps H and W dynamic (the network's own checks
    on its input size hold for every such size, as when the traced input was k x a dimension)."""

    def __init__(self, net: nn.Module, multiple: int, min_side: int):
        super().__init__()
        self.net, self.k, self.low = net, multiple, min_side  # min_side: a multiple of k

    def _valid(self, side, like: torch.Tensor):
        """Translator.valid_size for one side: max(min_side, round(side / k) * k); torch.round rounds
        half to even as Python's round, and side / k is exact in float32 (k a power of 2)."""
        k = self.k
        q = torch.round(torch.full((), side, dtype=torch.float32, device=like.device) / k)
        q = q.clamp_min(self.low // k).to(torch.int64).item()
        torch._check(q >= self.low // k)
        torch._check(q <= MAX_SIDE // k + 1)
        return q * k

    def forward(self, x):  # [N, C, H, W] in [-1, 1] -> [N, output_nc, H, W]
        h, w = x.shape[-2], x.shape[-1]
        y = F.interpolate(x, size=(self._valid(h, x), self._valid(w, x)), mode="bicubic", align_corners=False)
        y = self.net(y.clamp(-1, 1))  # [N, output_nc, vh, vw]
        return F.interpolate(y, size=(h, w), mode="bicubic", align_corners=False).clamp(-1, 1)


def _example_and_shapes(tr: Translator, size: int):
    """An example input (a side on the grid) and dynamic height / width: any from 2 to MAX_SIDE."""
    k = tr.multiple
    side = max(tr.min_side(), -(-size // k) * k)
    x = torch.rand(1, tr.input_nc, side, side, generator=torch.Generator().manual_seed(0)) * 2 - 1
    h = torch.export.Dim("h", min=2, max=max(side, MAX_SIDE))
    w = torch.export.Dim("w", min=2, max=max(side, MAX_SIDE))
    return x, ({2: h, 3: w},)


def trace(tr: Translator, size: int = 256):
    """torch.export of the generator for any height and width (GridResized: as gennorm.load).
    NC / KN layers trace as plain PyTorch ops (no custom ops), so the program runs anywhere."""
    x, shapes = _example_and_shapes(tr, size)
    module = GridResized(tr.net.eval().float().cpu(), tr.multiple, tr.min_side())
    return torch.export.export(module, (x,), dynamic_shapes=shapes)


def export_program(tr: Translator, path: str | Path, size: int = 256, program=None) -> Path:
    """The generator as a torch.export program file (.pt2; load it with torch.export.load)."""
    program = program if program is not None else trace(tr, size)
    atomic_write(Path(path), lambda f: torch.export.save(program, f))
    return Path(path)


def export_onnx(tr: Translator, path: str | Path, size: int = 256, program=None, opset: int = 18) -> Path:
    """The generator as ONNX with standard operators only (NC / KN decompose into convs, pooling and
    arithmetic) for any height and width; input "image" [1, C, H, W] in [-1, 1], output the same size."""
    path = Path(path)
    program = program if program is not None else trace(tr, size)
    # optimize=False: onnxscript's graph optimizer triples the export time and changes no result here
    onnx_program = torch.onnx.export(program, dynamo=True, input_names=["image"], output_names=["translated"],
                                     opset_version=opset, optimize=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{writer_tag()}.tmp")
    try:
        onnx_program.save(str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
