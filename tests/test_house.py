"""The shape of the house: cheap imports, a one-way data flow, and one source for every name list."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "gennorm"

# The data flow (CONTRIBUTING.md): a module may import modules of lower levels and of its own
# package; never a higher level or a sibling package of its level (level 0 is the utilities,
# which may use each other). The verbs (gennorm/commands/, one module per verb of cli.VERBS)
# and the apps are the top: they may use everything.
LEVELS = {
    "gennorm": 0, "gennorm.errors": 0, "gennorm.atomic": 0, "gennorm._lazy": 0, "gennorm.yamlio": 0, "gennorm.devices": 0,
    "gennorm.paths": 0, "gennorm.locks": 0,
    "gennorm.ops": 1,
    "gennorm.layers": 2,
    "gennorm.networks": 3, "gennorm.data": 3, "gennorm.config": 3, "gennorm.zoo": 3,
    "gennorm.train": 4, "gennorm.metrics": 4, "gennorm.inference": 4,
    "gennorm.cli": 5, "gennorm.__main__": 5, "gennorm.commands": 5, "gennorm.apps": 5, "gennorm.bench": 5,
    "gennorm.study": 5,
    "gennorm.ops.__main__": 5,  # python -m gennorm.ops: an entry point, like the verbs
}
TOP = max(LEVELS.values())


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _home(module: str) -> str:
    """The LEVELS key a module belongs to (its package, or itself for top-level modules)."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in LEVELS:
            return ".".join(parts[:n])
    raise AssertionError(f"{module}: not placed in the data flow (add it to LEVELS in tests/test_house.py)")


def _imports(path: Path) -> set[str]:
    """Every gennorm module a file imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return {m for m in found if m == "gennorm" or m.startswith("gennorm.")}


def _existing(module: str) -> str:
    """`from gennorm.x import name` names a module or an attribute: keep the longest real module."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        candidate = ROOT.joinpath(*parts[:n])
        if candidate.with_suffix(".py").is_file() or (candidate / "__init__.py").is_file():
            return ".".join(parts[:n])
    return module


def test_nothing_imports_upward():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = _module_name(path)
        home = _home(name)
        level = LEVELS[home]
        for target in sorted({_existing(m) for m in _imports(path)}):
            target_home = _home(target)
            if target_home == home or level == TOP:
                continue
            if LEVELS[target_home] > level or (LEVELS[target_home] == level and level > 0):  # level 0: utilities
                wrong.append(f"{name} (level {level}) imports {target} (level {LEVELS[target_home]})")
    assert not wrong, "imports against the data flow:\n" + "\n".join(wrong)


def _fresh(code: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_verb_lives_in_commands():
    from gennorm.cli import VERBS

    assert {verb: module for verb, (module, _) in VERBS.items()} == {verb: f"gennorm.commands.{verb}" for verb in VERBS}
    homes = sorted(p.stem for p in (PACKAGE / "commands").glob("*.py") if not p.stem.startswith("_"))  # _types: shared
    assert homes == sorted(VERBS), "a module in gennorm/commands/ that is no verb of cli.VERBS, or a verb without one"


def test_only_the_entry_points_are_cheap_to_import():
    """`import gennorm` (lazy exports), gennorm.cli and every verb module import no torch, numpy, PIL or
    gradio (the verbs import the library inside `run`); the first layer used imports torch. The library
    packages import what they use at the top."""
    verbs = sorted(f"gennorm.commands.{p.stem}" for p in (PACKAGE / "commands").glob("*.py") if p.stem != "__init__")
    out = _fresh("import importlib, json, sys\n"
                 f"for name in {['gennorm', 'gennorm.cli', 'gennorm.commands', *verbs]!r}:\n"
                 "    importlib.import_module(name)\n"
                 "cheap = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy', 'PIL', 'gradio'))\n"
                 "import gennorm\n"
                 "gennorm.NCConv2d\n"
                 "print(json.dumps({'cheap': cheap, 'after': 'torch' in sys.modules}))")
    assert out == {"cheap": [], "after": True}


def test_help_of_every_verb_runs_without_torch():
    from gennorm.cli import VERBS

    for verb in [None, *VERBS]:
        args = ["--help"] if verb is None else [verb, "--help"]
        code = ("import json, sys\nfrom gennorm.cli import main\ntry:\n    main(%r)\nexcept SystemExit:\n    pass\n"
                "print(json.dumps({'torch': 'torch' in sys.modules, 'gradio': 'gradio' in sys.modules}))" % args)
        assert _fresh(code) == {"torch": False, "gradio": False}, f"gennorm {verb or ''} --help imported torch"


def test_help_prints_every_verb():
    done = subprocess.run([sys.executable, "-m", "gennorm", "--help"], capture_output=True, text=True, cwd=ROOT)
    from gennorm.cli import VERBS

    assert done.returncode == 0 and all(f"  {verb} " in done.stdout for verb in VERBS)


# ---- one source for every name list ---------------------------------------------------------


def test_name_lists_come_from_the_registry():
    import dataclasses

    from gennorm import config
    from gennorm.layers.registry import NORMS, PRESET_NORMS
    from gennorm.study.spec import StudySpec
    from gennorm.zoo import ModelInfo

    fields = {f.name: f for f in dataclasses.fields(config.ModelConfig)}
    assert fields["g_norm"].metadata["choices"] == tuple(NORMS) == fields["d_norm"].metadata["choices"]
    tasks = sorted(p.stem for p in config.PRESETS_DIR.glob("*.yaml"))
    assert tasks == ["cut", "cyclegan", "fastcut", "pix2pix"]  # fastcut: CUT's task with FastCUT's keys
    assert sorted(config.list_presets()) == sorted([f"{t}-{n}" for t in tasks for n in PRESET_NORMS]
                                                   + [f"{t}-classic" for t in tasks])
    assert set(StudySpec().norms) <= set(NORMS)
    infos = [ModelInfo(n, Path(n), "s", n, "pix2pix") for n in NORMS]
    assert [i.norm for i in sorted(infos, key=lambda i: i.sort_key)] == list(NORMS)  # the zoo's order is NORMS'
    assert [i.role for i in infos if i.role == "baseline"] == ["baseline"] * sum(s.baseline for s in NORMS.values())
    assert {i.norm_label for i in infos} == {s.label for s in NORMS.values()}


@pytest.mark.parametrize("norm", ["instance", "nc", "kn", "pono-ms"])
def test_presets_differ_only_in_the_generator_norm(norm):
    from gennorm.config import load_config, to_dict
    from gennorm.layers.registry import NORMS

    for task in ("pix2pix", "cyclegan", "cut", "fastcut"):
        cfg, base = to_dict(load_config(f"{task}-{norm}")), to_dict(load_config(f"{task}-instance"))
        diff = {k for k in cfg if cfg[k] != base[k]} | {f"model.{k}" for k in cfg["model"]
                                                         if cfg["model"][k] != base["model"][k]}
        assert diff <= {"out", "description", "model", "model.g_norm"}
        assert cfg["model"]["g_norm"] == norm and cfg["out"] == f"runs/{task}-{norm}"
        assert NORMS[norm].description in cfg["description"]


def test_default_decoder_comes_from_the_registry():
    from gennorm.layers.registry import NORMS
    from gennorm.networks.blocks import default_upsample

    assert {n: default_upsample(s) for n, s in NORMS.items()} == {n: s.decoder for n, s in NORMS.items()}
    assert {n for n, s in NORMS.items() if s.decoder == "resize"} == {"nc", "kn"}


def test_tiles_exactly_follows_the_statistics():
    from gennorm.layers.registry import NORMS

    exact = {n for n, s in NORMS.items() if s.tiles_exactly(training=False)}
    assert exact == {"nc", "kn", "none", "spectral", "batch"}
    assert {n for n, s in NORMS.items() if s.tiles_exactly(training=True)} == exact - {"batch"}


def test_no_test_hooks_in_the_package():
    offenders = [str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py") if "GENNORM_TEST" in p.read_text()]
    assert not offenders, offenders


def test_docs_cited_by_the_code_are_in_the_repo():
    assert (ROOT / "docs" / "SPEC.md").is_file()
    files = [p for folder in ("gennorm", "cuda", "tests", "tools") for p in (ROOT / folder).rglob("*")
             if p.suffix in (".py", ".cu", ".cuh", ".h", ".cpp", ".sh", ".md") and p != Path(__file__)]
    outside = ("shared/SPEC", "../SPEC", "/work/op_contract")  # documents a clone does not have
    offenders = [str(p.relative_to(ROOT)) for p in files if any(ref in p.read_text() for ref in outside)]
    assert not offenders, offenders


def _functions(tree: ast.AST):
    return [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def test_library_modules_import_at_the_top():
    """Only the CLI layer (cli.py, commands/) imports inside functions, to keep `--help` torch-free; the
    library imports what it uses at the top, but for optional packages absent on some machines (each
    lazy import says why). The budget is what those need."""
    inside = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel == "cli.py" or rel.startswith("commands/"):
            continue
        for fn in _functions(ast.parse(path.read_text())):
            inside += [f"{rel}:{node.lineno}" for node in ast.walk(fn) if isinstance(node, (ast.Import, ast.ImportFrom))]
    assert len(inside) <= 30, "\n".join(inside)


def test_the_op_package_and_inference_stay_small():
    """gennorm/ops <= 1,300 lines of Python with no function over 60 lines and no mmap; no file of
    gennorm/inference over 300 lines, and no module there calls another's private names."""
    ops = sorted((PACKAGE / "ops").glob("*.py"))
    assert sum(len(p.read_text().splitlines()) for p in ops) <= 1300
    for path in ops:
        text = path.read_text()
        assert "mmap" not in text, path
        for fn in _functions(ast.parse(text)):
            assert fn.end_lineno - fn.lineno + 1 <= 60, f"{path.name}: {fn.name} is {fn.end_lineno - fn.lineno + 1} lines"
    for path in sorted((PACKAGE / "inference").glob("*.py")):
        text = path.read_text()
        assert len(text.splitlines()) <= 300, path
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                base = node.value
                assert not (isinstance(base, ast.Name) and base.id not in ("self", "cls", "torch", "F", "np")), \
                    f"{path.name}:{node.lineno} calls {ast.unparse(node)}"
