"""The normalization study: `gennorm study` (grid of runs, resumable, sharded) and its report."""
from gennorm._lazy import lazy_exports, names

__getattr__, __dir__, __all__ = lazy_exports(globals(), names("gennorm.study.spec", "Run", "StudySpec", "load_spec", "runs_of"))
