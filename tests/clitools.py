"""Helpers the CLI fault suites share (test_faults, test_ownership, test_integrity): run `gennorm`
in-process and read its one error line."""
from __future__ import annotations

import subprocess
import sys

from gennorm.cli import main


def cli(capsys, *args) -> tuple[int, str]:
    """Run `gennorm ARGS` in-process; (exit code, stderr)."""
    capsys.readouterr()
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def error_line(err: str, verb: str) -> str:
    """The one error line of a failed command (and no traceback anywhere)."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith(f"gennorm {verb}: error: ")]
    assert len(lines) == 1, err
    return lines[0]


def dead_pid() -> int:
    """The pid of a process that has just ended (a killed writer's, for leftover names)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid
