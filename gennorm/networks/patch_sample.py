"""CUT's PatchSampleF head (netF "mlp_sample"): patches of encoder features -> L2-normalized embeddings.

For each encoder tap l (a feature map [B, C_l, H_l, W_l]) and the patch ids drawn for it (P
positions of H_l * W_l, one draw shared by every image of the batch and by the query and key
features, as CUT):

    x = feat.permute(0, 2, 3, 1).reshape(B, H_l W_l, C_l)[:, ids]        [B, P, C_l]
    y = Linear(nc, nc)(ReLU(Linear(C_l, nc)(x)))                         [B, P, nc]
    out = y / (|y|_2 + 1e-7)                                              (CUT's Normalize(2))

|y|_2 is torch.linalg.vector_norm, whose gradient at y = 0 is 0, where CUT's pow(2).sum().pow(0.5)
gives NaN (an embedding with all its ReLUs off; rare at width 256, frequent at width 8).

The MLPs need the taps' channel counts, so they are created from the first features seen
(`create(channels)`, or the first forward), initialized as CUT's init_net (init_type normal:
N(0, gain 0.02) weights, zero bias). A training task creates them up front from a probe of its
generator, so that optimizer, checkpoints and resume see the head from the start.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from gennorm.networks.init import init_weights

EPS = 1e-7


def sample_patch_ids(feats: list[torch.Tensor], num_patches: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Per feature map [B, C, H, W]: min(num_patches, H*W) distinct positions in random order
    (a permutation's first entries, as CUT's np.random.permutation), drawn from `generator` (CPU)."""
    ids = []
    for feat in feats:
        positions = feat.shape[2] * feat.shape[3]
        perm = torch.randperm(positions, generator=generator)  # [H*W] on the CPU
        ids.append(perm[:min(num_patches, positions)].to(feat.device))
    return ids


class PatchSampleF(nn.Module):
    """The CUT projection head: one MLP per encoder tap (`mlps[l]`); see the module docstring."""

    def __init__(self, nc: int = 256, init_type: str = "normal", init_gain: float = 0.02):
        super().__init__()
        if nc < 1:
            raise ValueError(f"PatchSampleF: nc must be >= 1, got {nc}")
        self.nc, self.init_type, self.init_gain = nc, init_type, init_gain
        self.mlps = nn.ModuleList()
        self.options = {"kind": "patch_sample", "arch": "mlp_sample", "nc": nc, "channels": []}

    @property
    def created(self) -> bool:
        return len(self.mlps) > 0

    def create(self, channels: list[int]) -> None:
        """The MLPs for taps with these channel counts, initialized (CUT's create_mlp + init_net)."""
        if self.created:
            raise ValueError("PatchSampleF: the MLPs exist already")
        for c in channels:
            self.mlps.append(nn.Sequential(nn.Linear(c, self.nc), nn.ReLU(), nn.Linear(self.nc, self.nc)))
        init_weights(self, self.init_type, self.init_gain)
        self.options["channels"] = [int(c) for c in channels]

    def forward(self, feats: list[torch.Tensor], patch_ids: list[torch.Tensor]) -> list[torch.Tensor]:
        """Embeddings [B, P_l, nc] of the patches `patch_ids[l]` of each feature map feats[l]."""
        if not self.created:
            self.create([f.shape[1] for f in feats])
        if len(feats) != len(self.mlps) or len(patch_ids) != len(feats):
            raise ValueError(f"PatchSampleF: {len(self.mlps)} MLPs, got {len(feats)} feature maps and "
                             f"{len(patch_ids)} patch id lists")
        out = []
        for feat, ids, mlp in zip(feats, patch_ids, self.mlps):
            x = feat.permute(0, 2, 3, 1).flatten(1, 2)[:, ids, :]  # [B, P, C]
            y = mlp(x)  # [B, P, nc]
            out.append(y / (torch.linalg.vector_norm(y, dim=-1, keepdim=True) + EPS))
        return out
