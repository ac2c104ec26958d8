"""CycleGAN (Zhu et al. 2017): G_A: A -> B, G_B: B -> A, D_A judges B-domain, D_B judges A-domain.

    loss_G = gan(D_A(G_A(A))) + gan(D_B(G_B(B)))                          (adversarial)
           + lambda_cycle * (|G_B(G_A(A)) - A|_1 + |G_A(G_B(B)) - B|_1)    (cycle, 10)
           + lambda_cycle * lambda_identity * (|G_A(B) - B|_1 + |G_B(A) - A|_1)   (identity, 0.5)
    loss_D_A = 0.5 * (gan(D_A(B), real) + gan(D_A(pool_A(G_A(A))), fake)), same for D_B
Discriminators see fakes through 50-image pools; Adam(2e-4, (0.5, 0.999)).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from gennorm.train.gan import ImagePool
from gennorm.networks.factory import build_discriminator_from, build_generator_from
from gennorm.train.task import Task, set_requires_grad


class CycleGANTask(Task):
    GENERATORS = ("G_A", "G_B")
    DISCRIMINATORS = ("D_A", "D_B")
    SAMPLE_COLUMNS = ("A", "G_A(A)", "G_B(G_A(A))", "B", "G_B(B)", "G_A(G_B(B))")  # the sample grid's columns, one per row of sample_rows

    def __init__(self, cfg, device, dist_info=None):
        super().__init__(cfg, device, dist_info)
        seed = cfg.train.seed * 1000 + 101 * self.dist.rank
        self.pools = {"A": ImagePool(cfg.train.pool_size, seed + 1), "B": ImagePool(cfg.train.pool_size, seed + 2)}

    def build_nets(self):
        m = self.cfg.model
        return {"G_A": build_generator_from(m, m.input_nc, m.output_nc),
                "G_B": build_generator_from(m, m.output_nc, m.input_nc),
                "D_A": build_discriminator_from(m, m.output_nc),
                "D_B": build_discriminator_from(m, m.input_nc)}

    def _generator_losses(self, real_A, real_B):
        t, n = self.cfg.train, self.nets
        with self.autocast():
            fake_B = n["G_A"](real_A)
            rec_A = n["G_B"](fake_B)
            fake_A = n["G_B"](real_B)
            rec_B = n["G_A"](fake_A)
            gan_A = self.gan(n["D_A"](fake_B), True, for_discriminator=False)
            gan_B = self.gan(n["D_B"](fake_A), True, for_discriminator=False)
            idt_A = n["G_A"](real_B) if t.lambda_identity > 0 else None
            idt_B = n["G_B"](real_A) if t.lambda_identity > 0 else None
        losses = {
            "G_A": gan_A, "G_B": gan_B,
            "cycle_A": F.l1_loss(rec_A.float(), real_A.float()) * t.lambda_cycle,
            "cycle_B": F.l1_loss(rec_B.float(), real_B.float()) * t.lambda_cycle,
        }
        if idt_A is not None:
            w = t.lambda_cycle * t.lambda_identity
            losses["idt_A"] = F.l1_loss(idt_A.float(), real_B.float()) * w
            losses["idt_B"] = F.l1_loss(idt_B.float(), real_A.float()) * w
        return losses, fake_A, fake_B

    def train_step(self, batch: dict, step: int) -> dict[str, float]:
        n = self.nets
        real_A = batch["A"].to(self.device, non_blocking=True)  # [N, in, H, W]
        real_B = batch["B"].to(self.device, non_blocking=True)  # [N, out, H, W]

        set_requires_grad([n["D_A"], n["D_B"]], False)
        g_losses, fake_A, fake_B = self._generator_losses(real_A, real_B)
        loss_g = sum(g_losses.values())
        self.check_finite({**g_losses, "G": loss_g}, step)
        self.optimize("G", loss_g, self.GENERATORS)

        set_requires_grad([n["D_A"], n["D_B"]], True)
        d_a = self.d_loss(n["D_A"], real_B, self.pools["B"].query(fake_B))
        d_b = self.d_loss(n["D_B"], real_A, self.pools["A"].query(fake_A))
        loss_d = d_a["total"] + d_b["total"]
        self.check_finite({"D_A": d_a["total"], "D_B": d_b["total"]}, step)
        self.optimize("D", loss_d, self.DISCRIMINATORS)
        self.after_step()
        out = {k: v.item() for k, v in g_losses.items()}
        out.update(D_A=d_a["total"].item(), D_B=d_b["total"].item())
        return out

    def sample_rows(self, batch: dict) -> list[torch.Tensor]:
        """[A, G_A(A), G_B(G_A(A)), B, G_B(B), G_A(G_B(B))]."""
        real_A, real_B = batch["A"].to(self.device), batch["B"].to(self.device)
        fake_B, fake_A = self.run_generator("G_A", real_A), self.run_generator("G_B", real_B)
        return [real_A, fake_B, self.run_generator("G_B", fake_B), real_B, fake_A, self.run_generator("G_A", fake_A)]

