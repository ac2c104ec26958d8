"""Checkpoints of pytorch-CycleGAN-and-pix2pix (junyanz): their options, and their weights in our networks.

That project saves `net.state_dict()` of its `define_G` / `define_D` networks (`latest_net_G.pth`,
`latest_net_G_A.pth`, `latest_net_D.pth`, ...). Our ResNet, U-Net and PatchGAN networks are the
same networks with other module names, so the mapping follows from the architecture: both
networks' layers that hold weights are listed in the order they run (theirs: the order of the
state dict, which for their Sequential / nested skip-block modules is the execution order; ours:
recorded by forward hooks on one dummy input) and paired one to one, every tensor's name and shape
checked. So it works for every width and depth, not for one configuration.

Their loader's quirks are reproduced: a `module.` prefix (DataParallel) is dropped, and so are the
`running_mean` / `running_var` / `num_batches_tracked` of InstanceNorm layers in checkpoints
saved before PyTorch 0.4. With norm "none" their convs have no bias where ours have one: those
biases are set to 0 (the same function).

contrastive-unpaired-translation (CUT, taesungp) saves the same way and its ResnetGenerator /
NLayerDiscriminator are these networks with antialiased resampling (its default): its
`Downsample` / `Upsample` modules hold their fixed filters as buffers `filt` [C, 1, 3, 3] /
[C, 1, 4, 4], which are in every CUT state dict. Where they sit tells the layout: a `filt` before
the residual blocks is blur-pooled downsampling (antialias; absent with --no_antialias), one
after them blur upsampling (upsample "antialias"; absent with --no_antialias_up). Our
gennorm.layers.blur layers hold the same buffers, so the pairing below maps them like weights,
and each `filt` must be the fixed filter itself.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from gennorm.errors import CheckpointError
from gennorm.layers.tracing import run_with_hooks

STATS = ("running_mean", "running_var", "num_batches_tracked")
GENERATOR_ARCHS = {("resnet", 9): "resnet_9blocks", ("resnet", 6): "resnet_6blocks", ("unet", 8): "unet_256",
                   ("unet", 7): "unet_128"}


@dataclass
class Options:
    """Their define_G / define_D options, with what was inferred from the weights (not given)."""

    kind: str  # "generator" | "discriminator"
    arch: str  # netG (resnet_9blocks, unet_256, ...) or netD (basic, n_layers, pixel)
    norm: str  # instance | batch | none
    width: int  # ngf or ndf
    input_nc: int
    output_nc: int = 1
    n_layers: int = 3  # n_layers_D
    use_dropout: bool = False
    antialias: bool = False  # CUT's blur-pooled downsampling (its filt buffers before the blocks / in D)
    upsample: str = "transpose"  # the generator's decoder: transpose, or CUT's "antialias" (filt after the blocks)
    inferred: list[str] = field(default_factory=list)


def clean_state(state) -> dict[str, torch.Tensor]:
    """Their state dict with `module.` prefixes removed; a clear error for anything else."""
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError("not a state dict of tensors (pytorch-CycleGAN-and-pix2pix saves net.state_dict())")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}


def _layers(state: dict[str, torch.Tensor]) -> list[tuple[str, dict[str, torch.Tensor]]]:
    """(module prefix, {tensor name: tensor}) in state-dict order, without pre-0.4 InstanceNorm stats."""
    groups: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        prefix, _, name = key.rpartition(".")
        groups.setdefault(prefix, {})[name] = value
    # A layer with statistics but no affine weight is a pre-0.4 InstanceNorm (BatchNorm has a weight).
    return [(p, t) for p, t in groups.items() if not (set(t) <= set(STATS))]


# ---- options from the weights ------------------------------------------------------------------


def _norm_of(state: dict[str, torch.Tensor], first_conv: str) -> str:
    for prefix, tensors in _layers(state):
        if "running_mean" in tensors and "weight" in tensors:
            return "batch"
    return "instance" if f"{first_conv}.bias" in state else "none"


def _filts(state: dict[str, torch.Tensor]) -> list[str]:
    """The keys of CUT's blur buffers (`...filt`)."""
    return [k for k in state if k.rpartition(".")[2] == "filt"]


def _blur_layout(state: dict[str, torch.Tensor], blocks: set[int]) -> tuple[bool, str]:
    """(antialias, upsample) of a ResNet define_G state dict from where its `model.N.filt` buffers sit."""
    where = []
    for key in _filts(state):
        m = re.fullmatch(r"model\.(\d+)\.filt", key)
        if m is None or min(blocks) <= int(m.group(1)) <= max(blocks):
            raise CheckpointError(f"{key}: a blur filter where CUT's ResnetGenerator has none")
        where.append(int(m.group(1)))
    return any(i < min(blocks) for i in where), "antialias" if any(i > max(blocks) for i in where) else "transpose"


def infer_generator(state: dict[str, torch.Tensor]) -> Options:
    """netG, norm, ngf, input_nc, output_nc (and CUT's antialiasing) of a define_G state dict
    (dropout cannot be seen: assumed as their defaults, on for the U-Nets (pix2pix), off for the
    ResNets (CycleGAN, CUT))."""
    keys = list(state)
    antialias, upsample = False, "transpose"
    if any(".conv_block." in k for k in keys):
        blocks = {int(m.group(1)) for k in keys if (m := re.match(r"model\.(\d+)\.conv_block\.", k))}
        arch = GENERATOR_ARCHS.get(("resnet", len(blocks)))
        first, convs = "model.1", [k for k in keys if re.fullmatch(r"model\.\d+\.weight", k) and state[k].dim() == 4]
        if arch is None or not convs:
            raise CheckpointError(f"a ResNet generator with {len(blocks)} blocks: gennorm has resnet_9blocks and resnet_6blocks")
        antialias, upsample = _blur_layout(state, blocks)
        ngf, input_nc = state["model.1.weight"].shape[:2]
        output_nc = state[convs[-1]].shape[0]
    elif any(k.startswith("model.model.") for k in keys):
        depth = max(k.split(".").count("model") for k in keys) - 1
        arch = GENERATOR_ARCHS.get(("unet", depth))
        if arch is None or "model.model.0.weight" not in state or "model.model.3.weight" not in state:
            raise CheckpointError(f"a U-Net generator with {depth} levels: gennorm has unet_256 (8) and unet_128 (7)")
        if _filts(state):
            raise CheckpointError(f"{_filts(state)[0]}: a blur filter in a U-Net (CUT antialiases its ResNets only)")
        first = "model.model.0"
        ngf, input_nc = state["model.model.0.weight"].shape[:2]
        output_nc = state["model.model.3.weight"].shape[1]  # the outermost ConvTranspose2d [2ngf, out, 4, 4]
    else:
        raise CheckpointError("the keys are not those of a define_G network (model.N.conv_block... or model.model...)")
    return Options("generator", arch, _norm_of(state, first), int(ngf), int(input_nc), int(output_nc),
                   use_dropout=arch.startswith("unet"), antialias=antialias, upsample=upsample,
                   inferred=["netG", "norm", "ngf", "input_nc", "output_nc", "dropout"])


def infer_discriminator(state: dict[str, torch.Tensor]) -> Options:
    """netD, norm, ndf, input_nc, n_layers_D (and CUT's antialiasing) of a define_D state dict."""
    convs = [k for k in state if re.fullmatch(r"(?:model|net)\.\d+\.weight", k) and state[k].dim() == 4]
    if not convs:
        raise CheckpointError("the keys are not those of a define_D network (model.N.weight / net.N.weight)")
    first = state[convs[0]]
    arch = "pixel" if first.shape[-1] == 1 else "basic"
    n_layers = len(convs) - 2
    if arch == "basic" and n_layers != 3:
        arch = "n_layers"
    return Options("discriminator", arch, _norm_of(state, convs[0].rsplit(".", 1)[0]), int(first.shape[0]),
                   int(first.shape[1]), n_layers=n_layers, antialias=bool(_filts(state)),
                   inferred=["netD", "norm", "ndf", "input_nc", "n_layers_D"])


# ---- weights into our network --------------------------------------------------------------------


def _own_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    """The parameters and persistent buffers a module holds itself (not its children's)."""
    own = {n: p for n, p in module._parameters.items() if p is not None}
    own |= {n: b for n, b in module._buffers.items() if b is not None and n not in module._non_persistent_buffers_set}
    return own


def execution_order(net: nn.Module, example: torch.Tensor) -> list[tuple[str, nn.Module]]:
    """The modules holding tensors, in the order one forward pass runs them."""
    names = {m: n for n, m in net.named_modules()}
    order: list[nn.Module] = []
    run_with_hooks(net, example, [m for m in net.modules() if _own_tensors(m)],
                   lambda module, args: order.append(module), pre=True)
    seen: list[nn.Module] = []
    for m in order:
        if m not in seen:
            seen.append(m)
    return [(names[m], m) for m in seen]


def convert(state: dict[str, torch.Tensor], net: nn.Module, example: torch.Tensor) -> dict[str, torch.Tensor]:
    """Their state dict as a state dict of our `net` (same architecture); CheckpointError naming the
    first layer that does not fit."""
    theirs = _layers(state)
    ours = execution_order(net, example)
    if len(theirs) != len(ours):
        raise CheckpointError(f"the checkpoint has {len(theirs)} layers with weights, the network built from these "
                              f"options has {len(ours)}")
    out = {}
    for k, ((their_prefix, tensors), (our_name, module)) in enumerate(zip(theirs, ours)):
        for name, target in _own_tensors(module).items():
            key = f"{our_name}.{name}" if our_name else name
            value = tensors.get(name)
            if value is None and name == "bias":  # norm "none": their conv had no bias
                value = torch.zeros_like(target)
            if value is None or value.shape != target.shape:
                got = "missing" if value is None else list(value.shape)
                raise CheckpointError(f"layer {k + 1} ({their_prefix}.{name}: {got}) does not fit {key} "
                                      f"{list(target.shape)}")
            if name == "filt" and not torch.allclose(value.to(target.dtype), target, rtol=0, atol=1e-6):
                raise CheckpointError(f"layer {k + 1} ({their_prefix}.filt) is not the fixed binomial blur filter "
                                      f"of {key} (CUT's Downsample / Upsample with their default filt_size)")
            out[key] = value.to(target.dtype)
        extra = set(tensors) - set(_own_tensors(module))
        if extra:
            raise CheckpointError(f"layer {k + 1} ({their_prefix}) has {sorted(extra)}, which {our_name} does not")
    return out
