"""Packaging hook: the wheel carries what a checkout has beside the package.

    cuda/*.{cpp,cu,cuh,h}                     -> gennorm/_csrc/    (built on the first CUDA call)
    models/NAME/{config.yaml,generator.safetensors,card.md}
                                              -> gennorm/_zoo/NAME/ (the released zoo; gennorm.zoo)
    assets/*.png                              -> gennorm/_assets/  (the demo's examples)

Everything else is in pyproject.toml. In a checkout (editable install) the package reads cuda/,
models/ and assets/ directly.
"""
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
ZOO_FILES = ("config.yaml", "generator.safetensors", "card.md")  # required; the training log travels too
ZOO_EXTRA = ("training_log.jsonl",)  # the demo's training curves (gennorm.zoo.TRAINING_LOG)


class build_py_with_data(build_py):
    def run(self):
        super().run()
        package = Path(self.build_lib) / "gennorm"
        self._copy(ROOT / "cuda", package / "_csrc", lambda p: p.suffix in (".cpp", ".cu", ".cuh", ".h"))
        self._copy(ROOT / "assets", package / "_assets", lambda p: p.suffix == ".png")
        models = ROOT / "models"
        for folder in sorted(models.iterdir()) if models.is_dir() else []:
            if all((folder / f).is_file() for f in ZOO_FILES):
                self._copy(folder, package / "_zoo" / folder.name, lambda p: p.name in ZOO_FILES + ZOO_EXTRA)

    def _copy(self, source: Path, target: Path, keep) -> None:
        if not source.is_dir():  # already copied (building from an unpacked sdist's layout)
            return
        target.mkdir(parents=True, exist_ok=True)
        for path in sorted(source.iterdir()):
            if path.is_file() and keep(path):
                self.copy_file(str(path), str(target / path.name))


setup(cmdclass={"build_py": build_py_with_data})
