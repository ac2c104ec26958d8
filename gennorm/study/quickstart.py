"""The quickstart: the main job end to end on the built-in data, on a CPU, offline (`gennorm quickstart`).

1. writes the scenes dataset (label map -> photo) at a small size, unless it is there;
2. trains a small pix2pix generator with normalized convolution (NC) on the CPU;
3. translates the test split with the trained model and with the untrained one (step 0:
   same architecture and seed), so the gain from training is measured, not assumed;
4. measures PSNR / SSIM (and FID / KID / LPIPS when their weights are on disk) and writes
   OUT/report.html (side by side: input | untrained | trained | target, plus numbers) and
   OUT/report.json.

Everything lives under `out`; running it again reuses the data and a finished run made with
the same settings (one made with another --norm, --ngf, --size or --seed is refused; an
interrupted run is resumed). It uses train, metrics and inference (siblings of level 4), so it
lives at level 5, with the study.
"""
from __future__ import annotations

import html
import json
import sys
import time
from pathlib import Path

import torch

from gennorm.atomic import atomic_write_bytes
from gennorm.config import Config, changed_keys, config_from_file, flatten, load_config, to_dict
from gennorm.errors import ConfigError
from gennorm.data import generate_scenes
from gennorm.inference import Translator, load_translator, translate_folder
from gennorm.metrics import available_metrics, evaluate_folders
from gennorm.train.checkpoint import list_checkpoints, seed_everything
from gennorm.train.loop import hardware_string, make_task, train


def quickstart_config(out: Path, steps: int, size: int, ngf: int = 16,
                      norm: str = "nc", seed: int = 0, device: str = "cpu") -> Config:
    return load_config({
        "out": str(out / "run"),
        "description": "gennorm quickstart: small pix2pix-NC on the built-in scenes",
        "model": {"g_arch": "resnet_6blocks", "ngf": ngf, "g_norm": norm, "d_arch": "basic",
                  "ndf": 16, "d_norm": "instance"},
        "data": {"root": str(out / "data" / "paired"), "mode": "aligned", "load_size": size, "crop_size": size,
                 "preprocess": "resize_and_crop"},
        "train": {"task": "pix2pix", "max_steps": steps, "batch_size": 4, "seed": seed, "lr": 1e-3,
                  "decay_start": steps // 2, "checkpoint_every": max(steps // 4, 1),
                  "sample_every": max(steps // 4, 1), "log_every": 10, "keep_last": 2,
                  "device": device, "num_samples": 6},
    })


def check_existing_run(cfg: Config) -> None:
    """ConfigError when OUT/run holds a run made with other settings (another --norm, --ngf,
    --size, --seed): resuming it would report that run under this quickstart's settings. The
    keys are compared as `gennorm train --resume` compares them (gennorm.config.changed_keys)."""
    saved = Path(cfg.out) / "config.yaml"
    if not saved.is_file():
        return
    for key, old, new in changed_keys(flatten(to_dict(config_from_file(saved))), flatten(to_dict(cfg)))[:1]:
        raise ConfigError(f"{cfg.out} holds a quickstart run made with {key}={old!r}; this quickstart asks for "
                          f"{key}={new!r}: choose another --out, or remove {cfg.out} to train again")


def untrained_translator(cfg: Config, device: str) -> Translator:
    """The step-0 generator: the same architecture and seed as the trained run's."""
    seed_everything(cfg.train.seed)
    task = make_task(cfg, torch.device(device))
    return Translator(task.nets["G"], cfg, torch.device(device), "untrained (step 0)")


def measure(real: Path, fake: Path, device: str) -> dict:
    """{metric: value} for PSNR/SSIM and every metric whose weights are on disk, plus "_raw"."""
    names = available_metrics()
    result = evaluate_folders(real, fake, metrics=names, device=device, progress=False)
    return {k: v for k, v in result["metrics"].items()} | {"_raw": result}


def write_report(out: Path, numbers: dict, names: list[str], info: dict) -> Path:
    metric_names = [k for k in numbers["trained"] if not k.startswith("_")]
    rows = "".join(
        f"<tr><td>{html.escape(m.upper())}</td><td>{_fmt(numbers['untrained'].get(m))}</td>"
        f"<td><b>{_fmt(numbers['trained'].get(m))}</b></td></tr>" for m in metric_names)
    style = 'style="width:160px;image-rendering:pixelated"'
    images = "".join(
        f"<tr><td><img {style} src='translated/trained/inputs/{html.escape(n)}'></td>"
        f"<td><img {style} src='translated/untrained/{html.escape(n)}'></td>"
        f"<td><img {style} src='translated/trained/{html.escape(n)}'></td>"
        f"<td><img {style} src='translated/trained/targets/{html.escape(n)}'></td></tr>" for n in names)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>gennorm quickstart</title>
<style>body{{font-family:sans-serif;margin:2em}} td,th{{padding:4px 10px;text-align:center}}</style></head><body>
<h1>gennorm quickstart: pix2pix with {html.escape(info['norm'])} on the scenes data</h1>
<p>{html.escape(info['summary'])}</p>
<h2>Test split ({info['n_test']} images): untrained (step 0) vs trained</h2>
<table border="1" cellspacing="0"><tr><th>metric</th><th>untrained (step 0)</th><th>trained ({info['steps']} steps)</th></tr>
{rows}</table>
<p>PSNR gain from training: <b>{info['psnr_gain']:+.2f} dB</b>. Wall time: {info['wall_time_s']:.0f} s
(training {info['train_time_s']:.0f} s) on {html.escape(info['hardware'])}.</p>
<h2>Label map | untrained | trained | photo (target)</h2>
<table>{images}</table>
<p>Training run: <a href="run/index.html">run/index.html</a> (sample grids), run/metrics.jsonl, TensorBoard
events in run/. Model: run/ (use <code>gennorm translate {html.escape(info['run_dir'])} INPUT OUTPUT</code>).</p>
</body></html>
"""
    path = out / "report.html"
    atomic_write_bytes(path, page.encode())
    return path


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, (int, float)) else html.escape(str(v))


def run_quickstart(out: str | Path, steps: int, size: int, count: int, ngf: int = 16, norm: str = "nc",
                   seed: int = 0, device: str = "cpu") -> dict:
    """Steps 1-4 (progress on stderr); returns report.json's content (also written to OUT/report.json).

    `gennorm quickstart`'s defaults (steps 160, size 64, count 160) are tuned on a busy 2-core CPU."""
    start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = quickstart_config(out, steps, size, ngf, norm, seed, device)
    print(f"[1/4] data: {out / 'data'} ({count} scenes, {size}px)", file=sys.stderr)
    generate_scenes(out / "data", size=size, count=count, seed=seed)

    run_dir = Path(cfg.out)
    print(f"[2/4] training pix2pix-{norm} for {steps} steps on {device} -> {run_dir}", file=sys.stderr)
    t0 = time.perf_counter()
    check_existing_run(cfg)
    if list_checkpoints(run_dir / "checkpoints"):
        train(resume_dir=run_dir, overrides=[f"train.max_steps={steps}"])
    else:
        train(cfg)
    train_time = time.perf_counter() - t0

    print("[3/4] translating the test split (trained and untrained models)", file=sys.stderr)
    test_dir = Path(cfg.data.root) / "test"
    trained = load_translator(run_dir, device)
    written = translate_folder(trained, test_dir, out / "translated" / "trained", aligned=True)
    translate_folder(untrained_translator(cfg, device), test_dir, out / "translated" / "untrained", aligned=True)

    print("[4/4] measuring", file=sys.stderr)
    numbers = {}
    for which in ("untrained", "trained"):
        folder = out / "translated" / which
        numbers[which] = measure(folder / "targets", folder, device)
    gain = float(numbers["trained"].get("psnr")) - float(numbers["untrained"].get("psnr"))
    wall = time.perf_counter() - start
    info = {"norm": norm, "steps": steps, "n_test": len(written), "psnr_gain": gain,
            "wall_time_s": wall, "train_time_s": train_time, "run_dir": str(run_dir),
            "hardware": hardware_string(torch.device(device)),
            "summary": f"ResNet-6 generator (ngf {ngf}, norm {norm}), PatchGAN discriminator, "
                       f"{size}x{size} images, batch 4, {steps} steps, seed {seed}."}
    write_report(out, numbers, [p.name for p in written], info)
    report = {"untrained": {k: v for k, v in numbers["untrained"].items() if k != "_raw"},
              "trained": {k: v for k, v in numbers["trained"].items() if k != "_raw"},
              "metrics_detail": {k: numbers[k]["_raw"] for k in numbers}, **info,
              "config": str(run_dir / "config.yaml")}
    atomic_write_bytes(out / "report.json", json.dumps(report, indent=2, default=str).encode())
    return report


def summary(report: dict, out: str | Path) -> str:
    """What `gennorm quickstart` prints at the end: the numbers and where to look next."""
    trained, untrained, out, run_dir = report["trained"], report["untrained"], Path(out), report["run_dir"]
    return "\n".join([
        f"\nPSNR on the test split: trained {trained['psnr']:.2f} dB vs untrained {untrained['psnr']:.2f} dB "
        f"({report['psnr_gain']:+.2f} dB); SSIM {trained['ssim']:.3f} vs {untrained['ssim']:.3f}. "
        f"Wall time {report['wall_time_s']:.0f} s.",
        f"open {out / 'report.html'} (side by side + numbers); training samples: {Path(run_dir) / 'index.html'}",
        f"try the model on your own label maps: gennorm translate {run_dir} INPUT_FOLDER OUTPUT_FOLDER",
        "compare models interactively: gennorm demo   (then open the printed http://127.0.0.1 address)",
    ])
