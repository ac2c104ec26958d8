"""Loading: a Translator from a run directory, a models/ folder or a zoo name.

MODEL is a run directory (gennorm train's `out`: config.yaml + checkpoints/, the latest readable
checkpoint, EMA weights when the run used EMA), a models/ folder (gennorm export: config.yaml +
generator.safetensors) or the name of a zoo model (gennorm.zoo.find_model). The network is
rebuilt from the saved config.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch

from gennorm.config import ONE_GENERATOR_TASKS, config_from_file
from gennorm.errors import CheckpointError, ConfigError
from gennorm.inference.translator import Translator
from gennorm.networks import load_network_state
from gennorm.networks.checkpoint import (check_finite_weights, check_train_checkpoint, checkpoint_name, load_latest,
                                         load_torch, options_from_metadata, read_safetensors, verify_content)
from gennorm.networks.factory import build_generator_from
from gennorm.zoo import find_model

GENERATOR_FILE = "generator.safetensors"
DIRECTIONS = ("AtoB", "BtoA")


def generator_name(cfg, direction: str) -> str:
    """The network of a run that translates `direction`: G (pix2pix, CUT), G_A / G_B (CycleGAN)."""
    if direction not in DIRECTIONS:
        raise ConfigError(f"direction {direction!r}: allowed: {', '.join(DIRECTIONS)}")
    if cfg.train.task in ONE_GENERATOR_TASKS:
        if direction != "AtoB":
            raise ConfigError(f"direction {direction!r}: a {cfg.train.task} model translates one way only; "
                              "allowed: AtoB")
        return "G"
    return "G_A" if direction == "AtoB" else "G_B"


class RunWeights(NamedTuple):
    weights: dict  # the generator's state dict
    options: dict | None  # its saved build options (net.options), for mismatch messages
    checkpoint: dict  # the whole checkpoint (step, world_size, ...)
    path: Path  # the checkpoint file
    ema: bool  # weights are the EMA copy


def run_generator_weights(run_dir: Path, cfg, direction: str, step: int | None = None) -> RunWeights:
    """A run's generator for `direction` from its latest readable checkpoint, or the one of `step`
    (the EMA copy when the run kept one)."""
    if step is None:
        state, ckpt_path = load_latest(Path(run_dir) / "checkpoints")  # content hash and structure checked
    else:
        ckpt_path = Path(run_dir) / "checkpoints" / checkpoint_name(step)
        state = load_torch(ckpt_path)
        verify_content(state, ckpt_path)
        check_train_checkpoint(state, ckpt_path)
    name = generator_name(cfg, direction)
    task_state = state["task"]
    ema = task_state.get("ema") if isinstance(task_state.get("ema"), dict) else {}
    if name not in task_state["nets"]:
        raise CheckpointError(f"checkpoint {ckpt_path} has no generator {name!r} (it holds "
                              f"{', '.join(task_state['nets']) or 'no networks'}), but {Path(run_dir) / 'config.yaml'} "
                              f"is a {cfg.train.task} run: the checkpoint belongs to another run")
    weights = ema.get(name) if ema.get(name) is not None else task_state["nets"][name]
    check_finite_weights(weights, f"checkpoint {ckpt_path} ({name}{' EMA' if ema.get(name) is not None else ''})")
    options = task_state.get("options") if isinstance(task_state.get("options"), dict) else {}
    return RunWeights(weights, options.get(name), state, ckpt_path, ema.get(name) is not None)


def _read_config(folder: Path):
    path = folder / "config.yaml"
    if not path.is_file():
        raise CheckpointError(f"{folder}: no config.yaml (expected a run directory or a models/ folder)")
    return config_from_file(path)


def _build(cfg, direction: str, state: dict | Path, what: str, options: dict | None = None):
    """(generator of `cfg` for `direction` with `state` loaded, metadata). `state`: a state dict,
    or a model folder's generator.safetensors, read after the network is built so that its header
    is checked against the network before any tensor is read, and the build options recorded in
    it (gennorm.networks.checkpoint.options_metadata) are compared with the config's."""
    m = cfg.model
    ins, outs = (m.input_nc, m.output_nc) if direction == "AtoB" else (m.output_nc, m.input_nc)
    net, meta = build_generator_from(m, ins, outs), {}
    if isinstance(state, Path):
        state, meta = read_safetensors(state, net.state_dict())
        options = options_from_metadata(meta, Path(what))
    check_finite_weights(state, what)
    try:
        load_network_state(net, state, options)
    except CheckpointError as err:
        raise CheckpointError(f"{what}: {err}") from None
    return net, meta


def resolve_model(model: str | Path) -> Path:
    """A model folder from a path or a zoo name (see gennorm.zoo.find_model)."""
    path = Path(model)
    if path.is_dir():
        return path
    found = find_model(str(model))
    if found is None:
        raise CheckpointError(f"{model}: no such model (expected a run directory, a models/ folder or a zoo "
                              "model name; `gennorm zoo list` lists the zoo)")
    return found


def load_translator(model: str | Path, device="cpu", direction: str = "AtoB", checkpoint: int | str = "latest",
                    train_mode: bool = False, dtype=None, tile: int | None = None,
                    overlap: int | str = "auto") -> Translator:
    """A Translator from a run directory, a models/ folder or a zoo name (see the module docstring).

    checkpoint: a run directory's step to load ("latest": the newest readable one). train_mode:
    run the generator in train mode (batch norm on the batch's statistics, dropout on), as
    pytorch-CycleGAN-and-pix2pix's test.py does unless given --eval. dtype: the network's dtype
    (torch.bfloat16 / float16 on a GPU; default float32). tile: translate images larger than this
    tile by tile (see Translator.margin; exact for local-statistics norms)."""
    path = resolve_model(model)
    device = torch.device(device)
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be 'AtoB' or 'BtoA', got {direction!r}")
    cfg = _read_config(path)
    if (path / GENERATOR_FILE).is_file():
        if direction != "AtoB":
            raise ConfigError(f"direction {direction!r}: a models/ folder holds the AtoB generator only")
        if checkpoint != "latest":
            raise ConfigError(f"checkpoint {checkpoint!r}: {path} is a model folder (one generator), not a run directory")
        net, meta = _build(cfg, "AtoB", path / GENERATOR_FILE, str(path / GENERATOR_FILE))
        return Translator(net, cfg, device, str(path), "AtoB", meta, train_mode, dtype, tile, overlap)
    run = run_generator_weights(path, cfg, direction, None if checkpoint == "latest" else int(checkpoint))
    meta = {"step": str(run.checkpoint["step"]), "ema": str(run.ema), "checkpoint": str(run.path)}
    net, _ = _build(cfg, direction, run.weights, str(run.path), run.options)
    return Translator(net, cfg, device, str(path), direction, meta, train_mode, dtype, tile, overlap)


load = load_translator  # gennorm.load
