"""`gennorm zoo list | table`: the models gennorm finds, where, in which set, and their metrics."""
from __future__ import annotations

DESCRIPTION = """\
List the model zoo: every model folder in the places gennorm looks, first match wins for a name
(gennorm.load("NAME"), gennorm translate NAME ..., gennorm demo):

  $GENNORM_MODELS, ./models, the checkout's models/ (next to the package), the installed zoo

`table` prints the metrics of one zoo folder as a markdown table (the README's zoo table):
set, model, norm, the FID/KID protocol of the card, then every metric the cards have.

examples:
  gennorm zoo list
  GENNORM_MODELS=~/my-models gennorm zoo list
  gennorm zoo table --models models
"""


def add_arguments(parser) -> None:
    parser.add_argument("action", choices=("list", "table"), help="list: where each model is; table: metrics (markdown)")
    parser.add_argument("--models", metavar="DIR", help="table: the zoo folder (default: the first one found)")


def run(args) -> int:
    from gennorm.zoo import default_root, list_models, metrics_table, zoo_roots

    if args.action == "table":
        from pathlib import Path

        from gennorm.errors import ConfigError

        root = Path(args.models) if args.models else default_root()
        if root is None or not list_models(root):
            raise ConfigError(f"no models in {root or 'any zoo folder'}; give --models DIR (see gennorm zoo list)")
        headers, rows = metrics_table(list_models(root))
        def cell(v) -> str:  # PSNR-like values to 2 decimals, SSIM/LPIPS/KID-like to 4 significant digits
            if isinstance(v, float):
                return f"{v:.2f}" if abs(v) >= 10 else f"{v:.4g}"
            return "" if v is None else str(v)

        print("| " + " | ".join(headers) + " |")
        print("|" + "---|" * len(headers))
        for row in rows:
            print("| " + " | ".join(cell(v) for v in row) + " |")
        return 0

    roots = zoo_roots()
    if not roots:
        print("no model zoo found (set GENNORM_MODELS or run from a folder with models/)")
        return 0
    seen = set()
    for root in roots:
        infos = list_models(root)
        print(f"{root}  ({len(infos)} models)")
        for info in infos:
            shadowed = " (shadowed by an earlier folder)" if info.name in seen else ""
            metrics = ", ".join(f"{k} {v:g}" for k, v in list(info.metrics.items())[:3])
            print(f"  {info.name:<28} set {info.model_set:<16} {info.task:<9} {info.norm_label:<13} {metrics}{shadowed}")
            seen.add(info.name)
    return 0
