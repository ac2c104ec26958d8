"""What pix2pix and CycleGAN share: nets, Adam + LR schedule, AMP scalers, EMA, state dicts.

A task owns its networks (`self.nets`, name -> module), the two optimizers "G" and "D", their
schedulers and gradient scalers, the EMA copies of its generators and its image pools; it runs
one training step on a batch and returns its losses as floats. Subclasses build the nets and
define `train_step`, `sample_rows` and `GENERATORS`.
"""
from __future__ import annotations

import contextlib
import re
import warnings

import torch
import torch.nn as nn

from gennorm.errors import CheckpointError, ConfigError, GennormError
from gennorm.train.distributed import DistInfo, any_rank, average_gradients
from gennorm.train.optim import EMA, make_adam, make_scheduler, refresh_lr
from gennorm.train.gan import GANLoss, gradient_penalty

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class TrainingDiverged(GennormError):
    """A loss became NaN or infinite; the run stops, keeping its last good checkpoint."""

    exit_code = 3


def set_requires_grad(nets, flag: bool) -> None:
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(flag)


class Task:
    GENERATORS: tuple[str, ...] = ()
    DISCRIMINATORS: tuple[str, ...] = ()

    def __init__(self, cfg, device: torch.device, dist_info: DistInfo | None = None):
        self.cfg = cfg
        self.device = device
        self.dist = dist_info or DistInfo()
        self.nets: dict[str, nn.Module] = self.build_nets()
        for net in self.nets.values():
            net.to(device)
        if self.dist.enabled and device.type == "cuda" and "batch" in (cfg.model.g_norm, cfg.model.d_norm):
            for name in self.nets:  # BatchNorm statistics over the global batch
                self.nets[name] = nn.SyncBatchNorm.convert_sync_batchnorm(self.nets[name])
        t = cfg.train
        self.gan = GANLoss(t.gan_mode)
        self.optims = {
            "G": make_adam([p for n in self.GENERATORS for p in self.nets[n].parameters()], t),
            "D": make_adam([p for n in self.DISCRIMINATORS for p in self.nets[n].parameters()], t),
        }
        self.scheds = {k: make_scheduler(o, t) for k, o in self.optims.items()}
        fp16 = t.amp == "fp16"
        self.scalers = {k: torch.amp.GradScaler(device.type, enabled=fp16) for k in self.optims}
        self.ema = {n: EMA(self.nets[n], t.ema) for n in self.GENERATORS} if t.ema > 0 else {}
        self.pools: dict = {}
        self.gp_gen = torch.Generator(device=device).manual_seed(t.seed + 7919 * self.dist.rank)
        self.callbacks: list = []  # the run's Callbacks (gennorm.train.loop), set by the Trainer

    # -- subclass interface -------------------------------------------------------------------
    def build_nets(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def train_step(self, batch: dict, step: int) -> dict[str, float]:
        raise NotImplementedError

    def sample_rows(self, batch: dict) -> list[torch.Tensor]:
        raise NotImplementedError

    # -- helpers for subclasses ---------------------------------------------------------------
    def autocast(self):
        if self.cfg.train.amp == "none":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=AMP_DTYPES[self.cfg.train.amp])

    def check_finite(self, losses: dict[str, torch.Tensor], step: int) -> None:
        """Stop (TrainingDiverged, exit 3) before a NaN/inf loss can reach the weights (all ranks agree)."""
        for callback in self.callbacks:
            callback.on_losses(step, losses)
        bad = [name for name, value in losses.items() if not torch.isfinite(value.detach()).all()]
        if self.dist.enabled:
            bad_anywhere = any_rank(bool(bad), self.dist, self.device)
        else:
            bad_anywhere = bool(bad)
        if bad_anywhere:
            what = f"loss {bad[0]} is {losses[bad[0]].item()}" if bad else "a loss is not finite on another rank"
            raise TrainingDiverged(f"{what} at step {step}; stopping. The last good checkpoint is kept; "
                                   f"resume with a lower train.lr or train.amp=none")

    def optimize(self, key: str, loss: torch.Tensor, net_names: tuple[str, ...]) -> None:
        """Backward, average gradients over ranks, (scaled) optimizer step."""
        opt, scaler = self.optims[key], self.scalers[key]
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        average_gradients([self.nets[n] for n in net_names], self.dist)
        scaler.step(opt)
        scaler.update()

    def d_loss(self, netD: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> dict[str, torch.Tensor]:
        """The discriminator's loss on real and (detached) fake inputs; + gradient penalty for wgangp."""
        with self.autocast():
            loss_real = self.gan(netD(real), True)
            loss_fake = self.gan(netD(fake.detach()), False)
        if self.cfg.train.gan_mode == "wgangp":
            gp = gradient_penalty(netD, real, fake, generator=self.gp_gen)
            return {"real": loss_real, "fake": loss_fake, "total": loss_real + loss_fake + self.cfg.train.lambda_gp * gp}
        return {"real": loss_real, "fake": loss_fake, "total": 0.5 * (loss_real + loss_fake)}

    def after_step(self) -> None:
        with warnings.catch_warnings():  # fp16: GradScaler skips steps with inf grads; the schedule still advances
            warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()`"))
            for sched in self.scheds.values():
                sched.step()
        for name, ema in self.ema.items():
            ema.update(self.nets[name])

    def lr(self) -> float:
        return self.optims["G"].param_groups[0]["lr"]

    # -- inference ----------------------------------------------------------------------------
    def generator(self, name: str) -> nn.Module:
        """The generator used for samples / translation: its EMA copy when EMA is on."""
        return self.ema[name].module if name in self.ema else self.nets[name]

    @torch.no_grad()
    def run_generator(self, name: str, x: torch.Tensor) -> torch.Tensor:
        net = self.generator(name)
        was_training = net.training
        net.eval()
        try:
            with self.autocast():
                return net(x).float()
        finally:
            net.train(was_training)

    # -- state --------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "nets": {n: net.state_dict() for n, net in self.nets.items()},
            "optims": {k: o.state_dict() for k, o in self.optims.items()},
            "scheds": {k: s.state_dict() for k, s in self.scheds.items()},
            "scalers": {k: s.state_dict() for k, s in self.scalers.items()},
            "ema": {n: e.state_dict() for n, e in self.ema.items()},
            "options": {n: dict(getattr(net, "options", {})) for n, net in self.nets.items()},
        }

    def local_state(self) -> dict:
        """State that differs per rank (pools, penalty RNG)."""
        return {"pools": {n: p.state_dict() for n, p in self.pools.items()}, "gp_gen": self.gp_gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        try:
            for n, net in self.nets.items():
                net.load_state_dict(state["nets"][n])
            for k, o in self.optims.items():
                o.load_state_dict(state["optims"][k])
            for k, s in self.scheds.items():
                s.load_state_dict(state["scheds"][k])
                refresh_lr(s)  # the config's max_steps / decay_start may have changed
            for k, s in self.scalers.items():
                if state["scalers"].get(k):
                    s.load_state_dict(state["scalers"][k])
            for n, e in self.ema.items():
                if n in state.get("ema", {}):
                    e.load_state_dict(state["ema"][n])
                else:
                    e.module.load_state_dict(self.nets[n].state_dict())
        except (KeyError, RuntimeError, ValueError) as err:
            raise CheckpointError(f"checkpoint does not match the configured networks: {err}") from None

    def load_local_state(self, state: dict) -> None:
        for n, p in self.pools.items():
            if n in state.get("pools", {}):
                p.load_state_dict(state["pools"][n], self.device)
        if "gp_gen" in state:
            self.gp_gen.set_state(state["gp_gen"])
