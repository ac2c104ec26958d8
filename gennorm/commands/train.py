"""`gennorm train`: train from a preset or YAML config, resume a run, list presets."""
from __future__ import annotations

DESCRIPTION = """\
Train a pix2pix or CycleGAN model. CONFIG is a YAML file or a preset name (see --list);
KEY=VALUE overrides set dotted config keys (values parsed as YAML scalars).

The run directory (`out`) gets config.yaml (resolved), checkpoints/ (full state, atomic),
metrics.jsonl, samples/ + index.html, and TensorBoard events (tensorboard --logdir RUN).
Ctrl-C or SIGTERM finishes the step, writes a checkpoint and exits 0; --resume continues it.

examples:
  gennorm data scenes data/scenes
  gennorm train --list
  gennorm train pix2pix-nc out=runs/p2p-nc train.max_steps=2000
  gennorm train pix2pix-nc train.max_steps=2000 --print-config   # the resolved config, no training
  gennorm train pix2pix-nc --quick out=runs/p2p-quick   # CPU-sized: 64 px, 300 steps, minutes
  gennorm train cyclegan-pono-ms model.d_norm=convnorm out=runs/cg-pono train.amp=bf16
  gennorm train --resume runs/p2p-nc train.max_steps=4000
  torchrun --standalone --nproc_per_node=2 -m gennorm train pix2pix-nc out=runs/ddp
"""


def add_arguments(parser) -> None:
    parser.add_argument("config", nargs="?", help="YAML config file or preset name")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted config overrides")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue this run from its latest checkpoint")
    parser.add_argument("--list", action="store_true", help="list the presets and exit")
    parser.add_argument("--quick", action="store_true",
                        help="a CPU-sized profile of the preset: ResNet-6, ngf/ndf 16, 64 px, batch 4, 300 steps "
                             "(KEY=VALUE overrides still apply after it)")
    parser.add_argument("--print-config", action="store_true",
                        help="print the resolved config (preset or file, then KEY=VALUE; with --resume: the run's "
                             "config with the overrides) as YAML and exit without training")


def run(args) -> int:
    from gennorm.errors import ConfigError
    from gennorm.config import QUICK_OVERRIDES, config_text, list_presets, load_config

    if args.list:
        presets = list_presets()
        width = max(map(len, presets), default=0)
        for name, desc in presets.items():
            print(f"{name:<{width}}  {desc}")
        return 0
    from gennorm.train.loop import prepare_resume, train

    if args.quick and args.resume:
        raise ConfigError("--quick sets up a new run; a resumed run keeps its own config")
    if args.quick:
        args.overrides = [*QUICK_OVERRIDES, *args.overrides]

    if args.print_config:
        if args.resume:
            cfg = prepare_resume(args.resume, ([args.config] if args.config else []) + list(args.overrides))[0]
        elif args.config:
            cfg = load_config(args.config, args.overrides)
        else:
            raise ConfigError("--print-config: give a CONFIG (YAML file or preset name) or --resume RUN_DIR")
        print(config_text(cfg), end="")
        return 0
    if args.resume:
        overrides = ([args.config] if args.config else []) + list(args.overrides)
        run_dir = train(resume_dir=args.resume, overrides=overrides)
    else:
        if not args.config:
            raise ConfigError("give a CONFIG (YAML file or preset name; see gennorm train --list) or --resume RUN_DIR")
        run_dir = train(load_config(args.config, args.overrides))
    import os

    if os.environ.get("RANK", "0") != "0":
        return 0
    print(f"run directory: {run_dir}  (samples: {run_dir}/index.html; translate with "
          f"`gennorm translate {run_dir} INPUT OUTPUT`)")
    return 0
