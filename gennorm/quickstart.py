"""`gennorm quickstart`: the main job end to end on the built-in data, on a CPU, offline.

1. writes the scenes dataset (label map -> photo) at a small size, unless it is there;
2. trains a small pix2pix generator with normalized convolution (NC) on the CPU;
3. translates the test split with the trained model and with the untrained one (step 0:
   same architecture and seed), so the gain from training is measured, not assumed;
4. measures PSNR / SSIM (and FID / KID / LPIPS when their weights are on disk) and writes
   OUT/report.html (side by side: input | untrained | trained | target, plus numbers) and
   OUT/report.json.

Everything lives under --out (default `quickstart/`); running it again reuses the data and a
finished run (an interrupted run is resumed).
"""
from __future__ import annotations

import html
import json
import sys
import time
from pathlib import Path

DESCRIPTION = """\
Train and evaluate a small pix2pix-NC model on the built-in scenes data, on the CPU, in a few
minutes; write OUT/report.html (images side by side + PSNR/SSIM of the trained vs the
untrained model) and OUT/report.json.

examples:
  gennorm quickstart
  gennorm quickstart --out /tmp/qs --steps 400
  gennorm quickstart --size 32 --steps 100        # a smoke run in well under a minute
"""

# Tuned on a busy 2-core CPU: see the measured wall time and PSNR gain in the report.
DEFAULT_STEPS = 160
DEFAULT_SIZE = 64
DEFAULT_COUNT = 160


def add_arguments(parser) -> None:
    parser.add_argument("--out", default="quickstart", help="output folder (default: quickstart)")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"training steps (default {DEFAULT_STEPS})")
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE, help=f"image size (default {DEFAULT_SIZE})")
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT, help=f"scenes to generate (default {DEFAULT_COUNT})")
    parser.add_argument("--ngf", type=int, default=16, help="generator width (default 16)")
    parser.add_argument("--norm", default="nc", help="generator norm (default nc)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")


def quickstart_config(out: Path, args):
    from gennorm.config import load_config

    size = args.size
    return load_config({
        "out": str(out / "run"),
        "description": "gennorm quickstart: small pix2pix-NC on the built-in scenes",
        "model": {"g_arch": "resnet_6blocks", "ngf": args.ngf, "g_norm": args.norm, "d_arch": "basic",
                  "ndf": 16, "d_norm": "instance"},
        "data": {"root": str(out / "data" / "paired"), "mode": "aligned", "load_size": size, "crop_size": size,
                 "preprocess": "resize_and_crop"},
        "train": {"task": "pix2pix", "max_steps": args.steps, "batch_size": 4, "seed": args.seed, "lr": 1e-3,
                  "decay_start": args.steps // 2, "checkpoint_every": max(args.steps // 4, 1),
                  "sample_every": max(args.steps // 4, 1), "log_every": 10, "keep_last": 2,
                  "device": args.device, "num_samples": 6},
    })


def untrained_translator(cfg, device: str):
    """The step-0 generator: the same architecture and seed as the trained run's."""
    import torch

    from gennorm.train.checkpoint import seed_everything
    from gennorm.train.loop import make_task
    from gennorm.inference import Translator

    seed_everything(cfg.train.seed)
    task = make_task(cfg, torch.device(device))
    return Translator(task.nets["G"], cfg, torch.device(device), "untrained (step 0)")


def measure(real: Path, fake: Path, device: str) -> dict:
    """{metric: value} for PSNR/SSIM and every metric whose weights are on disk, plus "_raw"."""
    from gennorm.metrics import available_metrics, evaluate_folders

    names = available_metrics()
    result = evaluate_folders(real, fake, metrics=names, device=device, progress=False)
    return {k: v for k, v in result["metrics"].items()} | {"_raw": result}


def _num(result: dict, key: str):
    return result.get(key)


def write_report(out: Path, numbers: dict, names: list[str], info: dict) -> Path:
    from gennorm.atomic import atomic_write_bytes

    metric_names = [k for k in numbers["trained"] if not k.startswith("_")]
    rows = "".join(
        f"<tr><td>{html.escape(m.upper())}</td><td>{_fmt(_num(numbers['untrained'], m))}</td>"
        f"<td><b>{_fmt(_num(numbers['trained'], m))}</b></td></tr>" for m in metric_names)
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


def run(args) -> int:
    from gennorm.data import generate_scenes
    from gennorm.train.loop import hardware_string, train
    from gennorm.inference import load_translator, translate_folder

    import torch

    start = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = quickstart_config(out, args)
    print(f"[1/4] data: {out / 'data'} ({args.count} scenes, {args.size}px)", file=sys.stderr)
    generate_scenes(out / "data", size=args.size, count=args.count, seed=args.seed)

    run_dir = Path(cfg.out)
    print(f"[2/4] training pix2pix-{args.norm} for {args.steps} steps on {args.device} -> {run_dir}", file=sys.stderr)
    t0 = time.perf_counter()
    from gennorm.train.checkpoint import list_checkpoints

    if list_checkpoints(run_dir / "checkpoints"):
        train(resume_dir=run_dir, overrides=[f"train.max_steps={args.steps}"])
    else:
        train(cfg)
    train_time = time.perf_counter() - t0

    print("[3/4] translating the test split (trained and untrained models)", file=sys.stderr)
    test_dir = Path(cfg.data.root) / "test"
    trained = load_translator(run_dir, args.device)
    written = translate_folder(trained, test_dir, out / "translated" / "trained", aligned=True)
    translate_folder(untrained_translator(cfg, args.device), test_dir, out / "translated" / "untrained", aligned=True)

    print("[4/4] measuring", file=sys.stderr)
    numbers = {}
    for which in ("untrained", "trained"):
        folder = out / "translated" / which
        numbers[which] = measure(folder / "targets", folder, args.device)
    gain = float(_num(numbers["trained"], "psnr")) - float(_num(numbers["untrained"], "psnr"))
    wall = time.perf_counter() - start
    info = {"norm": args.norm, "steps": args.steps, "n_test": len(written), "psnr_gain": gain,
            "wall_time_s": wall, "train_time_s": train_time, "run_dir": str(run_dir),
            "hardware": hardware_string(torch.device(args.device)),
            "summary": f"ResNet-6 generator (ngf {args.ngf}, norm {args.norm}), PatchGAN discriminator, "
                       f"{args.size}x{args.size} images, batch 4, {args.steps} steps, seed {args.seed}."}
    write_report(out, numbers, [p.name for p in written], info)
    report = {"untrained": {k: v for k, v in numbers["untrained"].items() if k != "_raw"},
              "trained": {k: v for k, v in numbers["trained"].items() if k != "_raw"},
              "metrics_detail": {k: numbers[k]["_raw"] for k in numbers}, **info,
              "config": str(run_dir / "config.yaml")}
    from gennorm.atomic import atomic_write_bytes

    atomic_write_bytes(out / "report.json", json.dumps(report, indent=2, default=str).encode())
    pt, pu = _num(numbers["trained"], "psnr"), _num(numbers["untrained"], "psnr")
    print(f"\nPSNR on the test split: trained {pt:.2f} dB vs untrained {pu:.2f} dB ({gain:+.2f} dB); "
          f"SSIM {_num(numbers['trained'], 'ssim'):.3f} vs {_num(numbers['untrained'], 'ssim'):.3f}. "
          f"Wall time {wall:.0f} s.")
    print(f"open {out / 'report.html'} (side by side + numbers); training samples: {run_dir / 'index.html'}")
    print(f"try the model on your own label maps: gennorm translate {run_dir} INPUT_FOLDER OUTPUT_FOLDER")
    print("compare models interactively: gennorm demo   (then open the printed http://127.0.0.1 address)")
    return 0
