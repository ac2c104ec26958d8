"""Shared pytest hooks and fixtures: tests marked `cuda` skip on machines without a GPU; `scenes`
is the tiny built-in dataset (32 px, 12 scenes) the training tests share (read-only)."""
from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="session")
def scenes(tmp_path_factory) -> Path:
    """The scenes dataset at 32 px, 12 scenes, seed 0: paired/ and unpaired/ layouts. Do not write into it."""
    from gennorm.data import generate_scenes

    out = tmp_path_factory.mktemp("scenes")
    generate_scenes(out, size=32, count=12, seed=0)
    return out


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU (torch.cuda.is_available() is False)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
