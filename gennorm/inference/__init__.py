"""Inference: load a generator from any source and translate images, tensors or folders with it.

    import gennorm
    t = gennorm.load("scenes-nc")                 # a zoo name, a models/ folder or a run directory
    out = t(pil_image)                            # same kind and size back (PIL, numpy or tensor)
    gennorm.inference.translate_folder(t, "data/scenes/paired/test", "out/", aligned=True)

MODEL is a run directory (gennorm train's `out`: config.yaml + checkpoints/, the latest readable
checkpoint, EMA weights when the run used EMA), a models/ folder (gennorm export: config.yaml +
generator.safetensors) or the name of a zoo model (gennorm.zoo.find_model). The network is
rebuilt from the saved config. Every verb that runs a generator (translate, eval --run, study,
quickstart, export) and the demo come through here.

Images are sized to what the generator accepts (a multiple of `net.size_multiple`: 4 for the
ResNets, 2**downs for the U-Nets) by bicubic resizing, and the output is resized back.

    translator.py  Translator: images / arrays / tensors through the generator, resizing to its size
                   grid, tiles (crops, margin, blending ramps for global-statistics norms)
    loading.py     load_translator (gennorm.load), resolve_model, reading a run's generator
                   (generator_name, RunWeights, run_generator_weights)
    folders.py     translate_folder (naming gennorm / junyanz), translate_test_split (eval --run),
                   streaming large images tile by tile into a PNG (write_png, streams, translate_streaming)
    pages.py       the folders' index.html (write_index, write_junyanz_index)
    export.py      graph exports: trace, export_program (torch.export .pt2), export_onnx
    release.py     a run as a models/ folder: export_run, write_card (`gennorm export`'s library side)

Importing gennorm.inference imports torch (`import gennorm` alone does not: gennorm.load and
gennorm.Translator are lazy exports).
"""
from gennorm.inference.export import export_onnx, export_program, trace
from gennorm.inference.folders import (MIN_SIDE, NAMINGS, streams, translate_folder, translate_streaming,
                                       translate_test_split, write_png)
from gennorm.inference.loading import (DIRECTIONS, GENERATOR_FILE, RunWeights, generator_name, load,
                                       load_translator, resolve_model, run_generator_weights)
from gennorm.inference.pages import write_index, write_junyanz_index
from gennorm.inference.release import FORMAT, export_run, write_card
from gennorm.inference.translator import Translator

__all__ = [
    "Translator",
    "load", "load_translator", "resolve_model", "generator_name", "RunWeights", "run_generator_weights",
    "GENERATOR_FILE", "DIRECTIONS",
    "translate_folder", "translate_test_split", "write_png", "streams", "translate_streaming", "MIN_SIDE", "NAMINGS",
    "write_index", "write_junyanz_index",
    "trace", "export_program", "export_onnx",
    "export_run", "write_card", "FORMAT",
]
