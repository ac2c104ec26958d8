"""What a run writes besides checkpoints: metrics.jsonl, TensorBoard, sample grids, index.html.

    RUN/metrics.jsonl      one JSON object per log step: step, epoch, losses, lr, step_time
    RUN/events.out.tfevents.*   TensorBoard scalars (loss/*, lr, step_time) and image grids
    RUN/samples/step_00000100.png   rows of a fixed test batch (pix2pix: A | G(A) | B)
    RUN/index.html         the sample grids, newest first
Only rank 0 creates a RunLog.
"""
from __future__ import annotations

import html
import json
import os
from pathlib import Path

import torch

from gennorm.atomic import atomic_write_bytes


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
    from io import BytesIO

    from PIL import Image

    buf = BytesIO()
    Image.fromarray(image_chw.permute(1, 2, 0).numpy()).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


class RunLog:
    def __init__(self, run_dir: Path, resume_step: int | None = None, tensorboard: bool = True):
        self.run_dir = Path(run_dir)
        self.samples_dir = self.run_dir / "samples"
        self.samples_dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.run_dir / "metrics.jsonl"
        if resume_step is not None:
            self._truncate(resume_step)
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(self.run_dir), purge_step=resume_step)
            except Exception:  # tensorboard missing or broken: the jsonl log still works
                self.writer = None

    def _truncate(self, step: int) -> None:
        """On resume, drop records written after the checkpoint we continue from."""
        if not self.metrics_path.exists():
            return
        keep = [line for line in self.metrics_path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= step]
        atomic_write_bytes(self.metrics_path, ("\n".join(keep) + "\n" if keep else "").encode())
        for png in self.samples_dir.glob("step_*.png"):
            if int(png.stem.split("_")[1]) > step:
                png.unlink()

    def log(self, record: dict) -> None:
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        if self.writer is not None:
            step = record["step"]
            for k, v in record.items():
                if k in ("step", "epoch", "time"):
                    continue
                if isinstance(v, (int, float)):
                    self.writer.add_scalar(k if k in ("lr", "step_time") else f"loss/{k}", v, step)

    def samples(self, step: int, rows: list[torch.Tensor], columns: list[str]) -> Path:
        grid = to_uint8_grid(rows)
        path = self.samples_dir / f"step_{step:08d}.png"
        save_png(grid, path)
        if self.writer is not None:
            self.writer.add_image("samples", grid, step)
            self.writer.flush()
        self.write_index(columns)
        return path

    def write_index(self, columns: list[str]) -> None:
        pngs = sorted(self.samples_dir.glob("step_*.png"), reverse=True)
        items = "\n".join(
            f'<h3>step {int(p.stem.split("_")[1])}</h3><img src="samples/{html.escape(p.name)}" '
            f'style="image-rendering:pixelated;max-width:100%">' for p in pngs)
        page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.run_dir.name)}</title>"
                f"</head><body><h1>{html.escape(str(self.run_dir))}</h1><p>columns: "
                f"{html.escape(' | '.join(columns))}</p>{items}</body></html>\n")
        atomic_write_bytes(self.run_dir / "index.html", page.encode())

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
