"""Training: the pix2pix and CycleGAN objectives, the loop, checkpoints, export.

    from gennorm.config import load_config
    from gennorm.train import train
    run_dir = train(load_config("pix2pix-nc", ["train.max_steps=200", "out=runs/p2p"]))

Configs live in gennorm.config; translating with a trained run is gennorm.inference's.
"""
from gennorm._lazy import lazy_exports, names

__getattr__, __dir__, __all__ = lazy_exports(globals(), {
    **names("gennorm.train.loop", "train"),
    **names("gennorm.config", "Config", "load_config", "list_presets"),
})
