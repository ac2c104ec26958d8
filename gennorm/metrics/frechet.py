"""Frechet distance between two Gaussians, the math behind FID.

    d^2 = ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr( (S1 S2)^{1/2} )

We compute tr((S1 S2)^{1/2}) as tr((A S2 A)^{1/2}) with A = S1^{1/2}: A S2 A is symmetric
positive semi-definite and similar to S1 S2, so its eigenvalues (from `eigh`, clamped at 0)
are the eigenvalues of S1 S2. This avoids `scipy.linalg.sqrtm` on a non-symmetric product,
which returns complex noise for the rank-deficient covariances of small sets (N < 2048), and
runs in float64 on either device. The tests check it against the closed form and `sqrtm`.
"""
from __future__ import annotations

import numpy as np
import torch


def feature_stats(features: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and unbiased covariance [D, D] of features [N, D], in float64."""
    x = np.asarray(features, dtype=np.float64)  # [N, D]
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"feature_stats needs features [N, D] with N >= 2, got shape {x.shape}")
    return x.mean(axis=0), np.cov(x, rowvar=False)


def _clean(w: torch.Tensor) -> torch.Tensor:
    """Eigenvalues of a PSD matrix with round-off removed: those below D * eps * max -> 0.

    Without this, the ~1e-16 * max noise on the null space of a rank-deficient covariance turns
    into sqrt(1e-16) ~ 1e-8 per dimension after the square root, ~1e-5 summed over 2048 dims.
    """
    tol = w.numel() * torch.finfo(w.dtype).eps * w.abs().max().clamp_min(1e-300)
    return torch.where(w > tol, w, torch.zeros_like(w))


def _psd_sqrt(s: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a PSD matrix (round-off eigenvalues set to 0)."""
    w, v = torch.linalg.eigh((s + s.T) / 2)
    return (v * _clean(w).sqrt()) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2, device: str | torch.device = "cpu") -> float:
    """Squared Frechet distance between N(mu1, sigma1) and N(mu2, sigma2) (float64)."""
    t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float64, device=device)  # noqa: E731
    mu1, mu2, s1, s2 = t(mu1), t(mu2), t(sigma1), t(sigma2)
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.numel(), mu1.numel()):
        raise ValueError(f"frechet_distance: shapes differ: mu {tuple(mu1.shape)}/{tuple(mu2.shape)}, "
                         f"sigma {tuple(s1.shape)}/{tuple(s2.shape)}")
    a = _psd_sqrt(s1)
    m = a @ s2 @ a  # [D, D], symmetric PSD, same spectrum as s1 @ s2
    tr_sqrt = _clean(torch.linalg.eigvalsh((m + m.T) / 2)).sqrt().sum()
    d2 = (mu1 - mu2).square().sum() + s1.trace() + s2.trace() - 2 * tr_sqrt
    return float(d2)


def frechet_distance_features(x, y, device: str | torch.device = "cpu") -> float:
    """Frechet distance between the Gaussians fitted to features x [N1, D] and y [N2, D] (float64).

    With fewer samples than dimensions (test splits: ~100 images, D = 2048) the D x D route costs
    two 2048^2 eigendecompositions (~seconds to tens of seconds on a CPU). There, with centred
    A = X_c / sqrt(N1 - 1), B = Y_c / sqrt(N2 - 1): S1 S2 = A^T A B^T B has the same non-zero
    eigenvalues as (B A^T)^T (B A^T), so tr((S1 S2)^{1/2}) is the nuclear norm (sum of singular
    values) of the small N2 x N1 matrix B A^T, and tr(S) = ||A||_F^2. Exact, no D x D matrix.
    """
    a = torch.as_tensor(np.asarray(x), dtype=torch.float64, device=device)  # [N1, D]
    b = torch.as_tensor(np.asarray(y), dtype=torch.float64, device=device)  # [N2, D]
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(a.shape[0], b.shape[0]) < 2:
        raise ValueError(f"frechet_distance_features needs [N, D] features with N >= 2, got {tuple(a.shape)} "
                         f"and {tuple(b.shape)}")
    if max(a.shape[0], b.shape[0]) > a.shape[1]:
        return frechet_distance(*feature_stats(a.cpu()), *feature_stats(b.cpu()), device=device)
    mu_a, mu_b = a.mean(0), b.mean(0)
    a = (a - mu_a) / (a.shape[0] - 1) ** 0.5
    b = (b - mu_b) / (b.shape[0] - 1) ** 0.5
    tr_sqrt = torch.linalg.svdvals(b @ a.T).sum()  # [N2, N1] -> nuclear norm
    return float((mu_a - mu_b).square().sum() + a.square().sum() + b.square().sum() - 2 * tr_sqrt)
