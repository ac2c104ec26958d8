"""The vocabulary of `gennorm bench layers`: the layer shapes and the candidate names, torch-free.

gennorm/commands/bench.py builds the options and help of `bench layers` from these names
(`gennorm bench --help` imports no torch); gennorm/bench/layers.py times them.
"""
from __future__ import annotations

from dataclasses import dataclass

BASELINE = "conv+instancenorm"
CANDIDATES = ["conv+instancenorm", "conv+groupnorm", "nc (torch)", "nc (torch, compiled)", "nc (cuda)",
              "nc literal unfold", "conv+pono", "knconv", "convnorm"]
COMPILED = "nc (torch, compiled)"
MODES = ("fwd", "fwdbwd")
DTYPES = ("float32", "bfloat16", "float16")


@dataclass(frozen=True)
class LayerSpec:
    """One conv layer: cin -> cout, kernel x kernel, stride, padding (mode) on a size x size input."""

    name: str
    cin: int
    cout: int
    kernel: int
    stride: int
    padding: int
    mode: str
    size: int

    @property
    def out_size(self) -> int:
        return (self.size + 2 * self.padding - self.kernel) // self.stride + 1

    def label(self) -> str:
        return (f"{self.name}: {self.cin}->{self.cout} {self.kernel}x{self.kernel}/{self.stride} "
                f"{self.mode} pad {self.padding} at {self.size}x{self.size}")


# The ResNet-9 generator's conv layers on 256x256 (the residual conv first: 18 of them per forward).
RESNET9_LAYERS = {
    "res": LayerSpec("res", 256, 256, 3, 1, 1, "reflect", 64),
    "down2": LayerSpec("down2", 128, 256, 3, 2, 1, "zeros", 128),
    "down1": LayerSpec("down1", 64, 128, 3, 2, 1, "zeros", 256),
    "stem": LayerSpec("stem", 3, 64, 7, 1, 3, "reflect", 256),
}
# The same kinds of layer at a few pixels and channels: --quick.
QUICK_LAYERS = {
    "res": LayerSpec("res", 16, 16, 3, 1, 1, "reflect", 8),
    "down": LayerSpec("down", 8, 16, 3, 2, 1, "zeros", 16),
    "stem": LayerSpec("stem", 3, 8, 7, 1, 3, "reflect", 16),
}
