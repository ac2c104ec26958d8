"""`gennorm eval`'s library side: two folders, or a run's test split translated first, measured.

Translating a run (gennorm.inference) and measuring (gennorm.metrics) are siblings of level 4,
so what joins them lives here, at level 5 with the study (which evaluates its runs the same way).
Prints the table, the notes and the warnings; writes the full result as JSON when asked.
"""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import torch

from gennorm.errors import ConfigError, GennormError, MissingWeightsError
from gennorm.inference import translate_test_split
from gennorm.metrics.evaluate import (PAIRED, evaluate_folders, missing_weights_message, parse_metrics,
                                      usable_metrics)
from gennorm.metrics.results import auto_metrics, check_writable, format_table, names_pair_up, write_json
from gennorm.train.wandb_sink import log_evaluation, read_run_id


def translate_run(run_dir: str | Path, device: str = "auto") -> tuple[str, str, bool]:
    """Translate the run's test split into RUN_DIR/eval/test_fake: (real, fake, paired)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise GennormError(f"run directory {run_dir} does not exist")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    split = translate_test_split(run_dir, run_dir / "eval" / "test_fake", device=device)
    return str(split["real"]), str(split["fake"]), bool(split.get("paired", False))


def evaluate(real: str | None = None, fake: str | None = None, *, run: str | None = None, metrics: str = "auto",
             json_path: str | None = None, device: str = "auto", **options) -> dict:
    """Evaluate FAKE against REAL (or RUN's translated test split); print the table; write json_path
    (with a run: default RUN/eval/metrics.json). `options` go to gennorm.metrics.evaluate_folders."""
    if json_path:
        check_writable(Path(json_path))
    paired, skipped = None, {}
    if run:
        real, fake, paired = translate_run(run, device)
        json_path = json_path or str(Path(run) / "eval" / "metrics.json")
    if metrics.strip().lower() == "auto":
        names, skipped = auto_metrics(names_pair_up(real, fake) if paired is None else paired,
                                      options.get("weights_dir"), options.get("verify_weights", True))
        if skipped:  # recorded in the result (and cards)
            print(f"note: skipping {', '.join(skipped)} (weights not on disk; see `gennorm weights status`)",
                  file=sys.stderr)
        if not names:
            raise ConfigError("no metric can run: the names of the two folders do not pair up (PSNR/SSIM/LPIPS) "
                              "and the Inception weights for FID/KID are missing; see `gennorm weights status`")
    else:
        names = parse_metrics(metrics)
        if paired is False and set(names) & set(PAIRED):
            raise ConfigError("this run's test split is unpaired (unaligned dataset): use --metrics fid,kid")
        names, missing = usable_metrics(names, options.get("weights_dir"), options.get("verify_weights", True))
        if missing:  # compute what can be computed; name every missing file once
            text = missing_weights_message(missing, options.get("weights_dir"))
            if not names:
                raise MissingWeightsError(f"nothing to compute: {text}")
            print(f"gennorm eval: warning: {text}", file=sys.stderr)
            skipped = {m: "weights not on disk" for m in missing}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # evaluate_folders returns its warnings; we print them once below
        result = evaluate_folders(real, fake, names, device=device, **options)
    if run:
        result["run"] = str(run)
    if skipped:
        result["skipped"] = skipped
    for text in result.get("warnings", []):
        print(f"gennorm eval: warning: {text}", file=sys.stderr)
    print(format_table(result))
    if json_path:
        write_json(Path(json_path), result)
        print(f"wrote {json_path}")
    if run and read_run_id(run) is not None:  # the run logs to W&B (train.wandb=true): add the results there
        try:
            print(f"logged to the W&B run {log_evaluation(run, result)} (summary eval/*)")
        except Exception as err:  # wandb missing or unreachable: the table and JSON above have the values
            print(f"gennorm eval: warning: not logged to W&B ({str(err).splitlines()[0] if str(err) else err!r})",
                  file=sys.stderr)
    return result
