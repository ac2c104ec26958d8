"""Mutation check: do the tests catch wrong math? (issue 21; not part of CI: minutes, not seconds)

    .venv/bin/python tools/mutation_check.py                 # the committed tree (HEAD)
    .venv/bin/python tools/mutation_check.py --rev 73ca153   # an older commit's code and tests
    .venv/bin/python tools/mutation_check.py --only pix2pix-l1-x0,ema-1-minus-decay --jobs 2 --slow

Each mutation below (a small edit of ops, layers, data, train or metrics) is applied alone to a
fresh copy of the tree (`git archive REV | tar -x` into a temporary folder under /tmp: the working
tree is never touched, and uncommitted changes are not in the copy), and the test files relevant
to it run there (PYTHONPATH and the working directory point at the copy; `-m "not slow and not
browser and not cuda"` unless --slow, `-x`). First the
same files run on the unmutated copy: tests that fail there are deselected (they cannot catch
anything). A mutation is *caught* when a test fails; the report names the first test that did.
Score = caught / applied. A mutation whose text is not found in the copy is reported, not scored.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ["tests/test_objectives.py", "tests/test_rng.py", "tests/test_train.py", "tests/test_resume.py"]
DATA = ["tests/test_preprocess.py", "tests/test_data.py"]
METRICS = ["tests/test_metric_values.py", "tests/test_metrics.py", "tests/test_fid_protocols.py"]
LAYERS = ["tests/test_layers.py", "tests/test_ops.py", "tests/test_convnorm.py"]

# name: (file, [(old, new), ...], test files, listed in issue 21)
MUTATIONS = {
    # --- the mutations issue 21 lists (the suite was green under each)
    "cyclegan-identity-x0": ("gennorm/train/cyclegan.py", [
        ("w = t.lambda_cycle * t.lambda_identity\n", "w = t.lambda_cycle * t.lambda_identity * 0\n")], TRAIN, True),
    "cyclegan-cycle_A-x0": ("gennorm/train/cyclegan.py", [
        ('"cycle_A": F.l1_loss(rec_A.float(), real_A.float()) * t.lambda_cycle,',
         '"cycle_A": F.l1_loss(rec_A.float(), real_A.float()) * t.lambda_cycle * 0,')], TRAIN, True),
    "pix2pix-l1-x0": ("gennorm/train/pix2pix.py", [
        ("loss_l1 = F.l1_loss(fake_B.float(), real_B.float()) * lam", "loss_l1 = F.l1_loss(fake_B.float(), real_B.float()) * lam * 0")],
        TRAIN, True),
    "ema-1-minus-decay": ("gennorm/train/optim.py", [
        ("e.lerp_(p.detach(), 1.0 - self.decay)", "e.lerp_(p.detach(), self.decay)")], TRAIN, True),
    "lr-decay-removed": ("gennorm/train/optim.py", [
        ("    return max(0.0, (max_steps - step) / span)", "    return 1.0")], TRAIN, True),
    "rng-python-numpy-not-restored": ("gennorm/train/checkpoint.py", [
        ("    random.setstate((py[0], tuple(py[1]), py[2]))", "    pass"),
        ("    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), n[2], n[3], n[4]))", "    pass")], TRAIN, True),
    "kn-padding-hw-swapped": ("gennorm/layers/kernel_norm.py", [
        ("pad = (padding[1], padding[1], padding[0], padding[0])", "pad = (padding[0], padding[0], padding[1], padding[1])")],
        LAYERS, True),
    "crop-top-left": ("gennorm/data/transforms.py", [
        ('    if not opts.preprocess.endswith("crop"):\n        x = y = 0', "    if True:\n        x = y = 0")], DATA, True),
    # --- more over train, data, metrics, layers, ops
    "crop-top-left-in-apply": ("gennorm/data/transforms.py", [
        ("        x, y = params.crop_pos\n", "        x, y = 0, 0\n")], DATA, False),
    "flip-never": ("gennorm/data/transforms.py", [("flip = rng.random() < 0.5", "flip = rng.random() < 0.0")], DATA, False),
    "aligned-b-own-crop": ("gennorm/data/aligned.py", [
        ("b = apply_transform(b.convert(\"L\") if self.output_nc == 1 else b, self.opts, params)",
         "b = apply_transform(b.convert(\"L\") if self.output_nc == 1 else b, self.opts, "
         "sample_params(b.size, self.opts, self.rng(index, \"B\")))")], DATA, False),
    "d-half-dropped": ("gennorm/train/task.py", [
        ('"total": 0.5 * (loss_real + loss_fake)}', '"total": (loss_real + loss_fake)}')], TRAIN, False),
    "lsgan-real-target-0.9": ("gennorm/train/gan.py", [
        ("return F.mse_loss(pred, target)", "return F.mse_loss(pred, target * 0.9)")], TRAIN, False),
    "hinge-no-margin": ("gennorm/train/gan.py", [
        ("F.relu(1.0 - pred).mean() if target_is_real", "F.relu(-pred).mean() if target_is_real")], TRAIN, False),
    "wgangp-penalty-no-minus-1": ("gennorm/train/gan.py", [
        ("((grad.reshape(n, -1).norm(2, dim=1) - 1.0) ** 2).mean()", "((grad.reshape(n, -1).norm(2, dim=1)) ** 2).mean()")],
        TRAIN, False),
    "wgangp-lambda-dropped": ("gennorm/train/task.py", [
        ("loss_real + loss_fake + self.cfg.train.lambda_gp * gp", "loss_real + loss_fake + gp")], TRAIN, False),
    "pool-swap-prob-0.2": ("gennorm/train/gan.py", [
        ("elif torch.rand(1, generator=self.gen).item() > 0.5:", "elif torch.rand(1, generator=self.gen).item() > 0.8:")],
        TRAIN, False),
    "pool-keeps-old-image": ("gennorm/train/gan.py", [("self.images[idx] = image.clone()", "pass")], TRAIN, False),
    "ema-buffers-not-copied": ("gennorm/train/optim.py", [("            e.copy_(b)", "            pass")], TRAIN, False),
    "cyclegan-D_A-sees-fake_A": ("gennorm/train/cyclegan.py", [
        ('self.pools["B"].query(fake_B)', 'self.pools["B"].query(fake_A)')], TRAIN, False),
    "torch-rng-not-restored": ("gennorm/train/checkpoint.py", [
        ('    torch.set_rng_state(state["torch"])', "    pass")], TRAIN, False),
    "decay-start-default-third": ("gennorm/train/optim.py", [
        ("start = max_steps // 2 if decay_start is None", "start = max_steps // 3 if decay_start is None")], TRAIN, False),
    "epoch-linear-off-by-one": ("gennorm/train/optim.py", [
        ("return 1.0 - max(0, epoch - n) / float(d + 1)", "return 1.0 - max(0, epoch - n) / float(d + 2)")], TRAIN, False),
    "feature-stats-biased-cov": ("gennorm/metrics/frechet.py", [
        ("np.cov(x, rowvar=False)", "np.cov(x, rowvar=False, bias=True)")], METRICS, False),
    "fid-nuclear-factor": ("gennorm/metrics/frechet.py", [
        ("a.square().sum() + b.square().sum() - 2 * tr_sqrt)", "a.square().sum() + b.square().sum() - 1.99 * tr_sqrt)")],
        METRICS, False),
    "inception-no-antialias": ("gennorm/metrics/inception.py", [
        ('mode="bilinear", align_corners=False, antialias=True)', 'mode="bilinear", align_corners=False, antialias=False)')],
        METRICS, False),
    "inception-normalize-127.5": ("gennorm/metrics/inception.py", [
        ("    return (x - 128) / 128", "    return (x - 127.5) / 127.5")], METRICS, False),
    "clean-resize-bilinear": ("gennorm/metrics/inception.py", [
        ("resample=Image.BICUBIC", "resample=Image.BILINEAR")], METRICS, False),
    "legacy-resize-antialiased": ("gennorm/metrics/inception.py", [
        ('x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False)\n    return 2 * x - 1',
         'x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False, antialias=True)\n'
         '    return 2 * x - 1')], METRICS, False),
    "lpips-normalize-false": ("gennorm/metrics/lpips.py", [
        ("return net(real, fake, normalize=True)", "return net(real, fake, normalize=False)")], METRICS, False),
    "kid-diagonal-kept": ("gennorm/metrics/kid.py", [
        ("off = lambda k: k.sum() - k.diagonal().sum()", "off = lambda k: k.sum()")], METRICS, False),
    "kn-dropout-in-eval": ("gennorm/layers/kernel_norm.py", [
        ("if self.dropout_p > 0 and (self.training or self.dropout_in_eval):", "if self.dropout_p > 0:")], LAYERS, False),
    "pono-eps-outside-sqrt": ("gennorm/ops/patch_moments.py", [
        ("    return mean, torch.sqrt(var + eps).reciprocal()", "    return mean, (torch.sqrt(var) + eps).reciprocal()")],
        LAYERS, False),
    "moments-grad-var-power": ("gennorm/ops/kernels.py", [
        ("grad_var = -0.5 * grad_rstd * rstd.pow(3)", "grad_var = -0.5 * grad_rstd * rstd.pow(2)")], LAYERS, False),
}


def export_tree(rev: str, dest: Path) -> None:
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)


def apply(tree: Path, file: str, edits) -> str | None:
    """Apply the edits (each old text must occur; every occurrence is replaced); None or why not."""
    path = tree / file
    if not path.is_file():
        return f"{file} does not exist"
    text = path.read_text()
    for old, new in edits:
        if old not in text:
            return f"text not found in {file}: {old.strip()[:60]!r}"
        text = text.replace(old, new)
    path.write_text(text)
    return None


def run_pytest(tree: Path, files: list[str], slow: bool, deselect=(), stop_first=True, timeout=1800):
    """(failed test ids, seconds, output tail) of pytest on `files` in `tree`."""
    files = [f for f in files if (tree / f).is_file()]
    if not files:
        return [], 0.0, "no test files"
    marks = "not browser and not cuda" if slow else "not slow and not browser and not cuda"
    cmd = [sys.executable, "-m", "pytest", "-q", "-rf", "-p", "no:cacheprovider", "-m", marks, *files]
    if stop_first:
        cmd.append("-x")
    for d in deselect:
        cmd += ["--deselect", d]
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"),
               GENNORM_CACHE=str(tree / ".gennorm-cache"))
    start = time.monotonic()
    try:
        done = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=timeout)
        out = done.stdout + done.stderr
    except subprocess.TimeoutExpired as err:
        out = (err.stdout or b"").decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
        return ["(timeout)"], time.monotonic() - start, out[-2000:]
    failed = re.findall(r"^(?:FAILED|ERROR) (.+?)(?: - .*)?$", out, re.M)
    if done.returncode not in (0, 1, 5) and not failed:  # collection errors, crashes
        failed = [f"(pytest exit {done.returncode})"]
    return failed, time.monotonic() - start, out[-2000:]


def check_copy_is_imported(tree: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(tree))
    where = subprocess.run([sys.executable, "-c", "import gennorm; print(gennorm.__file__)"], cwd=tree, env=env,
                           capture_output=True, text=True).stdout.strip()
    if not where.startswith(str(tree)):
        sys.exit(f"the copy is not what Python imports ({where}); stopping")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rev", default="HEAD", help="commit whose code and tests are checked (default HEAD)")
    ap.add_argument("--only", default="", help="comma-separated mutation names")
    ap.add_argument("--listed", action="store_true", help="only the mutations issue 21 lists")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--slow", action="store_true", help="also run tests marked slow (as `make test` does)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary trees")
    args = ap.parse_args(argv)
    names = [n for n in MUTATIONS if (not args.only or n in args.only.split(",")) and (not args.listed or MUTATIONS[n][3])]
    work = Path(tempfile.mkdtemp(prefix="mut-", dir="/tmp"))
    rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.rev], check=True, capture_output=True,
                         text=True).stdout.strip()
    print(f"mutation check of {rev} in {work} ({len(names)} mutations, jobs {args.jobs})", flush=True)
    try:
        base = work / "base"
        export_tree(rev, base)
        check_copy_is_imported(base)
        groups = sorted({tuple(MUTATIONS[n][2]) for n in names})
        baseline: dict[tuple, list[str]] = {}
        with cf.ThreadPoolExecutor(args.jobs) as pool:
            for group, (failed, secs, _) in zip(groups, pool.map(
                    lambda g: run_pytest(base, list(g), args.slow, stop_first=False), groups)):
                baseline[group] = failed
                note = f"; failing without any mutation (deselected): {', '.join(failed)}" if failed else ""
                print(f"baseline {' '.join(Path(f).name for f in group)}: {secs:.0f} s{note}", flush=True)

        def one(name):
            file, edits, tests, _ = MUTATIONS[name]
            tree = work / name
            shutil.copytree(base, tree, symlinks=True)
            why = apply(tree, file, edits)
            if why:
                return name, None, 0.0, why
            failed, secs, tail = run_pytest(tree, tests, args.slow, deselect=baseline[tuple(tests)])
            if not args.keep:
                shutil.rmtree(tree, ignore_errors=True)
            return name, failed, secs, tail

        results = {}
        with cf.ThreadPoolExecutor(args.jobs) as pool:
            for name, failed, secs, info in pool.map(one, names):
                results[name] = (failed, info)
                listed = "*" if MUTATIONS[name][3] else " "
                if failed is None:
                    print(f"  {listed} {name:34s} NOT APPLIED ({info})", flush=True)
                elif failed:
                    print(f"  {listed} {name:34s} caught by {failed[0]}  ({secs:.0f} s)", flush=True)
                else:
                    print(f"  {listed} {name:34s} SURVIVED  ({secs:.0f} s)", flush=True)
        applied = [n for n in names if results[n][0] is not None]
        caught = [n for n in applied if results[n][0]]
        listed = [n for n in applied if MUTATIONS[n][3]]
        listed_caught = [n for n in listed if results[n][0]]
        print(f"\nscore {len(caught)}/{len(applied)} caught ({100 * len(caught) / max(len(applied), 1):.0f}%); "
              f"issue 21's listed mutations (*): {len(listed_caught)}/{len(listed)}"
              + (f"; not applied: {len(names) - len(applied)}" if len(applied) < len(names) else ""))
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
