"""`gennorm bench`: every subcommand runs on --quick sizes and reports what it measured (no timing assertions)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gennorm import NCConv2d, cli
from gennorm.bench.kernels import KERNELS, NOT_AVAILABLE, kernel_bytes
from gennorm.bench.layers import (BASELINE, CANDIDATES, COMPILED, NO_COMPILE, NO_CUDA_NC, NOT_SELECTED,
                                  QUICK_LAYERS, QUICK_NO_COMPILE, RESNET9_LAYERS, LayerSpec, literal_nc, parse_shape)
from gennorm.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["bench", "layers", "--quick", "--device", "cpu", "--repeats", "1", "--warmup", "0", "--no-progress"]


def _check_candidates(row: dict, modes=("fwd", "fwdbwd")) -> None:
    assert set(row["candidates"]) == set(CANDIDATES)
    for name, entry in row["candidates"].items():
        if name == "nc (cuda)" and entry["status"] != "ok":
            assert entry["status"] == NO_CUDA_NC
            continue
        if entry["status"] in (NO_COMPILE, QUICK_NO_COMPILE, NOT_SELECTED):
            continue
        assert entry["status"] == "ok", (name, entry)
        for mode in modes:
            assert entry[mode]["median_ms"] > 0 and len(entry[mode]["times_ms"]) == 1
        assert entry["peak_mib"] is None  # not measured on the CPU
    for mode in modes:
        assert row["candidates"][BASELINE][mode]["ratio_vs_baseline"] == 1.0


def test_bench_layers_quick_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = cli.main([*QUICK, "--shapes", "4x8x8:1", "--no-compile", "--json", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    assert {"device", "device_name", "torch", "cuda", "dtype", "dtypes", "date", "results"} <= set(report)
    assert report["dtype"] == "float32" and report["device"] == "cpu"
    (result,) = report["results"]
    assert (result["batch"], result["channels"], result["height"], result["width"]) == (1, 4, 8, 8)
    _check_candidates(result)
    assert result["candidates"][COMPILED]["status"] == NO_COMPILE
    printed = capsys.readouterr().out
    assert "4x8x8: 4->4 3x3/1 zeros pad 1 at 8x8, batch 1, float32" in printed and "conv+instancenorm" in printed


def test_bench_layers_resnet9_kinds_both_dtypes(tmp_path, capsys):
    """The quick layers are the ResNet-9 kinds (7x7 reflect stem, stride-2, reflect residual), fp32 and bf16."""
    out = tmp_path / "bench.json"
    assert cli.main([*QUICK, "--no-compile", "--dtype", "float32", "bfloat16", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["dtypes"] == ["float32", "bfloat16"] and report["modes"] == ["fwd", "fwdbwd"]
    assert report["copy_ceiling"]["gbps"] > 0
    rows = report["results"]
    assert [(r["dtype"], r["layer"]) for r in rows] == [(d, n) for n in QUICK_LAYERS for d in ("float32", "bfloat16")]
    for row in rows:
        _check_candidates(row)
        assert set(row["kernels"]) == set(KERNELS)
        for name, k in row["kernels"].items():
            assert k["bytes"] == k["read"] + k["write"] > 0
            if k["status"] == NOT_AVAILABLE:
                continue
            assert k["status"] == "ok", (name, k)
            assert k["impl"] == "reference (cpu)"
            assert k["gbps"] > 0 and k["copy_gbps"] > 0 and k["pct_of_copy"] > 0
    assert "patch_moments" in capsys.readouterr().out


def test_bench_layers_quick_skips_compile_unless_named(tmp_path):
    out = tmp_path / "bench.json"
    assert cli.main([*QUICK, "--layers", "down", "--candidates", "nc (torch)", "--no-kernels", "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())["results"]
    assert row["candidates"][COMPILED]["status"] == NOT_SELECTED
    assert cli.main([*QUICK, "--layers", "down", "--modes", "fwd", "--no-kernels", "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())["results"]
    assert row["candidates"][COMPILED]["status"] == QUICK_NO_COMPILE


def test_bench_layers_candidate_subset_and_modes(tmp_path):
    out = tmp_path / "bench.json"
    assert cli.main([*QUICK, "--layers", "down", "--modes", "fwd", "--candidates", "nc (torch)", "--no-kernels",
                     "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())["results"]
    assert row["layer"] == "down" and "kernels" not in row
    live = {n for n, e in row["candidates"].items() if e["status"] == "ok"}
    assert live == {BASELINE, "nc (torch)"}
    assert "fwdbwd" not in row["candidates"]["nc (torch)"]
    assert row["candidates"]["knconv"]["status"] == NOT_SELECTED


@pytest.mark.slow
def test_bench_layers_compiled_candidate(tmp_path):
    """NC's torch path under torch.compile (tens of seconds: one inductor compile on the CPU)."""
    out = tmp_path / "bench.json"
    assert cli.main([*QUICK, "--layers", "res", "--candidates", COMPILED, "--no-kernels", "--json", str(out)]) == 0
    entry = json.loads(out.read_text())["results"][0]["candidates"][COMPILED]
    if entry["status"].startswith("error") and "compiler" in entry["status"].lower():
        pytest.skip(f"no working C++ compiler for inductor here: {entry['status']}")
    assert entry["status"] == "ok", entry
    assert entry["fwdbwd"]["median_ms"] > 0 and entry["first_call_s"] > 0


def test_bench_layers_bad_options(capsys):
    assert cli.main(["bench", "layers", "--shapes", "8x8", "--no-progress"]) == 2
    assert "--shapes" in capsys.readouterr().err
    assert cli.main([*QUICK, "--layers", "nope"]) == 2
    assert "--layers" in capsys.readouterr().err
    assert cli.main([*QUICK, "--candidates", "nc"]) == 2
    assert "--candidates" in capsys.readouterr().err


def test_shape_syntax():
    assert [(b, s.cin, s.size) for b, s in parse_shape("64x128x128", [1, 4])] == [(1, 64, 128), (4, 64, 128)]
    assert [(b, s.cin, s.stride, s.mode) for b, s in parse_shape("64x64x64:4", [1])] == [(4, 64, 1, "zeros")]
    for bad in ("64x64", "64x64x64:b", "0x8x8", "8x8x9"):
        with pytest.raises(ConfigError, match="--shapes"):
            parse_shape(bad, [1])


def test_resnet9_layers_are_the_generators():
    """The bench shapes are the ResNet-9 generator's conv layers on a 256x256 image."""
    from gennorm.layers import get_norm_layer
    from gennorm.networks.resnet import ResnetGenerator

    g = ResnetGenerator(3, 3, 64, get_norm_layer("instance"), False, 9, "transpose")
    convs = {}

    def record(name):
        def hook(module, inputs, output):
            convs.setdefault(name, (inputs[0].shape, output.shape))
        return hook

    for name, module in (("stem", g.stem), ("down1", g.down[0]), ("down2", g.down[1]), ("res", g.blocks[0])):
        module.register_forward_hook(record(name))
    with torch.no_grad():
        g(torch.zeros(1, 3, 256, 256))
    for name, spec in RESNET9_LAYERS.items():
        (_, cin, h, _), (_, cout, ho, _) = convs[name]
        assert (spec.cin, spec.cout, spec.size, spec.out_size) == (cin, cout, h, ho), name


def test_kernel_bytes_follow_the_contract():
    spec = LayerSpec("res", 256, 256, 3, 1, 1, "reflect", 64)
    b = kernel_bytes(spec, 1, 4)
    x, xc, sums, stat = 256 * 64 * 64 * 4, 256 * 66 * 66 * 4, 2 * 66 * 66 * 4, 64 * 64 * 4
    assert b["pad_center_sums"] == {"read": x, "write": xc + sums, "bytes": x + xc + sums}
    assert b["patch_moments"]["bytes"] == xc + 2 * stat
    assert b["pad_center_sums_backward"]["write"] == x
    bf16 = kernel_bytes(spec, 8, 2)
    assert bf16["window_epilogue"]["read"] == 8 * 256 * 64 * 64 * 2 + 8 * 2 * 66 * 66 * 4 + 2 * 256 * 4


def test_literal_reference_matches_nc():
    torch.manual_seed(0)
    layer = NCConv2d(3, 4, 3, stride=2, padding=1, impl="torch").double()
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64)
    torch.testing.assert_close(literal_nc(x, layer), layer(x))
    reflect = NCConv2d(3, 4, 3, padding=1, padding_mode="reflect", impl="torch").double()
    torch.testing.assert_close(literal_nc(x, reflect), reflect(x))


def test_bench_train_quick_json(tmp_path):
    out = tmp_path / "train.json"
    assert cli.main(["bench", "train", "--device", "cpu", "--quick", "--norms", "instance", "nc",
                     "--tasks", "pix2pix", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert [(r["task"], r["norm"]) for r in data["results"]] == [("pix2pix", "instance"), ("pix2pix", "nc")]
    assert all(r["step_ms"] > 0 and r["first_step_ms"] > 0 for r in data["results"])
    assert {"device_name", "torch", "cuda", "date", "setting", "amp"} <= set(data)


def test_bench_train_cyclegan_resnet9_bf16(tmp_path):
    """The GPU setting's code path (CycleGAN ResNet-9, instance vs nc, bf16 autocast) at a tiny size."""
    out = tmp_path / "train.json"
    assert cli.main(["bench", "train", "--device", "cpu", "--quick", "--tasks", "cyclegan", "--norms", "instance",
                     "nc", "--arch", "resnet_9blocks", "--amp", "bf16", "--size", "32", "--ngf", "4", "--steps", "1",
                     "--warmup", "0", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["amp"] == "bf16" and data["setting"]["g_arch"] == "resnet_9blocks"
    assert [r["norm"] for r in data["results"]] == ["instance", "nc"]


def test_bench_generator_interleaved(tmp_path, capsys):
    out = tmp_path / "gen.json"
    assert cli.main(["bench", "generator", "--device", "cpu", "--ngf", "4", "--size", "16", "--repeats", "1",
                     "--warmup", "0", "--norms", "instance", "nc", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["baseline"] == "instance" and data["upsample"] == "resize" and set(data["results"]) == {"instance", "nc"}
    assert data["results"]["instance"]["ratio_vs_baseline"] == 1.0 and data["results"]["nc"]["median_ms"] > 0
    assert "nc" in capsys.readouterr().out


def test_bench_generator_inference_runs_no_backward(tmp_path, capsys, monkeypatch):
    """--mode inference: the forward alone, eval mode, no autograd graph (no backward is ever called)."""
    calls = []
    monkeypatch.setattr(torch.Tensor, "backward", lambda *a, **k: calls.append(a))
    out = tmp_path / "gen.json"
    assert cli.main(["bench", "generator", "--device", "cpu", "--ngf", "4", "--size", "16", "--repeats", "1",
                     "--warmup", "0", "--mode", "inference", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["mode"] == "inference" and calls == [] and data["results"]["nc"]["median_ms"] > 0
    assert "inference median" in capsys.readouterr().out


def test_bench_profile_cpu(tmp_path, capsys):
    out = tmp_path / "profile.json"
    assert cli.main(["bench", "profile", "--device", "cpu", "--channels", "8", "--size", "8", "--steps", "1",
                     "--warmup", "1", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert [r["norm"] for r in data["results"]] == ["nc", "instance"]
    for r in data["results"]:
        assert r["step_ms"] > 0 and r["ops"] and r["kernels"] == []  # no GPU kernels on the CPU
    assert "block nc, float32" in capsys.readouterr().out


def test_bench_report_merges_and_tabulates(tmp_path, capsys):
    files = []
    for dtype in ("float32", "bfloat16"):
        files.append(tmp_path / f"{dtype}.json")
        assert cli.main([*QUICK, "--layers", "res", "--no-compile", "--dtype", dtype, "--json", str(files[-1])]) == 0
    capsys.readouterr()
    merged = tmp_path / "merged.json"
    assert cli.main(["bench", "report", *map(str, files), "--merge", str(merged)]) == 0
    printed = capsys.readouterr().out
    assert "| res | 1 | float32 |" in printed and "| res | 1 | bfloat16 |" in printed and "patch_moments" in printed
    data = json.loads(merged.read_text())
    assert data["dtypes"] == ["float32", "bfloat16"] and [r["dtype"] for r in data["results"]] == data["dtypes"]
    assert cli.main(["bench", "report", str(tmp_path / "missing.json")]) == 2


def test_bench_metrics_throughput(capsys):
    pytest.importorskip("torch_fidelity")
    assert cli.main(["bench", "metrics", "--images", "2", "--batch-size", "2", "--size", "32", "--device", "cpu"]) == 0
    assert "images/s" in capsys.readouterr().out


def test_bench_import_is_torch_free():
    code = ("import sys, argparse, gennorm.commands.bench as b; p = argparse.ArgumentParser(); b.add_arguments(p); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_nothing_imports_bench():
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "gennorm").rglob("*.py")
                 if "bench" not in p.parts and ("gennorm.bench" in p.read_text() or "from gennorm import bench" in
                                                p.read_text()) and p != ROOT / "gennorm" / "commands" / "bench.py"]
    assert offenders == []


@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None, reason="needs bash and timeout")
def test_gpu_check_dry_run(tmp_path):
    """tools/gpu_check.sh --dry-run: every step parses and its Python parts import (gradio and torch-fidelity
    blocked), on the CPU at tiny sizes; the JSON files it writes hold what the GPU run will record."""
    env = {**os.environ, "PYTHON": sys.executable}
    env.pop("OUT", None)
    t0 = time.monotonic()
    proc = subprocess.run(["bash", str(ROOT / "tools" / "gpu_check.sh"), "--dry-run", str(tmp_path)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=360)
    wall = time.monotonic() - t0
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) <= 8 and all(p.is_file() for p in tmp_path.iterdir()), names  # what $OUT can bring back
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["dry_run"] is True
    steps = {s["name"]: s for s in summary["steps"]}
    assert {"environment", "build", "tests", "cuda_smoke", "memcheck", "bench_layers_fp32", "bench_layers_bf16",
            "bench_train", "bench_generator", "profile", "bench_layers_compiled", "report"} <= set(steps)
    assert steps["build"]["status"] == "skipped" and steps["memcheck"]["status"] == "skipped"
    failed = {n: s for n, s in steps.items() if s["status"] not in ("ok", "skipped")}
    assert not failed, failed
    layers = json.loads((tmp_path / "bench_layers_fp32.json").read_text())
    bf16 = json.loads((tmp_path / "bench_layers_bf16.json").read_text())
    assert layers["dtypes"] == ["float32"] and bf16["dtypes"] == ["bfloat16"] and layers["results"]
    assert all(set(r["kernels"]) == set(KERNELS) for r in layers["results"])
    train = json.loads((tmp_path / "bench_train.json").read_text())
    assert train["amp"] == "bf16" and [r["norm"] for r in train["results"]] == ["instance", "nc"]
    profile = json.loads((tmp_path / "profile.json").read_text())
    assert {r["norm"] for r in profile["results"]} == {"nc", "instance"}
    log = (tmp_path / "gpu_check.log").read_text()
    assert "dry run" in log and "skipped" in log and "| res | 1 | float32 |" in log  # the report's tables
    print(f"dry run: {wall:.1f} s")  # shown with -s; the budget is ~60 s on a 2-core CPU
