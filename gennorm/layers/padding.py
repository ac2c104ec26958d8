"""Zero padding in the kernel-normalization style: int, (h, w) or (left, right, top, bottom)."""
from __future__ import annotations


def four_sided(padding) -> tuple[int, int, int, int]:
    """Return (left, right, top, bottom) as F.pad wants it."""
    if isinstance(padding, int):
        pad = (padding,) * 4
    else:
        padding = tuple(padding)
        if len(padding) == 2:  # (h, w) like nn.Conv2d
            pad = (padding[1], padding[1], padding[0], padding[0])
        elif len(padding) == 4:
            pad = padding
        else:
            raise ValueError(f"padding must be an int, (h, w) or (left, right, top, bottom), got {padding!r}")
    if not all(isinstance(p, int) and p >= 0 for p in pad):
        raise ValueError(f"padding values must be non-negative ints, got {padding!r}")
    return pad
