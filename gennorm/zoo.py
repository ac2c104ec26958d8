"""The model zoo: what is in `models/`, grouped into comparable sets, with the cards' metrics.

    from gennorm.zoo import list_models, model_sets
    for info in list_models("models"):            # one ModelInfo per model folder (sorted)
        print(info.name, info.model_set, info.norm, info.metrics)
    model_sets("models")   # {"scenes": [scenes-instance, scenes-pono-ms, scenes-nc], ...}

A model folder is what `gennorm export` writes: `config.yaml` (the resolved training config),
`generator.safetensors` and `card.md`. A training run directory (config.yaml + checkpoints/)
is listed too, without a card. Nothing here loads weights: listing a zoo reads configs and
cards only, and a broken folder is skipped with a warning instead of hiding the others.

Which set a model belongs to (models in one set translate the same task and differ in their
normalization, so the demo shows them side by side), first match wins:
1. `zoo.json` in the zoo root: `{"scenes-nc": {"set": "scenes"}, ...}`;
2. `set:` in the YAML front matter of card.md (`---` lines at the top);
3. the folder name minus its norm suffix: `scenes-pono-ms` with g_norm pono-ms -> `scenes`;
4. the dataset folder of `data.root` (`data/scenes/paired` -> `scenes`), plus `-cyclegan` for
   unpaired (CycleGAN) runs.

Metrics come from card.md: the first section whose heading mentions "metric", as a markdown
table (`| metric | value |` rows, or one header row of metric names over one row of values) or
as `- name: value` lines. Names are lower-cased (`FID ↓` -> `fid`); `12.3 ± 0.4` reads 12.3.
A `metrics:` mapping in the front matter, then a `metrics.json` ({name: number}, or
{"metrics": {...}}) next to the card, override the values read from the card's text.
"""
from __future__ import annotations

import json
import os
import re
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from gennorm.errors import ConfigError, did_you_mean
from gennorm.layers.registry import NORMS  # display order, labels and the baseline norms
from gennorm.yamlio import InvalidYAML, parse_yaml, read_text, read_yaml

WEIGHTS_FILE = "generator.safetensors"
CONFIG_FILE = "config.yaml"
CARD_FILE = "card.md"
ZOO_FILE = "zoo.json"
TRAINING_LOG = "training_log.jsonl"  # the losses per logged step, written by `gennorm export`
_PROTOCOL = re.compile(r"FID/KID protocol: \*\*([\w-]+)\*\*")  # the line `gennorm export` writes in the card

_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


@dataclass
class ModelInfo:
    """One model of the zoo (a models/ folder or a run directory)."""

    name: str  # folder name, e.g. "scenes-nc"
    path: Path
    model_set: str  # e.g. "scenes": the models the demo puts side by side
    norm: str  # generator norm from config.yaml (model.g_norm)
    task: str  # "pix2pix" | "cyclegan" (train.task)
    arch: str = ""  # model.g_arch
    metrics: dict[str, float] = field(default_factory=dict)
    card: str = ""  # card.md text ("" when there is none)
    protocol: str = ""  # FID/KID protocol the card's metrics were measured with ("" if unknown)

    def training_log(self) -> list[dict]:
        """The losses per logged step ([{"step": 50, "G_L1": .., ...}]; [] without a log)."""
        path = self.path / TRAINING_LOG
        rows = read_training_log(path if path.is_file() else self.path / "metrics.jsonl")  # or a run dir's own log
        return [r for r in rows if isinstance(r.get("step"), int)]

    @property
    def norm_label(self) -> str:
        return NORMS[self.norm].label if self.norm in NORMS else self.norm

    @property
    def role(self) -> str:
        """"baseline" for the classic norms, else the norm's label (e.g. "PONO-MS")."""
        return "baseline" if self.norm in NORMS and NORMS[self.norm].baseline else self.norm_label

    @property
    def sort_key(self) -> tuple:
        order = list(NORMS)
        return (order.index(self.norm) if self.norm in order else len(order), self.name)


# ----------------------------------------------------------------------------------------------
# listing


def read_training_log(path: Path, warn: bool = False) -> list[dict]:
    """The records of a training log: a run's metrics.jsonl or a model's training_log.jsonl (one JSON
    object per logged step); [] when there is no file. A line that is not a JSON object with a
    numeric step (the torn end of an append a full disk or a kill cut short) is dropped, with a
    warning naming the file and line if `warn`. (Here, torch-free, so the zoo can read it; the
    training loop's RunLog reads metrics.jsonl with it too.)"""
    records = []
    if not Path(path).is_file():
        return records
    lines = Path(path).read_bytes().decode("utf-8", errors="replace").splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict) or not isinstance(record.get("step", 0), (int, float)):
            if warn:
                print(f"warning: {path} line {number} is not a complete record ({line[:40]!r}...); dropped "
                      "(a write cut short by a kill or a full disk)", file=sys.stderr)
            continue
        records.append(record)
    return records


def is_model_dir(path: Path) -> bool:
    """A released model folder (config + safetensors) or a run dir (config + checkpoints/)."""
    path = Path(path)
    return (path / CONFIG_FILE).is_file() and ((path / WEIGHTS_FILE).is_file() or (path / "checkpoints").is_dir())


def list_models(root: str | Path = "models") -> list[ModelInfo]:
    """Every model folder directly under `root` (sorted by set, then baseline/PONO-MS/NC order)."""
    root = Path(root)
    if not root.is_dir():
        return []
    overrides = _read_zoo_json(root)
    infos = []
    for path in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not is_model_dir(path):
            continue
        try:
            infos.append(read_model(path, overrides.get(path.name, {})))
        except (OSError, ValueError, yaml.YAMLError) as err:
            warnings.warn(f"skipping model folder {path}: {err}", stacklevel=2)
    return sorted(infos, key=lambda i: (i.model_set, *i.sort_key))


INSTALLED_ZOO = Path(__file__).resolve().parent / "_zoo"  # the wheel's copy of models/ (setup.py)


def zoo_roots() -> list[Path]:
    """Where models are looked up, first match wins: $GENNORM_MODELS, ./models, the checkout's
    models/ (next to the package), the zoo installed with the package. Only existing folders."""
    roots = [Path(os.environ["GENNORM_MODELS"])] if os.environ.get("GENNORM_MODELS") else []
    roots += [Path.cwd() / "models", Path(__file__).resolve().parent.parent / "models", INSTALLED_ZOO]
    unique = []
    for root in roots:
        if root.is_dir() and root.resolve() not in [u.resolve() for u in unique]:
            unique.append(root)
    return unique


def default_root() -> Path | None:
    """The first of zoo_roots() that holds a model (what `gennorm demo` shows without --models)."""
    return next((root for root in zoo_roots() if list_models(root)), None)


def find_model(name: str) -> Path | None:
    """The folder of zoo model `name` (e.g. "scenes-nc") in the first of `zoo_roots()` that has it."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        return None
    return next((root / name for root in zoo_roots() if is_model_dir(root / name)), None)


def model_sets(root: str | Path = "models") -> dict[str, list[ModelInfo]]:
    """Set name -> its models, baseline first, then PONO-MS, NC, KN, ConvNorm."""
    sets: dict[str, list[ModelInfo]] = {}
    for info in list_models(root):
        sets.setdefault(info.model_set, []).append(info)
    return sets


BUILTIN_SET = "scenes"  # the set of the zoo shipped in models/ (scenes-*): what the demo opens on
CHECKOUT_MODELS = Path(__file__).resolve().parent.parent / "models"  # a source checkout's zoo (setup.py ships it)


def in_checkout_zoo(path: str | Path) -> bool:
    """True when `path` is a folder directly in a source checkout's models/: the built-in zoo,
    which git tracks and setup.py copies into every wheel built from the checkout."""
    return ((CHECKOUT_MODELS.parent / "setup.py").is_file()
            and Path(path).resolve().parent == CHECKOUT_MODELS.resolve())


def default_set(sets: dict[str, list[ModelInfo]], wanted: str | None = None) -> str | None:
    """The set the demo opens on: `wanted` (`gennorm demo --set`; ConfigError when the zoo has no
    such set), else the built-in BUILTIN_SET when present, whatever else is in the zoo (a user's
    export sorting before it must not take over), else the first set."""
    if wanted is not None:
        if wanted not in sets:
            raise ConfigError(f"--set {wanted!r}: no such model set{did_you_mean(wanted, sets)}; sets: "
                              f"{', '.join(sets) or 'none'}")
        return wanted
    return BUILTIN_SET if BUILTIN_SET in sets else next(iter(sets), None)


def read_model(path: str | Path, override: dict | None = None) -> ModelInfo:
    """The ModelInfo of one folder; ValueError when its config.yaml is not a mapping."""
    path = Path(path)
    config = read_yaml(path / CONFIG_FILE)  # bounded (gennorm.yamlio); ConfigError, a ValueError, names the file
    model, train, data = (config.get(k) or {} for k in ("model", "train", "data"))
    norm = str(model.get("g_norm", "instance"))
    task = str(train.get("task", "pix2pix"))
    card_path = path / CARD_FILE
    card = _read_card(card_path) if card_path.is_file() else ""
    front = parse_front_matter(card, str(card_path))
    metrics = parse_card_metrics(card)
    if isinstance(front.get("metrics"), dict):  # front matter `metrics: {fid: 41.2, ...}`
        metrics.update(_numbers(front["metrics"]))
    metrics.update(_read_metrics_json(path / "metrics.json"))
    model_set = (override or {}).get("set") or front.get("set") or _set_from_name(path.name, norm) \
        or _set_from_data(str(data.get("root", "")), task)
    protocol = front.get("protocol") or (m.group(1) if (m := _PROTOCOL.search(card)) else "")
    return ModelInfo(name=path.name, path=path, model_set=str(model_set), norm=norm, task=task,
                     arch=str(model.get("g_arch", "")), metrics=metrics, card=card, protocol=str(protocol))


def _read_zoo_json(root: Path) -> dict[str, dict]:
    path = root / ZOO_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        warnings.warn(f"ignoring {path}: {err}", stacklevel=3)
        return {}
    return {str(k): v for k, v in data.items() if isinstance(v, dict)} if isinstance(data, dict) else {}


def _read_metrics_json(path: Path) -> dict[str, float]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return _numbers(data.get("metrics", data) if isinstance(data, dict) else {})


def _numbers(data: dict) -> dict[str, float]:
    """{name: number} entries of a mapping (booleans and non-numbers dropped), names normalized."""
    return {_metric_key(k): float(v) for k, v in data.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and _metric_key(k)}


def _set_from_name(name: str, norm: str) -> str | None:
    suffix = f"-{norm}"
    if name.endswith(suffix) and len(name) > len(suffix):
        return name[: -len(suffix)]
    return None


def _set_from_data(root: str, task: str) -> str:
    parts = [p for p in Path(root).parts if p not in ("paired", "unpaired", "aligned", "unaligned", ".", "/")]
    dataset = parts[-1] if parts else "models"
    return dataset if task == "pix2pix" else f"{dataset}-{task}"


# ----------------------------------------------------------------------------------------------
# cards


def _read_card(path: Path) -> str:
    """card.md's text, at most 1 MB (gennorm.yamlio.read_text), undecodable bytes replaced."""
    try:
        return read_text(path)
    except ConfigError as err:
        if "not UTF-8" not in str(err):
            raise
        return path.read_bytes().decode("utf-8", errors="replace")


def parse_front_matter(card: str, source: str = "card.md") -> dict:
    """The YAML mapping between a leading `---` line and the next `---` line ({} if none, or if
    it is not valid YAML). ConfigError naming `source` when it is an alias bomb, has duplicate
    keys or is too large (gennorm.yamlio): the caller skips that model."""
    lines = card.splitlines()
    if not lines or lines[0].strip() != "---":
        return {}
    for end in range(1, len(lines)):
        if lines[end].strip() in ("---", "..."):
            try:
                data = parse_yaml("\n".join(lines[1:end]), f"{source} front matter", mapping=False)
            except InvalidYAML:
                return {}
            return data if isinstance(data, dict) else {}
    return {}


def _metric_key(name: str) -> str:
    return re.sub(r"[^a-z0-9_@-]+", "", str(name).lower().replace(" ", "_")).strip("_-")


def _number(cell: str) -> float | None:
    match = _NUMBER.search(cell.replace(",", ""))
    return float(match.group()) if match else None


def _metrics_section(card: str) -> list[str]:
    lines, out, inside, level = card.splitlines(), [], False, 0
    for line in lines:
        heading = re.match(r"^(#+)\s*(.*)$", line)
        if heading and inside and len(heading.group(1)) <= level:
            break
        if heading and not inside and "metric" in heading.group(2).lower():
            inside, level = True, len(heading.group(1))
            continue
        if inside:
            out.append(line)
    return out


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def parse_card_metrics(card: str) -> dict[str, float]:
    """{metric: value} from the card's metrics section (table or `- name: value` lines)."""
    section = _metrics_section(card)
    rows = [_cells(line) for line in section if line.strip().startswith("|")]
    rows = [r for r in rows if not all(re.fullmatch(r":?-{2,}:?", c or "--") for c in r)]  # drop |---|
    out: dict[str, float] = {}
    if rows:
        header = [_metric_key(c) for c in rows[0]]
        if len(header) >= 2 and header[0] in ("metric", "metrics", "name") and len(rows) > 1:
            for row in rows[1:]:  # | metric | value | rows
                value = _number(row[1]) if len(row) > 1 else None
                if _metric_key(row[0]) and value is not None:
                    out[_metric_key(row[0])] = value
        elif len(rows) > 1:  # one header row of names over one row of values
            for name, cell in zip(header, rows[1]):
                value = _number(cell)
                if name and value is not None:
                    out[name] = value
    for line in section:
        item = re.match(r"^\s*[-*]\s*\**([^:*]+?)\**\s*:\s*(.+)$", line)
        if item and _number(item.group(2)) is not None:
            out.setdefault(_metric_key(item.group(1)), _number(item.group(2)))
    return out


def metrics_table(infos: list[ModelInfo]) -> tuple[list[str], list[list]]:
    """(headers, rows) for a table of the models' metrics: set, model, norm, then each metric."""
    names: list[str] = []
    for info in infos:
        names += [k for k in info.metrics if k not in names]
    preferred = [m for m in ("fid", "kid", "lpips", "psnr", "ssim") if m in names]
    names = preferred + [m for m in names if m not in preferred]
    headers = ["set", "model", "norm", "FID/KID protocol", *names]
    rows = [[i.model_set, i.name, i.norm_label, i.protocol or None, *(i.metrics.get(m) for m in names)] for i in infos]
    return headers, rows


def markdown_table(infos: list[ModelInfo]) -> str:
    """metrics_table as Markdown (the README's zoo table, `gennorm zoo table`): PSNR-like values to
    2 decimals, SSIM/LPIPS/KID-like ones to 4 significant digits."""
    def cell(v) -> str:
        if isinstance(v, float):
            return f"{v:.2f}" if abs(v) >= 10 else f"{v:.4g}"
        return "" if v is None else str(v)

    headers, rows = metrics_table(infos)
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows])


def listing() -> str:
    """`gennorm zoo list`: every zoo folder found, in order, with its models (set, task, norm, first
    metrics); a name an earlier folder has too is marked shadowed."""
    roots = zoo_roots()
    if not roots:
        return "no model zoo found (set GENNORM_MODELS or run from a folder with models/)"
    lines, seen = [], set()
    for root in roots:
        infos = list_models(root)
        lines.append(f"{root}  ({len(infos)} models)")
        for info in infos:
            shadowed = " (shadowed by an earlier folder)" if info.name in seen else ""
            metrics = ", ".join(f"{k} {v:g}" for k, v in list(info.metrics.items())[:3])
            lines.append(f"  {info.name:<28} set {info.model_set:<16} {info.task:<9} {info.norm_label:<13} "
                         f"{metrics}{shadowed}")
            seen.add(info.name)
    return "\n".join(lines)

