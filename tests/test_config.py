"""gennorm/config.py in-process: every bound at its edge (the last value accepted, the first refused, the
message naming the key), the type checks, overrides, presets and the resume comparison.

The CLI suites (test_faults, test_limits, test_integrity, test_fuzz) run the same checks through
`gennorm train` in a subprocess or with a dataset; these need neither, so mutmut (docs/mutation.md) maps them.
"""
from __future__ import annotations

import re

import pytest
import yaml

from gennorm import config as C
from gennorm.config import (Config, ConfigError, changed_keys, check_unchanged, config_from_file, config_text,
                            flatten, from_dict, list_presets, load_config, parse_overrides, preset_data, save_config,
                            set_key, to_dict)
from gennorm.layers.registry import NORMS, PRESET_NORMS


def _load(*overrides: str) -> Config:
    return load_config("pix2pix-instance", list(overrides))


def _refused(match: str, *overrides: str) -> str:
    with pytest.raises(ConfigError) as info:
        _load(*overrides)
    text = str(info.value)
    assert re.search(match, text), text
    assert "\n" not in text
    return text


# ----------------------------------------------------------------------------------------------
# bounds: (key, last value accepted, first value refused, words of the message)

BOUNDS = [
    ("train.max_steps", 1, 0, ">= 1, got 0"), ("train.batch_size", 1, 0, ">= 1, got 0"),
    ("train.checkpoint_every", 1, 0, ">= 1, got 0"), ("train.keep_last", 1, 0, ">= 1, got 0"),
    ("train.sample_every", 1, 0, ">= 1, got 0"), ("train.log_every", 1, 0, ">= 1, got 0"),
    ("model.ngf", 1, 0, ">= 1, got 0"), ("model.ndf", 1, 0, ">= 1, got 0"),
    ("data.num_workers", 0, -1, ">= 0, got -1"), ("train.pool_size", 0, -1, ">= 0, got -1"),
    ("train.num_patches", 1, 0, ">= 1, got 0"), ("train.netf_nc", 1, 0, ">= 1, got 0"),
    ("train.num_samples", 0, -1, ">= 0, got -1"),
    ("train.ema", 0.0, -0.001, r"0 \(off\) or a decay in \(0, 1\), got -0.001"),
    ("train.ema", 0.9999, 1.0, r"0 \(off\) or a decay in \(0, 1\), got 1.0"),
    ("train.lr", 1e-12, 0.0, r"'train.lr': must be > 0, got 0.0"),
    ("train.lr", 1e6, 1.000001e6, r"'train.lr': must be in \(0, 1e\+06\] \(e.g. 2e-4\), got 1e\+06"),
    ("train.beta1", 0.0, -0.001, r"Adam's beta must be in \[0, 1\), got -0.001"),
    ("train.beta1", 0.999, 1.0, r"Adam's beta must be in \[0, 1\), got 1.0"),
    ("train.beta2", 0.0, -0.001, r"Adam's beta must be in \[0, 1\), got -0.001"),
    ("train.beta2", 0.9999, 1.0, r"Adam's beta must be in \[0, 1\), got 1.0"),
    ("train.seed", 0, -1, r"'train.seed': must be in \[0, 2\*\*62\], got -1"),
    ("train.seed", 2**62, 2**62 + 1, r"'train.seed': must be in \[0, 2\*\*62\]"),
    ("model.input_nc", 1, 0, ">= 1, got 0"), ("model.output_nc", 1, 0, ">= 1, got 0"),
    ("model.n_layers", 1, 0, ">= 1, got 0"),
    ("data.max_size", 1, 0, r"null \(all images\) or >= 1, got 0"),
    ("train.decay_start_factor", 1.0, 1.001, r"must be in \(0, 1\], got 1.001"),
    ("train.decay_start_factor", 1e-9, 0.0, r"must be in \(0, 1\], got 0.0"),
    ("train.decay_start", 0, -1, r"must be in \[0, train.max_steps=20000\], got -1"),
    ("train.decay_start", 20000, 20001, r"must be in \[0, train.max_steps=20000\], got 20001"),
    ("train.nce_t", 10.0, 10.001, r"the PatchNCE temperature must be in \(0, 10\], got 10.001"),
    ("train.nce_t", 1e-6, 0.0, r"the PatchNCE temperature must be in \(0, 10\], got 0.0"),
] + [(key, 0.0, -0.001, r"a weight must be >= 0, got -0.001") for key in (
    "train.lambda_l1", "train.lambda_cycle", "train.lambda_identity", "train.lambda_gp", "train.lambda_gan",
    "train.lambda_nce", "model.init_gain")] + [(key, 1e6, 1.0000001e6, r"must be at most 1e\+06, got 1e\+06") for key in (
    "train.lambda_l1", "train.lambda_cycle", "train.lambda_identity", "train.lambda_gp", "train.lambda_gan",
    "train.lambda_nce", "model.init_gain")]


@pytest.mark.parametrize("key, ok, bad, says", BOUNDS)
def test_each_bound_accepts_its_edge_and_refuses_the_next_value_naming_the_key(key, ok, bad, says):
    section, name = key.split(".")
    assert getattr(getattr(_load(f"{key}={ok!r}"), section), name) == ok
    text = _refused(says, f"{key}={bad!r}")
    assert text.startswith(f"config key {key!r}: "), text


@pytest.mark.parametrize("key", ["data.crop_size", "data.load_size"])
def test_image_sizes_have_a_floor_of_four(key):
    assert getattr(_load("data.crop_size=4", "data.load_size=4").data, key.split(".")[1]) == 4
    _refused(rf"config key '{key}': must be >= 4, got 3", "data.crop_size=4", "data.load_size=4", f"{key}=3")


def test_epoch_schedules_check_their_three_keys_together():
    cfg = _load("train.n_epochs=1", "train.n_epochs_decay=0", "train.lr_decay_iters=1", "train.lr_policy=step")
    assert (cfg.train.n_epochs, cfg.train.n_epochs_decay, cfg.train.lr_decay_iters) == (1, 0, 1)
    says = r"'train.n_epochs' \(>= 1\), 'train.n_epochs_decay' \(>= 0\), 'train.lr_decay_iters' \(>= 1\): got "
    _refused(says + "0, 0, 50", "train.n_epochs=0")
    _refused(says + "1, -1, 50", "train.n_epochs=1", "train.n_epochs_decay=-1")
    _refused(says + "1, 0, 0", "train.n_epochs=1", "train.lr_decay_iters=0")
    _load("train.n_epochs_decay=-1", "train.lr_decay_iters=0")  # only read by epoch schedules
    for policy in ("step", "plateau", "cosine"):
        _refused(rf"'train.lr_policy': '{policy}' is an epoch schedule; set train.n_epochs \(and train.n_epochs_decay\), "
                 "or use linear$", f"train.lr_policy={policy}")
    assert _load("train.lr_policy=linear").train.lr_policy == "linear"


def test_cross_key_checks_of_tasks_and_channels():
    _refused(r"^config key 'data.mode': pix2pix needs paired data, allowed values: aligned$", "data.mode=unaligned")
    cyc = ["train.task=cyclegan", "data.mode=unaligned", "model.output_nc=1"]
    _refused(r"^config key 'train.lambda_identity': must be 0 when model.input_nc != model.output_nc$", *cyc)
    assert _load(*cyc, "train.lambda_identity=0").model.output_nc == 1
    assert _load("model.output_nc=1").model.output_nc == 1  # pix2pix maps 3 -> 1 channels
    _refused(r"'model.output_nc': CUT encodes G\(A\) with G's encoder, so it must equal model.input_nc \(3\), got 1",
             "train.task=cut", "data.mode=unaligned", "model.output_nc=1", "train.lambda_identity=0")
    _refused(r"'model.antialias': .* not model.g_arch=unet_256; set model.antialias=false",
             "model.g_arch=unet_256", "model.antialias=true")
    assert _load("model.g_arch=resnet_6blocks", "model.antialias=true").model.antialias is True
    assert _load("model.g_arch=unet_256", "model.antialias=false").model.g_arch == "unet_256"


# ----------------------------------------------------------------------------------------------
# types


def test_values_are_checked_against_the_field_type():
    cfg = _load("train.lr=1", "train.ema=0", "model.upsample=null", "train.decay_start=null", "data.max_size=7",
                "train.deterministic=true", "description=x")
    assert cfg.train.lr == 1.0 and type(cfg.train.lr) is float and type(cfg.train.ema) is float
    assert cfg.model.upsample is None and cfg.train.decay_start is None and cfg.data.max_size == 7
    assert cfg.train.deterministic is True and cfg.description == "x"
    cfg = Config()
    set_key(cfg, "train.lr", "1e-3")  # YAML 1.1 reads 1e-3 as a string
    assert cfg.train.lr == 1e-3 and type(cfg.train.lr) is float
    set_key(cfg, "train.lr", " 5e-4 ")
    assert cfg.train.lr == 5e-4
    for key, value, says in (
            ("train.max_steps", True, "expected int, got True"),  # a bool is not an int
            ("train.max_steps", 2.0, "expected int, got 2.0"),
            ("train.max_steps", "3", "expected int, got '3'"),
            ("train.deterministic", 1, "expected bool, got 1"),
            ("train.lr", True, "expected float, got True"),
            ("train.lr", "fast", "expected float, got 'fast'"),
            ("train.lr", None, "expected float, got None"),
            ("train.decay_start", 2.5, "expected int or null, got 2.5"),
            ("model.upsample", 3, "expected str or null, got 3"),
            ("description", 5, "expected str, got 5"),
            ("model.g_norm", None, "expected str, got None")):
        with pytest.raises(ConfigError, match=f"^config key {key!r}: {re.escape(says)}$"):
            set_key(Config(), key, value)


@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-inf", "+inf", "Infinity", " nan "])
def test_non_finite_strings_are_not_numbers(text):
    with pytest.raises(ConfigError, match=f"^config key 'train.lr': expected float, got {re.escape(repr(text))}$"):
        set_key(Config(), "train.lr", text)


def test_non_finite_values_name_the_key_and_what_was_given():
    for value, shown in ((float("nan"), "nan"), (float("inf"), "inf"), (-float("inf"), "-inf"), ("1e309", "'1e309' (= inf)")):
        with pytest.raises(ConfigError, match=f"^config key 'train.lr': {re.escape(shown)} is not a finite number; "
                                              "give a finite value$"):
            set_key(Config(), "train.lr", value)


def test_choices_are_listed():
    with pytest.raises(ConfigError, match=r"^config key 'train.amp': 'fp8' is not allowed; allowed values: none, bf16, fp16$"):
        set_key(Config(), "train.amp", "fp8")
    with pytest.raises(ConfigError, match=r"allowed values: " + ", ".join(NORMS) + "$"):
        set_key(Config(), "model.g_norm", "banana")
    cfg = Config()
    set_key(cfg, "train.lr_policy", "cosine")
    assert cfg.train.lr_policy == "cosine"


def test_unknown_keys_name_the_keys_there_are():
    top = "keys are out, description and model.*, data.*, train.*"
    for key in ("foo", "model", "train.lr.x", "nosuch.lr"):
        with pytest.raises(ConfigError, match=rf"^unknown config key {re.escape(repr(key))}.*; {re.escape(top)}$"):
            set_key(Config(), key, 1)
    with pytest.raises(ConfigError, match=r"^unknown config key 'train.max_step' \(did you mean 'train.max_steps'\?\); "
                                          r"keys of 'train': task, max_steps, "):
        set_key(Config(), "train.max_step", 1)
    with pytest.raises(ConfigError, match=r"unknown config key 'outt' \(did you mean 'out'\?\)"):
        set_key(Config(), "outt", "x")
    cfg = Config()
    set_key(cfg, "out", "runs/x")
    assert cfg.out == "runs/x"


def test_from_dict_reads_sections_and_checks_the_whole():
    assert to_dict(from_dict(None)) == to_dict(Config())
    assert to_dict(from_dict({"model": None, "out": "o"})) == to_dict(Config(out="o"))
    base = Config(description="kept")
    cfg = from_dict({"train": {"lr": 0.5}}, base)
    assert cfg is base and cfg.description == "kept" and cfg.train.lr == 0.5
    with pytest.raises(ConfigError, match=r"^a config must be a mapping of keys, got list$"):
        from_dict([1, 2])
    with pytest.raises(ConfigError, match=r"^config key 'train' must be a mapping of keys, got 5$"):
        from_dict({"train": 5})
    with pytest.raises(ConfigError, match="data.mode"):  # validate() runs at the end
        from_dict({"data": {"mode": "unaligned"}})
    with pytest.raises(ConfigError, match="unknown config key '3'"):
        from_dict({3: 1})


def test_flatten_and_to_dict():
    assert flatten({"a": {"b": 1, "c": {"d": 2}}, "e": 3}) == {"a.b": 1, "a.c.d": 2, "e": 3}
    assert flatten({"x": 1}, "p.") == {"p.x": 1}
    flat = flatten(to_dict(Config()))
    assert flat["train.lr"] == 2e-4 and flat["model.g_norm"] == "instance" and flat["out"] == "runs/run"
    assert len(flat) == 2 + sum(len(C._fields(c)) for c in C.SECTIONS.values())


# ----------------------------------------------------------------------------------------------
# overrides, presets, files


def test_overrides_are_yaml_scalars():
    assert parse_overrides(None) == [] and parse_overrides([]) == []
    assert parse_overrides(["train.max_steps=20", " model.upsample =null", "train.lr=1e-4", "out=a=b", "description=",
                            "description= ", "x=[1, 2]", "y={a: 1}", "z=[", "w=true"]) == [
        ("train.max_steps", 20), ("model.upsample", None), ("train.lr", "1e-4"), ("out", "a=b"), ("description", ""),
        ("description", ""), ("x", "[1, 2]"), ("y", "{a: 1}"), ("z", "["), ("w", True)]
    with pytest.raises(ConfigError, match=r"^override 'train.lr' is not KEY=VALUE \(e.g. train.max_steps=20\)$"):
        parse_overrides(["train.lr"])


def test_presets_are_task_bases_with_a_norm():
    data = preset_data("cyclegan-nc")
    assert data["out"] == "runs/cyclegan-nc" and data["model"]["g_norm"] == "nc"
    assert NORMS["nc"].description in data["description"] and "{norm}" not in data["description"]
    assert preset_data("cyclegan-banana") is None and preset_data("banana") is None and preset_data("cyclegan") is None
    assert preset_data("banana-classic") is None
    classic = preset_data("cyclegan-classic")
    assert classic == yaml.safe_load((C.CLASSIC_DIR / "cyclegan.yaml").read_text())
    assert preset_data("fastcut-nc")["train"]["lambda_nce"] == 10
    names = list_presets()
    bases = sorted(p.stem for p in C.PRESETS_DIR.glob("*.yaml"))
    assert list(names) == [f"{b}-{n}" for b in bases for n in PRESET_NORMS] + [f"{b}-classic" for b in bases]
    assert names["pix2pix-nc"] == preset_data("pix2pix-nc")["description"].strip().splitlines()[0]
    assert all(text and "\n" not in text for text in names.values())


def test_load_config_from_a_preset_a_file_or_a_dict(tmp_path):
    cfg = load_config("pix2pix-nc", ["train.max_steps=7"])
    assert cfg.model.g_norm == "nc" and cfg.train.max_steps == 7 and cfg.out == "runs/pix2pix-nc"
    assert load_config({"train": {"max_steps": 3}}).train.max_steps == 3
    path = tmp_path / "c.yaml"
    save_config(cfg, path)
    assert path.read_text() == config_text(cfg) and list(yaml.safe_load(path.read_text())) == [
        "out", "description", "model", "data", "train"]  # not sorted
    assert to_dict(config_from_file(path)) == to_dict(cfg) == to_dict(load_config(path))
    assert load_config(str(path), ["train.max_steps=9"]).train.max_steps == 9
    path.write_text("train:\n  lr: -1\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: config key 'train.lr': must be > 0, got -1.0$"):
        load_config(path)
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: config key 'train.lr'"):
        config_from_file(path)
    with pytest.raises(ConfigError, match=r"^config key 'data.mode'"):  # overrides are validated together
        load_config("pix2pix-nc", ["data.mode=unaligned"])
    with pytest.raises(ConfigError, match=r"^config 'pix2pix-ncc' is neither a YAML file nor a preset \(did you mean "
                                          r"'pix2pix-nc'\?\); presets: " + ", ".join(list_presets()) + "$"):
        load_config("pix2pix-ncc")


def test_resume_refuses_changed_keys_except_the_resumable_ones():
    before = flatten(to_dict(Config()))
    after = dict(before, **{"train.lr": 0.1, "train.max_steps": 5, "model.ngf": 8, "new.key": 1})
    del after["model.ndf"]
    assert changed_keys(before, after) == [("model.ngf", 64, 8), ("train.lr", 2e-4, 0.1)]
    assert changed_keys(before, after, allowed={"train.lr"}) == [("model.ngf", 64, 8), ("train.max_steps", 1000, 5)]
    with pytest.raises(ConfigError, match=r"^config key 'model.ngf' cannot change when resuming \(64 -> 8\); "
                                          r"keys that may change: data.num_workers, data.root, "):
        check_unchanged(before, after)
    with pytest.raises(ConfigError, match=r"^config key 'train.lr' cannot change when resuming \(0.0002 -> 0.1\); "):
        check_unchanged(before, dict(before, **{"train.lr": 0.1}))
    check_unchanged(before, dict(before, **{"train.max_steps": 5, "out": "x"}))
    check_unchanged(before, dict(before, **{"train.lr": 0.1}), allowed={"train.lr"})  # the caller's keys
    with pytest.raises(ConfigError, match=r"'train.max_steps' cannot change .*; keys that may change: train.lr$"):
        check_unchanged(before, dict(before, **{"train.max_steps": 5}), allowed={"train.lr"})
    long = "x" * 100
    with pytest.raises(ConfigError, match=rf"\('{'x' * 79}\.\.\. -> 'y'\)"):
        check_unchanged({"model.g_arch": long}, {"model.g_arch": "y"})
    assert C._short("x" * 78) == repr("x" * 78) and C._short("x" * 79) == repr("x" * 79)[:80] + "..."
