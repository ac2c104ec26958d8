"""A pytorch-CycleGAN-and-pix2pix or CUT checkpoint written as a gennorm model folder (`gennorm import junyanz|cut`).

The folder is what `gennorm export` writes (config.yaml, generator.safetensors, card.md; plus
discriminator.safetensors when a discriminator is imported), so translate, eval, the demo,
`gennorm.load` and fine-tuning (`model.init_from=OUT_DIR`, gennorm.train.task) take it like any
gennorm model. The conversion is gennorm.networks.junyanz_import; the resolved run config
written beside it needs gennorm.config, a sibling of networks, hence this module at level 4.
"""
from __future__ import annotations

from pathlib import Path

import yaml
from safetensors.torch import save

from gennorm.atomic import atomic_write_bytes
from gennorm.config import from_dict, to_dict
from gennorm.locks import holds
from gennorm.networks.checkpoint import (discriminator_options, generator_options, options_metadata, weights_metadata,
                                         write_model_folder)
from gennorm.networks.junyanz_import import PROJECTS, Imported, card, convert_checkpoint
from gennorm.paths import check_output_apart


def import_junyanz(checkpoint: str | Path, out: str | Path, model: str | None = None, **options) -> Imported:
    """Convert `checkpoint` (networks.junyanz_import.convert_checkpoint's `options`) and write the
    model folder `out`. model: their --model, pix2pix, cycle_gan or cut (default: cut for CUT's
    checkpoints (options["project"] "cut"), else pix2pix for U-Nets, cycle_gan for ResNets). `out`
    is apart from the checkpoints, gennorm's (empty, new, or a models/ folder) and written by one
    process at a time (gennorm.locks), and replaced whole: a kill at any moment leaves the old folder
    or the new one (networks.checkpoint.write_model_folder); without a discriminator imported, an
    earlier one in `out` is not kept (fine-tuning would start from it)."""
    out = Path(out)
    check_output_apart(out, [checkpoint, options.get("checkpoint_D")], "gennorm import")
    with write_model_folder(out, adopt=holds("generator.safetensors", "config.yaml")) as new:
        return _write_folder(checkpoint, out, new, model, **options)


def _write_folder(checkpoint: str | Path, out: Path, new: Path, model: str | None, **options) -> Imported:
    """Write the model folder `out` into the folder `new` (that then takes out's place)."""
    imported = convert_checkpoint(checkpoint, **options)
    opts, d_opts, g_path = imported.opts, imported.d_opts, imported.g_path
    task = model or ("cut" if imported.source == "cut" else "pix2pix" if opts.arch.startswith("unet") else "cycle_gan")
    cfg = from_dict({
        "out": str(out), "description": f"imported from {g_path.name} ({PROJECTS[imported.source]})",
        "model": {"g_arch": opts.arch, "ngf": opts.width, "g_norm": opts.norm, "use_dropout": opts.use_dropout,
                  "upsample": opts.upsample, "antialias": opts.antialias, "input_nc": opts.input_nc,
                  "output_nc": opts.output_nc,
                  **({"d_arch": d_opts.arch, "ndf": d_opts.width, "n_layers": d_opts.n_layers, "d_norm": d_opts.norm}
                     if d_opts else {})},
        "data": {"mode": "aligned" if task == "pix2pix" else "unaligned"},
        "train": {"task": {"pix2pix": "pix2pix", "cycle_gan": "cyclegan"}.get(task, task)},
    })
    meta = {"format": "gennorm-generator-1", "task": cfg.train.task, "dtype": "float32", "direction": "AtoB",
            "source": str(g_path), **options_metadata(generator_options(cfg.model, opts.input_nc, opts.output_nc))}
    atomic_write_bytes(new / "generator.safetensors",
                       save(imported.g_weights, metadata={**meta, **weights_metadata(imported.g_weights)}))
    if imported.d_weights is not None:
        d_meta = {**{k: v for k, v in meta.items() if not k.startswith("options")}, "source": str(imported.d_path),
                  # what D it is, checked when model.init_from loads it (as the generator's are)
                  **options_metadata(discriminator_options(cfg.model, d_opts.input_nc)),
                  **weights_metadata(imported.d_weights)}
        atomic_write_bytes(new / "discriminator.safetensors",
                           save(imported.d_weights, metadata=d_meta))
    atomic_write_bytes(new / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False).encode())
    atomic_write_bytes(new / "card.md", card(out, imported, task).encode())
    return imported
