"""Running a study: make the data, train every run of the grid (resumably), evaluate each.

A run is done when `RUN/eval.json` exists; a run with checkpoints but no eval.json was cut
off and continues with `gennorm train --resume`. Training runs in a subprocess (its own
memory, its own Ctrl-C handling); evaluation translates the scenes test split with the run's
model and compares with the ground-truth photos.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from gennorm.atomic import atomic_write_json
from gennorm.data import generate_scenes
from gennorm.errors import ConfigError, GennormError
from gennorm.inference import translate_folder
from gennorm.locks import read_marker, write_marker
from gennorm.metrics import available_metrics, evaluate_folders
from gennorm.metrics.protocols import DEFAULT_PROTOCOL
from gennorm.study.report import write_report
from gennorm.study.spec import TASKS, Run, StudySpec, load_spec, runs_of

DONE_FILE = "eval.json"


def data_root(spec: StudySpec) -> Path:
    return Path(spec.data_root) if spec.data_root else Path(spec.out) / "data" / "scenes"


def prepare_data(spec: StudySpec) -> Path:
    """Generate the scenes dataset if missing; split its paired test images into A and B folders."""
    root = data_root(spec)
    if not (root / "paired" / "test").is_dir():
        generate_scenes(root, size=spec.scenes_size, count=spec.scenes_count, seed=0)
    eval_dir = Path(spec.out) / "eval_data"
    if not (eval_dir / "done").exists():
        for side in ("A", "B"):
            (eval_dir / f"test{side}").mkdir(parents=True, exist_ok=True)
        for path in sorted((root / "paired" / "test").glob("*.png")):
            image = Image.open(path).convert("RGB")
            half = image.width // 2
            image.crop((0, 0, half, image.height)).save(eval_dir / "testA" / path.name)
            image.crop((half, 0, image.width, image.height)).save(eval_dir / "testB" / path.name)
        (eval_dir / "done").write_text("ok\n")
    return eval_dir


def train_command(spec: StudySpec, run: Run, run_dir: Path, resume: bool = False) -> list[str]:
    """The `gennorm train` command of a run: fresh, or `--resume` when it was cut off."""
    if resume:
        return [sys.executable, "-m", "gennorm", "train", "--resume", str(run_dir), "train.progress=false"]
    root = data_root(spec) / TASKS[run.task].data
    return [
        sys.executable, "-m", "gennorm", "train", TASKS[run.task].preset,
        f"out={run_dir}", f"data.root={root}", f"model.g_norm={run.g_norm}", f"model.d_norm={run.d_norm}",
        f"train.batch_size={run.batch_size}", f"train.seed={run.seed}", *spec.overrides, "train.progress=false",
    ]


def train(spec: StudySpec, run: Run, run_dir: Path) -> tuple[float, float]:
    """Train (or finish training) one run; returns its wall time in seconds and the training
    process's peak resident memory in MiB (read every 0.5 s; of the last segment when it resumed;
    0 where /proc is missing). Output goes to RUN/train.log."""
    resume = (run_dir / "config.yaml").is_file() and (run_dir / "checkpoints").is_dir() \
        and any((run_dir / "checkpoints").iterdir())
    if run_dir.exists() and not resume and any(run_dir.iterdir()):
        # Cut off before its first checkpoint (or half-created): keep it aside, start afresh.
        run_dir.rename(run_dir.with_name(f"{run_dir.name}.stale-{int(time.time())}"))
    run_dir.mkdir(parents=True, exist_ok=True)
    if read_marker(run_dir) is None:  # the study makes this run folder (train.log first): gennorm's
        write_marker(run_dir, "run")
    command = train_command(spec, run, run_dir, resume)
    start = time.perf_counter()
    with open(run_dir / "train.log", "a") as log:
        log.write("$ " + " ".join(command) + "\n")
        log.flush()
        child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                 env={**os.environ, "PYTHONUNBUFFERED": "1"})
        peak = 0.0
        try:
            while True:
                peak = max(peak, _high_water_mib(child.pid))
                try:
                    returncode = child.wait(timeout=0.5)
                    break
                except subprocess.TimeoutExpired:
                    continue
        except BaseException:  # Ctrl-C: the child got the same SIGINT; wait for it to stop cleanly
            child.wait()
            raise
    if returncode != 0:
        tail = (run_dir / "train.log").read_text().strip().splitlines()[-5:]
        raise GennormError(f"run {run.run_id} failed (exit {returncode}); see {run_dir / 'train.log'}:\n  "
                           + "\n  ".join(tail))
    return time.perf_counter() - start, peak


def _high_water_mib(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM, Linux), in MiB; 0 when unknown. Read while
    it runs: wait4's ru_maxrss would count the study's own memory, which the child held between
    fork and exec."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def evaluate(run_dir: Path, eval_dir: Path, device: str = "cpu") -> dict:
    """Translate the test labels with the run's model and score against the true photos."""
    fake = run_dir / "test_translated"
    translate_folder(run_dir, eval_dir / "testA", fake, device=device)
    metrics = [m for m in available_metrics() if m in ("psnr", "ssim", "fid", "kid", "lpips")]
    return evaluate_folders(eval_dir / "testB", fake, metrics=metrics, device=device)


def run_one(spec: StudySpec, run: Run, eval_dir: Path) -> dict:
    run_dir = Path(spec.out) / "runs" / run.run_id
    done = run_dir / DONE_FILE
    if done.exists():
        return json.loads(done.read_text())
    train_seconds, peak_mib = train(spec, run, run_dir)
    result = {"run": run.run_id, "task": run.task, "g_norm": run.g_norm, "d_norm": run.d_norm,
              "batch_size": run.batch_size, "seed": run.seed, "train_seconds": train_seconds,
              "train_peak_rss_mib": peak_mib,
              "command": "gennorm " + " ".join(train_command(spec, run, run_dir)[3:]), "eval": evaluate(run_dir, eval_dir)}
    atomic_write_json(done, result, default=str)
    return result


def check_settings(spec: StudySpec) -> None:
    """A study directory belongs to one set of training settings: finished runs are reused by name,
    so running other settings into it would mix results. Recorded in OUT/study.json."""
    keys = ("overrides", "scenes_size", "scenes_count", "data_root", "fid_protocol")
    settings = {k: v for k, v in asdict(spec).items() if k in keys}
    settings["fid_protocol"] = DEFAULT_PROTOCOL  # the runs are scored with it: never mix two in one report
    path = Path(spec.out) / "study.json"
    if path.exists():
        saved = json.loads(path.read_text())
        saved.setdefault("fid_protocol", "gennorm")  # studies before the protocols were scored with that one
        changed = [k for k in keys if saved.get(k) != settings[k]]
        if changed:
            raise ConfigError(f"{spec.out} holds a study made with other settings ({', '.join(changed)} differ: "
                              f"{', '.join(f'{k}={saved.get(k)!r}' for k in changed)}); use a new out=DIR")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=2))


def run_all(spec: StudySpec, runs: list[Run], progress: bool = True) -> None:
    check_settings(spec)
    eval_dir = prepare_data(spec)
    todo = [r for r in runs if not (Path(spec.out) / "runs" / r.run_id / DONE_FILE).exists()]
    print(f"study {spec.out}: {len(runs)} runs in this shard, {len(runs) - len(todo)} done, {len(todo)} to run")
    failed = []
    with tqdm(total=len(todo), unit="run", disable=not progress, dynamic_ncols=True) as bar:
        for run in todo:
            bar.set_postfix_str(run.run_id)
            try:
                run_one(spec, run, eval_dir)
            except GennormError as err:  # one failed run does not stop the study; all are listed at the end
                failed.append(str(err))
                bar.write(f"FAILED {err}")
            bar.update(1)
    if failed:
        raise GennormError(f"{len(failed)} of {len(todo)} runs failed (the report covers the others):\n"
                           + "\n".join(failed))


def run_study(config: str = "small", overrides: list[str] | None = None, shard: str = "0/1",
              report_only: bool = False, report: str | None = None, progress: bool = True) -> Path:
    """`gennorm study`: run slice I of N (shard "I/N") of the study's grid unless report_only, then
    write the report (also when runs failed or on Ctrl-C: it covers whatever finished) and print
    its path. Returns the report's path."""
    overrides = list(overrides or [])
    spec = load_spec(config, overrides)
    try:
        index, count = (int(v) for v in shard.split("/"))
        assert 0 <= index < count
    except (ValueError, AssertionError):
        raise ConfigError(f"--shard must be I/N with 0 <= I < N, got {shard!r}") from None
    runs = runs_of(spec)[index::count]
    flags = ["--report", report] if report else []
    command = "gennorm study " + " ".join([config, *overrides, *flags])
    try:
        if not report_only:
            run_all(spec, runs, progress=progress)
    finally:  # the report covers whatever finished, also when some runs failed or on Ctrl-C
        path = write_report(spec, command, report)
        print(f"report: {path}")
    return path
