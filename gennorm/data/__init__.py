"""Datasets in the standard CycleGAN/pix2pix layouts, preprocessing, and the built-in scenes.

    from gennorm.data import create_dataset, generate_scenes, load_image
    generate_scenes("data/scenes")                                   # or: gennorm data scenes data/scenes
    ds = create_dataset("aligned", "data/scenes/paired", crop_size=128, load_size=143)
    ds.set_epoch(epoch); item = ds[0]   # {"A": [3, H, W] in [-1, 1], "B": ..., "A_paths", "B_paths"}
"""
from gennorm._lazy import lazy_exports, names

__getattr__, __dir__, __all__ = lazy_exports(globals(), {
    **names("gennorm.data.factory", "create_dataset", "DATASET_MODES"),
    **names("gennorm.data.aligned", "AlignedDataset"),
    **names("gennorm.data.unaligned", "UnalignedDataset"),
    **names("gennorm.data.single", "SingleDataset"),
    **names("gennorm.data.images", "load_image", "check_image", "verify_image", "list_images", "is_image_file",
            "IMG_EXTENSIONS"),
    **names("gennorm.data.transforms", "PreprocessOptions", "TransformParams", "PREPROCESS_MODES", "apply_transform",
            "sample_params", "item_rng", "to_tensor", "to_image"),
    **names("gennorm.data.scenes", "generate_scenes", "render_scene"),
    "SCENE_CLASSES": "gennorm.data.scenes:CLASSES",
})
