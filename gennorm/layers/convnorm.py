"""Convolutional Normalization (ConvNorm, Liu et al. 2021; docs/SPEC.md section 4).

ConvNorm preconditions a conv in the Fourier domain so that every output channel is close to
an isometry. With the "full" convolution y = conv2d(x, W, padding=k-1) of size P x Q,

    V[o, u, v] = (sum_c |FFT2_PxQ(W[o, c])[u, v]|^2 + eps)^(-1/2)     (no gradient)
    z          = IFFT2(FFT2(y) * V)                                   (per output channel)
    out        = crop/stride(z) + bias, then * scale + shift         (affine, per channel)

and the crop makes the output exactly the size nn.Conv2d(C, O, k, stride, padding) gives.

Why the spectrum is computed from an autocorrelation: sum_c |FFT_PxQ(W[o, c])|^2 is the
PxQ-point DFT of R[o] = sum_c (W[o, c] correlated with itself), a (2kh-1) x (2kw-1) array of
lags wrapped onto the PxQ grid. Forming R costs O*C small FFTs; the literal form needs O*C
FFTs of size PxQ (1 GiB of complex values for a 256-channel 3x3 conv on a 64x64 input).
The tests compare with the literal form.

Padding larger than k-1: the windows of nn.Conv2d at the border then see only zeros. Here
that case is ConvNorm applied to x zero-padded by the excess (p - (k-1)) with padding k-1,
i.e. the preconditioner acts on the conv of the zero-padded input that nn.Conv2d sees; its
Fourier grid is the full conv of that padded input. (Padding z with zeros instead would
treat the border as outside the circular PxQ grid, which is not what the layer computes on a
padded input.)
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from gennorm.layers.checks import check_input, int_pair

SCHEDULE_STEPS = 40000  # the authors' cosine schedule length for the running average of V
MIN_MOMENTUM = 0.01


def schedule_momentum(step: int) -> float:
    """a(t) = max((cos(pi * min(t, 40000) / 40000) + 1) / 2, 0.01): 1 at t = 0, 0.01 from t ~ 39600."""
    t = min(int(step), SCHEDULE_STEPS)
    return max((math.cos(math.pi * t / SCHEDULE_STEPS) + 1) / 2, MIN_MOMENTUM)


@torch.no_grad()
def preconditioner(weight: torch.Tensor, size: tuple[int, int], eps: float) -> torch.Tensor:
    """V for weight [O, C, kh, kw] on a P x Q grid: [O, P, Q//2+1] (rfft half-spectrum); [O] for 1x1.

    Detached, float32 for half weights (the FFT needs float32 or float64).
    """
    w = weight.detach()
    w = w.float() if w.dtype in (torch.float16, torch.bfloat16) else w
    o, c, kh, kw = w.shape
    if kh == kw == 1:
        return (w.square().sum((1, 2, 3)) + eps).rsqrt()  # [O]
    lh, lw = 2 * kh - 1, 2 * kw - 1  # number of lags: the DFT of that size holds the linear autocorrelation
    power = torch.fft.rfft2(w, s=(lh, lw)).abs().square().sum(1)  # [O, lh, lw//2+1]
    lags = torch.fft.irfft2(power, s=(lh, lw))  # [O, lh, lw]; lag l sits at index l mod lh
    p, q = size
    rows = torch.tensor([i if i < kh else i - lh for i in range(lh)], device=w.device) % p
    cols = torch.tensor([j if j < kw else j - lw for j in range(lw)], device=w.device) % q
    # Wrap the lags onto the P x Q grid (index_add: lags alias when P < 2kh-1, i.e. tiny inputs).
    wrapped = w.new_zeros(o, p, lw).index_add_(1, rows, lags)
    wrapped = w.new_zeros(o, p, q).index_add_(2, cols, wrapped)  # [O, P, Q]
    spectrum = torch.fft.rfft2(wrapped).real.clamp_min(0)  # real: the lags are symmetric; >= 0 up to rounding
    return (spectrum + eps).rsqrt()  # [O, P, Q//2+1]


class ConvNorm2d(nn.Conv2d):
    """A conv whose output channels are preconditioned to near-isometries in the Fourier domain.

    x [N, C, H, W] -> [N, O, Ho, Wo], the same size as nn.Conv2d(C, O, kernel_size, stride,
    padding) gives (zero padding, dilation 1, groups 1). Same `weight`/`bias` state dict names
    as nn.Conv2d, plus `scale`/`shift` [O] when affine, and the buffers `running_V`
    ([O, P, Q//2+1], empty until the first training step; [O] for 1x1 kernels),
    `running_V_size` ([P, Q] it was computed for) and `num_batches_tracked` (the step t).

    Training uses V of the current weights and updates running_V = a * V + (1 - a) * running_V,
    a = schedule_momentum(t) (or `momentum` when given; a = 1 on the first step or when the
    input size changed). Eval uses running_V when it was computed for the same P x Q, and
    otherwise V of the current weights (running_V is left as it is).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True, affine=True,
                 eps=1e-5, momentum=None, device=None, dtype=None):
        kernel_size = int_pair(kernel_size, "kernel_size", "ConvNorm2d")
        stride = int_pair(stride, "stride", "ConvNorm2d")
        padding = int_pair(padding, "padding", "ConvNorm2d", minimum=0)
        if momentum is not None and not 0 < momentum <= 1:
            raise ValueError(f"ConvNorm2d: momentum must be in (0, 1] or None (the cosine schedule), got {momentum}")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, bias=bias, device=device, dtype=dtype)
        factory = {"device": device, "dtype": dtype}
        self.eps = float(eps)
        self.momentum = momentum
        self.affine = bool(affine)
        if self.affine:
            self.scale = nn.Parameter(torch.ones(out_channels, **factory))
            self.shift = nn.Parameter(torch.zeros(out_channels, **factory))
        else:
            self.register_parameter("scale", None)
            self.register_parameter("shift", None)
        self.register_buffer("running_V", torch.empty(0, **factory))
        self.register_buffer("running_V_size", torch.zeros(2, dtype=torch.long, device=device))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device))

    def reset_running_stats(self) -> None:
        self.running_V = self.running_V.new_empty(0)
        self.running_V_size.zero_()
        self.num_batches_tracked.zero_()

    def _full_grid(self, h: int, w: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """(extra zero padding of x, P x Q of the full conv of the padded x)."""
        (kh, kw), (ph, pw) = self.kernel_size, self.padding
        extra = (max(ph - (kh - 1), 0), max(pw - (kw - 1), 0))
        return extra, (h + 2 * extra[0] + kh - 1, w + 2 * extra[1] + kw - 1)

    def _running_matches(self, size: tuple[int, int]) -> bool:
        if self.running_V.numel() == 0:
            return False
        return self.kernel_size == (1, 1) or tuple(self.running_V_size.tolist()) == size

    def _current_V(self, size: tuple[int, int]) -> torch.Tensor:
        """V to use now; in training also advances the running average and the step counter."""
        if not self.training:
            if self._running_matches(size):
                return self.running_V
            return preconditioner(self.weight, size, self.eps)
        V = preconditioner(self.weight, size, self.eps)
        with torch.no_grad():
            if not self._running_matches(size):
                a = 1.0
            else:
                a = self.momentum if self.momentum is not None else schedule_momentum(int(self.num_batches_tracked))
            stored = V if a == 1.0 else a * V + (1 - a) * self.running_V.to(V.dtype)
            self.running_V = stored.to(self.running_V.dtype)
            self.running_V_size.copy_(torch.tensor(size))
            self.num_batches_tracked.add_(1)
        return V

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, "ConvNorm2d", self.in_channels)
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        h, w = x.shape[-2:]
        if h + 2 * ph < kh or w + 2 * pw < kw:
            raise ValueError(f"ConvNorm2d: kernel size {(kh, kw)} is larger than the padded input "
                             f"{(h + 2 * ph, w + 2 * pw)} (input {(h, w)}, padding {(ph, pw)})")
        ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1  # nn.Conv2d's output size
        extra, size = self._full_grid(h, w)
        V = self._current_V(size)
        if (kh, kw) == (1, 1):  # V is a scalar per output channel: no FFT, no full conv
            y = F.conv2d(x, self.weight, None, self.stride, self.padding)  # [N, O, Ho, Wo]
            out = y * V.to(y.dtype).view(1, -1, 1, 1)
        else:
            if any(extra):
                x = F.pad(x, (extra[1], extra[1], extra[0], extra[0]))
            y = F.conv2d(x, self.weight, None, 1, (kh - 1, kw - 1))  # [N, O, P, Q], the full conv
            yf = y.float() if y.dtype in (torch.float16, torch.bfloat16) else y
            z = torch.fft.irfft2(torch.fft.rfft2(yf) * V.to(yf.dtype), s=size)  # [N, O, P, Q]
            top, left = max(kh - 1 - ph, 0), max(kw - 1 - pw, 0)  # crop k-1-p (0 after the extra padding)
            out = z[:, :, top: top + sh * (ho - 1) + 1: sh, left: left + sw * (wo - 1) + 1: sw].to(y.dtype)
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1, 1)
        if self.affine:
            out = out * self.scale.view(1, -1, 1, 1) + self.shift.view(1, -1, 1, 1)
        return out  # [N, O, Ho, Wo]

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # running_V's shape depends on the input size it was last computed for: take the stored one.
        stored = state_dict.get(prefix + "running_V")
        if isinstance(stored, torch.Tensor) and stored.shape != self.running_V.shape:
            self.running_V = self.running_V.new_empty(stored.shape)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        extra = f", eps={self.eps}, affine={self.affine}"
        if self.momentum is not None:
            extra += f", momentum={self.momentum}"
        return super().extra_repr() + extra
