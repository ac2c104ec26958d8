"""`gennorm bench`: the CLI runs and reports every candidate (no timing assertions)."""
from __future__ import annotations

import json

import pytest
import torch

from gennorm import NCConv2d, cli
from gennorm.bench import CANDIDATES, NO_CUDA_NC, literal_nc, parse_shape
from gennorm.errors import ConfigError


def test_bench_layers_quick_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = cli.main(["bench", "layers", "--quick", "--device", "cpu", "--repeats", "1", "--warmup", "0",
                     "--shapes", "4x8x8:1", "--no-progress", "--json", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    assert {"device", "device_name", "torch", "dtype", "date", "results"} <= set(report)
    assert report["dtype"] == "float32" and report["device"] == "cpu"
    (result,) = report["results"]
    assert (result["batch"], result["channels"], result["height"], result["width"]) == (1, 4, 8, 8)
    assert set(result["candidates"]) == set(CANDIDATES)
    for name, entry in result["candidates"].items():
        if name == "nc (cuda)" and entry["status"] != "ok":
            assert entry["status"] == NO_CUDA_NC
            continue
        assert entry["status"] == "ok", (name, entry)
        assert entry["median_ms"] > 0 and len(entry["times_ms"]) == 1
        assert entry["peak_mib"] is None  # not measured on the CPU
    assert result["candidates"]["conv+instancenorm"]["ratio_vs_baseline"] == 1.0
    printed = capsys.readouterr().out
    assert "4x8x8, batch 1" in printed and "conv+instancenorm" in printed


def test_shape_syntax():
    assert parse_shape("64x128x128", [1, 4]) == [(1, 64, 128, 128), (4, 64, 128, 128)]
    assert parse_shape("64x64x64:4", [1]) == [(4, 64, 64, 64)]
    for bad in ("64x64", "64x64x64:b", "0x8x8"):
        with pytest.raises(ConfigError, match="--shapes"):
            parse_shape(bad, [1])


def test_bad_shape_is_one_line_error(capsys):
    assert cli.main(["bench", "layers", "--shapes", "8x8", "--no-progress"]) == 2
    assert "--shapes" in capsys.readouterr().err


def test_literal_reference_matches_nc():
    torch.manual_seed(0)
    layer = NCConv2d(3, 4, 3, stride=2, padding=1, impl="torch").double()
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64)
    torch.testing.assert_close(literal_nc(x, layer), layer(x))


def test_bench_train_quick_json(tmp_path, capsys):
    out = tmp_path / "train.json"
    assert cli.main(["bench", "train", "--device", "cpu", "--quick", "--norms", "instance", "nc",
                     "--tasks", "pix2pix", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert [(r["task"], r["norm"]) for r in data["results"]] == [("pix2pix", "instance"), ("pix2pix", "nc")]
    assert all(r["step_ms"] > 0 for r in data["results"])
