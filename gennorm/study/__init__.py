"""The normalization study: `gennorm study` (grid of runs, resumable, sharded) and its report."""
from gennorm.study.spec import Run, StudySpec, load_spec, runs_of

__all__ = ["Run", "StudySpec", "load_spec", "runs_of"]
