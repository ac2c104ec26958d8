"""`gennorm import junyanz CHECKPOINT OUT_DIR`: a pytorch-CycleGAN-and-pix2pix checkpoint as a model folder.

The folder is what `gennorm export` writes (config.yaml, generator.safetensors, card.md; plus
discriminator.safetensors with --netD), so translate, eval, the demo, `gennorm.load` and
fine-tuning (`model.init_from=OUT_DIR`) take it like any gennorm model.
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

DESCRIPTION = """\
Import a checkpoint of pytorch-CycleGAN-and-pix2pix (junyanz) as a gennorm model folder.

CHECKPOINT is a .pth file saved by that project (net.state_dict(), e.g. latest_net_G.pth) or
its checkpoints/NAME folder (then --epoch and --which pick the file: latest_net_G.pth,
latest_net_G_A.pth, ...). The options use that project's names; the ones left out are
inferred from the weights (dropout cannot be: it is assumed on for U-Nets, off for ResNets as
in its pix2pix and CycleGAN defaults) and what was inferred is printed. Wrong options stop
with a line naming the layer that does not fit.

examples:
  gennorm import junyanz checkpoints/facades_pix2pix/latest_net_G.pth models/facades
  gennorm import junyanz checkpoints/horse2zebra_cyclegan models/h2z --which G_A
  gennorm import junyanz latest_net_G.pth models/maps --netG unet_256 --norm batch --ngf 64 \\
      --netD basic --checkpoint_D latest_net_D.pth       # D too, for fine-tuning
  gennorm translate models/facades data/facades/test out/ --aligned
"""

SOURCES = ("junyanz",)


def add_arguments(parser) -> None:
    parser.add_argument("source", choices=SOURCES, help="the project the checkpoint comes from: junyanz")
    parser.add_argument("checkpoint", help=".pth file, or a checkpoints/NAME folder")
    parser.add_argument("out", help="model folder to write")
    parser.add_argument("--netG", choices=("resnet_9blocks", "resnet_6blocks", "unet_256", "unet_128"))
    parser.add_argument("--norm", choices=("instance", "batch", "none"))
    parser.add_argument("--ngf", type=int)
    parser.add_argument("--input_nc", type=int)
    parser.add_argument("--output_nc", type=int)
    drop = parser.add_mutually_exclusive_group()
    drop.add_argument("--no_dropout", action="store_true", help="the generator has no dropout")
    drop.add_argument("--dropout", action="store_true", help="the generator has dropout (U-Net / ResNet blocks)")
    parser.add_argument("--model", choices=("pix2pix", "cycle_gan"), default=None,
                        help="the task (default: pix2pix for U-Nets, cycle_gan for ResNets)")
    parser.add_argument("--epoch", default="latest", help="with a folder: which epoch's files (default latest)")
    parser.add_argument("--which", default=None, help="with a folder: G, G_A or G_B (default: G, else G_A)")
    parser.add_argument("--netD", choices=("basic", "n_layers", "pixel"), help="also import a discriminator")
    parser.add_argument("--checkpoint_D", help="the D .pth (default with a folder: EPOCH_net_D[_A].pth)")
    parser.add_argument("--ndf", type=int)
    parser.add_argument("--n_layers_D", type=int)


def _pick(folder: Path, epoch: str, which: str | None, kind: str) -> Path:
    names = [which] if which else (["G", "G_A"] if kind == "G" else ["D", "D_A"])
    for name in names:
        path = folder / f"{epoch}_net_{name}.pth"
        if path.is_file():
            return path
    from gennorm.errors import CheckpointError

    raise CheckpointError(f"{folder}: no {' or '.join(f'{epoch}_net_{n}.pth' for n in names)}")


def _read(path: Path):
    import torch

    from gennorm.errors import CheckpointError
    from gennorm.networks.junyanz import clean_state

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


def _override(opts, given: dict[str, tuple[str, object]]) -> None:
    """Apply the options the user gave ({their option name: (Options field, value or None)})."""
    for name, (attribute, value) in given.items():
        if value is not None:
            setattr(opts, attribute, value)
            opts.inferred = [n for n in opts.inferred if n != name]


def _load_into(state, opts, path: Path):
    import torch

    from gennorm.errors import CheckpointError
    from gennorm.networks import build_discriminator, build_generator
    from gennorm.networks.junyanz import convert

    if opts.kind == "generator":
        net = build_generator(opts.arch, opts.input_nc, opts.output_nc, opts.width, norm=opts.norm,
                              use_dropout=opts.use_dropout, upsample="transpose")
        size = max(net.size_multiple, 16)
    else:
        net = build_discriminator(opts.arch, opts.input_nc, opts.width, opts.n_layers, norm=opts.norm)
        size = 64
    try:
        converted = convert(state, net, torch.zeros(1, opts.input_nc, size, size))
    except CheckpointError as err:
        raise CheckpointError(f"{path} does not fit {opts.arch} ({opts.norm}, width {opts.width}, "
                              f"{opts.input_nc} input channels): {err}") from None
    net.load_state_dict(converted)
    return net, converted


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _card(out: Path, opts, path: Path, d_opts, d_path: Path | None, task: str) -> str:
    lines = [f"# {out.name}", "", f"Imported from a pytorch-CycleGAN-and-pix2pix checkpoint ({task}).", "",
             "## Source", "", "| | |", "|---|---|",
             f"| generator file | `{path.name}` |", f"| sha256 | `{_sha256(path)}` |",
             f"| netG | {opts.arch} |", f"| norm | {opts.norm} |", f"| ngf | {opts.width} |",
             f"| input_nc / output_nc | {opts.input_nc} / {opts.output_nc} |",
             f"| dropout | {opts.use_dropout} |",
             f"| inferred from the weights | {', '.join(opts.inferred) or 'nothing'} |"]
    if d_opts is not None:
        lines += [f"| discriminator file | `{d_path.name}` |", f"| D sha256 | `{_sha256(d_path)}` |",
                  f"| netD | {d_opts.arch} (ndf {d_opts.width}, n_layers_D {d_opts.n_layers}, {d_opts.norm}) |"]
    lines += ["", "## Metrics", "", "Not measured (see `gennorm eval`).", "", "## Use", "", "```",
              f"gennorm translate {out} INPUT_FOLDER OUTPUT_FOLDER", "```", ""]
    return "\n".join(lines)


def run(args) -> int:
    import yaml
    from safetensors.torch import save

    from gennorm.atomic import atomic_write_bytes
    from gennorm.config import from_dict, to_dict
    from gennorm.errors import ConfigError
    from gennorm.networks.junyanz import infer_discriminator, infer_generator

    source = Path(args.checkpoint)
    g_path = _pick(source, args.epoch, args.which, "G") if source.is_dir() else source
    state = _read(g_path)
    opts = infer_generator(state)
    dropout = True if args.dropout else (False if args.no_dropout else None)
    _override(opts, {"netG": ("arch", args.netG), "norm": ("norm", args.norm), "ngf": ("width", args.ngf),
                     "input_nc": ("input_nc", args.input_nc), "output_nc": ("output_nc", args.output_nc),
                     "dropout": ("use_dropout", dropout)})
    _, g_weights = _load_into(state, opts, g_path)
    d_opts = d_path = d_weights = None
    if args.netD or args.checkpoint_D:
        d_path = Path(args.checkpoint_D) if args.checkpoint_D else (
            _pick(source, args.epoch, None, "D") if source.is_dir() else None)
        if d_path is None:
            raise ConfigError("--netD: give the discriminator's file with --checkpoint_D")
        d_state = _read(d_path)
        d_opts = infer_discriminator(d_state)
        _override(d_opts, {"netD": ("arch", args.netD), "ndf": ("width", args.ndf),
                           "n_layers_D": ("n_layers", args.n_layers_D)})
        _, d_weights = _load_into(d_state, d_opts, d_path)
    task = args.model or ("pix2pix" if opts.arch.startswith("unet") else "cycle_gan")
    cfg = from_dict({
        "out": str(args.out), "description": f"imported from {g_path.name} (pytorch-CycleGAN-and-pix2pix)",
        "model": {"g_arch": opts.arch, "ngf": opts.width, "g_norm": opts.norm, "use_dropout": opts.use_dropout,
                  "upsample": "transpose", "input_nc": opts.input_nc, "output_nc": opts.output_nc,
                  **({"d_arch": d_opts.arch, "ndf": d_opts.width, "n_layers": d_opts.n_layers, "d_norm": d_opts.norm}
                     if d_opts else {})},
        "data": {"mode": "aligned" if task == "pix2pix" else "unaligned"},
        "train": {"task": "pix2pix" if task == "pix2pix" else "cyclegan"},
    })
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"format": "gennorm-generator-1", "task": cfg.train.task, "dtype": "float32", "direction": "AtoB",
            "source": str(g_path)}
    atomic_write_bytes(out / "generator.safetensors", save(g_weights, metadata=meta))
    if d_weights is not None:
        atomic_write_bytes(out / "discriminator.safetensors", save(d_weights, metadata={**meta, "source": str(d_path)}))
    atomic_write_bytes(out / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False).encode())
    atomic_write_bytes(out / "card.md", _card(out, opts, g_path, d_opts, d_path, task).encode())
    inferred = opts.inferred + ([f"D {n}" for n in d_opts.inferred] if d_opts else [])
    print(f"imported {g_path} -> {out}: {opts.arch}, norm {opts.norm}, ngf {opts.width}, "
          f"{opts.input_nc}->{opts.output_nc} channels, dropout {opts.use_dropout}"
          + (f"; D {d_opts.arch} ndf {d_opts.width} n_layers {d_opts.n_layers} {d_opts.norm}" if d_opts else "")
          + (f" (inferred: {', '.join(inferred)})" if inferred else ""), file=sys.stderr)
    return 0
