"""The image pool of Shrivastava et al.: D sees a mix of current and past generated images.

With probability 1/2 a returned image is a stored older one (swapped for the new one).
Randomness comes from the pool's own torch.Generator, so its state (and the stored images)
go into checkpoints and a resumed run draws exactly the same choices.
"""
from __future__ import annotations

import torch


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
