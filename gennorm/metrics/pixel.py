"""PSNR and SSIM per image pair in float64 (SSIM on torchmetrics' functional implementation).

Settings (chosen so the numbers equal scikit-image's on the same files, which the tests check):
- data range 1.0 on images scaled to [0, 1] from 8 bits (= skimage with `data_range=255` on
  the uint8 arrays);
- PSNR per image over all pixels and channels, then averaged over pairs;
- SSIM: Gaussian window sigma 1.5, 11x11 (skimage `gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False`, whose truncate=3.5 gives the same 11 taps), K1=0.01, K2=0.03,
  borders of (11-1)/2 pixels cropped (torchmetrics 1.9 itself averages the reflect-padded
  border too, which differs from skimage by ~1e-3 on 32x32 images, so we take its full SSIM map
  and crop), mean over channels and pixels (skimage `channel_axis=-1`), then averaged over pairs.
"""
from __future__ import annotations

import torch

SETTINGS = {
    "psnr": "per image, data_range=1.0 on 8-bit images scaled to [0,1], float64, mean over pairs",
    "ssim": "per image, gaussian window sigma=1.5 size=11, K1=0.01 K2=0.03, data_range=1.0, borders cropped, "
            "mean over channels and pixels, float64, mean over pairs (= skimage structural_similarity("
            "gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255, channel_axis=-1))",
}


def psnr_per_image(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """PSNR [N] of images [N, 3, H, W] in [0, 1]: 10 log10(1 / MSE), +inf for identical images.

    Written out rather than torchmetrics' `peak_signal_noise_ratio`, which computes its
    10 / ln(10) factor in float32 and so differs from scikit-image by ~1e-7 relative.
    """
    mse = (fake.double() - real.double()).square().mean(dim=(1, 2, 3))  # [N]
    return 10 * torch.log10(1.0 / mse)


def ssim_per_image(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """SSIM [N] of images [N, 3, H, W] in [0, 1] (needs H, W >= 11)."""
    from torchmetrics.functional.image import structural_similarity_index_measure  # lazy: absent on the GPU image

    if min(real.shape[-2:]) < 11:
        raise ValueError(f"SSIM needs images of at least 11x11 pixels, got {tuple(real.shape[-2:])}")
    _, ssim_map = structural_similarity_index_measure(
        fake.double(), real.double(), gaussian_kernel=True, sigma=1.5, kernel_size=11, data_range=1.0, k1=0.01,
        k2=0.03, reduction="none", return_full_image=True)  # [N, 3, H, W], borders from reflect padding
    # torchmetrics averages the whole map, including the 5-pixel border computed on reflect-padded
    # input; Wang et al. / skimage average only where the window fits inside the image.
    return ssim_map[..., 5:-5, 5:-5].mean(dim=(1, 2, 3))
