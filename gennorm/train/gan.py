"""The adversarial parts of the objectives: GAN losses (with the WGAN-GP penalty) and the image pool.

GAN losses: lsgan, vanilla, hinge and WGAN-GP (with its gradient penalty).

    gan = GANLoss("lsgan")
    loss_d = 0.5 * (gan(D(real), True) + gan(D(fake.detach()), False))   # discriminator
    loss_g = gan(D(fake), True, for_discriminator=False)                  # generator

Losses are computed in float32 even under autocast (the discriminator's map is cast up), so
bf16/fp16 training does not lose the small differences the losses are made of.

The image pool (Shrivastava et al.): D sees a mix of current and past generated images.

With probability 1/2 a returned image is a stored older one (swapped for the new one).
Randomness comes from the pool's own torch.Generator, so its state (and the stored images)
go into checkpoints and a resumed run draws exactly the same choices.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from gennorm.config import GAN_MODES


class GANLoss(nn.Module):
    def __init__(self, mode: str = "lsgan"):
        super().__init__()
        if mode not in GAN_MODES:
            raise ValueError(f"unknown gan_mode {mode!r}; allowed: {', '.join(GAN_MODES)}")
        self.mode = mode

    def forward(self, pred: torch.Tensor, target_is_real: bool, for_discriminator: bool = True) -> torch.Tensor:
        pred = pred.float()  # [N, 1, h, w] patch scores
        if self.mode == "lsgan":
            target = torch.ones_like(pred) if target_is_real else torch.zeros_like(pred)
            return F.mse_loss(pred, target)
        if self.mode == "vanilla":
            target = torch.ones_like(pred) if target_is_real else torch.zeros_like(pred)
            return F.binary_cross_entropy_with_logits(pred, target)
        if self.mode == "wgangp":
            return -pred.mean() if target_is_real else pred.mean()
        # hinge: D pushes real above +1 and fake below -1; G raises D's score of fakes
        if not for_discriminator:
            return -pred.mean()
        return F.relu(1.0 - pred).mean() if target_is_real else F.relu(1.0 + pred).mean()


def gradient_penalty(netD: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """WGAN-GP: E[(||grad D(x_hat)||_2 - 1)^2] on random interpolates of real and fake (float32)."""
    n = real.shape[0]
    alpha = torch.rand(n, 1, 1, 1, device=real.device, generator=generator)  # [N, 1, 1, 1]
    x_hat = (alpha * real.detach().float() + (1 - alpha) * fake.detach().float()).requires_grad_(True)
    with torch.autocast(device_type=real.device.type, enabled=False):
        out = netD(x_hat)
        grad, = torch.autograd.grad(out.float().sum(), x_hat, create_graph=True)
    return ((grad.reshape(n, -1).norm(2, dim=1) - 1.0) ** 2).mean()


class ImagePool:
    def __init__(self, size: int, seed: int = 0):
        self.size = size
        self.images: list[torch.Tensor] = []  # each [C, H, W], detached
        self.gen = torch.Generator().manual_seed(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """images [N, C, H, W] -> [N, C, H, W], some replaced by pooled ones."""
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand(1, generator=self.gen).item() > 0.5:
                idx = int(torch.randint(0, self.size, (1,), generator=self.gen).item())
                old = self.images[idx].clone()
                self.images[idx] = image.clone()
                out.append(old)
            else:
                out.append(image)
        return torch.stack(out, 0)

    def state_dict(self) -> dict:
        return {"images": [im.cpu() for im in self.images], "gen": self.gen.get_state()}

    def load_state_dict(self, state: dict, device: torch.device | str = "cpu") -> None:
        self.images = [im.to(device) for im in state["images"]]
        self.gen.set_state(state["gen"])
