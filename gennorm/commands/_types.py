"""The argparse types of every verb's numeric and device options: each value checked when parsed.

Why one module: a number that argparse takes as plain `int`/`float` slips through as a silent
surprise further down (`--num-test -1` is Python's slice `[:-1]`, `--max-pixels 0.5` becomes
`int(0.5) = 0` = no limit, `--max-pixels nan` an "unexpected ValueError" naming no option).
These types refuse such values while parsing, so argparse prints the option's name with the
reason ("argument --tile: expected a whole number >= 1, got '0'"). Torch-free (imported by the
verb modules at the top); whether a named device exists is checked when the verb runs
(`gennorm.devices.require_device`), since that needs torch.
"""
from __future__ import annotations

import argparse
import math
import re

__all__ = ["int_at_least", "positive_int", "nonneg_int", "positive_float", "nonneg_float", "pixel_limit", "port",
           "device", "device_or_auto", "DEVICE_HELP"]


def _number(text: str, kind: type, expected: str):
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r} (not a finite number)")
    return value


def int_at_least(low: int):
    """An argparse type: a whole number >= low."""
    expected = f"a whole number >= {low}"

    def parse(text: str) -> int:
        value = _number(text, int, expected)
        if value < low:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    parse.__name__ = f"int >= {low}"  # argparse shows the name when the type raises something else
    return parse


positive_int = int_at_least(1)
nonneg_int = int_at_least(0)


def positive_float(text: str) -> float:
    """A finite number > 0."""
    value = _number(text, float, "a finite number > 0")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def nonneg_float(text: str) -> float:
    """A finite number >= 0."""
    value = _number(text, float, "a finite number >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def pixel_limit(text: str) -> int | None:
    """--max-pixels: a pixel count >= 1 (1e8 and 100000000 both read), or 0 for no limit (None)."""
    expected = "a pixel count >= 1 (e.g. 100e6), or 0 for no limit"
    value = _number(text, float, expected)
    if value == 0:
        return None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return int(value)


def port(text: str) -> int:
    """A TCP port, 1-65535."""
    value = _number(text, int, "a port number 1-65535")
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 1-65535, got {text!r}")
    return value


_DEVICE = re.compile(r"(cpu|mps|cuda(:\d{1,3})?)")
DEVICE_HELP = "cpu, cuda, cuda:N or mps"


def device(text: str) -> str:
    """A device name: cpu, cuda, cuda:N or mps (whether it exists is checked when the verb runs)."""
    name = text.strip().lower()
    if not _DEVICE.fullmatch(name):
        raise argparse.ArgumentTypeError(f"expected {DEVICE_HELP}, got {text!r}")
    return name


def device_or_auto(text: str) -> str:
    """`device`, or auto (a GPU when there is one)."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return device(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected auto, {DEVICE_HELP}, got {text!r}") from None
