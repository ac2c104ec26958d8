"""`gennorm demo`: serve the Gradio side-by-side demo (apps/demo.py) on 127.0.0.1.

The app lives in the repository's `apps/demo.py` (DESIGN: apps/ holds the demo and uses only
gennorm's public API), outside the installed package. This verb finds it next to the package
(`<checkout>/gennorm/../apps/demo.py`, i.e. an editable install or running from the checkout),
else in `./apps/demo.py`, else in $GENNORM_APPS_DIR, and loads it by path. A non-editable
install without a checkout gets a one-line error saying where to run it from.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from gennorm.errors import ConfigError, GennormError

DESCRIPTION = """\
Serve the Gradio demo: pick a model set of the zoo (baseline, PONO-MS, NC, ... trained on the
same task), upload a label map or pick an example, and see every model's translation side by
side with its inference time; an image slider compares an output with the input; a second tab
shows the metrics from the model cards. API endpoint: /translate (gradio_client).

Binds 127.0.0.1 (this machine only) unless --host says otherwise; there is no share link.
Runs on the GPU when there is one (--device cpu to keep it on the CPU).
The app is apps/demo.py of the repository checkout (install with `pip install -e .`).

examples:
  gennorm demo                                   # http://127.0.0.1:7860, models from ./models
  gennorm demo --models path/to/models --port 8080
  gennorm demo --host 0.0.0.0                    # reachable from other machines: be careful

from Python (server running):
  from gradio_client import Client, handle_file
  gallery, timings = Client("http://127.0.0.1:7860").predict(
      handle_file("assets/scene_labels_1.png"), "scenes", api_name="/translate")
"""

APP_ENV = "GENNORM_APPS_DIR"
_MODULE_NAME = "gennorm_apps_demo"


def add_arguments(parser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--models", default=None,
                        help="model zoo folder (default: ./models if present, else the checkout's models/)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto (default): cuda when available, else cpu")
    parser.add_argument("--concurrency", type=int, default=1,
                        help="translations run at the same time (default 1; the rest wait in the queue)")


def find_app() -> Path:
    """Path of apps/demo.py: next to the package, in the working directory, or $GENNORM_APPS_DIR."""
    candidates = [Path(__file__).resolve().parent.parent / "apps", Path.cwd() / "apps"]
    if os.environ.get(APP_ENV):
        candidates.insert(0, Path(os.environ[APP_ENV]))
    for folder in candidates:
        if (folder / "demo.py").is_file():
            return folder / "demo.py"
    raise GennormError("the demo app (apps/demo.py) was not found: it ships with the repository, not the "
                       "installed package; run `gennorm demo` from the gennorm checkout (or `pip install -e .` "
                       f"there), or set {APP_ENV} to the checkout's apps/ folder")


def load_app_module(path: Path | None = None):
    """Import apps/demo.py by path (once per process) and return the module."""
    if _MODULE_NAME in sys.modules:
        return sys.modules[_MODULE_NAME]
    path = path or find_app()
    spec = importlib.util.spec_from_file_location(_MODULE_NAME, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[_MODULE_NAME] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[_MODULE_NAME]
        raise
    return module


def default_models_dir() -> Path:
    here = Path.cwd() / "models"
    return here if here.is_dir() else Path(__file__).resolve().parent.parent / "models"


def run(args) -> int:
    from gennorm.zoo import list_models

    models = Path(args.models) if args.models else default_models_dir()
    if not models.is_dir():
        raise ConfigError(f"--models {models}: no such folder (a model zoo: one folder per model, "
                          "made by `gennorm export RUN_DIR models/NAME`)")
    if not list_models(models):
        raise ConfigError(f"--models {models}: no models in it (each needs config.yaml and generator.safetensors; "
                          "make one with `gennorm export RUN_DIR models/NAME`)")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("--device cuda: no CUDA GPU is available here; use --device auto or cpu")
    if args.concurrency < 1:
        raise ConfigError(f"--concurrency must be >= 1, got {args.concurrency}")
    app_module = load_app_module()
    app = app_module.build_app(models, args.device)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"gennorm demo: serving on {args.host}: anyone who can reach this address can use the demo",
              file=sys.stderr)
    try:
        app_module.launch(app, args.host, args.port, args.concurrency)
    except OSError as err:
        reason = str(err).split(". ")[0]
        raise GennormError(f"cannot serve on {args.host}:{args.port} ({reason}); pick another --port") from None
    return 0
