"""`gennorm demo`: serve the Gradio side-by-side demo (gennorm.apps.demo) on 127.0.0.1.

The one entry point of the demo (`python apps/demo.py` calls it too). The app is the module
gennorm.apps.demo (it uses only gennorm's public API); gradio is imported when the verb runs,
not by `gennorm --help`. The verb checks its options (the zoo folder, the device) before
gradio starts, so a wrong one is one line. It runs in its own temp folder (gennorm.apps.tempdir),
removed on every way out, SIGTERM included; leftovers of dead demos are removed at start.
"""
from __future__ import annotations

import signal
import sys
from pathlib import Path

from gennorm.commands._types import device_or_auto, port, positive_int

DESCRIPTION = """\
Serve the Gradio demo: pick a model set of the zoo (baseline, PONO-MS, NC, ... trained on the
same task), upload a label map or pick an example, and see every model's translation side by
side with its inference time; an image slider compares an output with the input; a second tab
shows the metrics from the model cards. API endpoint: /translate (gradio_client).

Binds 127.0.0.1 (this machine only) unless --host says otherwise; there is no share link.
Runs on the GPU when there is one (--device cpu to keep it on the CPU).

examples:
  gennorm demo                                   # http://127.0.0.1:7860, the first zoo found (gennorm zoo list)
  gennorm demo --models path/to/models --port 8080
  gennorm demo --set my-p2p                      # open on another model set than the built-in scenes
  gennorm demo --host 0.0.0.0                    # reachable from other machines: be careful

from Python (server running):
  from gradio_client import Client, handle_file
  gallery, timings = Client("http://127.0.0.1:7860").predict(
      handle_file("assets/scene_labels_1.png"), "scenes", api_name="/translate")
"""

def add_arguments(parser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=port, default=7860, help="port (default 7860)")
    parser.add_argument("--models", default=None,
                        help="model zoo folder (default: $GENNORM_MODELS, ./models, the checkout's models/, "
                             "the installed zoo: the first with models; see gennorm zoo list)")
    parser.add_argument("--set", dest="model_set", metavar="NAME", default=None,
                        help="the model set the page opens on (default: the built-in zoo's set, scenes, when "
                             "present; see gennorm zoo list)")
    parser.add_argument("--device", type=device_or_auto, default="auto",
                        help="auto (default): cuda when available, else cpu")
    parser.add_argument("--concurrency", type=positive_int, default=1,
                        help="translations run at the same time (default 1; the rest wait in the queue)")


def run(args) -> int:
    from gennorm.errors import ConfigError, GennormError
    from gennorm.zoo import default_root, default_set, list_models, model_sets, zoo_roots

    models = Path(args.models) if args.models else default_root()
    if models is None:
        raise ConfigError("no model zoo found (looked in: " + ", ".join(map(str, zoo_roots())) + "); give --models DIR "
                          "(folders made by `gennorm export RUN_DIR models/NAME`)")
    if not models.is_dir():
        raise ConfigError(f"--models {models}: no such folder (a model zoo: one folder per model, "
                          "made by `gennorm export RUN_DIR models/NAME`)")
    if not list_models(models):
        raise ConfigError(f"--models {models}: no models in it (each needs config.yaml and generator.safetensors; "
                          "make one with `gennorm export RUN_DIR models/NAME`)")
    default_set(model_sets(models), args.model_set)  # a --set the zoo lacks: one line, before gradio starts
    from gennorm.devices import require_device

    require_device(args.device)
    from gennorm.apps.tempdir import base_dir, private_temp_dir, remove

    signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM stops like Ctrl-C: the temp folder is removed below
    try:
        folder = private_temp_dir()  # before gradio is imported: it reads GRADIO_TEMP_DIR then
    except OSError as err:
        raise _in_temp(err, base_dir()) from None
    try:
        from gennorm.apps import demo as app_module

        try:  # the start writes the examples' outputs into the temp folder (a full disk fails here)
            app = app_module.build_app(models, args.device, model_set=args.model_set)
        except OSError as err:
            raise _in_temp(err, folder) from None
        if args.host not in ("127.0.0.1", "localhost", "::1"):
            print(f"gennorm demo: serving on {args.host}: anyone who can reach this address can use the demo",
                  file=sys.stderr)
        try:
            app_module.launch(app, args.host, args.port, args.concurrency)
        except OSError as err:
            reason = str(err).split(". ")[0]
            raise GennormError(f"cannot serve on {args.host}:{args.port} ({reason}); pick another --port") from None
        app.close()
    finally:
        remove(folder)  # uploads and outputs of this session, on every way out (error, Ctrl-C, SIGTERM)
    return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _in_temp(err: OSError, folder) -> OSError:
    """A write that names no file (a full disk on an open file) was under the demo's temp folder:
    name it, so the one-line error (cli.describe_os_error) says where space is missing."""
    if err.filename is None:
        err.filename = f"the demo's temp folder {folder} ($GRADIO_TEMP_DIR, else TMPDIR/gradio)"
    return err
