"""Lazy package exports (PEP 562): `from gennorm.data import load_image` imports only what it names.

A package's `__init__` lists its public names once, each with the module that defines it, and
imports nothing; so `import gennorm.data` (or `gennorm --help`) never pays for torch.
"""
from __future__ import annotations

import importlib


def lazy_exports(namespace: dict, exports: dict[str, str]):
    """(__getattr__, __dir__, __all__) for a package whose public names live in `exports`.

    exports: {name: "module"} or {name: "module:attribute"} (a public alias of another name).
    """

    def __getattr__(name: str):
        where = exports.get(name)
        if where is None:
            raise AttributeError(f"module {namespace['__name__']!r} has no attribute {name!r}")
        module, _, attribute = where.partition(":")
        value = getattr(importlib.import_module(module), attribute or name)
        namespace[name] = value  # later lookups skip this function
        return value

    def __dir__():
        return sorted([*namespace, *exports])

    return __getattr__, __dir__, list(exports)


def names(module: str, *attributes: str) -> dict[str, str]:
    """{attribute: module} for several names of one module."""
    return dict.fromkeys(attributes, module)
