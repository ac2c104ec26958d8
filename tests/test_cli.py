"""The `gennorm` command itself: help for every verb, unknown verbs, `python -m gennorm`."""
from __future__ import annotations

import subprocess
import sys

import pytest

from gennorm.cli import VERBS, main


def test_top_level_help_lists_every_verb(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for verb in VERBS:
        assert verb in out


@pytest.mark.parametrize("verb", list(VERBS))
def test_every_verb_has_help_with_examples(verb, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([verb, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert f"gennorm {verb}" in out
    assert "example" in out.lower()


def test_unknown_verb_is_a_clear_error(capsys):
    assert main(["trian"]) == 2
    err = capsys.readouterr().err
    assert "unknown verb 'trian'" in err and "train" in err


def test_python_dash_m_gennorm():
    result = subprocess.run([sys.executable, "-m", "gennorm", "--version"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip()


def test_an_error_names_the_verb_once(tmp_path, capsys):
    """Library messages name the verb for Python callers ("gennorm import: the output ..."); the CLI's
    line did too: "gennorm import: error: gennorm import: the output ..." (second hostile trial)."""
    from pathlib import Path

    folder = tmp_path / "checkpoints"
    folder.mkdir()
    fixture = Path(__file__).parent / "fixtures" / "junyanz" / "cyclegan_resnet9_ngf8_instance_net_G_A.pth"
    (folder / "latest_net_G_A.pth").write_bytes(fixture.read_bytes())
    assert main(["import", "junyanz", str(folder), str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gennorm import: error: the output ") and err.count("gennorm import") == 1, err
