"""`gennorm bench report`: Markdown tables from `gennorm bench layers` JSON files, and merging them.

The GPU run (tools/gpu_check.sh) writes one layer-bench file per dtype (each time-boxed on its
own) and one for the compiled candidate; this merges them into one file (e.g.
docs/bench_layers_cuda.json) and prints the README tables: each candidate's forward + backward
(and forward) time as a ratio to Conv2d + InstanceNorm2d measured in the same run, and each
kernel's share of copy bandwidth. Pure JSON: no torch import.

Run: gennorm bench report bench_layers_fp32.json bench_layers_bf16.json --merge docs/bench_layers_cuda.json
"""
from __future__ import annotations

import json
from pathlib import Path

from gennorm.atomic import atomic_write_json
from gennorm.errors import ConfigError


def load(paths) -> dict:
    """One report: the first file's header, every file's results in order (each tagged with its source)."""
    merged = None
    for path in paths:
        try:
            report = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ConfigError(f"{path}: not a readable bench layers JSON file ({err})") from None
        if "results" not in report or "baseline" not in report:
            raise ConfigError(f"{path}: not a `gennorm bench layers --json` file (no results/baseline)")
        rows = [{**row, "source": Path(path).name} for row in report["results"]]
        if merged is None:
            merged = {**report, "results": rows, "sources": [Path(path).name]}
            continue
        merged["results"] += rows
        merged["sources"].append(Path(path).name)
        merged["dtypes"] = list(dict.fromkeys(merged.get("dtypes", []) + report.get("dtypes", [])))
        merged["dtype"] = merged["dtypes"][0] if len(merged["dtypes"]) == 1 else merged["dtypes"]
    return merged


def ratio_table(report: dict, mode: str) -> str:
    """Rows (layer, batch, dtype), columns the candidates: ratio of `mode` median to the baseline's."""
    names = []
    for row in report["results"]:
        for name, entry in row["candidates"].items():
            if mode in entry and name != report["baseline"] and name not in names:
                names.append(name)
    head = f"| layer | batch | dtype | {report['baseline']} ms | " + " | ".join(names) + " |"
    lines = [head, "|" + "---|" * (4 + len(names))]
    for row in report["results"]:
        base = row["candidates"].get(report["baseline"], {}).get(mode, {}).get("median_ms")
        if base is None:
            continue
        cells = []
        for name in names:
            entry = row["candidates"].get(name, {})
            ratio = entry.get(mode, {}).get("ratio_vs_baseline")
            cells.append(f"{ratio:.2f}x" if ratio else "-")
        lines.append(f"| {row['layer']} | {row['batch']} | {row['dtype']} | {base:.3f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def kernel_table(report: dict) -> str:
    """Rows (layer, batch, dtype, kernel): MB moved, GB/s, % of copy, implementation."""
    lines = ["| layer | batch | dtype | kernel | MB | GB/s | % of copy | impl |", "|---|---|---|---|---|---|---|---|"]
    for row in report["results"]:
        for name, k in (row.get("kernels") or {}).items():
            if "gbps" in k:
                lines.append(f"| {row['layer']} | {row['batch']} | {row['dtype']} | {name} | {k['bytes'] / 1e6:.1f} | "
                             f"{k['gbps']:.0f} | {k['pct_of_copy']:.0f}% | {k['impl']} |")
            else:
                lines.append(f"| {row['layer']} | {row['batch']} | {row['dtype']} | {name} | {k['bytes'] / 1e6:.1f} | "
                             f"- | - | {k['status']} |")
    return "\n".join(lines) if len(lines) > 2 else "(no kernel rows)"


def run(args) -> int:
    report = load(args.files)
    print(f"{report['device_name']} ({report['device']}), torch {report['torch']}, CUDA {report.get('cuda')}, "
          f"{report['date']}; {args.mode} median as a ratio to {report['baseline']} of the same run\n")
    if report.get("copy_ceiling"):
        print(f"copy bandwidth ceiling: {report['copy_ceiling']['gbps']:.0f} GB/s\n")
    print(ratio_table(report, args.mode))
    print()
    print(kernel_table(report))
    if args.merge:
        atomic_write_json(args.merge, report)
        print(f"\nwrote {args.merge}")
    return 0
