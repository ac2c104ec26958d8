"""The `gennorm` command: one verb per module, gennorm/commands/VERB.py, imported only when that verb runs.

Each verb module defines `DESCRIPTION` (help text with examples), `add_arguments(parser)` and
`run(args) -> int | None`. User errors (`GennormError`) print one line and exit with their code;
a file that cannot be read or written (OSError: permissions, full disk) and any other error print
one line too and exit 2; Ctrl-C exits 130. GENNORM_DEBUG=1 shows the traceback instead.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

# verb -> (module: gennorm.commands.VERB, one-line summary). Order is the order of `gennorm --help`.
VERBS: dict[str, tuple[str, str]] = {
    "quickstart": ("gennorm.commands.quickstart", "the main job on the built-in data, end to end (CPU, offline)"),
    "data": ("gennorm.commands.data", "write the built-in scenes dataset (paired and unpaired layouts)"),
    "train": ("gennorm.commands.train", "train a CycleGAN or pix2pix model from a config or preset"),
    "translate": ("gennorm.commands.translate", "translate a folder of images with a run dir or a models/ folder"),
    "eval": ("gennorm.commands.eval", "FID, KID, LPIPS, PSNR, SSIM between two folders"),
    "weights": ("gennorm.commands.weights", "status / fetch of the metric networks' weight files"),
    "nets": ("gennorm.commands.nets", "architecture summaries: layers, output shapes, parameters"),
    "bench": ("gennorm.commands.bench", "benchmarks: bench layers, train, generator, profile, metrics, report"),
    "export": ("gennorm.commands.export", "export a run dir as a models/ folder (safetensors + card)"),
    "demo": ("gennorm.commands.demo", "the Gradio side-by-side demo on 127.0.0.1"),
    "ops": ("gennorm.commands.ops", "build or inspect the compiled CUDA kernels (gennorm ops build / status)"),
    "zoo": ("gennorm.commands.zoo", "list the model zoo: which models, where (gennorm zoo list)"),
    "import": ("gennorm.commands.import", "a pytorch-CycleGAN-and-pix2pix checkpoint as a model folder"),
    "study": ("gennorm.commands.study", "train and evaluate a grid of norms x batch sizes x seeds, write a report"),
}


def _top_help() -> str:
    width = max(map(len, VERBS))
    lines = ["usage: gennorm VERB [options]   (gennorm VERB --help for each verb's options and examples)", "", "verbs:"]
    lines += [f"  {verb:<{width}}  {summary}" for verb, (_, summary) in VERBS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_top_help())
        return 0
    if argv[0] == "--version":
        from gennorm import __version__

        print(__version__)
        return 0
    verb, rest = argv[0], argv[1:]
    if verb not in VERBS:
        from gennorm.errors import did_you_mean  # torch-free

        print(f"gennorm: unknown verb {verb!r}{did_you_mean(verb, VERBS)}; known verbs: {', '.join(VERBS)}",
              file=sys.stderr)
        return 2

    from gennorm.errors import GennormError

    module = importlib.import_module(VERBS[verb][0])
    parser = argparse.ArgumentParser(
        prog=f"gennorm {verb}",
        description=module.DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    module.add_arguments(parser)
    try:  # options may come between KEY=VALUE positionals (`gennorm train cfg --resume x k=v`)
        args = parser.parse_intermixed_args(rest)
    except TypeError:  # parsers with subcommands cannot intermix; they parse normally
        args = parser.parse_args(rest)
    debug = os.environ.get("GENNORM_DEBUG", "") not in ("", "0")
    try:
        code = module.run(args)
    except GennormError as err:
        if debug:
            raise
        message = str(err).removeprefix(f"gennorm {verb}: ")  # library messages may name the verb for API callers
        print(f"gennorm {verb}: error: {_one_line(message)}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"gennorm {verb}: interrupted", file=sys.stderr)
        return 130
    except OSError as err:  # a file or folder we could not read or write (permissions, full disk, ...)
        if debug:
            raise
        print(f"gennorm {verb}: error: {describe_os_error(err, _destination(args))}", file=sys.stderr)
        return 2
    except Exception as err:  # a bug or an unforeseen input: still one line, the traceback on request
        if debug:
            raise
        print(f"gennorm {verb}: error: unexpected {type(err).__name__}: {_one_line(str(err))} "
              f"(GENNORM_DEBUG=1 shows the traceback; please report it)", file=sys.stderr)
        return 2
    return int(code or 0)


def _one_line(text: str, limit: int = 400) -> str:
    text = " ".join(part.strip() for part in text.splitlines() if part.strip())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# the options and positionals that name where a verb writes, most specific first
_WRITES = ("json", "output", "out", "report", "merge")


def _destination(args: argparse.Namespace) -> str | None:
    """Where this verb writes (OUTPUT, --out, --json, ...): named when an OSError does not say which file."""
    for name in _WRITES:
        value = getattr(args, name, None)
        if isinstance(value, (str, os.PathLike)) and str(value):
            return str(value)
    return None


def describe_os_error(err: OSError, destination: str | None = None) -> str:
    """'PATH: No space left on device; free space there ...' for an OSError from a read or write.

    An error from a write on an open file (a full disk, a quota) carries no file name; then the
    verb's output (`destination`) is named: 'a file under out/maps: No space left on device'."""
    from gennorm.errors import os_error_hint

    if err.filename is not None:
        where = str(err.filename)
    elif destination:
        where = f"a file under {destination}"
    else:
        where = "a file"
    reason = err.strerror or _one_line(str(err))
    return f"{where}: {reason}{os_error_hint(err)}"


if __name__ == "__main__":
    sys.exit(main())
