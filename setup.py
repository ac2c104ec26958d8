"""Packaging hook: the wheel carries the C++/CUDA sources of cuda/ as gennorm/_csrc/.

Everything else is in pyproject.toml. gennorm/ops/extension.py compiles from gennorm/_csrc in an
installed package and from the repo's cuda/ in a checkout (editable install).
"""
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SUFFIXES = (".cpp", ".cu", ".cuh", ".h")


class build_py_with_csrc(build_py):
    def run(self):
        super().run()
        cuda = Path(__file__).resolve().parent / "cuda"
        if not cuda.is_dir():  # already copied (e.g. building from an unpacked wheel layout)
            return
        target = Path(self.build_lib) / "gennorm" / "_csrc"
        target.mkdir(parents=True, exist_ok=True)
        for source in sorted(cuda.iterdir()):
            if source.suffix in SUFFIXES:
                self.copy_file(str(source), str(target / source.name))


setup(cmdclass={"build_py": build_py_with_csrc})
