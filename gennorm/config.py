"""Run configs: dataclasses loaded from YAML (or a preset), with dotted `KEY=VALUE` overrides.

The config of a run is read by training, by inference (a run or model folder's config.yaml
rebuilds its generator) and by the study, so it lives here, below all three.

    cfg = load_config("pix2pix-nc", ["train.max_steps=20", "model.d_norm=convnorm"])
    save_config(cfg, run_dir / "config.yaml")

Every key is checked: an unknown key or a value of the wrong type / outside the allowed set
raises ConfigError naming the key and what is allowed. Values of overrides are parsed as YAML
scalars (`train.lr=1e-4` is a float, `model.upsample=null` is None).
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gennorm import yamlio
from gennorm.atomic import atomic_write_bytes
from gennorm.errors import ConfigError, did_you_mean
from gennorm.layers.registry import NORMS, PRESET_NORMS

PRESETS_DIR = Path(__file__).resolve().parent / "presets"  # one base per task: pix2pix.yaml, cyclegan.yaml
CLASSIC_DIR = PRESETS_DIR / "classic"  # TASK-classic: pytorch-CycleGAN-and-pix2pix's defaults
TASKS = ("pix2pix", "cyclegan", "cut")  # train.task; gennorm.train.loop.TASKS maps each to its class
ONE_GENERATOR_TASKS = ("pix2pix", "cut")  # one generator G (AtoB); cyclegan has G_A and G_B
GAN_MODES = ("lsgan", "vanilla", "wgangp", "hinge")
LR_POLICIES = ("linear", "step", "plateau", "cosine")


def _choices(*values, default):
    return field(default=default, metadata={"choices": tuple(values)})


@dataclass
class ModelConfig:
    """The networks. Architecture keys: a resumed run may not change them."""

    g_arch: str = _choices("resnet_9blocks", "resnet_6blocks", "unet_256", "unet_128", default="resnet_9blocks")
    ngf: int = 64
    g_norm: str = _choices(*NORMS, default="instance")
    d_arch: str = _choices("basic", "n_layers", "pixel", default="basic")
    ndf: int = 64
    n_layers: int = 3
    d_norm: str = _choices(*NORMS, default="instance")
    use_dropout: bool = False
    upsample: str | None = None  # generator decoder: resize | transpose | antialias (CUT's blur
    # upsampling); None = the network's default for the norm
    antialias: bool = False  # CUT's blur-pooled downsampling in the ResNet G and the PatchGAN D
    # (gennorm/layers/blur.py); CUT's network: antialias true + upsample antialias. A model folder
    # older than the key is false (it had none).
    init_from: str | None = None  # a model folder (gennorm export / import): its generator (and
    # discriminator.safetensors, when there) initialize G / G_A (and D / D_A) before training
    init_type: str = _choices("normal", "xavier", "kaiming", "orthogonal", default="normal")
    init_gain: float = 0.02
    input_nc: int = 3
    output_nc: int = 3


@dataclass
class DataConfig:
    root: str = "data/scenes/paired"
    mode: str = _choices("aligned", "unaligned", default="aligned")
    direction: str = _choices("AtoB", "BtoA", default="AtoB")
    load_size: int = 286
    crop_size: int = 256
    preprocess: str = _choices("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none",
                               default="resize_and_crop")
    no_flip: bool = False
    skip_corrupt: bool = False
    max_size: int | None = None
    num_workers: int = 0


@dataclass
class TrainConfig:
    task: str = _choices(*TASKS, default="pix2pix")
    max_steps: int = 1000
    batch_size: int = 1
    seed: int = 0
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    decay_start: int | None = None  # constant LR until here, then linear to 0 at max_steps (None: max_steps // 2)
    decay_start_factor: float = 1.0  # lr multiplier where the decay starts (< 1: a resumed run continuing its decay)
    # Epoch schedules, as pytorch-CycleGAN-and-pix2pix: n_epochs at the initial lr, then lr_policy over
    # n_epochs_decay more; the lr changes once per epoch and max_steps becomes
    # (n_epochs + n_epochs_decay) x batches per epoch (gennorm/train/optim.py).
    n_epochs: int | None = None
    n_epochs_decay: int = 0
    lr_policy: str = _choices(*LR_POLICIES, default="linear")
    lr_decay_iters: int = 50  # lr_policy=step: x0.1 every this many epochs
    gan_mode: str = _choices(*GAN_MODES, default="lsgan")
    lambda_gp: float = 10.0
    lambda_l1: float = 100.0
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5
    pool_size: int = 50
    # CUT / FastCUT (train.task=cut; gennorm/train/cut.py), CUT's defaults (its option in brackets)
    lambda_gan: float = 1.0  # [lambda_GAN]
    lambda_nce: float = 1.0  # [lambda_NCE] (FastCUT: 10)
    nce_idt: bool = True  # [nce_idt] NCE(B, G(B)) too (FastCUT: false)
    nce_layers: str | None = None  # encoder taps, comma-separated ("input,down1,down2,block1,block5");
    # null: the generator's nce_taps, CUT's nce_layers 0,4,8,12,16 on a ResNet
    nce_t: float = 0.07  # [nce_T] the PatchNCE temperature
    num_patches: int = 256  # [num_patches] per tap and image
    netf_nc: int = 256  # [netF_nc] the PatchSampleF MLP width
    nce_batch_negatives: bool = False  # [nce_includes_all_negatives_from_minibatch]
    flip_equivariance: bool = False  # [flip_equivariance] (FastCUT: true)
    amp: str = _choices("none", "bf16", "fp16", default="none")
    ema: float = 0.0  # 0 = off, else the EMA decay of the generators' weights (e.g. 0.999)
    deterministic: bool = False
    checkpoint_every: int = 500
    keep_last: int = 3
    sample_every: int = 250
    num_samples: int = 4
    log_every: int = 10
    device: str = _choices("auto", "cpu", "cuda", default="auto")
    progress: bool = True
    wandb: bool = False  # log to Weights & Biases too (pip install 'gennorm[wandb]'; gennorm/train/wandb_sink.py)
    wandb_project: str = "gennorm"
    wandb_entity: str | None = None  # None: W&B's default entity
    wandb_run_name: str | None = None  # None: the run directory's name
    wandb_tags: str | None = None  # comma-separated


@dataclass
class Config:
    out: str = "runs/run"
    description: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


SECTIONS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig}
# Keys a resumed run may change (everything else must match the saved config).
RESUMABLE_KEYS = {"out", "description", "data.num_workers", "data.skip_corrupt", "data.root"} | {
    f"train.{k}" for k in ("max_steps", "decay_start", "decay_start_factor", "checkpoint_every", "keep_last", "sample_every",
                           "num_samples", "log_every", "device", "progress", "n_epochs", "n_epochs_decay",
                           "wandb", "wandb_project", "wandb_entity", "wandb_run_name", "wandb_tags")
}


# ----------------------------------------------------------------------------------------------
# value checking


def _type_name(tp) -> str:
    args = typing.get_args(tp)
    if args:
        return " or ".join(_type_name(a) for a in args)
    return {type(None): "null"}.get(tp, getattr(tp, "__name__", str(tp)))


def _coerce(key: str, value: Any, f: dataclasses.Field) -> Any:
    """Check one value against its field's type and choices; return it (ints accepted as floats)."""
    tp = typing.get_type_hints(_owner_of(f))[f.name]
    allowed = typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
    ok, given = None, value
    for t in allowed:
        if t is type(None) and value is None:
            ok, value = True, None
        elif t is bool and isinstance(value, bool):
            ok = True
        elif t is int and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        elif t is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            ok, value = True, float(value)
        elif t is float and isinstance(value, str) and _is_float(value):
            ok, value = True, float(value)  # YAML 1.1 reads "1e-3" as a string
        elif t is str and isinstance(value, str):
            ok = True
        if ok:
            break
    if not ok:
        raise ConfigError(f"config key {key!r}: expected {_type_name(tp)}, got {_short(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        shown = f"{given!r}" + (f" (= {value!r})" if isinstance(given, str) else "")
        raise ConfigError(f"config key {key!r}: {shown} is not a finite number; give a finite value")
    choices = f.metadata.get("choices")
    if choices and value is not None and value not in choices:
        raise ConfigError(f"config key {key!r}: {value!r} is not allowed; allowed values: {', '.join(choices)}")
    return value


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text.strip().lower() not in ("nan", "inf", "-inf", "+inf", "infinity")


_FIELD_OWNER: dict[int, type] = {}


def _owner_of(f: dataclasses.Field) -> type:
    return _FIELD_OWNER[id(f)]


for _cls in (ModelConfig, DataConfig, TrainConfig, Config):
    for _f in dataclasses.fields(_cls):
        _FIELD_OWNER[id(_f)] = _cls


def _fields(cls) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


def set_key(cfg: Config, key: str, value: Any) -> None:
    """Set a dotted key (`train.max_steps`) with checking."""
    parts = key.split(".")
    if len(parts) == 1 and parts[0] in _fields(Config) and parts[0] not in SECTIONS:
        setattr(cfg, parts[0], _coerce(key, value, _fields(Config)[parts[0]]))
        return
    if len(parts) != 2 or parts[0] not in SECTIONS:
        top = [k for k in _fields(Config) if k not in SECTIONS]
        keys = [f"{s}.{n}" for s, c in SECTIONS.items() for n in _fields(c)] + top
        raise ConfigError(f"unknown config key {key!r}{did_you_mean(key, keys)}; keys are {', '.join(top)} and "
                          f"{', '.join(s + '.*' for s in SECTIONS)}")
    section, name = parts
    fields = _fields(SECTIONS[section])
    if name not in fields:
        dotted = [section + "." + f for f in fields]
        raise ConfigError(f"unknown config key {key!r}{did_you_mean(key, dotted)}; "
                          f"keys of {section!r}: {', '.join(fields)}")
    setattr(getattr(cfg, section), name, _coerce(key, value, fields[name]))


def from_dict(data: dict, base: Config | None = None) -> Config:
    """A Config from a nested dict (as in YAML), every key checked."""
    cfg = base if base is not None else Config()
    if data is None:
        return cfg
    if not isinstance(data, dict):
        raise ConfigError(f"a config must be a mapping of keys, got {type(data).__name__}")
    for key, value in data.items():
        if key in SECTIONS:
            if value is None:
                continue
            if not isinstance(value, dict):
                raise ConfigError(f"config key {key!r} must be a mapping of keys, got {_short(value)}")
            for sub, v in value.items():
                set_key(cfg, f"{key}.{sub}", v)
        else:
            set_key(cfg, str(key), value)
    validate(cfg)
    return cfg


def validate(cfg: Config) -> None:
    """Cross-key checks."""
    t, d = cfg.train, cfg.data
    for key, value, low in (("train.max_steps", t.max_steps, 1), ("train.batch_size", t.batch_size, 1),
                            ("train.checkpoint_every", t.checkpoint_every, 1), ("train.keep_last", t.keep_last, 1),
                            ("train.sample_every", t.sample_every, 1), ("train.log_every", t.log_every, 1),
                            ("model.ngf", cfg.model.ngf, 1), ("model.ndf", cfg.model.ndf, 1),
                            ("data.crop_size", d.crop_size, 4), ("data.load_size", d.load_size, 4),
                            ("data.num_workers", d.num_workers, 0), ("train.pool_size", t.pool_size, 0),
                            ("train.num_patches", t.num_patches, 1), ("train.netf_nc", t.netf_nc, 1),
                            ("train.num_samples", t.num_samples, 0)):
        if value < low:
            raise ConfigError(f"config key {key!r}: must be >= {low}, got {value}")
    if not 0.0 <= t.ema < 1.0:
        raise ConfigError(f"config key 'train.ema': 0 (off) or a decay in (0, 1), got {t.ema}")
    if t.lr <= 0:
        raise ConfigError(f"config key 'train.lr': must be > 0, got {t.lr}")
    _check_ranges(cfg)
    check_magnitudes(cfg)
    if t.n_epochs is not None and (t.n_epochs < 1 or t.n_epochs_decay < 0 or t.lr_decay_iters < 1):
        raise ConfigError(f"config keys 'train.n_epochs' (>= 1), 'train.n_epochs_decay' (>= 0), 'train.lr_decay_iters' "
                          f"(>= 1): got {t.n_epochs}, {t.n_epochs_decay}, {t.lr_decay_iters}")
    if t.n_epochs is None and t.lr_policy != "linear":
        raise ConfigError(f"config key 'train.lr_policy': {t.lr_policy!r} is an epoch schedule; set train.n_epochs "
                          "(and train.n_epochs_decay), or use linear")
    if not 0.0 < t.decay_start_factor <= 1.0:
        raise ConfigError(f"config key 'train.decay_start_factor': must be in (0, 1], got {t.decay_start_factor}")
    if t.decay_start is not None and not 0 <= t.decay_start <= max(t.max_steps, 0):
        raise ConfigError(f"config key 'train.decay_start': must be in [0, train.max_steps={t.max_steps}], "
                          f"got {t.decay_start}")
    if t.task == "pix2pix" and d.mode != "aligned":
        raise ConfigError("config key 'data.mode': pix2pix needs paired data, allowed values: aligned")
    if t.task == "cyclegan" and cfg.model.input_nc != cfg.model.output_nc and t.lambda_identity > 0:
        raise ConfigError("config key 'train.lambda_identity': must be 0 when model.input_nc != model.output_nc")
    if t.task == "cut" and cfg.model.input_nc != cfg.model.output_nc:  # G's encoder reads G(A) too
        raise ConfigError(f"config key 'model.output_nc': CUT encodes G(A) with G's encoder, so it must equal "
                          f"model.input_nc ({cfg.model.input_nc}), got {cfg.model.output_nc}")
    if cfg.model.antialias and not cfg.model.g_arch.startswith("resnet"):
        raise ConfigError(f"config key 'model.antialias': CUT's blur pooling is defined for the ResNet generators "
                          f"(and the PatchGAN), not model.g_arch={cfg.model.g_arch}; set model.antialias=false")
    if not 0 < t.nce_t <= 10:
        raise ConfigError(f"config key 'train.nce_t': the PatchNCE temperature must be in (0, 10], got {t.nce_t}")


SEED_MAX = 2**62  # seeds get per-rank offsets added and must stay inside torch's 64-bit seed range


def _check_ranges(cfg: Config) -> None:
    """Values of the right type that no run can use: optimizer betas, negative loss weights, seeds."""
    t, m = cfg.train, cfg.model
    for key, value in (("train.beta1", t.beta1), ("train.beta2", t.beta2)):
        if not 0.0 <= value < 1.0:
            raise ConfigError(f"config key {key!r}: Adam's beta must be in [0, 1), got {value}")
    for key, value in (("train.lambda_l1", t.lambda_l1), ("train.lambda_cycle", t.lambda_cycle),
                       ("train.lambda_identity", t.lambda_identity), ("train.lambda_gp", t.lambda_gp),
                       ("train.lambda_gan", t.lambda_gan),
                       ("train.lambda_nce", t.lambda_nce), ("model.init_gain", m.init_gain)):
        if value < 0:
            raise ConfigError(f"config key {key!r}: a weight must be >= 0, got {value}")
    if not 0 <= t.seed <= SEED_MAX:
        raise ConfigError(f"config key 'train.seed': must be in [0, 2**62], got {t.seed}")
    for key, value in (("model.input_nc", m.input_nc), ("model.output_nc", m.output_nc),
                       ("model.n_layers", m.n_layers)):
        if value < 1:
            raise ConfigError(f"config key {key!r}: must be >= 1, got {value}")
    if cfg.data.max_size is not None and cfg.data.max_size < 1:
        raise ConfigError(f"config key 'data.max_size': null (all images) or >= 1, got {cfg.data.max_size}")


LR_MAX = 1e6  # far above any useful Adam lr (2e-4) yet held by float32 (1e300 overflowed); NaN guard below it
WEIGHT_MAX = 1e6  # loss weights and init gain: past this every float32 loss is inf or 0


def check_magnitudes(cfg: Config) -> None:
    """Finite values of the right sign that are still absurd: lr in (0, 1e6], loss weights <= 1e6
    (a run would overflow at its first step with an error that names no key)."""
    t, m = cfg.train, cfg.model
    if not 0 < t.lr <= LR_MAX:
        raise ConfigError(f"config key 'train.lr': must be in (0, {LR_MAX:g}] (e.g. 2e-4), got {t.lr:g}")
    for key, value in (("train.lambda_l1", t.lambda_l1), ("train.lambda_cycle", t.lambda_cycle),
                       ("train.lambda_identity", t.lambda_identity), ("train.lambda_gp", t.lambda_gp),
                       ("train.lambda_gan", t.lambda_gan),
                       ("train.lambda_nce", t.lambda_nce), ("model.init_gain", m.init_gain)):
        if abs(value) > WEIGHT_MAX:
            raise ConfigError(f"config key {key!r}: must be at most {WEIGHT_MAX:g}, got {value:g}")


def to_dict(cfg: Config) -> dict:
    return dataclasses.asdict(cfg)


def flatten(data: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in data.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


# ----------------------------------------------------------------------------------------------
# files, presets, overrides


def parse_overrides(items: list[str]) -> list[tuple[str, Any]]:
    """`["train.max_steps=20", "model.upsample=null"]` -> [(key, yaml scalar), ...]."""
    out = []
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not KEY=VALUE (e.g. train.max_steps=20)")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        if isinstance(value, (dict, list)):
            value = raw  # `a=[x]` is taken literally; configs have scalar values only
        out.append((key.strip(), value))
    return out


def _bases() -> list[Path]:
    return sorted(PRESETS_DIR.glob("*.yaml"))


def preset_data(name: str) -> dict | None:
    """The preset TASK-NORM (a task's base plus the norm's generator) or TASK-classic, or None."""
    classic = CLASSIC_DIR / f"{name.removesuffix('-classic')}.yaml"
    if name.endswith("-classic") and classic.is_file():
        return read_yaml(classic)
    for base in _bases():
        norm = name[len(base.stem) + 1:] if name.startswith(base.stem + "-") else None
        if norm in PRESET_NORMS:
            data = read_yaml(base)
            data["description"] = str(data.get("description", "")).format(norm=NORMS[norm].description)
            data["out"] = f"runs/{name}"
            data.setdefault("model", {})["g_norm"] = norm
            return data
    return None


def list_presets() -> dict[str, str]:
    """Preset name -> one-line description: TASK-NORM for every task base and preset norm, TASK-classic."""
    names = [f"{base.stem}-{norm}" for base in _bases() for norm in PRESET_NORMS]
    names += [f"{path.stem}-classic" for path in sorted(CLASSIC_DIR.glob("*.yaml"))]
    return {name: preset_data(name)["description"].strip().splitlines()[0] for name in names}


def read_yaml(path: Path) -> dict:
    """A YAML config file as a dict: the bounded reader of gennorm.yamlio (UTF-8, at most 1 MB, no
    duplicate keys, no alias bombs, a mapping at the top; ConfigError naming the file)."""
    return yamlio.read_yaml(path)


def _from_file(path: Path, data: dict) -> Config:
    """from_dict, with the file named in the error (`FILE: config key 'x': ...`)."""
    try:
        return from_dict(data)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def changed_keys(before: dict, after: dict, allowed=RESUMABLE_KEYS) -> list[tuple[str, Any, Any]]:
    """(key, before, after) for every key of two flattened configs that differs and may not change
    when resuming (not in `allowed`). A key only one side has (a config older than the key) is not
    compared. Both refusals of `gennorm train --resume` use it: overrides, and RUN/config.yaml
    against the config stored in the checkpoint."""
    return [(k, before[k], after[k]) for k in after if k in before and after[k] != before[k] and k not in allowed]


def check_unchanged(before: dict, after: dict, allowed=RESUMABLE_KEYS) -> None:
    """ConfigError naming the first key that an override may not change when resuming."""
    for key, old, new in changed_keys(before, after, allowed)[:1]:
        raise ConfigError(f"config key {key!r} cannot change when resuming ({_short(old)} -> {_short(new)}); "
                          f"keys that may change: {', '.join(sorted(allowed))}")


def _short(value, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


# `gennorm train PRESET --quick`: a CPU-sized profile of any preset (the quickstart's model: ResNet-6,
# ngf/ndf 16, 64 px, batch 4, lr 1e-3), put before the user's KEY=VALUE overrides
QUICK_OVERRIDES = ("model.g_arch=resnet_6blocks", "model.ngf=16", "model.ndf=16", "data.load_size=72",
                   "data.crop_size=64", "train.batch_size=4", "train.lr=0.001", "train.max_steps=300",
                   "train.checkpoint_every=100", "train.sample_every=100", "train.log_every=10")


def load_config(name_or_path: str | Path | dict, overrides: list[str] | None = None) -> Config:
    """Config from a preset name, a YAML file or a dict, then dotted overrides (all checked)."""
    if isinstance(name_or_path, dict):
        data = name_or_path
    elif Path(name_or_path).is_file():
        path = Path(name_or_path)
        cfg = _from_file(path, read_yaml(path))
        data = None
    else:
        data = preset_data(str(name_or_path))
        if data is None:
            raise ConfigError(f"config {str(name_or_path)!r} is neither a YAML file nor a preset"
                              f"{did_you_mean(str(name_or_path), list_presets())}; presets: "
                              f"{', '.join(list_presets())}")
    if data is not None:
        cfg = from_dict(data)
    for key, value in parse_overrides(overrides or []):
        set_key(cfg, key, value)
    validate(cfg)
    return cfg


def config_text(cfg: Config) -> str:
    """The resolved config as YAML: what RUN/config.yaml holds and `gennorm train --print-config` prints."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def save_config(cfg: Config, path: Path) -> None:
    atomic_write_bytes(Path(path), config_text(cfg).encode())


def config_from_file(path: Path) -> Config:
    return _from_file(Path(path), read_yaml(Path(path)))
