"""train.wandb=true in W&B's offline mode (no network): a 2-step run logs its losses, lr and sample
grids to a W&B run whose id is kept in RUN/wandb.json; a resume continues that W&B run; without
wandb installed the request is one line."""
from __future__ import annotations

import json
import re
import sys

import pytest

from gennorm.cli import main

TINY = ["model.ngf=4", "model.ndf=4", "model.g_arch=resnet_6blocks", "data.load_size=36", "data.crop_size=32",
        "train.checkpoint_every=2", "train.sample_every=2", "train.log_every=1", "train.device=cpu",
        "train.progress=false", "train.num_samples=2"]


def _log_payloads(path) -> list[bytes]:
    """The records of a W&B transaction log (.wandb): a 7-byte header (":W&B", magic, version), then
    LevelDB's log format: 32 KiB blocks of chunks, each crc32 (4) + length (2) + type (1:
    full, 2: first, 3: middle, 4: last) + data; a block's tail shorter than 7 bytes is padding."""
    import struct

    raw = open(path, "rb").read()
    assert raw[:4] == b":W&B"
    payloads, pending, pos, block = [], b"", 7, 32768
    while pos + 7 <= len(raw):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", raw[pos:pos + 7])
        data, pos = raw[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 0 and length == 0:
            continue
        pending = data if kind in (1, 2) else pending + data
        if kind in (1, 4):
            payloads.append(pending)
    return payloads


def _records(wandb_file) -> list[dict]:
    """The history rows ({key: value}, with _step) in an offline run's .wandb log."""
    import wandb
    from wandb.proto import wandb_internal_pb2

    wandb.teardown()  # stops W&B's service process, which writes the log: all of it is on disk

    rows = []
    for data in _log_payloads(wandb_file):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        if record.WhichOneof("record_type") == "history":
            rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                         for item in record.history.item})
    return rows


def test_wandb_missing_is_one_line(scenes, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb raises ImportError
    run = tmp_path / "r"
    assert main(["train", "pix2pix-nc", f"out={run}", f"data.root={scenes / 'paired'}", "train.max_steps=1",
                 "train.wandb=true", *TINY]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install 'gennorm[wandb]'" in err and "train.wandb=false" in err
    assert not (run / "config.yaml").exists()


def _of_run(folder, run_id: str) -> bool:
    """W&B's offline folder of run `run_id`: offline-run-DATE_TIME-ID, with -N added when two open in one second."""
    return re.fullmatch(rf"offline-run-\d{{8}}_\d{{6}}-{re.escape(run_id)}(-\d+)?", folder.name) is not None


def test_offline_run_and_resume_continue_one_wandb_run(scenes, tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="wandb is not installed (pip install 'gennorm[wandb]')")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wb"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    (tmp_path / "wb").mkdir()
    run = tmp_path / "run"
    assert main(["train", "pix2pix-nc", f"out={run}", f"data.root={scenes / 'paired'}", "train.max_steps=2",
                 "train.wandb=true", "train.wandb_project=gennorm-test", "train.wandb_tags=a,b", *TINY]) == 0
    info = json.loads((run / "wandb.json").read_text())
    assert info["project"] == "gennorm-test" and info["name"] == "run" and info["tags"] == ["a", "b"]
    first = sorted((tmp_path / "wb" / "wandb").glob(f"offline-run-*-{info['id']}"))
    assert len(first) == 1
    rows = _records(next(first[0].glob("*.wandb")))
    losses = [r for r in rows if "loss/G_L1" in r]
    assert [r["_step"] for r in losses] == [1, 2]
    jsonl = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for row, rec in zip(losses, jsonl):
        assert row["loss/G_L1"] == pytest.approx(rec["G_L1"]) and row["lr"] == pytest.approx(rec["lr"])
    assert [r["_step"] for r in rows if "samples/path" in r] == [0, 2]  # the sample grids

    assert main(["train", "--resume", str(run), "train.max_steps=3"]) == 0
    assert json.loads((run / "wandb.json").read_text())["id"] == info["id"]
    runs = sorted((tmp_path / "wb" / "wandb").glob("offline-run-*"))
    assert len(runs) == 2 and all(_of_run(p, info["id"]) for p in runs)  # the same W&B run, continued
    resumed = [r for p in runs if p != first[0] for r in _records(next(p.glob("*.wandb"))) if "loss/G_L1" in r]
    assert [r["_step"] for r in resumed] == [3]

    # `gennorm eval --run RUN` adds its results to the same W&B run's summary
    from gennorm.train.wandb_sink import log_evaluation
    from wandb.proto import wandb_internal_pb2

    assert log_evaluation(run, {"metrics": {"psnr": 12.5, "ssim": 0.25}}) == info["id"]
    third = [p for p in sorted((tmp_path / "wb" / "wandb").glob("offline-run-*")) if p not in runs]
    assert len(third) == 1 and _of_run(third[0], info["id"])
    _records(next(third[0].glob("*.wandb")))  # flushes the log
    summary = {}
    for data in _log_payloads(next(third[0].glob("*.wandb"))):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        if record.WhichOneof("record_type") == "summary":
            summary.update({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                            for item in record.summary.update})
    assert summary.get("eval/psnr") == 12.5 and summary.get("eval/ssim") == 0.25
