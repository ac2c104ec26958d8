"""Outputs apart from inputs: a command never writes into what it reads (issue 30).

`check_output_apart(output, inputs, what)` refuses an output folder that is, contains or lies
inside one of the inputs (translate into its own input folder or onto its model's folder,
`export RUN RUN`, an import into the checkpoint's folder): one line naming both paths. Paths are compared resolved (symlinks,
`..`), so two spellings of one folder are one folder. A leaf module: no heavy imports.
"""
from __future__ import annotations

import os
from pathlib import Path

from gennorm.errors import DataError


def _resolved(path) -> Path:
    return Path(os.path.abspath(path)).resolve()


def overlap(a, b) -> str | None:
    """How folder `a` stands to folder `b`: "is", "lies inside", "contains", or None (apart)."""
    ra, rb = _resolved(a), _resolved(b)
    if ra == rb:
        return "is"
    if rb in ra.parents:
        return "lies inside"
    if ra in rb.parents:
        return "contains"
    return None


def check_output_apart(output, inputs, what: str, holders=()) -> None:
    """Raise DataError when `output` is, contains or lies inside one of `inputs`, or is or contains
    one of `holders`: inputs it may lie inside (a model's folder: RUN/eval/fake is fine, RUN or
    RUN's parent is not). None entries are skipped."""
    for inp, allowed in [(i, None) for i in inputs] + [(h, "lies inside") for h in holders]:
        if inp is None:
            continue
        relation = overlap(output, inp)
        if relation is not None and relation != allowed:
            raise DataError(f"{what}: the output {output} {relation} the input {inp}; "
                            f"choose an output folder apart from what is read")
