"""The training loop: setup, step, evaluate (sample grids), checkpoint; stops cleanly on request.

    from gennorm.train.loop import train
    run_dir = train(load_config("pix2pix-nc", ["train.max_steps=20"]))   # -> Path of the run dir
    train(resume_dir="runs/x", overrides=["train.max_steps=40"])         # continue exactly

Ctrl-C / SIGTERM finish the current step, write a checkpoint and return normally (exit 0). A
NaN/inf loss raises TrainingDiverged (exit 3) before it reaches the weights, so the last
checkpoint stays good; after every step the weights, optimizer moments and EMA are checked
finite too (one fused max-abs), so no checkpoint can hold a NaN. Checkpoints carry a content
hash (checked on loading). A checkpoint write that fails (disk full, any writer error) warns and
leaves the previous checkpoints as they were; temp files of killed writes are removed at start.
"""
from __future__ import annotations

import contextlib
import os
import platform
import shutil
import signal
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from gennorm.config import (Config, changed_keys, check_unchanged, config_from_file, flatten, parse_overrides,
                            save_config, set_key, to_dict, validate)
from gennorm.data import create_dataset
from gennorm.devices import require_device
from gennorm.errors import CheckpointError, ConfigError, DataError, GennormError, write_error
from gennorm.locks import holds, own_folder, sweep_leftovers
from gennorm.train import checkpoint as ckpt
from gennorm.train.cut import CUTTask
from gennorm.train.cyclegan import CycleGANTask
from gennorm.train.data_plan import BatchStream, Position
from gennorm.train.distributed import DistInfo, any_rank, barrier, broadcast_buffers, broadcast_module, \
    gather_objects, init_distributed, shutdown
from gennorm.train.optim import resume_lr_note
from gennorm.train.pix2pix import Pix2PixTask
from gennorm.train.run_log import RunLog
from gennorm.train.memory_note import memory_note
from gennorm.train.task import TrainingDiverged
from gennorm.train.wandb_sink import import_wandb

FORMAT = ckpt.TRAIN_FORMAT  # "gennorm-train-1"


TASKS = {"pix2pix": Pix2PixTask, "cyclegan": CycleGANTask, "cut": CUTTask}  # train.task (config.TASKS) -> class


def make_task(cfg: Config, device: torch.device, dist_info: DistInfo | None = None):
    return TASKS[cfg.train.task](cfg, device, dist_info)


def resolve_device(name: str, dist_info: DistInfo | None = None) -> torch.device:
    device = require_device(name, "config key 'train.device' =")  # the same check as every verb's --device
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", dist_info.local_rank if dist_info else 0)
    return device


def set_determinism(deterministic: bool) -> None:
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    else:
        torch.backends.cudnn.benchmark = True


def hardware_string(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    threads = torch.get_num_threads()
    return f"CPU ({platform.processor() or platform.machine()}, {threads} thread{'s' if threads != 1 else ''})"


def dataset_for(cfg: Config, phase: str, for_samples: bool = False):
    """The configured dataset; for samples: no flip and no random crop (crop_size resize)."""
    d, m = cfg.data, cfg.model
    load, pre = d.load_size, d.preprocess
    if for_samples and pre in ("resize_and_crop", "crop"):
        load, pre = d.crop_size, "resize_and_crop"
    try:
        return create_dataset(d.mode, d.root, phase=phase, direction=d.direction, load_size=load,
                              crop_size=d.crop_size, preprocess=pre, no_flip=d.no_flip or for_samples,
                              input_nc=m.input_nc, output_nc=m.output_nc,
                              max_size=d.max_size, skip_corrupt=d.skip_corrupt, seed=cfg.train.seed)
    except ValueError as err:
        if isinstance(err, DataError):
            raise
        raise ConfigError(f"data.*: {err}") from None


class Callback:
    """Hooks into a run (`train(cfg, callbacks=[...])`); override what you need, the rest do nothing.

    on_losses(step, losses): the losses of `step` ({name: 0-d tensor}) before they are checked for
        NaN/inf and back-propagated; may replace values in the dict.
    on_step_end(trainer) -> str | None: after each step; a string stops the run there like a
        SIGTERM (checkpoint, exit 0), naming the reason.
    on_run_end(trainer): after the last step, on every rank (trainer.task.nets, trainer.step).
    """

    def on_losses(self, step: int, losses: dict) -> None:
        pass

    def on_step_end(self, trainer: "Trainer") -> str | None:
        return None

    def on_run_end(self, trainer: "Trainer") -> None:
        pass


class Trainer:
    """One run. `Trainer(cfg, run_dir, resume_state, callbacks).run()`; the four phases are methods."""

    def __init__(self, cfg: Config, run_dir: Path, resume_state: dict | None = None, callbacks=(),
                 resume_path: Path | None = None):
        self.cfg, self.run_dir, self.resume_state = cfg, Path(run_dir), resume_state
        self.resume_path = resume_path  # the checkpoint file resume_state was read from (for messages)
        self.last_checkpoint: Path | None = resume_path
        self.callbacks = list(callbacks)
        self.stop_signal: str | None = None
        self.step = 0
        self.wall_time = 0.0

    # -- setup ----------------------------------------------------------------------------------
    def setup(self) -> None:
        cfg, t = self.cfg, self.cfg.train
        want = "cuda" if t.device == "auto" and torch.cuda.is_available() else t.device
        self.dist = init_distributed("cuda" if want == "cuda" else "cpu")
        self.device = resolve_device(t.device, self.dist)
        if self.dist.is_main and (note := memory_note(cfg, self.device)):  # cuda only
            print(note, file=sys.stderr)
        set_determinism(t.deterministic)
        ckpt.seed_everything(t.seed)
        self.task = make_task(cfg, self.device, self.dist)
        self.task.callbacks = self.callbacks
        self._check_sizes()
        for net in self.task.nets.values():
            broadcast_module(net, self.dist)
        ckpt.seed_everything(t.seed + 1000 * self.dist.rank)  # dropout etc. differ per rank
        self.dataset = dataset_for(cfg, "train")
        self.stream = BatchStream(self.dataset, t.batch_size, t.seed, self.dist.rank, self.dist.world_size,
                                  cfg.data.num_workers, pin_memory=self.device.type == "cuda")
        if t.n_epochs is not None:  # an epoch schedule: its length in steps comes from the data
            t.max_steps = (t.n_epochs + t.n_epochs_decay) * self.stream.batches_per_epoch()
        if self.resume_state is not None:
            self.restore(self.resume_state)
            self.resume_state = None
        self.log = None
        if self.dist.is_main:
            try:
                self.run_dir.mkdir(parents=True, exist_ok=True)
                remove_stale_temp_files(self.run_dir)
                save_config(cfg, self.run_dir / "config.yaml")
                self._record_command()
                self.log = RunLog(self.run_dir, resume_step=self.step if self.step else None, config=cfg)
            except OSError as err:
                raise write_error(f"the run directory {self.run_dir}", err,
                                  "choose another out=DIR" if self.resume_path is None else
                                  "make it writable (or copy the run elsewhere) and resume there") from None
            self.sample_batch = self._sample_batch()
            if self.dist.enabled:
                print(f"distributed: {self.dist.world_size} ranks, batch {t.batch_size} per rank = effective "
                      f"batch {t.batch_size * self.dist.world_size}, lr {t.lr}", file=sys.stderr)

    @torch.no_grad()
    def _check_sizes(self) -> None:
        """Fail early, naming data.crop_size, when the nets cannot take crop_size x crop_size."""
        m, size = self.cfg.model, self.cfg.data.crop_size
        for name in (*self.task.GENERATORS, *self.task.DISCRIMINATORS):  # the image networks (not CUT's F)
            net = self.task.nets[name]
            channels = net.options.get("input_nc", m.input_nc) if hasattr(net, "options") else m.input_nc
            was = net.training
            net.eval()
            try:
                net(torch.zeros(1, channels, size, size, device=self.device))
            except ValueError as err:
                raise ConfigError(f"config key 'data.crop_size' ({size}) does not fit {name}: {err}") from None
            finally:
                net.train(was)

    def _record_command(self) -> None:
        """Append the command line to RUN/command.txt (export puts it in the model card)."""
        argv = list(sys.argv)
        prog = Path(argv[0]).name if argv else "gennorm"
        if prog in ("gennorm", "__main__.py", "-m", "-c") or not argv:
            argv = ["gennorm"] + argv[1:]
        with open(self.run_dir / "command.txt", "a") as f:
            f.write(" ".join(argv) + "\n")

    def _sample_batch(self) -> dict | None:
        if self.cfg.train.num_samples == 0:
            return None
        try:
            ds = dataset_for(self.cfg, "test", for_samples=True)
        except DataError:
            ds = dataset_for(self.cfg, "train", for_samples=True)
        ds.set_epoch(0)
        items = [ds[i] for i in range(min(self.cfg.train.num_samples, len(ds)))]
        return {k: torch.stack([it[k] for it in items]) for k in ("A", "B")}

    def restore(self, state: dict) -> None:
        where = f"checkpoint {self.resume_path}" if self.resume_path else "the checkpoint"
        try:
            self._restore(state)
        except CheckpointError as err:
            raise CheckpointError(f"{where} does not fit this run ({self.run_dir}/config.yaml): {err}") from None
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError) as err:
            reason = str(err).splitlines()[0] if str(err) else ""
            raise CheckpointError(f"{where} cannot be restored ({type(err).__name__}: {reason}); remove it from "
                                  "the checkpoints/ folder to resume from the previous one") from None
        bad = ckpt.first_nonfinite(self.task.state_tensors(named=True))
        if bad is not None:
            name, n, size = bad
            raise CheckpointError(f"{where} holds non-finite values ({name}: {n} of {size} NaN/inf; written by a run "
                                  "that diverged); remove it from the checkpoints/ folder to resume from the "
                                  "previous one, or train again with a lower train.lr")

    def _restore(self, state: dict) -> None:
        self.task.load_state_dict(state["task"])
        self.step = int(state["step"])
        self.wall_time = float(state.get("wall_time", 0.0))
        self.stream.position = Position(int(state["epoch"]), int(state["batch"]))
        local = state["local"]
        if len(local) != self.dist.world_size:
            print(f"warning: checkpoint was written by {len(local)} ranks, now {self.dist.world_size}; "
                  f"RNG states and image pools of rank 0 are used everywhere", file=sys.stderr)
        mine = local[self.dist.rank] if self.dist.rank < len(local) else local[0]
        self.task.load_local_state(mine["task"])
        ckpt.set_rng_state(mine["rng"])

    # -- step -----------------------------------------------------------------------------------
    def train_step(self) -> dict[str, float]:
        batch = next(self.stream)
        try:
            losses = self.task.train_step(batch, self.step + 1)
            for net in self.task.nets.values():
                broadcast_buffers(net, self.dist)
            self.task.check_state_finite(self.step + 1)  # before any checkpoint can hold a NaN
        except TrainingDiverged as err:
            kept = (f"the last good checkpoint, {self.last_checkpoint}, is kept" if self.last_checkpoint else
                    "no checkpoint had been written yet")
            raise TrainingDiverged(f"{err}; {kept}") from None
        self.step += 1
        return losses

    # -- evaluate -------------------------------------------------------------------------------
    def evaluate(self) -> None:
        """Sample grid of the fixed test batch (rank 0)."""
        if self.log is None or self.sample_batch is None:
            return
        rows = self.task.sample_rows(self.sample_batch)
        self.log.samples(self.step, rows, list(self.task.SAMPLE_COLUMNS))

    # -- checkpoint -----------------------------------------------------------------------------
    def checkpoint(self) -> Path | None:
        """Write the full state (rank 0 writes; every rank contributes its RNG and pools)."""
        local = {"rng": ckpt.rng_state(), "task": self.task.local_state()}
        all_local = gather_objects(local, self.dist)
        path = None
        if self.dist.is_main:
            state = {"format": FORMAT, "step": self.step, "epoch": self.stream.position.epoch,
                     "batch": self.stream.position.batch, "config": to_dict(self.cfg), "task": self.task.state_dict(),
                     "local": all_local, "world_size": self.dist.world_size, "wall_time": self.wall_time,
                     "hardware": hardware_string(self.device)}
            state[ckpt.HASH_KEY] = ckpt.content_hash(state)  # checked on loading
            ckpt_dir = self.run_dir / "checkpoints"
            path = ckpt_dir / ckpt.checkpoint_name(self.step)
            try:
                ckpt_dir.mkdir(parents=True, exist_ok=True)
                ckpt.save_torch(state, path, tmp_dir=self.run_dir / ".tmp")
            except (OSError, RuntimeError) as err:  # torch's zip writer raises RuntimeError on a full disk
                self._warn_failed_checkpoint(path, err)
                path = None
            else:
                self.last_checkpoint = path
                ckpt.prune_checkpoints(ckpt_dir, self.cfg.train.keep_last)
        barrier(self.dist)
        return path

    def _warn_failed_checkpoint(self, path: Path, err: Exception) -> None:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else \
            (str(err).splitlines()[0] if str(err) else type(err).__name__)
        if isinstance(err, RuntimeError):  # "[enforce fail at inline_container.cc:NNN] . unexpected pos ..."
            reason = "torch's writer stopped: " + reason.split("] ")[-1].strip(" .")
        try:
            free = shutil.disk_usage(self.run_dir).free
            reason += f"; {free / 2**20:.1f} MB free in {self.run_dir}"
        except OSError:
            pass
        last = f"the newest intact one is {self.last_checkpoint}" if self.last_checkpoint else "none was written yet"
        final = self.step >= self.cfg.train.max_steps or self.stop_signal is not None
        todo = (f"free space, then `gennorm train --resume {self.run_dir}` redoes the steps after it" if final
                else "training continues and tries again at the next checkpoint")
        print(f"warning: writing checkpoint {path} failed ({reason}); the previous checkpoints are intact "
              f"({last}); {todo}", file=sys.stderr)

    # -- the loop -------------------------------------------------------------------------------
    def _on_signal(self, signum, frame) -> None:
        if self.stop_signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: stop now
        self.stop_signal = signal.Signals(signum).name

    def run(self) -> Path:
        was_deterministic = torch.are_deterministic_algorithms_enabled()
        self.setup()
        t = self.cfg.train
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        bar = None
        try:
            if self.dist.is_main:
                print(f"training {t.max_steps - self.step} steps (step {self.step} -> {t.max_steps}), batch "
                      f"{t.batch_size} at {self.cfg.data.crop_size} px on {self.device}; the steps/s and the time "
                      "left show after the first steps", file=sys.stderr)
            if self.dist.is_main and t.progress:
                bar = tqdm(total=t.max_steps, initial=self.step, desc=self.run_dir.name, dynamic_ncols=True,
                           mininterval=1.0, file=sys.stderr, unit="step")
            if self.step == 0:
                self.evaluate()
            self._loop(bar)
            for callback in self.callbacks:
                callback.on_run_end(self)
        finally:
            torch.use_deterministic_algorithms(was_deterministic)
            for s, h in old.items():
                signal.signal(s, h)
            if bar is not None:
                bar.close()
            if self.log is not None:
                self.log.close()
            shutdown(self.dist)
        return self.run_dir

    def _loop(self, bar) -> None:
        t = self.cfg.train
        window: list[float] = []
        times: list[float] = []  # this session's step times (the first, with warm-up, is left out by speed)
        unsaved = False  # the last checkpoint attempt failed (warned): steps since the newest one are not on disk
        while self.step < t.max_steps:
            start = time.perf_counter()
            losses = self.train_step()
            elapsed = time.perf_counter() - start
            self.wall_time += elapsed
            window.append(elapsed)
            times.append(elapsed)
            if bar is not None:
                bar.update(1)
                bar.set_postfix({**speed(self.step, t.max_steps, times),
                                 **{k: f"{v:.3g}" for k, v in losses.items()}}, refresh=False)
            if self.log is not None and (self.step % t.log_every == 0 or self.step == t.max_steps):
                self.log.log({"step": self.step, "epoch": self.stream.position.epoch, **losses,
                              "lr": self.task.lr(), "step_time": sum(window) / len(window),
                              "time": time.time()})
                window = []
            if self.step % t.sample_every == 0 or self.step == t.max_steps:
                self.evaluate()
            for callback in self.callbacks:
                self.stop_signal = self.stop_signal or callback.on_step_end(self)
            stop = any_rank(self.stop_signal is not None, self.dist, self.device)
            if self.step % t.checkpoint_every == 0 or self.step == t.max_steps or stop:
                path = self.checkpoint()
                unsaved = path is None
            if stop:
                if self.dist.is_main:
                    where = f"checkpoint {path}" if path else "no new checkpoint (write failed)"
                    print(f"\nstopped by {self.stop_signal or 'a signal on another rank'} after step {self.step}; "
                          f"{where}; continue with: gennorm train --resume {self.run_dir}", file=sys.stderr)
                return
        if unsaved and self.dist.is_main:  # a finished run is one whose final state is on disk: not a success
            todo = (f"then `gennorm train --resume {self.run_dir}` redoes the steps after {self.last_checkpoint.name}"
                    if self.last_checkpoint else f"remove {self.run_dir} and run the same command again (no checkpoint "
                    "was written)")
            raise GennormError(f"training reached step {self.step} but its final checkpoint could not be written "
                               f"(see the warning above); free space, {todo}")


def speed(step: int, max_steps: int, times: list[float], recent: int = 50) -> dict[str, str]:
    """{"steps/s", "ETA"} for the progress line from the step times of this session ({} until 2
    steps ran: the first pays the warm-up); the mean of the last `recent` steps after the first."""
    if len(times) < 2:
        return {}
    mean = sum(times[1:][-recent:]) / len(times[1:][-recent:])
    left = int(round(mean * (max_steps - step)))
    return {"steps/s": f"{1 / mean:.3g}", "ETA": f"{left // 3600}:{left % 3600 // 60:02d}:{left % 60:02d}"}


# ----------------------------------------------------------------------------------------------
# entry points


def prepare_resume(run_dir: Path, overrides: list[str] | None) -> tuple[Config, dict, Path]:
    """The saved config with allowed overrides, the latest usable checkpoint's state and its file."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"--resume {run_dir}: not a run directory (no config.yaml)")
    cfg = config_from_file(run_dir / "config.yaml")
    before = flatten(to_dict(cfg))
    for key, value in parse_overrides(overrides or []):
        set_key(cfg, key, value)
    validate(cfg)
    check_unchanged(before, flatten(to_dict(cfg)))
    cfg.out = str(run_dir)
    state, path = ckpt.load_latest(run_dir / "checkpoints")  # hash and structure checked
    if isinstance(state.get("config"), dict):  # config.yaml edited since: the same keys refused
        for key, old, new in changed_keys(flatten(state["config"]), before)[:1]:
            raise ConfigError(f"config key {key!r} cannot change when resuming: checkpoint {path} has {key}={old!r}, "
                              f"{run_dir / 'config.yaml'} has {key}={new!r} (edited after training?); set it "
                              "back, or train a new run")
    return cfg, state, path


def train(cfg: Config | None = None, resume_dir: str | Path | None = None,
          overrides: list[str] | None = None, callbacks=()) -> Path:
    """Train from `cfg` into cfg.out, or resume `resume_dir`. Returns the run directory.

    The run directory is gennorm's (its .gennorm marker, or a run made before markers: config.yaml
    and checkpoints/) and has one writer: rank 0 holds its lock for the whole run (gennorm.locks).
    callbacks: `Callback` objects hooked into the run (see Callback)."""
    assert cfg is not None or resume_dir is not None
    run_dir, resume = Path(resume_dir if resume_dir is not None else cfg.out), resume_dir is not None
    with contextlib.ExitStack() as held:
        if os.environ.get("RANK", "0") == "0" and not (resume and not (run_dir / "config.yaml").is_file()):
            try:  # rank 0 only: under torchrun the other ranks write nothing there (not a run: prepare_resume says so)
                held.enter_context(own_folder(run_dir, "run", "the run", adopt=RUN_BEFORE_MARKERS, sweep=()))
            except OSError as err:
                raise write_error(f"the run directory {run_dir}", err, "make it writable (or copy the run elsewhere) "
                                  "and resume there" if resume else "choose another out=DIR") from None
        return _train(cfg, resume_dir, overrides, callbacks)


RUN_BEFORE_MARKERS = holds("config.yaml", "checkpoints")  # a run written before runs carried the marker


def _train(cfg: Config | None, resume_dir, overrides, callbacks) -> Path:
    path = None
    if resume_dir is not None:
        cfg, state, path = prepare_resume(Path(resume_dir), overrides)
        run_dir = Path(resume_dir)
        if cfg.train.n_epochs is None and state["step"] >= cfg.train.max_steps:
            print(f"{run_dir}: already at step {state['step']} (train.max_steps={cfg.train.max_steps}); "
                  f"nothing to do (raise train.max_steps=N to continue)", file=sys.stderr)
            return run_dir
        note = resume_lr_note(config_from_file(run_dir / "config.yaml").train, cfg.train, int(state["step"]))
        if note:
            print(f"note: {note}", file=sys.stderr)
    else:
        assert cfg is not None
        run_dir, state = Path(cfg.out), None
        if ckpt.list_checkpoints(run_dir / "checkpoints"):
            raise ConfigError(f"out={run_dir} already holds checkpoints; continue it with "
                              f"`gennorm train --resume {run_dir}` or choose another out=DIR")
    if cfg.train.wandb:
        import_wandb()  # wandb missing: one line now, before the run directory is written
    return Trainer(cfg, run_dir, state, callbacks, resume_path=path).run()


def remove_stale_temp_files(run_dir: Path) -> list[Path]:
    """Delete the temp files of writes that a kill interrupted (`.NAME.PID-HOST.tmp` in RUN, RUN/.tmp,
    checkpoints/, samples/) whose process is gone (gennorm.locks.sweep_leftovers). Called by rank 0
    while it holds the run's lock (`train`): another machine's leftovers go too."""
    run_dir = Path(run_dir)
    removed = [p for sub in (".", ".tmp", "checkpoints", "samples") for p in sweep_leftovers(run_dir / sub, locked=True)]
    if removed:
        print(f"note: removed {len(removed)} temporary file(s) left by an interrupted write in {run_dir} "
              f"({', '.join(p.name for p in removed[:3])}{', ...' if len(removed) > 3 else ''})", file=sys.stderr)
    return removed
