"""Kernel Inception Distance: unbiased MMD^2 with the cubic polynomial kernel, over subsets.

    k(x, y) = (x . y / D + 1)^3
    MMD^2_u = sum_{i!=j} k(x_i,x_j)/(m(m-1)) + sum_{i!=j} k(y_i,y_j)/(m(m-1)) - 2 sum_{i,j} k(x_i,y_j)/m^2

averaged over `subsets` random subsets of size m drawn without replacement (Binkowski et al.
2018, as in torchmetrics and clean-fid). Test splits are small (~100 images) while the usual
subset size is 1000, so `subset_size` is lowered to the smaller set's size with a warning.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch


def polynomial_mmd(x: torch.Tensor, y: torch.Tensor, degree: int = 3, gamma: float | None = None,
                   coef: float = 1.0) -> torch.Tensor:
    """Unbiased MMD^2 between feature sets x [m, D] and y [m, D] (same m), polynomial kernel."""
    m = x.shape[0]
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    k_xx = (x @ x.T * gamma + coef) ** degree  # [m, m]
    k_yy = (y @ y.T * gamma + coef) ** degree
    k_xy = (x @ y.T * gamma + coef) ** degree
    off = lambda k: k.sum() - k.diagonal().sum()  # noqa: E731
    return (off(k_xx) + off(k_yy)) / (m * (m - 1)) - 2 * k_xy.sum() / (m * m)


def kernel_inception_distance(real, fake, subsets: int = 100, subset_size: int = 1000, seed: int = 0,
                              device: str | torch.device = "cpu") -> dict:
    """KID mean and std over subsets, plus the subset size actually used (float64)."""
    x = torch.as_tensor(np.asarray(real), dtype=torch.float64, device=device)  # [Nr, D]
    y = torch.as_tensor(np.asarray(fake), dtype=torch.float64, device=device)  # [Nf, D]
    n = min(x.shape[0], y.shape[0])
    if n < 2:
        raise ValueError(f"KID needs at least 2 images in each set, got {x.shape[0]} real and {y.shape[0]} fake")
    m = subset_size
    if n < subset_size:
        m = n
        warnings.warn(f"KID: only {n} images in the smaller set; subset size lowered from {subset_size} to {m}",
                      stacklevel=2)
    gen = torch.Generator().manual_seed(seed)
    vals = torch.stack([
        polynomial_mmd(x[torch.randperm(x.shape[0], generator=gen)[:m].to(device)],
                       y[torch.randperm(y.shape[0], generator=gen)[:m].to(device)])
        for _ in range(subsets)
    ])
    return {"kid": float(vals.mean()), "kid_std": float(vals.std(unbiased=False)), "kid_subset_size": m,
            "kid_subsets": subsets}
