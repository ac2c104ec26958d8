"""Building and loading the compiled library in cuda/ (placeholder until the CUDA build lands)."""
from __future__ import annotations


def try_load() -> bool:
    """Load the compiled gennorm library if it is available; True when its ops are registered."""
    return False


def loaded_with_cuda() -> bool:
    return False
