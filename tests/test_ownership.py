"""Nothing a user owns is ever overwritten (issue 30): each case of the hostile trial, small.

    1  an output never is, contains or lies inside an input      test_*_into_its_input_*, ...
    2  output names never collide                                test_nested_inputs_*, test_same_stem_*
    3  a folder gennorm did not create is never written into     test_*_user_folder_*, test_*_marker*
    4  one writer per folder (gennorm.locks)                     test_*_while_*_is_refused
    5  no leftovers of killed writers, never a live one's temp  test_*_leftovers_*, test_killed_*
    6  a re-import without --netD drops the old discriminator   test_reimport_*
    7  a model folder is replaced whole; a kill leaves A or B   test_a_kill*_re*, test_a_killed_re*

Tiny runs (32 px scenes, ngf/ndf 4, CPU), through `gennorm.cli.main` as a user types them.
"""
from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from clitools import cli, dead_pid
from gennorm.cli import main
from gennorm.train import loop

TINY = ["model.ngf=4", "model.ndf=4", "model.g_arch=resnet_6blocks", "data.load_size=36", "data.crop_size=32",
        "train.device=cpu", "train.progress=false", "train.num_samples=2", "train.log_every=1"]
JUNYANZ = Path(__file__).parent / "fixtures" / "junyanz"
RESNET = JUNYANZ / "cyclegan_resnet9_ngf8_instance_net_G_A.pth"
UNET = JUNYANZ / "pix2pix_unet256_ngf8_batch_net_G.pth"
PATCH_D = JUNYANZ / "pix2pix_basic_ndf8_batch_net_D.pth"


def _train(scenes, run, *extra):
    return ["train", "pix2pix-instance", f"out={run}", f"data.root={scenes / 'paired'}", *TINY, *extra]


@pytest.fixture(scope="module")
def trained(scenes, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("owned") / "run"
    assert main(_train(scenes, run, "train.max_steps=2", "train.checkpoint_every=2")) == 0
    return run


@pytest.fixture
def run_copy(trained, tmp_path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(trained, dst)
    return dst




def one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if "error:" in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def digests(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------------------------
# 1  outputs apart from inputs


def test_translate_into_its_input_is_refused_and_writes_nothing(trained, scenes, tmp_path, capsys):
    """Before: `translate RUN p1 p1 --aligned` replaced the A|B inputs by the outputs, rc 0 (F1)."""
    p1 = tmp_path / "p1"
    shutil.copytree(scenes / "paired" / "test", p1)
    before = digests(p1)
    code, err = cli(capsys, "translate", trained, p1, p1, "--aligned")
    line = one_line(err)
    assert code == 2 and str(p1) in line and "input" in line, line
    assert digests(p1) == before


def test_translate_into_a_subfolder_of_its_input_is_refused(trained, scenes, tmp_path, capsys):
    """Before: `translate RUN p9 p9/out` twice took its own outputs as inputs (F16)."""
    p9 = tmp_path / "p9"
    shutil.copytree(scenes / "unpaired" / "testA", p9)
    code, err = cli(capsys, "translate", trained, p9, p9 / "out")
    line = one_line(err)
    assert code == 2 and str(p9 / "out") in line and str(p9) in line, line
    assert not (p9 / "out").exists()


def test_translate_into_the_model_folder_is_refused_but_a_subfolder_is_fine(trained, scenes, run_copy, capsys):
    before = digests(run_copy)
    for out in (run_copy, run_copy.parent):
        code, err = cli(capsys, "translate", run_copy, scenes / "unpaired" / "testA", out)
        assert code == 2 and str(run_copy) in one_line(err)
    assert digests(run_copy) == before
    code, err = cli(capsys, "translate", run_copy, scenes / "unpaired" / "testA", run_copy / "eval" / "fake")
    assert code == 0, err  # as `gennorm eval --run` and the study do


def test_export_a_run_into_itself_is_refused(run_copy, capsys):
    """Before: `export RUN RUN` wrote generator.safetensors into the run; later checkpoints were shadowed (F24)."""
    before = digests(run_copy)
    code, err = cli(capsys, "export", run_copy, run_copy)
    assert code == 2 and str(run_copy) in one_line(err)
    assert digests(run_copy) == before


def test_import_into_the_checkpoint_folder_is_refused(tmp_path, capsys):
    folder = tmp_path / "checkpoints" / "h2z"
    folder.mkdir(parents=True)
    (folder / "latest_net_G_A.pth").write_bytes(RESNET.read_bytes())
    code, err = cli(capsys, "import", "junyanz", folder, folder)
    assert code == 2 and str(folder) in one_line(err)
    assert sorted(p.name for p in folder.iterdir()) == ["latest_net_G_A.pth"]


def test_check_output_apart_names_both_paths(tmp_path):
    from gennorm.errors import GennormError
    from gennorm.paths import check_output_apart

    check_output_apart(tmp_path / "out", [tmp_path / "in"], "translate")  # siblings: fine
    for out, inp in [(tmp_path / "a", tmp_path / "a"), (tmp_path / "a" / "b", tmp_path / "a"),
                     (tmp_path / "a", tmp_path / "a" / "b"), (tmp_path / "x" / ".." / "a", tmp_path / "a")]:
        with pytest.raises(GennormError) as info:
            check_output_apart(out, [tmp_path / "in", inp], "translate")
        assert "\n" not in str(info.value) and str(out) in str(info.value) and str(inp) in str(info.value)


# ----------------------------------------------------------------------------------------------
# 2  output names


def _nested(scenes, root: Path) -> Path:
    src = sorted((scenes / "unpaired" / "trainA").glob("*.png"))[:3]
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    shutil.copy(src[0], root / "a" / "x.png")
    shutil.copy(src[1], root / "b" / "x.png")
    shutil.copy(src[2], root / "y.png")
    return root


@pytest.mark.parametrize("naming, outputs", [
    ("gennorm", ["a/x.png", "b/x.png", "y.png"]),
    ("junyanz", ["images/a/x_fake_B.png", "images/b/x_fake_B.png", "images/y_fake_B.png"])])
def test_nested_inputs_keep_their_relative_path(naming, outputs, trained, scenes, tmp_path, capsys):
    """Before: a/x.png and b/x.png both went to OUT/x.png, one lost, "translated 3" (F15)."""
    p2 = _nested(scenes, tmp_path / "p2")
    code, err = cli(capsys, "translate", trained, p2, tmp_path / "o", "--naming", naming)
    assert code == 0, err
    out = tmp_path / "o"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png") if "fake" in p.name or naming == "gennorm"
                  and p.relative_to(out).parts[0] not in ("inputs", "targets")) == outputs
    page = (out / "index.html").read_text()
    assert "a/x" in page and "b/x" in page


@pytest.mark.parametrize("naming", ["gennorm", "junyanz"])
def test_same_stem_with_two_extensions_is_refused_naming_both(naming, trained, scenes, tmp_path, capsys):
    p2 = _nested(scenes, tmp_path / "p2")
    from PIL import Image

    Image.open(p2 / "y.png").convert("RGB").save(p2 / "y.jpg")
    code, err = cli(capsys, "translate", trained, p2, tmp_path / "o", "--naming", naming)
    line = one_line(err)
    assert code == 2 and "y.png" in line and "y.jpg" in line, line
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------------------------
# 3  folders gennorm did not create


def test_train_into_a_user_folder_is_refused(scenes, tmp_path, capsys):
    """Before: config.yaml, index.html and samples/step_00000000.png of the user were replaced (F2)."""
    u = tmp_path / "u"
    (u / "samples").mkdir(parents=True)
    (u / "config.yaml").write_text("my: config\n")
    (u / "index.html").write_text("<h1>site</h1>\n")
    (u / "samples" / "step_00000000.png").write_bytes(b"mine")
    before = digests(u)
    code, err = cli(capsys, *_train(scenes, u, "train.max_steps=2"))
    line = one_line(err)
    assert code == 2 and str(u) in line and "gennorm" in line, line
    assert digests(u) == before


def test_new_run_folder_carries_the_marker_and_an_empty_folder_is_fine(scenes, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, err = cli(capsys, *_train(scenes, empty, "train.max_steps=1"))
    assert code == 0, err
    assert "run" in (empty / ".gennorm").read_text()


def test_a_run_made_before_the_marker_still_resumes(run_copy, capsys):
    (run_copy / ".gennorm").unlink(missing_ok=True)
    code, err = cli(capsys, "train", "--resume", run_copy, "train.max_steps=3")
    assert code == 0, err
    assert (run_copy / ".gennorm").is_file()


def test_export_into_a_user_folder_is_refused_and_reexport_works(trained, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "card.md").write_text("my notes\n")
    code, err = cli(capsys, "export", trained, mine)
    assert code == 2 and str(mine) in one_line(err)
    assert (mine / "card.md").read_text() == "my notes\n" and not (mine / "generator.safetensors").exists()
    for _ in range(2):  # a folder gennorm made is its own to replace
        code, err = cli(capsys, "export", trained, tmp_path / "M")
        assert code == 0, err


def test_export_into_a_dataset_is_refused(trained, tmp_path, capsys):
    from gennorm.data import generate_scenes

    ds = tmp_path / "ds"
    generate_scenes(ds, size=16, count=4)
    code, err = cli(capsys, "export", trained, ds)
    assert code == 2 and str(ds) in one_line(err)
    assert not (ds / "generator.safetensors").exists()


# ----------------------------------------------------------------------------------------------
# 4  one writer per folder


class _Meanwhile(loop.Callback):
    """At step 2 of a run, run another `gennorm` command (in this process) and keep its outcome."""

    def __init__(self, capsys, args):
        self.capsys, self.args, self.outcome = capsys, args, None

    def on_step_end(self, trainer):
        if self.outcome is None and trainer.step == 2:  # step 1's checkpoint is on disk
            self.outcome = "running"
            self.outcome = (main([str(a) for a in self.args]), self.capsys.readouterr().err)
        return None


def _train_meanwhile(monkeypatch, capsys, scenes, run, *args):
    meanwhile = _Meanwhile(capsys, args)
    monkeypatch.setattr(loop, "train", functools.partial(loop.train, callbacks=[meanwhile]))
    assert main(_train(scenes, run, "train.max_steps=3", "train.checkpoint_every=1")) == 0
    return meanwhile.outcome


def test_resume_while_the_run_trains_is_refused(scenes, tmp_path, capsys, monkeypatch):
    """Before: both wrote metrics.jsonl and checkpoints/, 171 steps twice (F4)."""
    run = tmp_path / "c4"
    code, err = _train_meanwhile(monkeypatch, capsys, scenes, run, "train", "--resume", run, "train.max_steps=4")
    line = one_line(err)
    assert code == 2 and str(run) in line and f"pid {os.getpid()}" in line, line
    steps = [line for line in (run / "metrics.jsonl").read_text().splitlines() if '"step"' in line]
    assert len(steps) == 3


def test_second_train_into_a_training_run_is_refused(scenes, tmp_path, capsys, monkeypatch):
    """Before: two `train out=c3` both succeeded, the run a mix of both (F3)."""
    run = tmp_path / "c3"
    code, err = _train_meanwhile(monkeypatch, capsys, scenes, run, *_train(scenes, run, "train.max_steps=2"))
    assert code == 2 and "pid" in one_line(err)


def test_two_scenes_writers_at_once_the_second_is_refused(tmp_path, monkeypatch):
    """Before: the second replaced the first's dataset without --overwrite, both rc 0 (F13)."""
    from gennorm.data import scenes as sc
    from gennorm.errors import GennormError

    real, seen = sc._write_all, []

    def write_all(root, meta):
        if not seen:
            seen.append(1)
            with pytest.raises(GennormError) as info:
                sc.generate_scenes(tmp_path / "dsr", size=16, count=6, seed=2)
            seen.append(str(info.value))
        real(root, meta)

    monkeypatch.setattr(sc, "_write_all", write_all)
    sc.generate_scenes(tmp_path / "dsr", size=16, count=4, seed=1)
    assert "dsr" in seen[1] and "pid" in seen[1]
    assert '"seed": 1' in (tmp_path / "dsr" / "scenes.json").read_text()


def test_lock_names_the_holder_and_is_free_after_release(tmp_path):
    from gennorm.errors import GennormError
    from gennorm.locks import FolderLock

    with FolderLock(tmp_path / "x.lock", "the test folder"):
        with pytest.raises(GennormError) as info:
            FolderLock(tmp_path / "x.lock", "the test folder").acquire()
        assert f"pid {os.getpid()}" in str(info.value) and "\n" not in str(info.value)
    with FolderLock(tmp_path / "x.lock", "the test folder"):
        pass


# ----------------------------------------------------------------------------------------------
# 5  leftovers


def test_leftovers_of_dead_writers_go_and_a_live_writers_stay(run_copy, capsys):
    """Before: any `.NAME.PID.tmp` was removed, a live writer's in-flight temp included (F3)."""
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = dead_pid()
        gone = [run_copy / ".tmp" / f".step_00000006.pt.{dead}.tmp", run_copy / f".config.yaml.{dead}.tmp",
                run_copy / "samples" / f".step_00000006.png.{dead}.tmp"]
        kept = run_copy / f".metrics.jsonl.{live.pid}.tmp"
        for p in gone + [kept]:
            p.parent.mkdir(exist_ok=True)
            p.write_bytes(b"half a file")
        code, err = cli(capsys, "train", "--resume", run_copy, "train.max_steps=3")
        assert code == 0, err
        assert not any(p.exists() for p in gone) and kept.exists()
    finally:
        live.kill()
        live.wait()


def test_leftovers_of_a_killed_export_and_translate_are_swept(trained, scenes, tmp_path, capsys):
    dead = dead_pid()
    m, o = tmp_path / "M", tmp_path / "o"
    assert main(["export", str(trained), str(m)]) == 0
    assert main(["translate", str(trained), str(scenes / "unpaired" / "testA"), str(o)]) == 0
    left = [m / f".config.yaml.{dead}.tmp", o / f".0010.png.{dead}.tmp", o / "inputs" / f".0010.png.{dead}.tmp"]
    for p in left:
        p.write_bytes(b"half")
    assert main(["export", str(trained), str(m)]) == 0
    assert main(["translate", str(trained), str(scenes / "unpaired" / "testA"), str(o)]) == 0
    assert not any(p.exists() for p in left)


_KILL_AT_THIRD_UNLINK = """
import os, signal, sys
from gennorm.data import generate_scenes
real, calls = os.unlink, []
def unlink(*a, **k):
    calls.append(1)
    if len(calls) == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*a, **k)
os.unlink = unlink
generate_scenes(sys.argv[1], size=16, count=6, seed=1, overwrite=True)
"""


def test_killed_scenes_overwrite_leaves_a_whole_dataset_and_the_rerun_cleans_up(tmp_path, capsys):
    """Before: kill -9 during --overwrite left OUT half-deleted, the new data stranded in
    .OUT.partial-*, and the rerun refused (F28)."""
    from gennorm.data import generate_scenes

    ds = tmp_path / "ds9"
    generate_scenes(ds, size=16, count=6, seed=0)
    proc = subprocess.run([sys.executable, "-c", _KILL_AT_THIRD_UNLINK, str(ds)], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    assert (ds / "scenes.json").is_file() and len(list(ds.rglob("*.png"))) == 6 + 6  # old or new: whole
    code, err = cli(capsys, "data", "scenes", ds, "--size", 16, "--count", 6, "--seed", 1, "--overwrite")
    assert code == 0, err
    assert '"seed": 1' in (ds / "scenes.json").read_text()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".ds9.") and "lock" not in p.name) == []


def test_scenes_sweeps_partial_folders_of_dead_writers_only(tmp_path):
    from gennorm.data import generate_scenes

    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = tmp_path / f".ds.partial-{dead_pid()}-abc"
        kept = tmp_path / f".ds.partial-{live.pid}-abc"
        for p in (dead, kept):
            (p / "paired").mkdir(parents=True)
        generate_scenes(tmp_path / "ds", size=16, count=4)
        assert not dead.exists() and kept.exists()
    finally:
        live.kill()
        live.wait()


def test_sweep_tells_this_machines_writers_from_another_machines(tmp_path):
    """A shared folder (NFS) holds another machine's temp files: their pids mean nothing here.
    Before: a foreign writer's file was removed when its pid happened to be free here, even by an
    unlocked sweep (translate's), and kept forever when it happened to be taken. Now: this
    machine's by pid; another machine's only by a sweep under the folder's lock."""
    from gennorm.atomic import HOST, writer_tag
    from gennorm.locks import sweep_leftovers

    other = "0123abcd" if HOST != "0123abcd" else "89abcdef"
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = dead_pid()
        mine_dead, mine_live = tmp_path / f".a.png.{dead}-{HOST}.tmp", tmp_path / f".b.png.{live.pid}-{HOST}.tmp"
        old_style = tmp_path / f".c.png.{dead}.tmp"  # written by an older gennorm: this machine's
        foreign = [tmp_path / f".d.png.{dead}-{other}.tmp", tmp_path / f".e.png.{live.pid}-{other}.tmp"]
        foreign_dir = tmp_path / f".ds.partial-{dead}-{other}-xyz"
        own = tmp_path / f".f.png.{writer_tag()}.tmp"
        for p in (mine_dead, mine_live, old_style, *foreign, own):
            p.write_bytes(b"half")
        foreign_dir.mkdir()
        assert sorted(sweep_leftovers(tmp_path)) == sorted([mine_dead, old_style])
        assert all(p.exists() for p in (mine_live, *foreign, foreign_dir, own))
        assert sorted(sweep_leftovers(tmp_path, locked=True)) == sorted([*foreign, foreign_dir])
        assert mine_live.exists() and own.exists()  # a live pid here, and our own: never
    finally:
        live.kill()
        live.wait()


def test_temp_names_carry_pid_and_host_and_a_killed_write_is_swept(tmp_path):
    """The names atomic writes use are the ones the sweep reads (one scheme, gennorm.atomic.writer_tag)."""
    from gennorm.atomic import HOST
    from gennorm.locks import sweep_leftovers

    code = ("import os, signal, sys\nfrom gennorm.atomic import atomic_write\n"
            "atomic_write(sys.argv[1], lambda f: (f.write(b'x'), os.kill(os.getpid(), signal.SIGKILL)))")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "out.json")])
    assert proc.wait() == -9
    left = [p.name for p in tmp_path.iterdir()]
    assert left == [f".out.json.{proc.pid}-{HOST}.tmp"]
    assert [p.name for p in sweep_leftovers(tmp_path)] == left and not any(tmp_path.iterdir())


# ----------------------------------------------------------------------------------------------
# 6  re-import


def test_reimport_without_netD_removes_the_old_discriminator(tmp_path, capsys):
    """Before: discriminator.safetensors of the first import stayed, and model.init_from loaded it (F14)."""
    im = tmp_path / "IM"
    assert main(["import", "junyanz", str(UNET), str(im), "--netD", "basic", "--checkpoint_D", str(PATCH_D)]) == 0
    assert (im / "discriminator.safetensors").is_file()
    assert main(["import", "junyanz", str(RESNET), str(im)]) == 0
    assert not (im / "discriminator.safetensors").exists()


# ----------------------------------------------------------------------------------------------
# 7  a model folder is replaced whole (N3: a kill late in a re-export left A's card beside B's weights)


_KILL_AT_RENAME = """
import os, signal, sys
from gennorm import locks
spec, when, exchange = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
calls, at_exchange = [], []
def target():  # "K": the K-th rename; "xN": N renames after the swap's exchange call ("x": that call)
    if spec.startswith("x"):
        return at_exchange[0] + int(spec[1:] or 0) if at_exchange else -1
    return int(spec)
def counted(real, is_exchange=False):
    def call(*a, **kw):
        calls.append(1)
        if is_exchange:
            at_exchange.append(len(calls))
        n = len(calls)
        if n == target() and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        result = real(*a, **kw)
        if n == target() and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return result
    return call
os.replace, os.rename = counted(os.replace), counted(os.rename)
locks._exchange = counted(locks._exchange if exchange else lambda a, b: False, True)
from gennorm.cli import main
sys.exit(main(sys.argv[4:]))
"""


@pytest.fixture(scope="module")
def trained_b(scenes, tmp_path_factory) -> Path:
    """A second run, of another norm with the same tensor names as `trained` (instance)."""
    run = tmp_path_factory.mktemp("owned_b") / "run"
    args = _train(scenes, run, "train.max_steps=2", "train.checkpoint_every=2")
    assert main([args[0], "pix2pix-pono-ms", *args[2:]]) == 0
    return run


def _norms(folder: Path) -> set[str]:
    """The generator norm each file of a model folder says (config.yaml, the weights' metadata, card.md)."""
    import json

    import yaml
    from safetensors import safe_open

    with safe_open(str(folder / "generator.safetensors"), "pt") as f:
        weights = json.loads(f.metadata()["options"])["norm"]
    card = next(line for line in (folder / "card.md").read_text().splitlines() if line.startswith("| generator |"))
    return {yaml.safe_load((folder / "config.yaml").read_text())["model"]["g_norm"], str(weights),
            card.split("norm `")[1].split("`")[0]}


def _leftovers(parent: Path, name: str) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{name}.") and not p.name.endswith(".lock")
                  ) + sorted(p.name for p in (parent / name).rglob(".*.tmp"))


def _kill(spec: str, when: str, exchange: bool, *args) -> None:
    proc = subprocess.run([sys.executable, "-c", _KILL_AT_RENAME, spec, when, str(int(exchange)), *map(str, args)],
                          capture_output=True, text=True)
    assert proc.returncode == -9, (spec, when, proc.returncode, proc.stderr)


def _check_whole_export(m: Path, trained: Path, exchange: bool) -> str:
    """After a killed `export RUN_B M` over RUN_A's M: M is wholly A's or B's (config, weights and
    card agree; it loads), the user's file is kept; the next export sweeps every leftover.
    Returns the norm M had ("aside": two renames, killed between them: A's folder aside, whole)."""
    import gennorm
    from gennorm.locks import _restore_aside

    aside = not m.exists()
    if aside:  # the next writer moves it back (called here directly to look at it)
        assert not exchange
        _restore_aside(m)
    norms = _norms(m)
    assert norms in ({"instance"}, {"pono-ms"}) and not (aside and norms != {"instance"}), norms
    gennorm.load(m)  # the weights' hash, options and config agree
    assert (m / "mine" / "x.txt").read_text() == "the user's\n"
    assert main(["export", str(trained), str(m)]) == 0 and _norms(m) == {"instance"}
    assert _leftovers(m.parent, m.name) == []
    return "aside" if aside else norms.pop()


def _exported(trained: Path, m: Path) -> Path:
    assert main(["export", str(trained), str(m)]) == 0
    (m / "mine").mkdir()
    (m / "mine" / "x.txt").write_text("the user's\n")
    return m


@pytest.mark.parametrize("exchange, spec, when, expected", [
    (True, "3", "before", "instance"),  # the trial's strace at rename 3: A's card stayed beside B's weights
    (True, "x", "before", "instance"), (True, "x", "after", "pono-ms"),
    (False, "x1", "after", "aside"),  # without renameat2: between the two renames
], ids=["rename3", "before-swap", "after-swap", "two-renames-between"])
def test_a_killed_reexport_leaves_one_whole_model_and_the_next_export_cleans_up(trained, trained_b, tmp_path,
                                                                                 exchange, spec, when, expected):
    """N3 (issue 30): kill -9 at rename 3 of a re-export left A's card.md (and a .card.md tmp)
    beside B's config and weights, and the folder was trusted. Now the folder is swapped whole."""
    m = _exported(trained, tmp_path / "M")
    _kill(spec, when, exchange, "export", trained_b, m)
    assert _check_whole_export(m, trained, exchange) == expected


@pytest.mark.slow
@pytest.mark.parametrize("exchange", [True, False], ids=["exchange", "two-renames"])
def test_a_kill_at_every_rename_of_a_reexport_leaves_one_whole_model(trained, trained_b, tmp_path, exchange):
    """A SIGKILL before every rename of `export RUN_B M` (and after the last): one whole model each time."""
    m = _exported(trained, tmp_path / "M")
    seen = []
    for k in range(1, 20):
        proc = subprocess.run([sys.executable, "-c", _KILL_AT_RENAME, str(k), "before", str(int(exchange)),
                               "export", str(trained_b), str(m)], capture_output=True, text=True)
        if proc.returncode == 0:  # k - 1 renames in all: the last one killed after it ran
            assert main(["export", str(trained), str(m)]) == 0
            _kill(str(k - 1), "after", exchange, "export", trained_b, m)
            seen.append(_check_whole_export(m, trained, exchange))
            break
        assert proc.returncode == -9, proc.stderr
        seen.append(_check_whole_export(m, trained, exchange))
    assert k > 5 and seen[-1] == "pono-ms" and set(seen[:-1]) <= {"instance", "aside"}, seen
    assert ("aside" in seen) == (not exchange), seen


@pytest.mark.parametrize("spec, when, expected", [("3", "before", "unet"), ("x", "after", "resnet")])
def test_a_killed_reimport_leaves_one_whole_model(tmp_path, spec, when, expected):
    """The same for `gennorm import junyanz` over an import with --netD: the old discriminator and
    card go with the old weights, or stay with them; the next import sweeps the leftovers."""
    im = tmp_path / "IM"
    first = ["import", "junyanz", str(UNET), str(im), "--netD", "basic", "--checkpoint_D", str(PATCH_D)]
    assert main(first) == 0
    _kill(spec, when, True, "import", "junyanz", RESNET, im)
    config = (im / "config.yaml").read_text()
    state = ("unet" if "unet" in config else "resnet", (im / "discriminator.safetensors").exists(),
             "unet" in (im / "card.md").read_text())
    assert state == {"unet": ("unet", True, True), "resnet": ("resnet", False, False)}[expected], state
    assert main(first) == 0 and (im / "discriminator.safetensors").exists()
    assert _leftovers(tmp_path, "IM") == []
