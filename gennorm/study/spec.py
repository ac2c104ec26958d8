"""What a study is: a grid of training runs (task x norm x batch size x seed) and how to name them.

A study config is a small YAML file (or a preset name: `small`, `full`); every run of the grid
is an ordinary `gennorm train` run of a preset with a few dotted overrides.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import yaml

from gennorm.errors import ConfigError
from gennorm.yamlio import read_yaml
from gennorm.layers.registry import NORMS

PRESETS_DIR = Path(__file__).resolve().parent / "presets"

class StudyTask(NamedTuple):
    preset: str  # the training preset; the study overrides the norms, batch size and seed
    method: str  # its name in the report
    data: str  # the scenes dataset's folder it trains on


# The one list of study tasks. CycleGAN, CUT and FastCUT train on the same unpaired halves and are
# scored the same way (A -> B against the true photos of the paired test split).
TASKS = {
    "paired": StudyTask("pix2pix-instance", "pix2pix", "paired"),
    "unpaired": StudyTask("cyclegan-instance", "CycleGAN", "unpaired"),
    "cut": StudyTask("cut-instance", "CUT", "unpaired"),
    "fastcut": StudyTask("fastcut-instance", "FastCUT", "unpaired"),
}


@dataclass
class StudySpec:
    out: str = "studies/small"
    description: str = ""
    data_root: str = ""  # the scenes dataset (generated under OUT/data when empty)
    scenes_size: int = 32
    scenes_count: int = 240
    tasks: list[str] = field(default_factory=lambda: ["paired", "unpaired"])
    norms: list[str] = field(default_factory=lambda: ["instance", "batch", "group", "pono-ms", "nc", "kn"])
    d_norms: list[str] = field(default_factory=lambda: ["instance", "convnorm"])
    batch_sizes: list[int] = field(default_factory=lambda: [1, 2, 8])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    overrides: list[str] = field(default_factory=list)  # applied to every run, e.g. train.max_steps=100
    grid_images: int = 4  # test inputs shown in the side-by-side grid


@dataclass(frozen=True)
class Run:
    task: str
    g_norm: str
    d_norm: str
    batch_size: int
    seed: int

    @property
    def run_id(self) -> str:
        return f"{self.task}/g-{self.g_norm}_d-{self.d_norm}_bs{self.batch_size}_seed{self.seed}"

    @property
    def label(self) -> str:
        """Row label in the report: the generator norm, plus the D norm when it is not the default."""
        return self.g_norm if self.d_norm == "instance" else f"{self.g_norm} + {self.d_norm} D"


def runs_of(spec: StudySpec) -> list[Run]:
    """The grid: every norm x batch size x seed with the first D norm, then each other D norm
    (with the first G norm, smallest batch size) x seed — the ConvNorm-vs-plain-D comparison."""
    runs = []
    for task in spec.tasks:
        for norm in spec.norms:
            for bs in spec.batch_sizes:
                runs += [Run(task, norm, spec.d_norms[0], bs, seed) for seed in spec.seeds]
        for d_norm in spec.d_norms[1:]:
            runs += [Run(task, spec.norms[0], d_norm, spec.batch_sizes[0], seed) for seed in spec.seeds]
    return runs


def load_spec(name_or_path: str, overrides: list[str] | None = None) -> StudySpec:
    """A StudySpec from a preset name or YAML file, then `key=value` overrides (lists comma-separated)."""
    path = Path(name_or_path)
    if not path.is_file():
        path = PRESETS_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            presets = ", ".join(p.stem for p in sorted(PRESETS_DIR.glob("*.yaml")))
            raise ConfigError(f"study config {name_or_path!r} is neither a YAML file nor a preset ({presets})")
    data = read_yaml(path)  # bounded, UTF-8, no duplicate keys, a mapping (gennorm.yamlio)
    spec = StudySpec()
    try:
        for key, value in data.items():
            _set(spec, str(key), value)
        _check(spec)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not KEY=VALUE")
        key, raw = item.split("=", 1)
        if key.count(".") >= 1:  # a training key: applied to every run
            spec.overrides.append(item)
            continue
        default = getattr(StudySpec(), key, None)
        try:
            value = [v for v in raw.split(",") if v] if isinstance(default, list) else yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        _set(spec, key, value)
    _check(spec)
    return spec


def _set(spec: StudySpec, key: str, value) -> None:
    if key not in asdict(spec):
        raise ConfigError(f"unknown study key {key!r}; keys: {', '.join(asdict(spec))}")
    default = getattr(StudySpec(), key)
    if isinstance(default, list):
        if not isinstance(value, list):
            value = [value]
        if any(isinstance(v, (list, dict)) for v in value):
            raise ConfigError(f"study key {key!r}: expected a list of values, got a nested list or mapping")
        value = [_int(key, v) if key in ("batch_sizes", "seeds") else str(v) for v in value]
    elif isinstance(default, int):
        value = _int(key, value)
    else:
        if isinstance(value, (list, dict)):
            raise ConfigError(f"study key {key!r}: expected text, got a {type(value).__name__}")
        value = "" if value is None else str(value)
    setattr(spec, key, value)


def _int(key: str, value) -> int:
    """An integer study value (`8` or "8"); ConfigError naming the key otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ConfigError(f"study key {key!r}: expected an integer, got {str(value)[:60]!r}")
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"study key {key!r}: expected an integer, got {value[:60]!r}") from None


def _check(spec: StudySpec) -> None:
    for task in spec.tasks:
        if task not in TASKS:
            raise ConfigError(f"study key 'tasks': {task!r} is not allowed; allowed values: {', '.join(TASKS)}")
    for key in ("norms", "d_norms"):
        for norm in getattr(spec, key):
            if norm not in NORMS:
                raise ConfigError(f"study key {key!r}: {norm!r} is not a norm; allowed values: {', '.join(NORMS)}")
        if not getattr(spec, key):
            raise ConfigError(f"study key {key!r} must list at least one norm")
    for key, low in (("scenes_size", 16), ("scenes_count", 1), ("grid_images", 0)):
        if getattr(spec, key) < low:
            raise ConfigError(f"study key {key!r}: must be >= {low}, got {getattr(spec, key)}")
    if not spec.batch_sizes or min(spec.batch_sizes) < 1 or not spec.seeds:
        raise ConfigError("study keys 'batch_sizes' and 'seeds' need at least one value (batch sizes >= 1)")
