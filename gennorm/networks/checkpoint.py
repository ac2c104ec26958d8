"""Reading checkpoints: `step_*.pt` files (weights_only) and strict, explained state-dict loading.

A run's checkpoints/ holds `step_NNNNNNNN.pt` files written by gennorm.train.checkpoint; they are
read here with `torch.load(weights_only=True)`, so a file can hold no code.

load_network_state: strict loading with an explanation instead of a wall of key names.

With the checkpoint's saved build options (`net.options` of the network that was saved), a
mismatch names the options that differ ("checkpoint was built with norm='instance', ngf=64;
this network has norm='nc', ngf=32"). Without them the message summarizes the key mismatch:
counts of missing and unexpected keys, the first few names, and shape mismatches.
Options that do not change the network (init) are not compared; an option difference that
leaves the keys identical (e.g. instance vs pono-ms) is still an error, since the weights
would load into a different network.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn as nn
from safetensors import safe_open

from gennorm.errors import CheckpointError
from gennorm.locks import replace_folder
from gennorm.networks.factory import build_discriminator_from, build_generator_from

CKPT_RE = re.compile(r"^step_(\d+)\.pt$")
IGNORED_OPTIONS = ("init_type", "init_gain")
SHOWN = 5


def _fmt(options: Mapping, keys) -> str:
    return ", ".join(f"{k}={options.get(k)!r}" for k in keys)


def _differing_options(saved: Mapping, current: Mapping) -> list[str]:
    """Options recorded on both sides that differ (an option an older checkpoint lacks is not compared)."""
    return [k for k in current if k in saved and k not in IGNORED_OPTIONS and saved[k] != current[k]]


def _names(keys: list[str]) -> str:
    more = f", ... ({len(keys) - SHOWN} more)" if len(keys) > SHOWN else ""
    return ", ".join(keys[:SHOWN]) + more


def _key_summary(expected: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor]) -> str | None:
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    # an empty buffer (ConvNorm2d's running_V before its first step) takes any shape on loading
    shapes = [f"{k} {tuple(given[k].shape)} vs {tuple(expected[k].shape)}" for k in expected
              if k in given and hasattr(given[k], "shape") and expected[k].numel() > 0
              and tuple(given[k].shape) != tuple(expected[k].shape)]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing key(s) ({_names(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s) ({_names(unexpected)})")
    if shapes:
        parts.append(f"{len(shapes)} shape mismatch(es) (checkpoint vs network: {_names(shapes)})")
    return "; ".join(parts) or None


def _strip_data_parallel(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if state_dict and all(k.startswith("module.") for k in state_dict):
        return {k[len("module."):]: v for k, v in state_dict.items()}
    return dict(state_dict)


def load_network_state(net: nn.Module, state_dict: Mapping[str, torch.Tensor],
                       saved_options: Mapping | None = None) -> nn.Module:
    """Load `state_dict` into `net` strictly; raise CheckpointError explaining any mismatch."""
    state_dict = _strip_data_parallel(state_dict)
    current = getattr(net, "options", None) or {}
    summary = _key_summary(net.state_dict(), state_dict)
    if saved_options is not None and current:
        differing = _differing_options(saved_options, current)
        if differing:  # the options say it all; the key summary is only counted
            detail = f" ({'; '.join(part.split(' (')[0] for part in summary.split('; '))})" if summary else ""
            raise CheckpointError(f"checkpoint was built with {_fmt(saved_options, differing)}; "
                                  f"this network has {_fmt(current, differing)}{detail}")
    if summary:
        what = f"{current.get('kind', 'network')} {current.get('arch', '')}".strip() if current else "the network"
        raise CheckpointError(f"checkpoint does not match {what}: {summary}")
    _check_dtypes(net.state_dict(), state_dict)
    try:
        net.load_state_dict(state_dict, strict=True)
    except RuntimeError as err:  # a layer's own check (e.g. a size mismatch it refuses); keep it short
        lines = [line.strip() for line in str(err).splitlines()[1:] if line.strip()]
        detail = f"{len(lines)} problem(s): {_names(lines)}" if lines else str(err).splitlines()[0]
        raise CheckpointError(f"checkpoint could not be loaded: {detail}") from None
    return net


def _check_dtypes(expected: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor]) -> None:
    """CheckpointError naming the first tensor stored as integers where the network holds floats
    (float bytes relabelled I32 would load as numbers around 1e9)."""
    for k, t in expected.items():
        g = given.get(k)
        if t.is_floating_point() and isinstance(g, torch.Tensor) and not g.is_floating_point():
            raise CheckpointError(f"tensor {k!r} is stored as {str(g.dtype).removeprefix('torch.')}, but the "
                                  "network's is floating point (a relabelled or foreign file)")


# ----------------------------------------------------------------------------------------------
# build options in a weights file's metadata: the file says what network it is


OPTIONS_KEY = "options"  # safetensors metadata: canonical JSON of the network's build options (net.options)
OPTIONS_HASH_KEY = "options_sha256"  # sha256 of that JSON


def canonical_options(options: Mapping) -> str:
    """The build options that shape the weights (init_* left out) as canonical JSON."""
    return json.dumps({k: v for k, v in options.items() if k not in IGNORED_OPTIONS}, sort_keys=True,
                      separators=(",", ":"))


def options_metadata(options: Mapping) -> dict[str, str]:
    """safetensors metadata entries recording `options` (net.options) and their sha256."""
    text = canonical_options(options)
    return {OPTIONS_KEY: text, OPTIONS_HASH_KEY: hashlib.sha256(text.encode()).hexdigest()}


def options_from_metadata(meta: Mapping[str, str], path: Path) -> dict | None:
    """The build options recorded in a weights file's metadata (None for files written before
    gennorm recorded them); CheckpointError naming `path` when they do not match their sha256."""
    text = meta.get(OPTIONS_KEY)
    if text is None:
        return None
    if hashlib.sha256(text.encode()).hexdigest() != meta.get(OPTIONS_HASH_KEY):
        raise CheckpointError(f"{path}: the build options in its metadata do not match their sha256 "
                              f"({OPTIONS_HASH_KEY}); the file was edited or damaged")
    try:
        options = json.loads(text)
    except ValueError:
        options = None
    if not isinstance(options, dict):
        raise CheckpointError(f"{path}: the build options in its metadata are not a JSON object")
    return options


WEIGHTS_HASH_KEY = "weights_sha256"  # safetensors metadata: sha256 of the tensors (weights_sha256)


def weights_sha256(tensors: Mapping[str, torch.Tensor]) -> str:
    """sha256 of a weights file's tensors as stored (names in sorted order, each name, dtype, shape
    and bytes; content_hash's encoding): what `read_safetensors` reads back hashes to what was saved."""
    h = hashlib.sha256()
    _feed(h, {k: tensors[k] for k in sorted(tensors)})
    return h.hexdigest()


def weights_metadata(tensors: Mapping[str, torch.Tensor]) -> dict[str, str]:
    """safetensors metadata entry recording the sha256 of `tensors` (checked by read_safetensors)."""
    return {WEIGHTS_HASH_KEY: weights_sha256(tensors)}


def generator_options(model_cfg, input_nc: int, output_nc: int) -> dict:
    """net.options of the generator a config's `model` section describes (built on the meta
    device: no memory, no time)."""
    with torch.device("meta"):
        return dict(build_generator_from(model_cfg, input_nc, output_nc).options)


def discriminator_options(model_cfg, input_nc: int) -> dict:
    """net.options of the discriminator a config's `model` section describes, reading `input_nc`
    channels (pix2pix: input_nc + output_nc; CycleGAN / CUT: the images it judges)."""
    with torch.device("meta"):
        return dict(build_discriminator_from(model_cfg, input_nc).options)


# ----------------------------------------------------------------------------------------------
# checkpoint files


TRAIN_FORMAT = "gennorm-train-1"  # what gennorm train writes (gennorm.train.loop.FORMAT)
HASH_KEY = "sha256"  # a training checkpoint's content hash (of everything else in it)


def content_hash(state: Mapping) -> str:
    """sha256 over a checkpoint's content (keys, values, tensor dtypes, shapes and bytes), the
    HASH_KEY entry left out: what `torch.load` gives back hashes to what `torch.save` was given."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in state.items() if k != HASH_KEY})
    return h.hexdigest()


def _feed(h, obj) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}:".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(obj, Mapping):
        h.update(f"D{len(obj)}:".encode())
        for k, v in obj.items():
            _feed(h, k)
            _feed(h, v)
    elif isinstance(obj, (list, tuple)):
        h.update(f"L{len(obj)}:".encode())
        for v in obj:
            _feed(h, v)
    else:
        h.update(f"{type(obj).__name__}:{obj!r};".encode())


def verify_content(state, path: Path) -> None:
    """CheckpointError naming `path` when its content hash does not match (a corrupt file).
    Checkpoints without a hash (written before gennorm stored one) are accepted."""
    if isinstance(state, Mapping) and HASH_KEY in state and state[HASH_KEY] != content_hash(state):
        raise CheckpointError(f"checkpoint {path} is corrupt: its content does not match the sha256 stored in it "
                              "(a flipped bit on disk or in transfer)")


def check_train_checkpoint(state, path: Path) -> None:
    """CheckpointError naming `path` and the key when `state` is not a complete training checkpoint."""
    what = f"checkpoint {path}"
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{what} is not a gennorm training checkpoint (it holds a {type(state).__name__}, "
                              "not a dict); remove it from the checkpoints/ folder")
    if state.get("format") != TRAIN_FORMAT:
        raise CheckpointError(f"{what} is not a gennorm training checkpoint (format {state.get('format')!r}, "
                              f"expected {TRAIN_FORMAT!r}); remove it from the checkpoints/ folder")
    for key, kind in (("step", int), ("epoch", int), ("batch", int), ("task", Mapping), ("local", list)):
        if key not in state:
            raise CheckpointError(f"{what} is incomplete: no {key!r} (not written by gennorm train?); "
                                  "remove it from the checkpoints/ folder")
        value = state[key]
        if not isinstance(value, kind) or isinstance(value, bool) or (kind is int and value < 0):
            shown = repr(value) if not isinstance(value, (Mapping, list, torch.Tensor)) else type(value).__name__
            expected = "an integer >= 0" if kind is int else ("a dict" if kind is Mapping else "a list")
            raise CheckpointError(f"{what}: {key!r} is {shown}, expected {expected}; remove it from the "
                                  "checkpoints/ folder")
    task = state["task"]
    for key in ("nets", "optims", "scheds"):
        if not isinstance(task.get(key), Mapping):
            raise CheckpointError(f"{what} is incomplete: no task.{key} dict; remove it from the checkpoints/ folder")
    for name, net_state in task["nets"].items():
        if not isinstance(net_state, Mapping) or not all(isinstance(v, torch.Tensor) for v in net_state.values()):
            raise CheckpointError(f"{what}: task.nets.{name} is not a state dict of tensors")
    if not state["local"] or not all(isinstance(x, Mapping) and "rng" in x and "task" in x for x in state["local"]):
        raise CheckpointError(f"{what}: 'local' does not hold per-rank RNG states; remove it from the "
                              "checkpoints/ folder")


def first_nonfinite(tensors) -> tuple[str, int, int] | None:
    """(name, NaN/inf count, size) of the first floating tensor of (name, tensor) pairs with a
    NaN or inf, else None."""
    for name, t in tensors:
        if isinstance(t, torch.Tensor) and t.is_floating_point() and t.numel() and not torch.isfinite(t).all():
            return name, int((~torch.isfinite(t)).sum()), t.numel()
    return None


def check_finite_weights(state_dict: Mapping, what: str) -> None:
    """CheckpointError naming the tensor when a generator's weights hold NaN/inf (a diverged run)."""
    bad = first_nonfinite(state_dict.items())
    if bad is not None:
        name, n, size = bad
        raise CheckpointError(f"{what}: tensor {name!r} has {n} of {size} values NaN/inf; these weights come from "
                              "a run that diverged and would translate to garbage; use an earlier checkpoint "
                              "or train again with a lower train.lr")


def load_torch(path: Path, map_location="cpu"):
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except Exception as err:  # truncated / not a checkpoint / pickled code
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(err).__name__}: {err})") from None


def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}.pt"


def list_checkpoints(ckpt_dir: Path) -> list[tuple[int, Path]]:
    """(step, path), oldest first."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return []
    found = []
    for p in ckpt_dir.iterdir():
        m = CKPT_RE.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)


def load_latest(ckpt_dir: Path, map_location="cpu") -> tuple[dict, Path]:
    """The newest usable training checkpoint: one that is unreadable, corrupt (content hash) or
    incomplete is skipped with a warning naming it, and the previous one is tried."""
    found = list_checkpoints(ckpt_dir)
    if not found:
        raise CheckpointError(f"no checkpoints (step_*.pt) in {ckpt_dir}")
    errors = []
    for k, (_, path) in enumerate(reversed(found)):
        try:
            state = load_torch(path, map_location)
            verify_content(state, path)
            check_train_checkpoint(state, path)
            return state, path
        except CheckpointError as err:
            errors.append(str(err))
            if k + 1 < len(found):
                print(f"warning: {err}; using the previous checkpoint instead", file=sys.stderr)
    raise CheckpointError(f"no usable checkpoint in {ckpt_dir}: {'; '.join(errors)}")


HEADER_MAX = 64 << 20  # a generator's safetensors header is a few KB
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
                "BOOL": 1, "U16": 2, "U32": 4, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1}


def safetensors_header(path: Path) -> dict:
    """A .safetensors file's header, checked against the file's size before any tensor is read:
    CheckpointError naming `path` when the header or a tensor's bytes lie beyond the file."""
    what = f"{path}: cannot be read"
    try:
        if not path.is_file():
            raise CheckpointError(f"{path}: {'not a regular file' if path.exists() else 'does not exist'}")
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(8)
            n = int.from_bytes(head, "little") if len(head) == 8 else -1
            if n < 0 or n > min(size - 8, HEADER_MAX):
                raise CheckpointError(f"{what} (its header declares {max(n, 0):,} bytes; the file has {size:,}: "
                                      "not a safetensors file, or truncated)")
            header = json.loads(f.read(n))
    except OSError as err:
        raise CheckpointError(f"{what} ({err.strerror or err})") from None
    except ValueError:
        raise CheckpointError(f"{what} (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{what} (its header is not a JSON object)")
    data_size = size - 8 - n
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, end = (int(x) for x in info["data_offsets"])
            nbytes = math.prod(int(d) for d in info["shape"]) * _DTYPE_BYTES[info["dtype"]]
        except (TypeError, ValueError, KeyError):
            raise CheckpointError(f"{what} (tensor {str(name)[:80]!r}: no valid dtype, shape, data_offsets)") from None
        if not 0 <= begin <= end <= data_size or end - begin != nbytes:
            raise CheckpointError(f"{what} (tensor {str(name)[:80]!r} declares {nbytes:,} bytes at {begin:,}..{end:,}, "
                                  f"but the file holds {data_size:,} bytes of tensor data: truncated or forged)")
    return header


def read_safetensors(path: Path, expected: Mapping[str, torch.Tensor] | None = None) -> tuple[dict, dict]:
    """(state dict, metadata) of a .safetensors file (model folders); CheckpointError if unreadable.

    The header is checked first (safetensors_header); with `expected` (the network's state dict)
    a tensor the network does not have is refused before anything is read. Floating tensors come
    back as float32, others as stored (the network's dtypes are compared on loading). When the
    metadata records the tensors' sha256 (WEIGHTS_HASH_KEY, written by export and import), the
    tensors as stored are checked against it: a damaged file is a CheckpointError naming it."""
    path = Path(path)
    header = safetensors_header(path)
    names = [k for k in header if k != "__metadata__"]
    if expected is not None:
        unexpected = [k for k in names if k not in expected and k.removeprefix("module.") not in expected]
        if unexpected:
            raise CheckpointError(f"{path}: {len(unexpected)} tensor(s) the network does not have "
                                  f"({_names([k[:80] for k in unexpected])}); nothing was loaded")
    try:
        with safe_open(str(path), "pt") as f:
            meta = dict(f.metadata() or {})
            state = {k: f.get_tensor(k) for k in names}
    except Exception as err:  # safetensors raises its own error types for bad files
        raise CheckpointError(f"{path}: cannot be read ({err})") from None
    recorded = meta.get(WEIGHTS_HASH_KEY)
    if recorded is not None and recorded != weights_sha256(state):  # files written before it: no hash
        raise CheckpointError(f"{path}: its weights do not match the sha256 recorded when it was written "
                              f"({WEIGHTS_HASH_KEY}): the file is damaged; export (or import) it again")
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}, meta


# ----------------------------------------------------------------------------------------------
# model folders, written whole


# the files gennorm export / import write into a model folder (the last is gennorm.zoo.TRAINING_LOG);
# a rewrite replaces them all (an earlier model's discriminator or training log is not the new model's)
MODEL_FILES = ("config.yaml", "generator.safetensors", "discriminator.safetensors", "card.md", "training_log.jsonl")


def write_model_folder(out, what: str = "the model folder", adopt=None):
    """gennorm.locks.replace_folder for a model folder: yields the hidden folder to write MODEL_FILES
    into, which then takes `out`'s place whole (the user's other entries carried over)."""
    return replace_folder(out, "model", what, MODEL_FILES, adopt)
