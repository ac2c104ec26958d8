"""summarize(net): a table of layers (name, type, output shape, parameters) and the totals.

describe(arch, ...) builds a network by name and gives that table with a header line, and
catalogue() the architecture and norm names: `gennorm nets summary | list`.

Forward hooks on every leaf module (and any module holding parameters directly) record output
shapes while a zero input runs through the network in eval mode without gradients. A module
called several times (the U-Net's shared ReLU, PONO) gets one row per call, in call order;
its parameters are counted at its first row only.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn

from gennorm.errors import ConfigError
from gennorm.layers import NORMS
from gennorm.networks.factory import DISCRIMINATORS, GENERATORS, build_discriminator, build_generator


@dataclass
class NetSummary:
    rows: list[tuple[str, str, str, int]] = field(default_factory=list)  # name, type, output shape, params
    total_params: int = 0
    trainable_params: int = 0
    input_shape: tuple[int, ...] = ()
    output_shape: tuple[int, ...] = ()

    def table(self) -> str:
        header = ("layer", "type", "output shape", "params")
        cells = [header] + [(n, t, s, f"{p:,}") for n, t, s, p in self.rows]
        widths = [max(len(row[i]) for row in cells) for i in range(4)]
        lines = ["  ".join([*(c.ljust(w) for c, w in zip(row[:3], widths)), row[3].rjust(widths[3])])
                 for row in cells]
        rule = "-" * len(lines[0])
        lines = [lines[0], rule, *lines[1:], rule,
                 f"input {list(self.input_shape)} -> output {list(self.output_shape)}",
                 f"total parameters: {self.total_params:,} (trainable {self.trainable_params:,})"]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _shape(output) -> str:
    if isinstance(output, torch.Tensor):
        return str(list(output.shape))
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        extra = len(output) - 1
        return str(list(output[0].shape)) + (f" (+{extra} tensors)" if extra else "")
    return type(output).__name__


def _hooked(net: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name or type(net).__name__, m) for name, m in net.named_modules()
            if not any(True for _ in m.children()) or any(True for _ in m.parameters(recurse=False))]


def summarize(net: nn.Module, input_shape: tuple[int, ...] = (1, 3, 256, 256)) -> NetSummary:
    """Run a zero input of `input_shape` through `net` and tabulate its layers."""
    summary = NetSummary(input_shape=tuple(input_shape))
    counted: set[int] = set()

    def record(name: str):
        def hook(module, _inputs, output):
            params = 0
            if id(module) not in counted:
                counted.add(id(module))
                params = sum(p.numel() for p in module.parameters(recurse=False))
            summary.rows.append((name, type(module).__name__, _shape(output), params))
        return hook

    handles = [m.register_forward_hook(record(name)) for name, m in _hooked(net)]
    was_training = net.training
    try:
        param = next(net.parameters(), None)
        x = torch.zeros(input_shape, device=param.device if param is not None else "cpu")
        net.eval()
        with torch.no_grad():
            out = net(x)
    finally:
        net.train(was_training)
        for handle in handles:
            handle.remove()
    summary.output_shape = tuple(out.shape)
    summary.total_params = sum(p.numel() for p in net.parameters())
    summary.trainable_params = sum(p.numel() for p in net.parameters() if p.requires_grad)
    return summary


def catalogue() -> str:
    """The architecture names (generators, discriminators) and the norm names."""
    return "\n".join(["generators:     " + ", ".join(GENERATORS),
                      "discriminators: " + ", ".join(DISCRIMINATORS),
                      "norms:          " + ", ".join(NORMS)])


def build_named(arch: str, kind: str | None = None, norm: str = "instance", ngf: int = 64, ndf: int = 64,
                input_nc: int = 3, output_nc: int = 3, n_layers: int = 3, upsample: str | None = None,
                dropout: bool = False, antialias: bool = False) -> nn.Module:
    """A generator or discriminator by architecture name (kind: from the name unless given); ConfigError if unknown.
    antialias: CUT's blur-pooled downsampling (ResNets, PatchGAN)."""
    kind = kind or ("generator" if arch in GENERATORS else "discriminator" if arch in DISCRIMINATORS else None)
    known = {"generator": list(GENERATORS), "discriminator": list(DISCRIMINATORS)}.get(
        kind, [*GENERATORS, *DISCRIMINATORS])
    if arch not in known:
        raise ConfigError(f"unknown {kind or 'architecture'} {arch!r}; known: {', '.join(known)}")
    try:
        if kind == "generator":
            return build_generator(arch, input_nc, output_nc, ngf, norm, use_dropout=dropout, upsample=upsample,
                                   antialias=antialias)
        return build_discriminator(arch, input_nc, ndf, n_layers, norm, antialias=antialias)
    except (ValueError, TypeError) as err:
        raise ConfigError(str(err)) from None


def describe(arch: str, size: int = 256, batch: int = 1, input_nc: int = 3, **options) -> str:
    """`gennorm nets summary`: the network's options, then its summarize() table for a zero
    [batch, input_nc, size, size] input; `options` go to build_named."""
    if size < 1 or batch < 1:
        raise ConfigError(f"--size and --batch must be positive, got size={size}, batch={batch}")
    net = build_named(arch, input_nc=input_nc, **options)
    try:
        summary = summarize(net, (batch, input_nc, size, size))
    except ValueError as err:  # e.g. a size the architecture cannot take
        raise ConfigError(f"--size {size}: {err}") from None
    hidden = ("kind", "arch", "init_type", "init_gain")
    settings = ", ".join(f"{k}={v}" for k, v in net.options.items() if k not in hidden)
    return f"{net.options['kind']} {arch} ({settings})\n{summary.table()}"
