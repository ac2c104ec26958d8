"""`gennorm export RUN_DIR models/NAME`: a run's generator as a models/ folder.

A models/ folder holds one translation direction (AtoB of its config.yaml):

    config.yaml             the run's resolved config (for --direction BtoA of a CycleGAN run:
                            channels and data.direction swapped so that it reads as AtoB)
    generator.safetensors   the generator's state dict (EMA weights when the run used EMA);
                            float32 (float16 with --half; loaded back as float32);
                            metadata: format, task, step, dtype, direction, source
    card.md                 task, data, the command that trained it, steps, hardware, wall
                            time, and metrics (from `gennorm eval --json`, via --metrics-json)

`gennorm translate models/NAME INPUT OUTPUT`, `gennorm.load` and the demo load it (gennorm.inference).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from gennorm.zoo import TRAINING_LOG, read_training_log  # torch-free

DESCRIPTION = """\
Export a run directory's generator (latest checkpoint, EMA weights if used) as a models/
folder: config.yaml, generator.safetensors (float32; float16 with --half), card.md.

examples:
  gennorm export runs/p2p-nc models/scenes-pix2pix-nc
  gennorm eval out/real out/fake --json m.json && gennorm export runs/p2p-nc models/x --metrics-json m.json
  gennorm export runs/cg-nc models/scenes-cyclegan-nc-BtoA --direction BtoA
  gennorm export scenes-nc scenes-nc.onnx --format onnx          # any model: run dir, folder, zoo name
  gennorm export models/scenes-nc scenes-nc.pt2 --format torch-export

--format onnx | torch-export write one file (OUT) holding the generator as a graph with dynamic
height and width (multiples of its size grid): ONNX with standard operators only (NC and KN
decompose into convolutions, pooling and arithmetic; run it with onnxruntime), or a torch.export
program (torch.export.load). Input [1, C, H, W] in [-1, 1], output the same.
"""

FORMAT = "gennorm-generator-1"


FORMATS = ("safetensors", "onnx", "torch-export")


def add_arguments(parser) -> None:
    parser.add_argument("run_dir", metavar="MODEL", help="a training run directory (any model for onnx / torch-export)")
    parser.add_argument("out", help="the models/ folder to write (e.g. models/scenes-pix2pix-nc), or the file")
    parser.add_argument("--format", choices=FORMATS, default="safetensors",
                        help="safetensors: a models/ folder (default); onnx / torch-export: one graph file")
    parser.add_argument("--size", type=int, default=256, help="onnx / torch-export: the example input's side")
    parser.add_argument("--direction", choices=("AtoB", "BtoA"), default="AtoB",
                        help="which generator (BtoA: a CycleGAN run's second generator)")
    parser.add_argument("--metrics-json", metavar="FILE", help="metrics to put in the card (gennorm eval --json)")
    parser.add_argument("--name", help="title of the card (default: the folder name)")
    parser.add_argument("--half", action="store_true", help="store the weights as float16 (half the size)")


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
               command: str, metrics: dict | None) -> None:
    from gennorm.atomic import atomic_write_bytes

    m, d, t = cfg.model, cfg.data, cfg.train
    lines = [
        f"# {name}", "",
        f"{t.task} generator ({direction}), exported by `gennorm export` from a gennorm training run.", "",
        "| | |", "|---|---|",
        f"| task | {t.task} ({'paired, L1 + conditional GAN' if t.task == 'pix2pix' else 'unpaired, cycle + GAN'}) |",
        f"| generator | {m.g_arch}, ngf {m.ngf}, norm `{m.g_norm}`, {n_params:,} parameters |",
        f"| discriminator (training only) | {m.d_arch}, ndf {m.ndf}, norm `{m.d_norm}` |",
        f"| data | `{d.root}` ({d.mode}, {d.direction}, {d.preprocess} {d.load_size} -> {d.crop_size}) |",
        f"| steps | {state['step']} of {t.max_steps} (batch {t.batch_size} x {state.get('world_size', 1)} ranks) |",
        f"| objective | gan_mode {t.gan_mode}, lr {t.lr}, " + (f"lambda_l1 {t.lambda_l1}" if t.task == "pix2pix" else
                                                              f"lambda_cycle {t.lambda_cycle}, "
                                                              f"lambda_identity {t.lambda_identity}") + " |",
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
    lines += ["## Use", "", "```", f"gennorm translate {path.parent} INPUT_FOLDER OUTPUT_FOLDER", "```", "",
              "```python", "import gennorm",
              f"out = gennorm.load({str(path.parent)!r})(pil_image)", "```", ""]
    atomic_write_bytes(path, "\n".join(lines).encode())


def export_run(run_dir: str | Path, out: str | Path, direction: str = "AtoB", metrics: dict | None = None,
               name: str | None = None, half: bool = False) -> Path:
    """Write the models/ folder `out` from `run_dir`; returns `out`."""
    import yaml
    from safetensors.torch import save

    from gennorm.errors import CheckpointError
    from gennorm.atomic import atomic_write_bytes
    from gennorm.config import config_from_file, to_dict
    from gennorm.inference import run_generator_weights

    run_dir, out = Path(run_dir), Path(out)
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
            "direction": direction, "source": str(ckpt_path), "ema": str(cfg.train.ema > 0)}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "generator.safetensors", save(weights, metadata=meta))
    atomic_write_bytes(out / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False).encode())
    command_file = run_dir / "command.txt"
    command = command_file.read_text().strip() if command_file.is_file() else ""
    write_card(out / "card.md", name or out.name, cfg, state, direction, dtype, n_params, command, metrics)
    log = _training_log(run_dir / "metrics.jsonl")
    if log:  # the losses per logged step, for the zoo's training curves (gennorm.zoo.ModelInfo.training_log)
        atomic_write_bytes(out / TRAINING_LOG, log.encode())
    elif (out / TRAINING_LOG).is_file():  # not the log of an earlier export into this folder
        (out / TRAINING_LOG).unlink()
    return out


def _training_log(path: Path) -> str:
    """The run's logged training steps, their numeric values only, as JSON lines; "" when none."""
    rows = [json.dumps({k: v for k, v in row.items() if isinstance(v, (int, float))})
            for row in read_training_log(path) if isinstance(row.get("step"), int)]
    return "\n".join(rows) + "\n" if rows else ""


def run(args) -> int:
    from gennorm.errors import ConfigError

    metrics = None
    if args.metrics_json:
        try:
            metrics = json.loads(Path(args.metrics_json).read_text())
        except (OSError, ValueError) as err:
            raise ConfigError(f"--metrics-json {args.metrics_json}: cannot read a JSON object ({err})") from None
        if not isinstance(metrics, dict):
            raise ConfigError(f"--metrics-json {args.metrics_json}: expected a JSON object of metrics")
    if args.format != "safetensors":
        from gennorm.inference import export_onnx, export_program, load_translator

        translator = load_translator(args.run_dir, "cpu", args.direction)
        write = export_onnx if args.format == "onnx" else export_program
        out = write(translator, args.out, args.size)
        print(f"exported {args.run_dir} -> {out} ({args.format}, dynamic height and width)", file=sys.stderr)
        return 0
    out = export_run(args.run_dir, args.out, args.direction, metrics, args.name, args.half)
    files = ", ".join(f for f in ("config.yaml", "generator.safetensors", "card.md", TRAINING_LOG) if (out / f).is_file())
    print(f"exported {args.run_dir} -> {out} ({files})", file=sys.stderr)
    return 0
