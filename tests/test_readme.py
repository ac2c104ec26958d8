"""The README cannot drift from the code: its Python blocks run as written from a clean folder, the
tour's commands run, every other `gennorm` command names a verb and options that exist, config keys
that load, and every file it links to exists."""
from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from gennorm import cli

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)
SH_BLOCKS = re.findall(r"```sh\n(.*?)```", README, re.S)
SERVERS = {"demo"}  # verbs that serve until stopped: checked, not run


def _commands(block: str) -> list[list[str]]:
    """The shell lines of a block, continuation lines joined, comments dropped, as argv lists."""
    text = block.replace("\\\n", " ")
    return [shlex.split(line, comments=True) for line in text.splitlines() if line.strip()]


def _gennorm(argv: list[str]) -> list[str]:
    """`gennorm ...` or `torchrun ... -m gennorm ...` -> the arguments after gennorm."""
    if argv[0] == "gennorm":
        return argv[1:]
    if argv[0] == "torchrun" and "-m" in argv:
        return argv[argv.index("-m") + 2:]
    raise AssertionError(f"README command is not a gennorm command: {' '.join(argv)}")


def test_readme_is_short_and_its_links_exist():
    assert len(README.splitlines()) <= 250
    for target in re.findall(r"\]\(([^)#]+)\)", README):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), target


@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_python_blocks_run_as_written(index, tmp_path):
    done = subprocess.run([sys.executable, "-c", PYTHON_BLOCKS[index]], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]


def test_every_command_names_a_verb_its_options_and_keys(capsys):
    from gennorm.config import load_config

    seen = 0
    for block in SH_BLOCKS:
        for argv in map(_gennorm, _commands(block)):
            verb, rest = argv[0], argv[1:]
            assert verb in cli.VERBS, argv
            sub = [rest[0]] if rest and not rest[0].startswith("-") and verb in ("bench", "weights", "zoo", "ops",
                                                                                   "data", "nets", "import") else []
            with pytest.raises(SystemExit):
                cli.main([verb, *sub, "--help"])
            help_text = capsys.readouterr().out
            for option in (a.split("=")[0] for a in rest if a.startswith("--")):
                assert option in help_text, f"gennorm {verb} has no {option}"
            if verb == "train" and rest and not rest[0].startswith("-"):
                overrides = [a for a in rest[1:] if "=" in a and not a.startswith("-")]
                load_config(rest[0], overrides)  # unknown keys or presets raise
            seen += 1
    assert seen >= 15


def test_the_tour_runs(tmp_path):
    """The five-minute tour, as written (the demo, a server, is left out)."""
    tour = SH_BLOCKS[0]
    for argv in _commands(tour):
        if _gennorm(argv)[0] in SERVERS:
            continue
        done = subprocess.run([sys.executable, "-m", "gennorm", *_gennorm(argv)], cwd=tmp_path, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, (argv, done.stderr[-2000:])
    assert len(list((tmp_path / "out" / "nc").glob("*.png"))) >= 60
