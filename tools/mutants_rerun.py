"""Check mutmut's mutants by name against the tests as they are now, from one warm process.

mutmut keeps a survivor's result until it is rerun by name, and runs the tests it collected when it
started; after tests are added, this reruns named mutants the way mutmut runs one: fork, set
MUTANT_UNDER_TEST, pytest -x on the mutant's tests; exit status 1 = killed, 0 = survived. The parent only
imports torch (and PREIMPORT's libraries), so each mutant pays for its tests, not for the imports.
Run it in a mutmut run's folder, after `mutmut run` has generated the mutants and mapped the tests:

    cd mutants && ../.venv/bin/python ../tools/mutants_rerun.py OUT 'gennorm.config.*' [NAME_OR_GLOB ...]

OUT: one line per mutant ("NAME killed 3.1s"); names already in OUT are skipped, so a stopped run resumes.
Tests per mutant: mutmut's map (mutants/mutmut-stats.json), fastest first; FIRST="tests/a.py ..." runs
those files first (new tests the map does not know); SKIP=REGEX drops mapped tests (slow end-to-end ones,
for a first pass); EXTRA="..." replaces the map. docs/mutation.md has the runs that used it.
"""
from __future__ import annotations

import fnmatch
import importlib
import json
import os
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, os.getcwd())  # the mutated package, as mutmut puts it first
os.environ.setdefault("OMP_NUM_THREADS", "1")
import pytest  # noqa: E402
import torch  # noqa: E402,F401  (imported only: no thread pool started before the forks)

for name in os.environ.get("PREIMPORT", "").split():
    importlib.import_module(name)

TIMEOUT = 600  # seconds per mutant


def mutant_names(patterns: list[str]) -> list[str]:
    names = []
    for path in sorted(Path("gennorm").rglob("*.py")):
        module = ".".join(path.with_suffix("").parts)
        names += [f"{module}.{m}" for m in re.findall(r"def (x\S*?__mutmut_\d+)\(", path.read_text())]
    return [n for n in names if any(fnmatch.fnmatch(n, p) for p in patterns)]


def tests_for(name: str, stats: dict) -> list[str]:
    if os.environ.get("EXTRA"):
        return os.environ["EXTRA"].split()
    mapped = sorted(stats["tests_by_mangled_function_name"].get(name.rsplit("__mutmut_", 1)[0], []),
                    key=lambda t: stats["duration_by_test"].get(t, 1e9))
    if os.environ.get("SKIP"):
        mapped = [t for t in mapped if not re.search(os.environ["SKIP"], t)]
    first = os.environ.get("FIRST", "").split()
    return first + [t for t in mapped if t.split("::")[0] not in first]


def run(name: str, tests: list[str]) -> str:
    start = time.time()
    pid = os.fork()
    if pid == 0:
        os.environ["MUTANT_UNDER_TEST"] = name
        sys.stdout = sys.stderr = open(os.devnull, "w")
        os._exit(int(pytest.main(["-x", "-q", "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning", *tests])))
    while not (done := os.waitpid(pid, os.WNOHANG))[0]:
        if time.time() - start > TIMEOUT:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            return f"timeout {time.time() - start:.1f}s"
        time.sleep(0.2)
    code = os.waitstatus_to_exitcode(done[1])
    status = {1: "killed", 0: "survived"}.get(code, f"rc={code}")  # rc=5: no test ran; others: a crash (killed)
    return f"{status} {time.time() - start:.1f}s"


def main(out: str, patterns: list[str]) -> None:
    stats = json.loads(Path("mutmut-stats.json").read_text())
    seen = {line.split()[0] for line in open(out)} if os.path.exists(out) else set()
    for name in mutant_names(patterns):
        if name not in seen:
            tests = tests_for(name, stats)
            result = run(name, tests) if tests else "no-tests"
            with open(out, "a") as f:
                f.write(f"{name} {result}\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
