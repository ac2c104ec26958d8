"""The study report: Markdown tables (mean +- std over seeds, best per column in bold), plots
(loss curves, metric vs batch size, time per step), a side-by-side image grid, and the exact
commands, versions and hardware. Built only from files in the study directory, so running it
again on a finished study regenerates the same report without training anything.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

import gennorm  # noqa: E402
from gennorm.study.spec import TASKS, StudySpec, runs_of  # noqa: E402

HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "fid": False, "kid": False, "lpips": False}


def _results(spec: StudySpec) -> dict[str, dict]:
    out = {}
    for run in runs_of(spec):
        path = Path(spec.out) / "runs" / run.run_id / "eval.json"
        if path.exists():
            out[run.run_id] = json.loads(path.read_text())
    return out


def _metric_values(result: dict) -> dict[str, float]:
    """Flat {metric: value} from an evaluate_folders() result."""
    values = result["eval"].get("metrics", result["eval"])
    flat = {}
    for name, value in values.items():
        if isinstance(value, dict):
            value = value.get("value", value.get("mean"))
        if isinstance(value, (int, float)) and name.lower() in HIGHER_IS_BETTER:
            flat[name.lower()] = float(value)
    return flat


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _fmt(metric: str, mean: float, std: float) -> str:
    digits = 4 if metric in ("ssim", "kid", "lpips") else 2
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _table(spec: StudySpec, task: str, results: dict) -> list[str]:
    """Rows: norms (and D variants); columns: metric @ batch size."""
    cells: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    metrics: list[str] = []
    rows: list[str] = []
    for run in runs_of(spec):
        if run.task != task or run.run_id not in results:
            continue
        rows += [run.label] if run.label not in rows else []
        for metric, value in _metric_values(results[run.run_id]).items():
            metrics += [metric] if metric not in metrics else []
            cells[(run.label, metric, run.batch_size)].append(value)
    columns = [(m, bs) for m in metrics for bs in spec.batch_sizes if any((r, m, bs) in cells for r in rows)]
    if not columns:
        return [f"_no finished runs for task {task}_", ""]
    best = {}
    for m, bs in columns:
        means = {r: _mean_std(cells[(r, m, bs)])[0] for r in rows if (r, m, bs) in cells}
        best[(m, bs)] = (max if HIGHER_IS_BETTER[m] else min)(means, key=means.get)
    header = "| norm | " + " | ".join(f"{m.upper()} {'↑' if HIGHER_IS_BETTER[m] else '↓'} (bs {bs})" for m, bs in columns) + " |"
    lines = [header, "|" + "---|" * (len(columns) + 1)]
    for r in rows:
        row = []
        for m, bs in columns:
            if (r, m, bs) not in cells:
                row.append("–")
                continue
            text = _fmt(m, *_mean_std(cells[(r, m, bs)])) + f" (n={len(cells[(r, m, bs)])})"
            row.append(f"**{text}**" if best[(m, bs)] == r else text)
        lines.append(f"| {r} | " + " | ".join(row) + " |")
    return lines + [""]


def _methods_table(spec: StudySpec, results: dict) -> list[str]:
    """The unpaired methods side by side (CycleGAN / CUT / FastCUT on the same data): rows norm x
    method at the first batch size and D norm; the metrics (mean +- std over seeds), the training
    wall time, the median time per step and the training process's peak memory."""
    tasks = [t for t in spec.tasks if TASKS[t].data == "unpaired"]
    if len(tasks) < 2:
        return []
    rows: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for run in runs_of(spec):
        if (run.task in tasks and run.run_id in results and run.batch_size == spec.batch_sizes[0]
                and run.d_norm == spec.d_norms[0]):
            rows[(run.g_norm, run.task)].append(results[run.run_id])
    if not rows:
        return []
    metrics = list(dict.fromkeys(m for rs in rows.values() for r in rs for m in _metric_values(r)))
    lines = ["## Unpaired methods (" + " vs ".join(TASKS[t].method for t in tasks) + ")", "",
             f"Same data, generator, steps and batch size ({spec.batch_sizes[0]}); A -> B against the true photos. "
             "Time and memory: the whole `gennorm train` process on this machine (peak resident memory).", "",
             "| norm | method | " + " | ".join(f"{m.upper()} {'↑' if HIGHER_IS_BETTER[m] else '↓'}" for m in metrics)
             + " | training min | ms / step | peak memory MiB |",
             "|" + "---|" * (len(metrics) + 5)]
    for norm in spec.norms:
        for task in tasks:
            rs = rows.get((norm, task))
            if not rs:
                continue
            cells = [_fmt(m, *_mean_std([_metric_values(r)[m] for r in rs if m in _metric_values(r)]))
                     if any(m in _metric_values(r) for r in rs) else "–" for m in metrics]
            minutes = statistics.fmean(r.get("train_seconds", 0.0) for r in rs) / 60
            steps = [s for r in rs if (s := _step_seconds(_read_log(Path(spec.out) / "runs" / r["run"]))) is not None]
            peaks = [r["train_peak_rss_mib"] for r in rs if "train_peak_rss_mib" in r]
            lines.append(f"| {norm} | {TASKS[task].method} | " + " | ".join(cells) + f" | {minutes:.1f} | "
                         + (f"{statistics.median(steps) * 1000:.0f}" if steps else "–") + " | "
                         + (f"{max(peaks):.0f}" if peaks else "–") + " |")
    return lines + [""]


def _read_log(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip().startswith("{")]


NOT_LOSSES = {"step", "epoch", "lr", "step_time", "time"}


def _generator_loss(record: dict) -> float | None:
    """The generator's whole objective at a logged step: the sum of every logged loss term that is
    not a discriminator's (pix2pix: G_GAN + G_L1; CycleGAN: G_A + G_B + cycle_* + idt_*)."""
    terms = [v for k, v in record.items()
             if k not in NOT_LOSSES and not k.startswith("D_") and isinstance(v, (int, float))]
    return sum(terms) if terms else None


def _step_seconds(records: list[dict]) -> float | None:
    for key in ("sec_per_step", "step_time", "time_per_step", "seconds_per_step"):
        values = [r[key] for r in records if isinstance(r.get(key), (int, float))]
        if values:
            return statistics.median(values)
    return None


def _plots(spec: StudySpec, task: str, results: dict, out: Path) -> list[str]:
    runs = [r for r in runs_of(spec) if r.task == task and r.run_id in results]
    if not runs:
        return []
    names = []
    # 1. loss curves per norm (first batch size, seed-averaged by step)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for label in dict.fromkeys(r.label for r in runs):
        curves = defaultdict(list)
        for r in runs:
            if r.label == label and r.batch_size == spec.batch_sizes[0]:
                for rec in _read_log(Path(spec.out) / "runs" / r.run_id):
                    loss = _generator_loss(rec)
                    if loss is not None and "step" in rec:
                        curves[rec["step"]].append(loss)
        if curves:
            steps = sorted(curves)
            ax.plot(steps, [statistics.fmean(curves[s]) for s in steps], label=label)
    ax.set(xlabel="step", ylabel="generator objective", title=f"{task}: generator loss (batch size {spec.batch_sizes[0]})")
    ax.legend(fontsize=7)
    names.append(_save(fig, out / f"{task}_loss.png"))
    # 2. metric vs batch size
    metric = next(iter(_metric_values(results[runs[0].run_id])), None)
    if metric:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for label in dict.fromkeys(r.label for r in runs if r.d_norm == spec.d_norms[0]):
            xs, ys, es = [], [], []
            for bs in spec.batch_sizes:
                vals = [_metric_values(results[r.run_id])[metric] for r in runs if r.label == label and r.batch_size == bs]
                if vals:
                    mean, std = _mean_std(vals)
                    xs.append(bs), ys.append(mean), es.append(std)
            ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=label)
        ax.set(xscale="log", xlabel="batch size", ylabel=metric.upper(), title=f"{task}: {metric.upper()} vs batch size")
        ax.set_xticks(spec.batch_sizes, [str(b) for b in spec.batch_sizes])
        ax.legend(fontsize=7)
        names.append(_save(fig, out / f"{task}_{metric}_vs_batch.png"))
    # 3. time per step per norm (median over runs at the first batch size)
    times = defaultdict(list)
    for r in runs:
        if r.batch_size == spec.batch_sizes[0]:
            sec = _step_seconds(_read_log(Path(spec.out) / "runs" / r.run_id))
            if sec is not None:
                times[r.label].append(sec * 1000)
    if times:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        labels = list(times)
        ax.bar(labels, [statistics.median(times[k]) for k in labels])
        ax.set(ylabel="ms per step", title=f"{task}: training time per step (batch size {spec.batch_sizes[0]})")
        ax.tick_params(axis="x", rotation=30, labelsize=7)
        names.append(_save(fig, out / f"{task}_step_time.png"))
    return names


def _save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def _grid(spec: StudySpec, task: str, results: dict, out: Path) -> str | None:
    """Rows: test inputs; columns: input, ground truth, then each norm (first batch size, first seed)."""
    eval_dir = Path(spec.out) / "eval_data"
    names = sorted(p.name for p in (eval_dir / "testA").glob("*.png"))[: spec.grid_images]
    columns = [("input", eval_dir / "testA"), ("target", eval_dir / "testB")]
    for r in runs_of(spec):
        if (r.task == task and r.run_id in results and r.batch_size == spec.batch_sizes[0]
                and r.seed == spec.seeds[0]):
            columns.append((r.label, Path(spec.out) / "runs" / r.run_id / "test_translated"))
    if not names or len(columns) <= 2:
        return None
    size = Image.open(eval_dir / "testA" / names[0]).size
    scale = max(1, 96 // size[0])
    w, h = size[0] * scale, size[1] * scale
    grid = Image.new("RGB", (len(columns) * (w + 4), 14 + len(names) * (h + 4)), "white")
    draw = ImageDraw.Draw(grid)
    for j, (label, folder) in enumerate(columns):
        draw.text((j * (w + 4) + 2, 1), label[:16], fill="black")
        for i, name in enumerate(names):
            path = folder / name
            if path.exists():
                grid.paste(Image.open(path).convert("RGB").resize((w, h), Image.NEAREST), (j * (w + 4), 14 + i * (h + 4)))
    path = out / f"{task}_grid.png"
    grid.save(path)
    return path.name


def _environment() -> list[str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return [f"- gennorm {gennorm.__version__}, torch {torch.__version__}, Python {platform.python_version()}",
            f"- CPU: {cpu} ({os.cpu_count()} cores), GPU: {gpu}, OS: {platform.platform()}"]


def write_report(spec: StudySpec, command: str, path: str | Path | None = None) -> Path:
    """Write the report to `path` (default OUT/report.md), its figures to <path stem>_files/ beside it."""
    path = Path(path) if path else Path(spec.out) / "report.md"
    out = path.parent / f"{path.stem}_files"
    out.mkdir(parents=True, exist_ok=True)
    rel = out.name
    results = _results(spec)
    total = len(runs_of(spec))
    lines = [f"# Normalization study: {spec.description or spec.out}", "",
             f"{len(results)} of {total} runs finished. Each cell: mean ± std over seeds (n = seeds), "
             "best per column in **bold**. Metrics on the scenes test split against the ground-truth photos "
             "(PSNR/SSIM always; FID/KID/LPIPS only when their weights are installed).", ""]
    for task in spec.tasks:
        lines += [f"## {task} ({TASKS[task].method})", ""]
        lines += _table(spec, task, results)
        for name in _plots(spec, task, results, out):
            lines += [f"![{name}]({rel}/{name})", ""]
        grid = _grid(spec, task, results, out)
        if grid:
            lines += [f"Same test inputs across norms (batch size {spec.batch_sizes[0]}, seed {spec.seeds[0]}):", "",
                      f"![{grid}]({rel}/{grid})", ""]
    lines += _methods_table(spec, results)
    train_seconds = sum(r.get("train_seconds", 0.0) for r in results.values())
    example = next(iter(results.values()), {}).get("command", "")
    lines += ["## How this was made", "", "```", command, "```", "",
              f"Every run is one `gennorm train` command, e.g. `{example}`.", "",
              f"Settings: norms {spec.norms}, D norms {spec.d_norms}, batch sizes {spec.batch_sizes}, seeds {spec.seeds}, "
              f"overrides {spec.overrides}. Total training wall time {train_seconds / 60:.1f} min.", ""]
    lines += _environment() + [""]
    path.write_text("\n".join(lines))
    return path
