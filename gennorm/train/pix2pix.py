"""pix2pix (Isola et al. 2017): G(A) -> B with a conditional PatchGAN on cat(A, B) and L1.

    loss_D = 0.5 * (gan(D(cat(A, B)), real) + gan(D(cat(A, G(A))), fake))
    loss_G = gan(D(cat(A, G(A))), real) + lambda_l1 * |G(A) - B|_1
No image pool (D sees the current fake only), Adam(2e-4, (0.5, 0.999)).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from gennorm.networks.factory import build_discriminator_from, build_generator_from
from gennorm.train.task import Task, set_requires_grad


class Pix2PixTask(Task):
    GENERATORS = ("G",)
    DISCRIMINATORS = ("D",)
    SAMPLE_COLUMNS = ("A", "G(A)", "B")  # the sample grid's columns, one per row of sample_rows

    def build_nets(self):
        m = self.cfg.model
        return {"G": build_generator_from(m, m.input_nc, m.output_nc),
                "D": build_discriminator_from(m, m.input_nc + m.output_nc)}

    def train_step(self, batch: dict, step: int) -> dict[str, float]:
        G, D, lam = self.nets["G"], self.nets["D"], self.cfg.train.lambda_l1
        real_A = batch["A"].to(self.device, non_blocking=True)  # [N, in, H, W]
        real_B = batch["B"].to(self.device, non_blocking=True)  # [N, out, H, W]
        with self.autocast():
            fake_B = G(real_A)

        set_requires_grad([D], True)
        d = self.d_loss(D, torch.cat([real_A, real_B], 1), torch.cat([real_A, fake_B], 1))
        self.check_finite({"D_real": d["real"], "D_fake": d["fake"], "D": d["total"]}, step)
        self.optimize("D", d["total"], ("D",))

        set_requires_grad([D], False)
        with self.autocast():
            loss_gan = self.gan(D(torch.cat([real_A, fake_B], 1)), True, for_discriminator=False)
        loss_l1 = F.l1_loss(fake_B.float(), real_B.float()) * lam
        loss_g = loss_gan + loss_l1
        self.check_finite({"G_GAN": loss_gan, "G_L1": loss_l1, "G": loss_g}, step)
        self.optimize("G", loss_g, ("G",))
        set_requires_grad([D], True)
        self.after_step()
        return {"G_GAN": loss_gan.item(), "G_L1": loss_l1.item(), "D_real": d["real"].item(),
                "D_fake": d["fake"].item()}

    def sample_rows(self, batch: dict) -> list[torch.Tensor]:
        """[A, G(A), B] (each [N, C, H, W])."""
        real_A, real_B = batch["A"].to(self.device), batch["B"].to(self.device)
        return [real_A, self.run_generator("G", real_A), real_B]
