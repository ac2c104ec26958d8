"""`gennorm study`: train and evaluate a grid of norms x batch sizes x seeds, then write a report
(gennorm.study.runner.run_study).
"""
from __future__ import annotations

DESCRIPTION = """\
Train the same architecture with a list of norms x batch sizes x seeds on the built-in scenes
task (paired and unpaired), evaluate every run, and write OUT/report.md with tables, plots and
an image grid. Finished runs are skipped and cut-off runs resume, so re-running the command
continues an interrupted study, and on a finished study only regenerates the report.

examples:
  gennorm study small                          # the default CPU setting (<= 60 min on 2 cores)
  gennorm study full out=studies/full          # the GPU setting (ResNet-9, 256 px)
  gennorm study small norms=instance,nc batch_sizes=1 seeds=0 train.max_steps=20
  gennorm study full --shard 0/4               # one of four disjoint slices (GPUs or machines)
  gennorm study small --report-only            # rebuild the report from finished runs
  gennorm study small --report docs/study.md   # the report (and docs/study_files/) somewhere else
"""


def add_arguments(parser) -> None:
    parser.add_argument("config", nargs="?", default="small", help="study preset (small, full) or YAML file")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="study keys (norms=a,b  batch_sizes=1,2  seeds=0,1  out=DIR) or training keys "
                             "(train.max_steps=50) applied to every run")
    parser.add_argument("--shard", default="0/1", metavar="I/N", help="run only slice I of N (0-based)")
    parser.add_argument("--report-only", action="store_true", help="do not train; rebuild the report")
    parser.add_argument("--report", metavar="FILE", help="where to write the report (default OUT/report.md); "
                        "figures go to FILE's stem + _files/ beside it")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    from gennorm.study.runner import run_study

    run_study(args.config, args.overrides, args.shard, args.report_only, args.report, progress=not args.no_progress)
    return 0
