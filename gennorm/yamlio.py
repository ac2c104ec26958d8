"""The one YAML reader for files a user hands over: run configs, study configs, model folders'
config.yaml and model cards' front matter.

Bounded, so that a hostile file costs milliseconds, not gigabytes:

- size: at most MAX_BYTES are read (a larger file, or /dev/zero, is refused);
- aliases: YAML anchors and aliases are allowed, but the document expanded (every alias counted
  as the nodes it stands for) may hold at most MAX_NODES nodes, so an alias bomb (`&a [*b, *b,
  ...]` nine levels deep: 10^9 strings from 500 bytes) is refused before it is built;
- duplicate keys in one mapping are refused (YAML would keep the last one silently);
- UTF-8 only, safe tags only; optionally a mapping at the top.

Every problem is a ConfigError whose message starts with the file (or what the text is).
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

import yaml

from gennorm.errors import ConfigError

MAX_BYTES = 1 << 20  # 1 MB: configs, study configs and front matter are a few KB
MAX_NODES = 20_000  # nodes of the expanded document (a run config has about 70)


class InvalidYAML(ConfigError):
    """The text is not YAML at all (a syntax error), as opposed to YAML that is refused."""


class BoundedLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses duplicate keys and documents that expand past MAX_NODES."""

    def construct_document(self, node):
        _expanded_size(node)
        return super().construct_document(node)

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) or key is None:
                if key in seen:
                    raise ConfigError(f"key {_short(key)} is given twice in one mapping (line "
                                      f"{key_node.start_mark.line + 1}); keep one")
                seen.add(key)
        return super().construct_mapping(node, deep)


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _expanded_size(root) -> int:
    """Nodes of the document with every alias expanded; ConfigError past MAX_NODES or on a
    recursive alias. Shared nodes are measured once (memo), so this is linear in the file."""
    memo: dict[int, int] = {}
    busy: set[int] = set()

    def size(node) -> int:
        key = id(node)
        if key in memo:
            return memo[key]
        if key in busy:
            raise ConfigError(f"an alias refers to a node that contains it (line {node.start_mark.line + 1})")
        busy.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        busy.discard(key)
        if total > MAX_NODES:
            raise ConfigError(f"aliases expand to more than {MAX_NODES} values (line {node.start_mark.line + 1}); "
                              "a config never needs that many (a YAML alias bomb?)")
        memo[key] = total
        return total

    return size(root)


def parse_yaml(text: str, source: str, mapping: bool = True):
    """`text` parsed with the bounds above; `source` names it in errors (a path, 'card.md front
    matter'). mapping: the top level must be a mapping (None/empty gives {})."""
    if len(text) > MAX_BYTES:
        raise ConfigError(f"{source}: larger than {MAX_BYTES // (1 << 20)} MB; a config is a few KB")
    try:
        data = yaml.load(text, Loader=BoundedLoader)  # noqa: S506 (a SafeLoader subclass)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None
    except yaml.YAMLError as err:
        raise InvalidYAML(f"{source}: not valid YAML ({' '.join(str(err).split())})") from None
    except RecursionError:
        raise InvalidYAML(f"{source}: not valid YAML (nested too deeply)") from None
    if mapping:
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a mapping of keys at the top level, got a "
                              f"{type(data).__name__}")
    return data


def read_text(path: str | Path, max_bytes: int = MAX_BYTES) -> str:
    """A regular UTF-8 file's text, at most `max_bytes` read (ConfigError naming the file otherwise).
    O_NONBLOCK: opening a FIFO would otherwise wait for a writer forever; it is then refused."""
    path = Path(path)
    try:
        with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise ConfigError(f"{path}: not a regular file (a pipe, device or socket); expected a small text file")
            raw = f.read(max_bytes + 1)
    except OSError as err:
        raise ConfigError(f"{path}: cannot read ({err.strerror or err})") from None
    if len(raw) > max_bytes:
        raise ConfigError(f"{path}: larger than {max_bytes:,} bytes; expected a small text file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte 0x{raw[err.start]:02x} at offset {err.start}); "
                          "save the file as UTF-8") from None


def read_yaml(path: str | Path, mapping: bool = True):
    """A YAML file read and parsed with the bounds above (ConfigError naming the file)."""
    return parse_yaml(read_text(path), str(path), mapping)
