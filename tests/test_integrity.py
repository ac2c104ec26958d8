"""Integrity against a hostile user (issue 30; ../shared/reports/2026-12-07-faults.md F5-F10,
F12, F17, F22, F23, F32): a file is what it says it is, or it is refused with one line naming it.

    A  a model is what it says it is   weights files record their build options (+ sha256), checked
                                       against config.yaml on every load (translate, load, init_from),
                                       and the sha256 of their tensors, checked on every load;
                                       integer-relabelled float weights refused
    B  resume compares configs         RUN/config.yaml against the checkpoint's config; quickstart
                                       refuses a run made with another norm
    C  content-keyed caches            the FID feature cache keys on file bytes; a damaged entry is a
                                       miss with a warning
    D  one bounded YAML loader         alias bombs, size, duplicate keys, encoding, top-level type, for
                                       configs, study configs, model folders and cards' front matter
    E  bounded reads                   safetensors headers checked against the file before reading;
                                       --metrics-json capped
"""
from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.torch import save_file

import clitools
from clitools import cli, dead_pid

from gennorm.cli import main
from gennorm.errors import ConfigError

TINY = ["model.ngf=4", "model.ndf=4", "model.g_arch=resnet_6blocks", "data.load_size=36", "data.crop_size=32",
        "train.device=cpu", "train.progress=false", "train.num_samples=2", "train.log_every=1"]
BOMB = "a0: &a0 [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 9))


def error_line(err: str, verb: str) -> str:
    """clitools.error_line, and never an "unexpected ..." line."""
    line = clitools.error_line(err, verb)
    assert "unexpected" not in line, line
    return line


@pytest.fixture(scope="module")
def runs(scenes, tmp_path_factory) -> dict[str, Path]:
    """Tiny finished pix2pix runs (2 steps) of four norms."""
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for norm in ("instance", "pono-ms", "nc", "kn"):
        run = root / norm
        assert main(["train", f"pix2pix-{norm}", f"out={run}", f"data.root={scenes / 'paired'}", *TINY,
                     "train.max_steps=2", "train.checkpoint_every=2"]) == 0
        out[norm] = run
    return out


@pytest.fixture(scope="module")
def models(runs, tmp_path_factory) -> dict[str, Path]:
    """Each run exported as a models/ folder (read-only: copy before changing)."""
    root = tmp_path_factory.mktemp("models")
    out = {}
    for norm, run in runs.items():
        assert main(["export", str(run), str(root / norm)]) == 0
        out[norm] = root / norm
    return out


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# ----------------------------------------------------------------------------------------------
# A: a model is what it says it is


def test_export_records_the_build_options_and_their_hash(models):
    with safe_open(str(models["pono-ms"] / "generator.safetensors"), "pt") as f:
        meta = f.metadata()
    options = json.loads(meta["options"])
    assert options["norm"] == "pono-ms" and options["ngf"] == 4 and options["arch"] == "resnet_6blocks"
    import hashlib
    assert meta["options_sha256"] == hashlib.sha256(meta["options"].encode()).hexdigest()


@pytest.mark.parametrize("weights, config", [("pono-ms", "instance"), ("instance", "pono-ms"),
                                             ("nc", "kn"), ("kn", "nc")])
def test_generator_of_another_norm_with_the_same_keys_is_refused(models, scenes, tmp_path, capsys, weights, config):
    """F5/F23: a generator file under another norm's config.yaml (a kill -9 mid re-export) loads silently."""
    folder = _copy(models[config], tmp_path / "mixed")
    shutil.copy(models[weights] / "generator.safetensors", folder / "generator.safetensors")
    code, err = cli(capsys, "translate", folder, scenes / "paired" / "test", tmp_path / "o", "--aligned")
    line = error_line(err, "translate")
    assert code == 2 and "generator.safetensors" in line and weights in line and config in line, line


@pytest.mark.parametrize("weights, norm", [("instance", "pono-ms"), ("nc", "kn")])
def test_init_from_a_model_of_another_norm_is_refused(models, scenes, tmp_path, capsys, weights, norm):
    code, err = cli(capsys, "train", f"pix2pix-{norm}", f"out={tmp_path / 'ft'}", f"data.root={scenes / 'paired'}",
                    *TINY, "train.max_steps=1", f"model.init_from={models[weights]}")
    line = error_line(err, "train")
    assert code == 2 and "model.init_from" in line and weights in line and norm in line, line


def _rewrite_header(path: Path, edit) -> None:
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    header = edit(header)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + n:])


def test_float_weights_relabelled_as_integers_are_refused(models, scenes, tmp_path, capsys):
    """F17: every F32 tensor declared I32 (same bytes) translated to garbage with exit 0."""
    folder = _copy(models["instance"], tmp_path / "i32")
    # the weights' sha256 left out (a file written before gennorm recorded it): the dtype check refuses it
    _rewrite_header(folder / "generator.safetensors",
                    lambda h: {k: ({kk: vv for kk, vv in v.items() if kk != "weights_sha256"} if k == "__metadata__"
                                   else {**v, "dtype": "I32"}) for k, v in h.items()})
    code, err = cli(capsys, "translate", folder, scenes / "paired" / "test", tmp_path / "o", "--aligned")
    line = error_line(err, "translate")
    assert code == 2 and "generator.safetensors" in line and "int32" in line and "tensor '" in line, line


def test_edited_options_metadata_is_refused(models, scenes, tmp_path, capsys):
    folder = _copy(models["instance"], tmp_path / "edited")
    _rewrite_header(folder / "generator.safetensors", lambda h: {
        **h, "__metadata__": {**h["__metadata__"], "options": h["__metadata__"]["options"].replace("instance", "nc")}})
    code, err = cli(capsys, "translate", folder, scenes / "paired" / "test", tmp_path / "o", "--aligned")
    line = error_line(err, "translate")
    assert code == 2 and "sha256" in line, line


def test_model_folders_without_options_metadata_still_load(models, scenes, tmp_path, capsys):
    """Folders written before the metadata (the zoo in models/) load; keys and shapes are compared."""
    folder = _copy(models["instance"], tmp_path / "old")
    _rewrite_header(folder / "generator.safetensors", lambda h: {
        **h, "__metadata__": {k: v for k, v in h["__metadata__"].items() if not k.startswith("options")}})
    assert cli(capsys, "translate", folder, scenes / "paired" / "test", tmp_path / "o", "--aligned")[0] == 0
    # a generator of another width is still refused by its shapes
    shutil.copy(models["instance"] / "config.yaml", folder / "config.yaml")
    (folder / "config.yaml").write_text((folder / "config.yaml").read_text().replace("ngf: 4", "ngf: 8"))
    code, err = cli(capsys, "translate", folder, scenes / "paired" / "test", tmp_path / "o2", "--aligned")
    assert code == 2 and "shape" in error_line(err, "translate")


def _flip_bits(path: Path, tensor: str, values: int = 16) -> None:
    """Flip bit 0x40 in byte 3 (the exponent) of the first `values` float32 values of `tensor`, in place."""
    raw = bytearray(path.read_bytes())
    n = struct.unpack("<Q", raw[:8])[0]
    begin = 8 + n + json.loads(raw[8:8 + n])[tensor]["data_offsets"][0]
    for i in range(values):
        raw[begin + 4 * i + 3] ^= 0x40
    path.write_bytes(bytes(raw))


def test_export_records_the_weights_sha256(models):
    from gennorm.networks.checkpoint import read_safetensors, weights_sha256
    path = models["nc"] / "generator.safetensors"
    with safe_open(str(path), "pt") as f:
        recorded = f.metadata()["weights_sha256"]
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    assert recorded == weights_sha256(tensors) == weights_sha256(dict(reversed(tensors.items())))
    read_safetensors(path)  # checked and accepted


def test_a_damaged_weights_file_is_refused_naming_it(models, scenes, tmp_path, capsys):
    """N1 (issue 30): 16 flipped exponent bits in stem.1.0.weight translated with exit 0, 11/255 off."""
    folder = _copy(models["instance"], tmp_path / "damaged")
    _flip_bits(folder / "generator.safetensors", "stem.1.0.weight")
    code, err = cli(capsys, "translate", folder, scenes / "paired" / "test", tmp_path / "o", "--aligned")
    line = error_line(err, "translate")
    assert code == 2 and str(folder / "generator.safetensors") in line and "damaged" in line, line
    assert "sha256" in line and "export" in line and not (tmp_path / "o").exists()
    import gennorm
    from gennorm.errors import CheckpointError
    with pytest.raises(CheckpointError, match="damaged"):
        gennorm.load(folder)


@pytest.mark.parametrize("file", ["generator.safetensors", "discriminator.safetensors"])
def test_init_from_a_damaged_weights_file_is_refused(models, scenes, tmp_path, capsys, file):
    folder = _copy(models["instance"], tmp_path / "damaged")
    if file == "discriminator.safetensors":  # an imported D: written as gennorm import writes it
        from gennorm.config import config_from_file
        from gennorm.networks.checkpoint import weights_metadata
        from gennorm.networks.factory import build_discriminator_from
        model = config_from_file(folder / "config.yaml").model
        d = {k: v.contiguous() for k, v in build_discriminator_from(model, 6).state_dict().items() if v.numel()}
        save_file(d, folder / file, metadata=weights_metadata(d))
    name = next(k for k in safe_open(str(folder / file), "pt").keys() if k.endswith("weight"))
    _flip_bits(folder / file, name, 1)
    code, err = cli(capsys, "train", "pix2pix-instance", f"out={tmp_path / 'ft'}", f"data.root={scenes / 'paired'}",
                    *TINY, "train.max_steps=1", f"model.init_from={folder}")
    line = error_line(err, "train")
    assert code == 2 and "model.init_from" in line and str(folder / file) in line and "damaged" in line, line


def test_model_folders_without_a_weights_sha256_still_load(models, scenes, tmp_path, capsys):
    """Folders written before gennorm recorded the weights' sha256 load (the zoo in models/)."""
    folder = _copy(models["instance"], tmp_path / "old")
    _rewrite_header(folder / "generator.safetensors", lambda h: {
        **h, "__metadata__": {k: v for k, v in h["__metadata__"].items() if k != "weights_sha256"}})
    assert cli(capsys, "translate", folder, scenes / "paired" / "test", tmp_path / "o", "--aligned")[0] == 0


# ----------------------------------------------------------------------------------------------
# B: resume compares configs


@pytest.mark.parametrize("key, value", [("gan_mode", "hinge"), ("lambda_l1", "0.0"), ("batch_size", "2"),
                                        ("seed", "3")])
def test_resume_refuses_an_edited_config_yaml(runs, tmp_path, capsys, key, value):
    """F6: edits to RUN/config.yaml that `--resume RUN train.KEY=...` refuses were taken silently."""
    run = _copy(runs["instance"], tmp_path / "r")
    text = (run / "config.yaml").read_text()
    lines = [f"  {key}: {value}" if line.startswith(f"  {key}: ") else line for line in text.splitlines()]
    (run / "config.yaml").write_text("\n".join(lines) + "\n")
    code, err = cli(capsys, "train", "--resume", run, "train.max_steps=3")
    line = error_line(err, "train")
    assert code == 2 and f"train.{key}" in line and "config.yaml" in line and "step_" in line, line


def test_quickstart_refuses_a_run_of_another_norm(tmp_path, capsys):
    """F12: `quickstart --norm instance` after an NC quickstart reused the NC run, labelled instance."""
    from gennorm.study.quickstart import check_existing_run, quickstart_config

    nc = quickstart_config(tmp_path, 4, 32, 4, "nc")
    run = Path(nc.out)
    run.mkdir(parents=True)
    from gennorm.config import save_config
    save_config(nc, run / "config.yaml")
    check_existing_run(nc)  # the same settings: resumed
    with pytest.raises(ConfigError, match="g_norm.*'nc'.*'instance'"):
        check_existing_run(quickstart_config(tmp_path, 4, 32, 4, "instance"))


# ----------------------------------------------------------------------------------------------
# C: content-keyed caches


def _images(folder: Path, seed: int) -> list[Path]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(3):
        p = folder / f"{i}.bmp"  # BMP: every image of one size has the same file size
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    return paths


def test_feature_cache_key_follows_file_content_not_mtime(tmp_path):
    """F7: images replaced by others of the same size with mtime kept (cp -p) hit the cache."""
    from gennorm.metrics import cache

    paths = _images(tmp_path / "real", 0)
    others = _images(tmp_path / "other", 1)
    key = cache.folder_key(tmp_path / "real", paths, {"p": 1}, "w")
    for p, q in zip(paths, others):  # replaced, as `cp -p` / `rsync -a` do: same size, same mtime
        st = p.stat()
        assert q.stat().st_size == st.st_size
        p.write_bytes(q.read_bytes())
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert cache.folder_key(tmp_path / "real", paths, {"p": 1}, "w") != key


def test_damaged_cache_file_is_a_miss_with_a_warning_and_rewritten(tmp_path, monkeypatch, capsys):
    """F8: one flipped byte in the cached .npz failed every eval with `unexpected BadZipFile`."""
    from gennorm.metrics import cache

    monkeypatch.setenv("GENNORM_CACHE", str(tmp_path / "c"))
    feats = np.arange(2048 * 4, dtype=np.float32).reshape(4, 2048)
    path = cache.save("k" * 32, feats, ["a", "b", "c", "d"])
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    capsys.readouterr()
    assert cache.load("k" * 32) is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "warning" in err and str(path) in err, err
    cache.save("k" * 32, feats, ["a", "b", "c", "d"])
    assert np.array_equal(cache.load("k" * 32), feats)


def test_a_killed_cache_writes_temp_file_is_swept_by_the_next_write(tmp_path, monkeypatch):
    """N9 (second trial): the .npz temp file of an eval killed mid-write stayed beside the entry forever."""
    from gennorm.atomic import HOST
    from gennorm.metrics import cache

    monkeypatch.setenv("GENNORM_CACHE", str(tmp_path / "c"))
    cache.cache_dir().mkdir(parents=True)
    left = cache.cache_dir() / f".{'k' * 32}.npz.{dead_pid()}-{HOST}.tmp"
    left.write_bytes(b"half a zip")
    cache.save("k" * 32, np.zeros((2, 2048), np.float32), ["a", "b"])
    assert sorted(p.name for p in cache.cache_dir().iterdir()) == [f"{'k' * 32}.npz"]


# ----------------------------------------------------------------------------------------------
# D: one bounded YAML loader


def test_alias_bomb_in_a_run_config_is_refused_fast(tmp_path, capsys):
    """F9: a 9-level alias list as `description:` took 35 s and 2.7 GB, then MemoryError."""
    for where in ("description", "model"):
        path = tmp_path / f"bomb_{where}.yaml"
        path.write_text(BOMB.replace("a8: &a8", f"{where}: &a8"))
        code, err = cli(capsys, "train", path)
        line = error_line(err, "train")
        assert code == 2 and str(path) in line and "alias" in line, line


def test_model_folder_config_bomb_is_refused(models, scenes, tmp_path, capsys):
    folder = _copy(models["instance"], tmp_path / "m")
    (folder / "config.yaml").write_text(BOMB.replace("a8: &a8", "description: &a8"))
    code, err = cli(capsys, "translate", folder, scenes / "paired" / "test", tmp_path / "o", "--aligned")
    line = error_line(err, "translate")
    assert code == 2 and "config.yaml" in line and "alias" in line, line


def test_config_files_are_bounded_and_name_file_and_key(tmp_path, capsys):
    from gennorm.config import load_config

    big = tmp_path / "big.yaml"
    big.write_text("description: " + "x" * (2 << 20) + "\n")
    with pytest.raises(ConfigError, match="big.yaml.*larger"):
        load_config(big)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="list.yaml.*mapping"):
        load_config(lst)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("train:\n  max_steps: abc\n")
    with pytest.raises(ConfigError, match="wrong.yaml: config key 'train.max_steps'"):
        load_config(wrong)


@pytest.mark.parametrize("name, text, match", [
    ("dup", "norms: [instance]\nnorms: [nc]\n", "twice"),
    ("latin1", "description: caf\xe9\n", "UTF-8"),
    ("list", "- norms\n", "mapping"),
    ("abc", "scenes_size: abc\n", "'scenes_size'"),
    ("seeds", "seeds: [x]\n", "'seeds'"),
    ("count", "scenes_count: -5\n", "'scenes_count'"),
    ("bomb", BOMB.replace("a8: &a8", "description: &a8"), "alias"),
])
def test_study_configs_go_through_the_config_checks(tmp_path, capsys, name, text, match):
    """F22: study configs accepted duplicate keys and gave `unexpected ...` lines."""
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(text.encode("latin-1"))
    code, err = cli(capsys, "study", path, "--report-only", f"out={tmp_path / 'o'}")
    line = error_line(err, "study")
    assert code == 2 and str(path) in line and match in line, line


def test_bomb_in_a_card_skips_that_model_only(models, tmp_path, capsys):
    """F10: one card's front matter `set:` bomb took down `gennorm demo` / `gennorm zoo`."""
    from gennorm.zoo import list_models

    zoo = tmp_path / "zoo"
    _copy(models["instance"], zoo / "good")
    bad = _copy(models["nc"], zoo / "bad")
    (bad / "card.md").write_text("---\n" + BOMB.replace("a8: &a8", "set: &a8") + "---\n# bad\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        names = [info.name for info in list_models(zoo)]
    assert names == ["good"]
    assert any("bad" in str(w.message) and "alias" in str(w.message) for w in caught)
    env = {**os.environ, "GENNORM_MODELS": str(zoo)}
    done = subprocess.run([sys.executable, "-m", "gennorm", "zoo", "list"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and "good" in done.stdout and "bad" in done.stderr, done


# ----------------------------------------------------------------------------------------------
# E: bounded reads


def _with_junk(src: Path, dst: Path, nbytes: int, beyond: bool) -> None:
    """dst = src's safetensors plus a float16 'junk' tensor of `nbytes`; the file is extended
    sparsely to hold it, or (beyond) left short of it."""
    raw = src.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    header["junk"] = {"dtype": "F16", "shape": [nbytes // 2], "data_offsets": [len(data), len(data) + nbytes]}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(dst, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)
        if not beyond:
            f.truncate(8 + len(text) + len(data) + nbytes)


@pytest.mark.parametrize("beyond", [False, True])
def test_safetensors_with_a_huge_junk_tensor_is_refused_before_reading_it(models, tmp_path, beyond):
    """F32a: a sparse 132 KB file declaring a 1 GiB tensor: 3.6 GB RSS before the key check."""
    folder = _copy(models["instance"], tmp_path / "junk")
    _with_junk(models["instance"] / "generator.safetensors", folder / "generator.safetensors", 1 << 30, beyond)
    # VmHWM: this process's own peak (ru_maxrss would include the pytest parent's RSS at fork time)
    code = ("import re, sys\nfrom gennorm.cli import main\n"
            f"rc = main(['translate', {str(folder)!r}, {str(folder / 'in')!r}, {str(tmp_path / 'o')!r}])\n"
            "hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)\n"
            "print('maxrss_kb', hwm)\nsys.exit(rc)\n")
    (folder / "in").mkdir()
    _images(folder / "in", 0)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done
    line = error_line(done.stderr, "translate")
    assert "generator.safetensors" in line and "junk" in line, line
    rss_mb = int(done.stdout.split("maxrss_kb")[1]) / 1024
    assert rss_mb < 900, f"peak RSS {rss_mb:.0f} MB: the 1 GiB tensor was read"


def test_metrics_json_is_read_bounded(runs, tmp_path, capsys):
    """F32b: `export --metrics-json /dev/zero` read until MemoryError; a FIFO waited for a writer forever."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for src in ("/dev/zero", tmp_path / "big.json", fifo):
        if src == tmp_path / "big.json":
            Path(src).write_text('{"a": "' + "x" * (2 << 20) + '"}')
        code, err = cli(capsys, "export", runs["instance"], tmp_path / "m", "--metrics-json", src)
        line = error_line(err, "export")
        assert code == 2 and "--metrics-json" in line and str(src) in line, line
