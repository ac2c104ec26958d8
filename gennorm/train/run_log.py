"""What a run writes besides checkpoints: metrics.jsonl, TensorBoard, sample grids, index.html.

    RUN/metrics.jsonl      one JSON object per log step: step, epoch, losses, lr, step_time
    RUN/events.out.tfevents.*   TensorBoard scalars (loss/*, lr, step_time) and image grids
    RUN/samples/step_00000100.png   rows of a fixed test batch (pix2pix: A | G(A) | B)
    RUN/index.html         the sample grids, newest first
    W&B (train.wandb=true)  the same scalars and grids, in the W&B run of RUN/wandb.json (wandb_sink.py)
Only rank 0 creates a RunLog.
"""
from __future__ import annotations

import html
import json
import os
import re
import sys
import threading
from io import BytesIO
from pathlib import Path

import torch
from PIL import Image

from gennorm.atomic import atomic_write_bytes
from gennorm.train.wandb_sink import WandbSink
from gennorm.zoo import read_training_log

SAMPLE_RE = re.compile(r"^step_(\d+)\.png$")  # other files in samples/ are the user's and left alone


def sample_pngs(folder: Path) -> list[tuple[int, Path]]:
    """(step, path) of the sample grids in `folder`, oldest first."""
    found = [(int(m.group(1)), p) for p in Path(folder).glob("step_*.png") if (m := SAMPLE_RE.match(p.name))]
    return sorted(found)


def to_uint8_grid(rows: list[torch.Tensor]) -> torch.Tensor:
    """rows: list of [N, C, H, W] in [-1, 1] -> [3, N*H, len(rows)*W] uint8 (one column per row)."""
    cols = []
    for t in rows:
        t = t.detach().float().cpu()
        if t.shape[1] == 1:
            t = t.expand(-1, 3, -1, -1)
        cols.append(torch.cat(list(t), dim=1))  # [3, N*H, W]
    grid = torch.cat(cols, dim=2)  # [3, N*H, R*W]
    return ((grid.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def save_png(image_chw: torch.Tensor, path: Path) -> None:
    buf = BytesIO()
    Image.fromarray(image_chw.permute(1, 2, 0).numpy()).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


class RunLog:
    def __init__(self, run_dir: Path, resume_step: int | None = None, tensorboard: bool = True, config=None):
        self.run_dir = Path(run_dir)
        self.samples_dir = self.run_dir / "samples"
        self.samples_dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.run_dir / "metrics.jsonl"
        if resume_step is not None:
            self._truncate(resume_step)
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter  # optional and slow to import: only when logging to it

                self.writer = SummaryWriter(str(self.run_dir), purge_step=resume_step)
            except Exception:  # tensorboard missing or broken: the jsonl log still works
                self.writer = None
        # train.wandb: a W&B run too (continuing RUN/wandb.json's on resume); ConfigError without wandb
        self.wandb = WandbSink(self.run_dir, config) if config is not None and config.train.wandb else None
        self._hook = None
        if self.writer is not None:  # its writer thread re-raises a full disk as a thread traceback
            self._hook, previous = threading.excepthook, threading.excepthook

            def quiet_event_writer(args):
                if isinstance(args.exc_value, OSError) and type(args.thread).__name__ == "_AsyncWriterThread":
                    return  # reported once, by _tensorboard() when the writer is next used
                previous(args)

            threading.excepthook = quiet_event_writer

    def _truncate(self, step: int) -> None:
        """On resume, drop records written after the checkpoint we continue from."""
        if self.metrics_path.exists():
            keep = [json.dumps(r) for r in read_training_log(self.metrics_path, warn=True) if r.get("step", 0) <= step]
            atomic_write_bytes(self.metrics_path, ("\n".join(keep) + "\n" if keep else "").encode())
        for png_step, png in sample_pngs(self.samples_dir):
            if png_step > step:
                png.unlink()

    def log(self, record: dict) -> None:
        try:
            with open(self.metrics_path, "a") as f:
                f.write(json.dumps(record) + "\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as err:  # full disk: training goes on; a torn line is dropped on resume
            self._warn_once("metrics", f"appending to {self.metrics_path} failed ({err.strerror or err}); "
                                       "training continues, later records may be missing")
        def scalars(writer):
            for k, v in record.items():
                if k not in ("step", "epoch", "time") and isinstance(v, (int, float)):
                    writer.add_scalar(k if k in ("lr", "step_time") else f"loss/{k}", v, record["step"])

        self._tensorboard(scalars)
        self._wandb(lambda sink: sink.log(record))

    def _tensorboard(self, use) -> None:
        """use(writer); a TensorBoard writer that fails (full disk) is dropped with one warning."""
        if self.writer is None:
            return
        try:
            use(self.writer)
        except Exception as err:
            self.writer = None
            self._warn_once("tensorboard", f"TensorBoard events in {self.run_dir} stopped ({err}); training "
                                           "continues (metrics.jsonl has the values)")

    def _wandb(self, use) -> None:
        """use(sink); a W&B sink that fails (network, disk) is dropped with one warning."""
        if self.wandb is None:
            return
        try:
            use(self.wandb)
        except Exception as err:
            self.wandb = None
            self._warn_once("wandb", f"W&B logging stopped ({str(err).splitlines()[0] if str(err) else type(err).__name__}); "
                                     "training continues (metrics.jsonl has the values)")

    def samples(self, step: int, rows: list[torch.Tensor], columns: list[str]) -> Path:
        grid = to_uint8_grid(rows)
        path = self.samples_dir / f"step_{step:08d}.png"
        try:
            save_png(grid, path)
            self._tensorboard(lambda writer: (writer.add_image("samples", grid, step), writer.flush()))
            self._wandb(lambda sink: sink.samples(step, grid, columns))
            self.write_index(columns)
        except OSError as err:  # full disk: samples are a view of the run, not part of its state
            self._warn_once("samples", f"writing the sample grid {path} failed ({err.strerror or err}); "
                                       "training continues")
        return path

    def _warn_once(self, kind: str, message: str) -> None:
        warned = self.__dict__.setdefault("_warned", set())
        if kind not in warned:
            warned.add(kind)
            print(f"warning: {message}", file=sys.stderr)

    def write_index(self, columns: list[str]) -> None:
        pngs = sample_pngs(self.samples_dir)[::-1]
        items = "\n".join(
            f'<h3>step {step}</h3><img src="samples/{html.escape(p.name)}" '
            f'style="image-rendering:pixelated;max-width:100%">' for step, p in pngs)
        page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.run_dir.name)}</title>"
                f"</head><body><h1>{html.escape(str(self.run_dir))}</h1><p>columns: "
                f"{html.escape(' | '.join(columns))}</p>{items}</body></html>\n")
        atomic_write_bytes(self.run_dir / "index.html", page.encode())

    def close(self) -> None:
        self._tensorboard(lambda writer: writer.close())
        self.writer = None
        self._wandb(lambda sink: sink.close())
        self.wandb = None
        if self._hook is not None:
            threading.excepthook, self._hook = self._hook, None
