"""Training: configs, the pix2pix and CycleGAN objectives, the loop, checkpoints, translation.

    from gennorm.train import load_config, train, translate_folder, load_translator
    run_dir = train(load_config("pix2pix-nc", ["train.max_steps=200", "out=runs/p2p"]))
    translate_folder(run_dir, "data/scenes/paired/test", "out/", aligned=True)
"""
from gennorm.train.config import Config, list_presets, load_config
from gennorm.train.loop import train
from gennorm.train.translate import Translator, load_translator, translate_folder

__all__ = ["Config", "load_config", "list_presets", "train", "Translator", "load_translator", "translate_folder"]
