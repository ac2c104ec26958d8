"""Releasing a run: its generator as a models/ folder (the library side of `gennorm export`).

A models/ folder holds one translation direction (AtoB of its config.yaml):

    config.yaml             the run's resolved config (for direction BtoA of a CycleGAN run:
                            channels and data.direction swapped so that it reads as AtoB)
    generator.safetensors   the generator's state dict (EMA weights when the run used EMA);
                            float32 (float16 with half=True; loaded back as float32);
                            metadata: format (FORMAT), task, step, dtype, direction, source, ema,
                            options + options_sha256 (the generator's build options, compared
                            with config.yaml's on loading: gennorm.networks.checkpoint),
                            weights_sha256 (the tensors' sha256, checked on every load)
    card.md                 task, data, the command that trained it, steps, hardware, wall
                            time, and metrics (from `gennorm eval --json`)
    training_log.jsonl      the run's logged losses per step (gennorm.zoo.TRAINING_LOG), when it logged any

`gennorm translate models/NAME INPUT OUTPUT`, `gennorm.load` and the demo load it
(gennorm.inference.loading). The run's checkpoint is read by
gennorm.inference.loading.run_generator_weights (gennorm.networks.checkpoint underneath), its
config by gennorm.config: nothing of gennorm.train.
"""
from __future__ import annotations

import json
from pathlib import Path

import yaml
from safetensors.torch import save

from gennorm.atomic import atomic_write_bytes
from gennorm.config import config_from_file, to_dict
from gennorm.errors import CheckpointError
from gennorm.paths import check_output_apart
from gennorm.inference.loading import run_generator_weights
from gennorm.locks import holds
from gennorm.networks.checkpoint import generator_options, options_metadata, weights_metadata, write_model_folder
from gennorm.zoo import TRAINING_LOG, read_training_log

FORMAT = "gennorm-generator-1"
MODEL_BEFORE_MARKERS = holds("generator.safetensors", "config.yaml")  # a models/ folder made before markers


TASK_SUMMARY = {"pix2pix": "paired, L1 + conditional GAN", "cyclegan": "unpaired, cycle + GAN",
                "cut": "unpaired, PatchNCE + GAN (CUT)"}


def _objective(t) -> str:
    """The loss weights of the run's task (t: its train config)."""
    if t.task == "pix2pix":
        return f"lambda_l1 {t.lambda_l1}"
    if t.task == "cut":
        return (f"lambda_gan {t.lambda_gan}, lambda_nce {t.lambda_nce}, nce_idt {t.nce_idt}, "
                f"flip_equivariance {t.flip_equivariance}, nce_t {t.nce_t}, num_patches {t.num_patches}")
    return f"lambda_cycle {t.lambda_cycle}, lambda_identity {t.lambda_identity}"


def _fmt_time(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}h {m:02d}m {s:02d}s" if h else f"{m}m {s:02d}s"


def _flatten_metrics(metrics: dict, prefix: str = "") -> list[tuple[str, object]]:
    rows = []
    for k, v in metrics.items():
        if isinstance(v, dict):
            rows += _flatten_metrics(v, f"{prefix}{k}.")
        elif isinstance(v, (int, float, str, bool)):
            rows.append((f"{prefix}{k}", v))
    return rows


def write_card(path: Path, name: str, cfg, state: dict, direction: str, dtype: str, n_params: int,
               command: str, metrics: dict | None, folder: Path | None = None) -> None:
    """card.md of a models/ folder: what the generator is, how it was trained, its metrics (`gennorm
    eval --json` output, or None), how to use it. folder: the model folder the card names (default:
    path's folder; export writes the card into a hidden folder that then takes the model's place)."""
    folder = path.parent if folder is None else Path(folder)
    m, d, t = cfg.model, cfg.data, cfg.train
    lines = [
        f"# {name}", "",
        f"{t.task} generator ({direction}), exported by `gennorm export` from a gennorm training run.", "",
        "| | |", "|---|---|",
        f"| task | {t.task} ({TASK_SUMMARY[t.task]}) |",
        f"| generator | {m.g_arch}, ngf {m.ngf}, norm `{m.g_norm}`, {n_params:,} parameters |",
        f"| discriminator (training only) | {m.d_arch}, ndf {m.ndf}, norm `{m.d_norm}` |",
        f"| data | `{d.root}` ({d.mode}, {d.direction}, {d.preprocess} {d.load_size} -> {d.crop_size}) |",
        f"| steps | {state['step']} of {t.max_steps} (batch {t.batch_size} x {state.get('world_size', 1)} ranks) |",
        f"| objective | gan_mode {t.gan_mode}, lr {t.lr}, {_objective(t)} |",
        f"| weights | {'EMA (decay ' + str(t.ema) + ')' if t.ema > 0 else 'raw (no EMA)'}, stored as {dtype}"
        + (" (exported with --half; loaded back as float32)" if dtype == "float16" else "") + " |",
        f"| mixed precision | {t.amp} |",
        f"| hardware | {str(state.get('hardware', 'unknown')).replace(' 1 threads)', ' 1 thread)')} |",  # older runs' text
        f"| wall time (training steps) | {_fmt_time(float(state.get('wall_time', 0.0)))} |", "",
        "## How it was trained", "", "```", command or "(command not recorded)", "```", "",
    ]
    if metrics:
        # `gennorm eval --json` output: the values under "metrics", the rest is how they were measured.
        values = metrics.get("metrics", metrics) if isinstance(metrics.get("metrics"), dict) else metrics
        lines += ["## Metrics", "", "| metric | value |", "|---|---|"]
        for k, v in _flatten_metrics(values):
            lines.append(f"| {k} | {v:.6g} |" if isinstance(v, float) else f"| {k} | {v} |")
        lines.append("")
        protocol = (metrics.get("protocol") or {}).get("name") if isinstance(metrics.get("protocol"), dict) else None
        skipped = metrics.get("skipped") if isinstance(metrics.get("skipped"), dict) else {}
        if "fid" in values or "kid" in values:  # gennorm.zoo reads this line back (ModelInfo.protocol)
            lines += [f"FID/KID protocol: **{protocol or 'not recorded'}**", ""]
        elif "fid" in skipped or "kid" in skipped:
            lines += ["FID/KID: not measured (the Inception weights were not on disk; see `gennorm weights status`).", ""]
        elif protocol:
            lines += ["FID/KID: not measured (not requested).", ""]
        counts = metrics.get("counts") if isinstance(metrics.get("counts"), dict) else {}
        if counts:
            lines += ["Images: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + ".", ""]
        details = [(k, v) for k, v in _flatten_metrics({k: v for k, v in metrics.items() if k != "metrics"})]
        if values is not metrics and details:
            if metrics.get("run"):
                lines += [f"Measured with `gennorm eval --run {metrics['run']}` (the run's test split).", ""]
            elif metrics.get("real") and metrics.get("fake"):
                lines += [f"Measured with `gennorm eval {metrics['real']} {metrics['fake']}`.", ""]
            lines += ["## Evaluation details", "", "| | |", "|---|---|"]
            lines += [f"| {k} | {v} |" for k, v in details] + [""]
    else:
        lines += ["## Metrics", "", "Not measured at export (see `gennorm eval`, then export with --metrics-json).", ""]
    lines += ["## Use", "", "```", f"gennorm translate {folder} INPUT_FOLDER OUTPUT_FOLDER", "```", "",
              "```python", "import gennorm",
              f"out = gennorm.load({str(folder)!r})(pil_image)", "```", ""]
    atomic_write_bytes(path, "\n".join(lines).encode())


def export_run(run_dir: str | Path, out: str | Path, direction: str = "AtoB", metrics: dict | None = None,
               name: str | None = None, half: bool = False) -> Path:
    """Write the models/ folder `out` from `run_dir`; returns `out`. `out` is apart from the run,
    gennorm's (empty, new, or a models/ folder), written by one process at a time and replaced
    whole: a kill at any moment leaves the old folder or the new one (networks.checkpoint.write_model_folder)."""
    run_dir, out = Path(run_dir), Path(out)
    check_output_apart(out, [run_dir], "gennorm export")
    with write_model_folder(out, adopt=MODEL_BEFORE_MARKERS) as new:
        _export_run(run_dir, out, new, direction, metrics, name, half)
    return out


def _export_run(run_dir: Path, out: Path, new: Path, direction: str, metrics: dict | None, name: str | None,
                half: bool) -> None:
    """Write the model folder `out` into the folder `new` (that then takes out's place)."""
    if not (run_dir / "config.yaml").is_file():
        raise CheckpointError(f"{run_dir}: not a run directory (no config.yaml)")
    cfg = config_from_file(run_dir / "config.yaml")
    run = run_generator_weights(run_dir, cfg, direction)
    state, ckpt_path = run.checkpoint, run.path
    weights = {k: v.detach().contiguous() for k, v in run.weights.items()}
    dtype = "float32"
    if half:
        weights = {k: v.half() if v.is_floating_point() else v for k, v in weights.items()}
        dtype = "float16"
    if direction == "BtoA":
        cfg.model.input_nc, cfg.model.output_nc = cfg.model.output_nc, cfg.model.input_nc
        cfg.data.direction = "BtoA" if cfg.data.direction == "AtoB" else "AtoB"
    n_params = sum(v.numel() for k, v in weights.items() if v.is_floating_point())
    meta = {"format": FORMAT, "task": cfg.train.task, "step": str(state["step"]), "dtype": dtype,
            "direction": direction, "source": str(ckpt_path), "ema": str(cfg.train.ema > 0),
            # what network the weights are (checked against config.yaml on every load)
            **options_metadata(generator_options(cfg.model, cfg.model.input_nc, cfg.model.output_nc)),
            **weights_metadata(weights)}  # the tensors' sha256, checked on every load
    atomic_write_bytes(new / "generator.safetensors", save(weights, metadata=meta))
    atomic_write_bytes(new / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False).encode())
    command_file = run_dir / "command.txt"
    command = command_file.read_text().strip() if command_file.is_file() else ""
    write_card(new / "card.md", name or out.name, cfg, state, direction, dtype, n_params, command, metrics,
               folder=out)
    log = _training_log(run_dir / "metrics.jsonl")
    if log:  # the losses per logged step, for the zoo's training curves (gennorm.zoo.ModelInfo.training_log)
        atomic_write_bytes(new / TRAINING_LOG, log.encode())
    # an earlier export's training log and an earlier import's discriminator are not carried over
    # (networks.checkpoint.MODEL_FILES): they are not this model's


def _training_log(path: Path) -> str:
    """The run's logged training steps, their numeric values only, as JSON lines; "" when none."""
    rows = [json.dumps({k: v for k, v in row.items() if isinstance(v, (int, float))})
            for row in read_training_log(path) if isinstance(row.get("step"), int)]
    return "\n".join(rows) + "\n" if rows else ""
