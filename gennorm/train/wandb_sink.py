"""Weights & Biases logging of a run (train.wandb=true): the same records as metrics.jsonl and
TensorBoard (losses, lr, step_time), the sample grids, and `gennorm eval --run` results.

    RUN/wandb.json   {"id", "project", "entity", "name"}: the W&B run this run logs to. A resumed
                     run (`gennorm train --resume RUN`) and an evaluation of RUN continue that W&B
                     run (wandb.init(id=..., resume="allow")) instead of starting a new one.

wandb is an optional extra (`pip install gennorm[wandb]`); asking for it without it installed is
one ConfigError line. W&B's own variables apply (WANDB_MODE=offline, WANDB_DIR, WANDB_API_KEY);
without WANDB_DIR its files go to RUN/wandb/.
"""
from __future__ import annotations

import json
import os
import secrets
import string
from dataclasses import asdict
from pathlib import Path

from gennorm.atomic import atomic_write_json
from gennorm.errors import ConfigError

ID_FILE = "wandb.json"
MISSING = ("train.wandb=true needs the wandb package, which is not installed: pip install 'gennorm[wandb]' "
           "(or pip install wandb), or set train.wandb=false")


def import_wandb():
    try:
        import wandb
    except ImportError:
        raise ConfigError(MISSING) from None
    return wandb


def new_run_id() -> str:
    """Eight lowercase letters and digits, the form of W&B's own run ids."""
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))


def read_run_id(run_dir) -> dict | None:
    """RUN/wandb.json, or None when the run never logged to W&B (or the file is unreadable)."""
    try:
        info = json.loads((Path(run_dir) / ID_FILE).read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and isinstance(info.get("id"), str) else None


def _start(wandb, run_dir: Path, info: dict, config: dict | None):
    return wandb.init(project=info["project"], entity=info.get("entity"), name=info.get("name"),
                      tags=info.get("tags") or None, id=info["id"], resume="allow", config=config,
                      dir=None if os.environ.get("WANDB_DIR") else str(run_dir))


class WandbSink:
    """One W&B run for one gennorm run; log / samples / close mirror RunLog's."""

    def __init__(self, run_dir, cfg):
        wandb = import_wandb()
        self.wandb, self.run_dir, t = wandb, Path(run_dir), cfg.train
        info = read_run_id(self.run_dir)
        if info is None:  # a new run (or one that logs to W&B from this resume on)
            tags = [s.strip() for s in (t.wandb_tags or "").split(",") if s.strip()]
            info = {"id": new_run_id(), "project": t.wandb_project, "entity": t.wandb_entity,
                    "name": t.wandb_run_name or self.run_dir.name, "tags": tags}
            atomic_write_json(self.run_dir / ID_FILE, info)
        self.info = info
        self.run = _start(wandb, self.run_dir, info, asdict(cfg))

    @property
    def id(self) -> str:
        return self.run.id

    def log(self, record: dict) -> None:
        values = {(k if k in ("lr", "step_time", "epoch") else f"loss/{k}"): v for k, v in record.items()
                  if k not in ("step", "time") and isinstance(v, (int, float)) and not isinstance(v, bool)}
        self.run.log(values, step=int(record["step"]))

    def samples(self, step: int, grid_chw, columns: list[str]) -> None:
        """grid_chw: [3, H, W] uint8, the grid RunLog saved as a PNG."""
        image = self.wandb.Image(grid_chw.permute(1, 2, 0).numpy(), caption=" | ".join(columns))
        self.run.log({"samples": image}, step=int(step))

    def close(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None


def log_evaluation(run_dir, result: dict) -> str | None:
    """Add `gennorm eval --run RUN`'s metrics to RUN's W&B run (eval/NAME in its summary); the
    W&B run id, or None when RUN does not log to W&B."""
    info = read_run_id(run_dir)
    if info is None:
        return None
    wandb = import_wandb()
    run = _start(wandb, Path(run_dir), info, None)
    try:
        values = {f"eval/{k}": v for k, v in (result.get("metrics") or {}).items()
                  if isinstance(v, (int, float)) and not isinstance(v, bool)}
        for key, value in values.items():
            run.summary[key] = value
        return run.id
    finally:
        run.finish()
