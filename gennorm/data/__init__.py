"""Datasets in the standard CycleGAN/pix2pix layouts, preprocessing, and the built-in scenes.

    from gennorm.data import create_dataset, generate_scenes, load_image
    generate_scenes("data/scenes")                                   # or: gennorm data scenes data/scenes
    ds = create_dataset("aligned", "data/scenes/paired", crop_size=128, load_size=143)
    ds.set_epoch(epoch); item = ds[0]   # {"A": [3, H, W] in [-1, 1], "B": ..., "A_paths", "B_paths"}
"""
from gennorm.data.aligned import AlignedDataset
from gennorm.data.factory import DATASET_MODES, create_dataset
from gennorm.data.images import IMG_EXTENSIONS, check_image, is_image_file, list_images, load_image, verify_image
from gennorm.data.scene_layout import CLASSES as SCENE_CLASSES
from gennorm.data.scenes import generate_scenes, render_scene
from gennorm.data.single import SingleDataset
from gennorm.data.transforms import (
    PREPROCESS_MODES,
    PreprocessOptions,
    TransformParams,
    apply_transform,
    item_rng,
    sample_params,
    to_image,
    to_tensor,
)
from gennorm.data.unaligned import UnalignedDataset

__all__ = [
    "create_dataset", "DATASET_MODES", "AlignedDataset", "UnalignedDataset", "SingleDataset",
    "load_image", "check_image", "verify_image", "list_images", "is_image_file", "IMG_EXTENSIONS",
    "PreprocessOptions", "TransformParams", "PREPROCESS_MODES", "apply_transform", "sample_params",
    "item_rng", "to_tensor", "to_image", "generate_scenes", "render_scene", "SCENE_CLASSES",
]
