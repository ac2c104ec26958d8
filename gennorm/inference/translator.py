"""Translator: a generator ready for inference, on images, arrays or tensors, whole or tile by tile.

Images are sized to what the generator accepts (a multiple of `net.size_multiple`: 4 for the
ResNets, 2**downs for the U-Nets) by bicubic resizing, and the output is resized back. With
`tile`, larger images run tile by tile (`crops`): each output tile from its input tile plus a
margin; exact for local-statistics norms, blended over the margins otherwise.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from gennorm.data.transforms import to_image, to_tensor
from gennorm.layers.registry import get_norm_layer
from gennorm.networks.receptive import tile_margin


class Translator:
    """A generator ready for inference. `t(x)` takes a PIL image, an HxWxC uint8 numpy array or a
    [C, H, W] / [N, C, H, W] tensor in [-1, 1], and returns the same kind at the same size."""

    def __init__(self, net, cfg, device, source: str, direction: str = "AtoB", meta: dict | None = None,
                 train_mode: bool = False, dtype=None, tile: int | None = None, overlap: int | str = "auto"):
        self.train_mode = train_mode  # batch norm on batch statistics and dropout on (the original test mode)
        # bfloat16 / float16: the network runs under autocast in it (for GPUs); weights stay float32
        self.dtype = getattr(torch, dtype) if isinstance(dtype, str) else (dtype or torch.float32)
        if self.dtype not in (torch.float32, torch.bfloat16, torch.float16):
            raise ValueError(f"dtype must be float32, bfloat16 or float16, got {dtype!r}")
        self.net = net.to(device).train(train_mode)
        self.cfg, self.device, self.source, self.direction = cfg, device, source, direction
        self.meta = meta or {}
        m = cfg.model
        self.input_nc, self.output_nc = (m.input_nc, m.output_nc) if direction == "AtoB" else (m.output_nc, m.input_nc)
        self.multiple = net.size_multiple
        self.tile, self.overlap = tile, overlap
        if tile is not None and (not isinstance(tile, int) or tile < 1):
            raise ValueError(f"tile must be a positive number of pixels, got {tile!r}")
        self._margin: int | None = None
        self._min_side: int | None = None

    # -- tiles: every tile_size x tile_size output block from its input block plus a margin --------
    @property
    def tiles_exactly(self) -> bool:
        """True when tiled output equals whole-image output (every norm uses local statistics)."""
        return get_norm_layer(self.cfg.model.g_norm).tiles_exactly(training=self.train_mode)

    def margin(self) -> int:
        """Input pixels added on each side of a tile: "auto" = half the receptive field plus one coarse
        stride (gennorm.networks.receptive.tile_margin), else the given overlap, on the size grid."""
        if self._margin is None:
            k = self.multiple
            given = tile_margin(self.net, self.input_nc) if self.overlap == "auto" else int(self.overlap)
            self._margin = -(-given // k) * k
        return self._margin

    def min_side(self) -> int:
        """The smallest side the generator runs on (its padding layers need a few pixels at the
        coarsest level): found once by trying multiples of the size grid."""
        if self._min_side is None:
            self._min_side = next(s for s in (self.multiple * 2 ** i for i in range(12)) if self._runs_at(s))
        return self._min_side

    def _runs_at(self, side: int) -> bool:
        # the probe leaves the network as it found it: in train mode (train_mode=True) batch norm would move
        # its running statistics (which an export, in eval mode, then uses) and count a step
        saved = {name: b.clone() for name, b in self.net.named_buffers()}
        try:
            with torch.no_grad():
                self.run(torch.zeros(1, self.input_nc, side, side))
            return True
        except (ValueError, RuntimeError):
            return False
        finally:
            for name, value in saved.items():  # by name: a layer may have replaced a buffer, not updated it
                module, _, attr = name.rpartition(".")
                setattr(self.net.get_submodule(module), attr, value)

    def tile_size(self) -> int:
        return max(self.multiple, -(-self.tile // self.multiple) * self.multiple)

    def crops(self, h: int, w: int):
        """(output box, input box) per tile of an h x w image, both (y0, y1, x0, x1), row by row."""
        t, pad = self.tile_size(), self.margin()
        for y0 in range(0, h, t):
            for x0 in range(0, w, t):
                y1, x1 = min(y0 + t, h), min(x0 + t, w)
                yield (y0, y1, x0, x1), (max(0, y0 - pad), min(h, y1 + pad), max(0, x0 - pad), min(w, x1 + pad))

    def run(self, x):
        """The network on x [N, input_nc, H, W] (a valid size) as it is: on the device, under autocast
        in `dtype`; the output in float32. No resizing, no tiling, no no_grad."""
        with torch.autocast(self.device.type, self.dtype, enabled=self.dtype != torch.float32):
            return self.net(x.to(self.device)).float()

    def _tiled(self, x):
        """[N, C, H, W] (a valid size) tile by tile: exact for local norms; otherwise the tiles' outputs
        are blended with linear ramps over their margins (they saw different statistics)."""
        n, _, h, w = x.shape
        exact = self.tiles_exactly
        if not exact:
            warnings.warn(f"norm {self.cfg.model.g_norm!r} normalizes with statistics of the whole feature map: "
                          "tiles see different statistics, so their overlaps are blended and the result differs "
                          "from the whole image's", stacklevel=3)
        out = torch.zeros(n, self.output_nc, h, w, device=x.device)
        weight = None if exact else torch.zeros(1, 1, h, w, device=x.device)
        for (y0, y1, x0, x1), (cy0, cy1, cx0, cx1) in self.crops(h, w):
            y = self.run(x[..., cy0:cy1, cx0:cx1]).to(x.device)
            if exact:
                out[..., y0:y1, x0:x1] = y[..., y0 - cy0:y1 - cy0, x0 - cx0:x1 - cx0]
                continue
            ramp = _ramp(cy1 - cy0, cy0 > 0, cy1 < h, self.margin())[:, None] * \
                _ramp(cx1 - cx0, cx0 > 0, cx1 < w, self.margin())[None, :]
            out[..., cy0:cy1, cx0:cx1] += y * ramp
            weight[..., cy0:cy1, cx0:cx1] += ramp
        return out if exact else out / weight

    def valid_size(self, h: int, w: int) -> tuple[int, int]:
        """The nearest size the generator accepts (a multiple of net.size_multiple, at least min_side)."""
        k, low = self.multiple, self.min_side()
        return max(low, round(h / k) * k), max(low, round(w / k) * k)

    def to_valid_size(self, x):
        """x [N, C, H, W] in [-1, 1] resized (bicubic, clamped) to `valid_size`; x itself if it has it."""
        size = self.valid_size(*x.shape[-2:])
        if size == tuple(x.shape[-2:]):
            return x
        return F.interpolate(x, size=size, mode="bicubic", align_corners=False).clamp(-1, 1)

    def translate_tensor(self, x):
        """[N, input_nc, H, W] in [-1, 1] -> [N, output_nc, H, W] (resized to a valid size and back)."""
        h, w = x.shape[-2:]
        vh, vw = self.valid_size(h, w)
        x = x.float() if self.tile else x.to(self.device, torch.float32)
        with torch.no_grad():
            x = self.to_valid_size(x)
            y = self._tiled(x) if self.tile and max(vh, vw) > self.tile_size() else self.run(x)
            if (vh, vw) != (h, w):
                y = F.interpolate(y, size=(h, w), mode="bicubic", align_corners=False)
        return y.clamp(-1, 1)

    def translate(self, image, quantize: str = "round"):
        """PIL image -> PIL image of the same size (quantize: see gennorm.data.transforms.to_image)."""
        image = image.convert("L" if self.input_nc == 1 else "RGB")
        return to_image(self.translate_tensor(to_tensor(image)[None])[0], quantize)

    def __call__(self, x):
        if isinstance(x, torch.Tensor):
            if x.dim() not in (3, 4):
                raise ValueError(f"expected a [C, H, W] or [N, C, H, W] tensor, got shape {tuple(x.shape)}")
            out = self.translate_tensor(x if x.dim() == 4 else x[None])
            return (out if x.dim() == 4 else out[0]).to(x.device)
        if isinstance(x, np.ndarray):
            if x.dtype != np.uint8 or x.ndim not in (2, 3):
                raise ValueError(f"expected an HxW or HxWxC uint8 array, got {x.dtype} of shape {x.shape}")
            return np.asarray(self.translate(Image.fromarray(x)))
        if hasattr(x, "convert"):  # a PIL image
            return self.translate(x)
        raise TypeError(f"cannot translate a {type(x).__name__}: give a PIL image, a uint8 numpy array or a tensor")


def _ramp(size: int, fade_start: bool, fade_end: bool, margin: int):
    """[size] weights: 1 inside, rising linearly over `margin` pixels at each faded end (tile blending)."""
    pos = torch.arange(size, dtype=torch.float32) + 0.5
    w = torch.ones(size)
    if fade_start:
        w = torch.minimum(w, pos / margin)
    if fade_end:
        w = torch.minimum(w, (size - pos) / margin)
    return w.clamp_min(1e-3)
