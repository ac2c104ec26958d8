"""A pytorch-CycleGAN-and-pix2pix (junyanz) or contrastive-unpaired-translation (CUT) checkpoint
converted into our networks' weights.

`convert_checkpoint` reads their .pth file(s) (a file, or a checkpoints/NAME folder with
EPOCH_net_G.pth ...), infers their define_G / define_D options from the weights
(gennorm.networks.junyanz; for CUT also its antialiasing, read from its `filt` buffers), applies
the options the user gave, and maps the weights onto our generator (and discriminator) with
every tensor checked. Writing the result as a model folder needs the run config (a sibling at
this level): gennorm.train.imported does that.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from gennorm.errors import CheckpointError, ConfigError
from gennorm.networks.factory import build_discriminator, build_generator
from gennorm.networks.junyanz import Options, clean_state, convert, infer_discriminator, infer_generator

PROJECTS = {"junyanz": "pytorch-CycleGAN-and-pix2pix", "cut": "contrastive-unpaired-translation (CUT)"}


@dataclass
class Imported:
    """A converted checkpoint: where it came from, its options (what was inferred), our state dicts."""

    g_path: Path
    opts: Options
    g_weights: dict[str, torch.Tensor]
    d_path: Path | None = None
    d_opts: Options | None = None
    d_weights: dict[str, torch.Tensor] | None = None
    source: str = "junyanz"  # a key of PROJECTS

    def describe(self, out: str | Path) -> str:
        """One line: what was imported where, and what was inferred from the weights."""
        opts, d_opts = self.opts, self.d_opts
        inferred = opts.inferred + ([f"D {n}" for n in d_opts.inferred] if d_opts else [])
        blur = f", antialias {opts.antialias}, upsample {opts.upsample}" if self.source == "cut" else ""
        return (f"imported {self.g_path} -> {out}: {opts.arch}, norm {opts.norm}, ngf {opts.width}, "
                f"{opts.input_nc}->{opts.output_nc} channels, dropout {opts.use_dropout}{blur}"
                + (f"; D {d_opts.arch} ndf {d_opts.width} n_layers {d_opts.n_layers} {d_opts.norm}" if d_opts else "")
                + (f" (inferred: {', '.join(inferred)})" if inferred else ""))


def pick(folder: Path, epoch: str, which: str | None, kind: str) -> Path:
    """Their file of `kind` (G or D) in a checkpoints/NAME folder: EPOCH_net_WHICH.pth (default G, else G_A)."""
    names = [which] if which else (["G", "G_A"] if kind == "G" else ["D", "D_A"])
    for name in names:
        path = folder / f"{epoch}_net_{name}.pth"
        if path.is_file():
            return path
    raise CheckpointError(f"{folder}: no {' or '.join(f'{epoch}_net_{n}.pth' for n in names)}")


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """Their state dict (weights only, `module.` prefixes dropped); CheckpointError naming the file."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except Exception as err:  # truncated, not a torch file, or pickled code
        raise CheckpointError(f"{path}: cannot be read ({type(err).__name__}: {err})") from None
    try:
        return clean_state(state)
    except CheckpointError as err:
        raise CheckpointError(f"{path}: {err}") from None


def override(opts: Options, given: dict[str, tuple[str, object]]) -> None:
    """Apply the options the user gave ({their option name: (Options field, value or None)})."""
    for name, (attribute, value) in given.items():
        if value is not None:
            setattr(opts, attribute, value)
            opts.inferred = [n for n in opts.inferred if n != name]


def load_into(state: dict[str, torch.Tensor], opts: Options, path: Path) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """Our network for `opts` with their weights loaded: (network, its converted state dict)."""
    if opts.kind == "generator":
        net = build_generator(opts.arch, opts.input_nc, opts.output_nc, opts.width, norm=opts.norm,
                              use_dropout=opts.use_dropout, upsample=opts.upsample, antialias=opts.antialias)
        size = max(net.size_multiple, 16)
    else:
        net = build_discriminator(opts.arch, opts.input_nc, opts.width, opts.n_layers, norm=opts.norm,
                                  antialias=opts.antialias)
        size = 64
    try:
        converted = convert(state, net, torch.zeros(1, opts.input_nc, size, size))
    except CheckpointError as err:
        raise CheckpointError(f"{path} does not fit {opts.arch} ({opts.norm}, width {opts.width}, "
                              f"{opts.input_nc} input channels): {err}") from None
    net.load_state_dict(converted)
    return net, converted


def convert_checkpoint(checkpoint: str | Path, *, epoch: str = "latest", which: str | None = None,
                       netG: str | None = None, norm: str | None = None, ngf: int | None = None,
                       input_nc: int | None = None, output_nc: int | None = None, dropout: bool | None = None,
                       netD: str | None = None, checkpoint_D: str | Path | None = None, ndf: int | None = None,
                       n_layers_D: int | None = None, project: str = "junyanz") -> Imported:
    """Their generator (and, with netD or checkpoint_D, discriminator) as our weights.

    The options are theirs (`gennorm import junyanz --help`); None: inferred from the weights.
    project: "junyanz" or "cut" (whose antialiasing is read from the weights; a checkpoint with
    CUT's blur buffers given as "junyanz" is refused, so that the folder names its origin)."""
    if project not in PROJECTS:
        raise ConfigError(f"unknown checkpoint project {project!r}; known: {', '.join(PROJECTS)}")
    source = Path(checkpoint)
    g_path = pick(source, epoch, which, "G") if source.is_dir() else source
    state = read_checkpoint(g_path)
    try:
        opts = infer_generator(state)
    except CheckpointError as err:
        raise CheckpointError(f"{g_path}: {err}") from None
    _check_project(opts, project, g_path)
    override(opts, {"netG": ("arch", netG), "norm": ("norm", norm), "ngf": ("width", ngf),
                    "input_nc": ("input_nc", input_nc), "output_nc": ("output_nc", output_nc),
                    "dropout": ("use_dropout", dropout)})
    _, g_weights = load_into(state, opts, g_path)
    imported = Imported(g_path, opts, g_weights)
    if netD or checkpoint_D:
        d_path = Path(checkpoint_D) if checkpoint_D else (pick(source, epoch, None, "D") if source.is_dir() else None)
        if d_path is None:
            raise ConfigError("--netD: give the discriminator's file with --checkpoint_D")
        d_state = read_checkpoint(d_path)
        d_opts = infer_discriminator(d_state)
        _check_project(d_opts, project, d_path)
        if d_opts.antialias != opts.antialias and d_opts.arch != "pixel":  # gennorm's model.antialias is one key
            raise CheckpointError(f"{d_path}: D antialias {d_opts.antialias}, G antialias {opts.antialias}; gennorm's "
                                  "model.antialias is one key for G and D (as CUT's --no_antialias)")
        override(d_opts, {"netD": ("arch", netD), "ndf": ("width", ndf), "n_layers_D": ("n_layers", n_layers_D)})
        _, imported.d_weights = load_into(d_state, d_opts, d_path)
        imported.d_path, imported.d_opts = d_path, d_opts
    imported.source = project
    return imported


def _check_project(opts: Options, project: str, path: Path) -> None:
    """CheckpointError when a checkpoint given as pytorch-CycleGAN-and-pix2pix's has CUT's blur buffers."""
    if project == "junyanz" and (opts.antialias or opts.upsample == "antialias"):
        raise CheckpointError(f"{path} has blur-pooling buffers (filt): a contrastive-unpaired-translation "
                              "checkpoint; import it with `gennorm import cut`")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def card(out: Path, imported: Imported, task: str) -> str:
    """The model folder's card.md: the source files with their sha256, the options, what was inferred."""
    opts, d_opts, d_path = imported.opts, imported.d_opts, imported.d_path
    lines = [f"# {out.name}", "", f"Imported from a {PROJECTS[imported.source]} checkpoint ({task}).", "",
             "## Source", "", "| | |", "|---|---|",
             f"| generator file | `{imported.g_path.name}` |", f"| sha256 | `{sha256_file(imported.g_path)}` |",
             f"| netG | {opts.arch} |", f"| norm | {opts.norm} |", f"| ngf | {opts.width} |",
             f"| input_nc / output_nc | {opts.input_nc} / {opts.output_nc} |",
             f"| dropout | {opts.use_dropout} |",
             *([f"| antialias (down, G and D) / upsample | {opts.antialias} / {opts.upsample} |"]
               if imported.source == "cut" else []),
             f"| inferred from the weights | {', '.join(opts.inferred) or 'nothing'} |"]
    if d_opts is not None:
        lines += [f"| discriminator file | `{d_path.name}` |", f"| D sha256 | `{sha256_file(d_path)}` |",
                  f"| netD | {d_opts.arch} (ndf {d_opts.width}, n_layers_D {d_opts.n_layers}, {d_opts.norm}) |"]
    lines += ["", "## Metrics", "", "Not measured (see `gennorm eval`).", "", "## Use", "", "```",
              f"gennorm translate {out} INPUT_FOLDER OUTPUT_FOLDER", "```", ""]
    return "\n".join(lines)
