"""Training callbacks for tests (gennorm.train.loop.Callback), and a CLI runner that installs them.

    with_callbacks(monkeypatch, StopAtStep(4))     # the next `gennorm train` in this process uses them
    python tests/train_hooks.py --param-hash DIR train PRESET ...   # `gennorm train ...` + ParamHash(DIR)
"""
from __future__ import annotations

import functools
import hashlib
import sys
from pathlib import Path

from gennorm.train import loop


class StopAtStep(loop.Callback):
    """Acts like a SIGTERM arriving during step k."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, trainer):
        return "StopAtStep" if trainer.step == self.step else None


class NanAtStep(loop.Callback):
    """The first loss checked at step k becomes NaN."""

    def __init__(self, step: int):
        self.step = step

    def on_losses(self, step, losses):
        if step == self.step:
            first = next(iter(losses))
            losses[first] = losses[first] * float("nan")


class ParamHash(loop.Callback):
    """At the end, each rank writes DIR/rank<r>.txt: "<step> <sha256 of all weights>"."""

    def __init__(self, folder):
        self.folder = Path(folder)

    def on_run_end(self, trainer):
        h = hashlib.sha256()
        for name, net in sorted(trainer.task.nets.items()):
            for key, value in sorted(net.state_dict().items()):
                h.update(f"{name}.{key}".encode())
                h.update(value.detach().cpu().contiguous().numpy().tobytes())
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / f"rank{trainer.dist.rank}.txt").write_text(f"{trainer.step} {h.hexdigest()}\n")


def install(*callbacks) -> None:
    """Make gennorm.train.loop.train (what `gennorm train` calls) run with these callbacks."""
    loop.train = functools.partial(loop.train, callbacks=list(callbacks))


def with_callbacks(monkeypatch, *callbacks) -> None:
    monkeypatch.setattr(loop, "train", functools.partial(loop.train, callbacks=list(callbacks)))


if __name__ == "__main__":  # torchrun tests/train_hooks.py --param-hash DIR train ...
    from gennorm.cli import main

    args = sys.argv[1:]
    if args[:1] == ["--param-hash"]:
        install(ParamHash(args[1]))
        args = args[2:]
    sys.exit(main(args))
