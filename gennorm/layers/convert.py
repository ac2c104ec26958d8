"""convert_norms: turn any conv net's "Conv2d followed by a norm layer" into NC (or KN) convs.

NC's paper proposes its layer as a universal replacement: a conv that normalizes its own im2col
rows needs no norm layer after it. In the spirit of nn.SyncBatchNorm.convert_sync_batchnorm,

    model, report = convert_norms(torchvision.models.resnet18(), "nc")

runs the model once on an example input (zeros [1, C, 64, 64] by default), records which Conv2d's
output tensor goes straight into a BatchNorm2d / InstanceNorm2d / GroupNorm / LayerNorm-free
norm (forward hooks: works for any module, whatever its forward does), and replaces each such
pair: the conv by an NCConv2d (KNConv2d for "kn") of the same shape holding the same weights
(and a bias: the norm's shift is gone, and the new bias starts at the norm's shift when it had
one, else 0), the norm by nn.Identity. What it cannot convert is listed with the reason
(transposed convs, a conv feeding more than the norm, KN's zero-padding/no-dilation limits, ...).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from gennorm.layers.kernel_norm import KNConv2d
from gennorm.layers.nc_conv import NCConv2d
from gennorm.layers.tracing import run_with_hooks

NORM_TYPES = (nn.BatchNorm2d, nn.InstanceNorm2d, nn.GroupNorm)
TARGETS = ("nc", "kn")


@dataclass
class ConversionReport:
    converted: list[tuple[str, str]] = field(default_factory=list)  # (conv name, norm name)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (module name, why)

    def __str__(self) -> str:
        lines = [f"converted {len(self.converted)} conv + norm pairs"
                 + (": " + ", ".join(f"{c}+{n}" for c, n in self.converted) if self.converted else "")]
        lines += [f"not converted: {name} ({why})" for name, why in self.skipped]
        return "\n".join(lines)


def _pairs(model: nn.Module, example: torch.Tensor) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """(conv name, norm name) where the norm's input is the conv's output; and how often each
    module's output is consumed by a hooked module (a conv feeding two layers is not a pair)."""
    names = {m: n for n, m in model.named_modules()}
    produced: dict[int, str] = {}  # id(output tensor) -> module name
    keep: list[torch.Tensor] = []  # keeps outputs alive so ids stay unique during the pass
    pairs: list[tuple[str, str]] = []
    uses: dict[str, int] = {}

    def hook(module, args, output):
        name = names[module]
        if args and isinstance(args[0], torch.Tensor) and id(args[0]) in produced:
            source = produced[id(args[0])]
            uses[source] = uses.get(source, 0) + 1
            if isinstance(module, NORM_TYPES):
                pairs.append((source, name))
        if isinstance(output, torch.Tensor) and isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            produced[id(output)] = name
            keep.append(output)

    run_with_hooks(model, example, [m for m in model.modules() if not list(m.children())], hook)
    return pairs, uses


def _new_conv(conv: nn.Conv2d, norm: nn.Module, target: str) -> nn.Module:
    shift = getattr(norm, "bias", None)
    if target == "nc":
        new = NCConv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                       conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode)
    else:
        if conv.padding_mode != "zeros" or conv.dilation != (1, 1) or isinstance(conv.padding, str):
            raise ValueError("KNConv2d supports zero padding (an int or pair) and no dilation only")
        new = KNConv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                       bias=True, groups=conv.groups)
    new = new.to(conv.weight.device, conv.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(conv.weight)
        new.bias.copy_(shift.detach() if shift is not None and shift.shape == new.bias.shape else
                       torch.zeros_like(new.bias))
    new.train(conv.training)
    return new


def _set(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def convert_norms(model: nn.Module, norm: str = "nc", example: torch.Tensor | None = None):
    """Replace every Conv2d -> norm pair of `model` in place (see the module docstring).

    Returns (model, ConversionReport). example: an input the model accepts (default: zeros
    [1, in_channels of the first conv, 64, 64]).
    """
    if norm not in TARGETS:
        raise ValueError(f"norm must be one of {TARGETS}, got {norm!r}")
    if example is None:
        first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
        if first is None:
            raise ValueError("the model has no nn.Conv2d to convert")
        example = torch.zeros(1, first.in_channels, 64, 64, device=first.weight.device, dtype=first.weight.dtype)
    pairs, uses = _pairs(model, example)
    report = ConversionReport()
    paired_norms = set()
    for conv_name, norm_name in pairs:
        conv, layer = model.get_submodule(conv_name), model.get_submodule(norm_name)
        paired_norms.add(norm_name)  # reported below either way
        if type(conv) is not nn.Conv2d:
            report.skipped.append((conv_name, f"{type(conv).__name__} feeding {norm_name}: NC/KN are defined on "
                                              "direct convolutions"))
            continue
        if uses.get(conv_name, 0) != 1:
            report.skipped.append((conv_name, f"its output feeds {uses.get(conv_name, 0)} layers, not only {norm_name}"))
            continue
        try:
            new = _new_conv(conv, layer, norm)
        except ValueError as err:
            report.skipped.append((conv_name, str(err)))
            continue
        _set(model, conv_name, new)
        _set(model, norm_name, nn.Identity())
        report.converted.append((conv_name, norm_name))
    for name, module in model.named_modules():
        if isinstance(module, NORM_TYPES) and name not in paired_norms:
            report.skipped.append((name, "no Conv2d output feeds it directly"))
    return model, report


def convert(model: nn.Module, norm: str = "nc", example: torch.Tensor | None = None, verbose: bool = True) -> nn.Module:
    """gennorm.convert: convert_norms, printing what changed (and what could not) to stderr."""
    model, report = convert_norms(model, norm, example)
    if verbose:
        print(f"gennorm.convert to {norm}: {report}", file=sys.stderr)
    return model
