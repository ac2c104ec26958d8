"""`gennorm zoo list`: the models gennorm finds, where, and in which set."""
from __future__ import annotations

DESCRIPTION = """\
List the model zoo: every model folder in the places gennorm looks, first match wins for a name
(gennorm.load("NAME"), gennorm translate NAME ..., gennorm demo):

  $GENNORM_MODELS, ./models, the checkout's models/ (next to the package), the installed zoo

examples:
  gennorm zoo list
  GENNORM_MODELS=~/my-models gennorm zoo list
"""


def add_arguments(parser) -> None:
    parser.add_argument("action", choices=("list",), help="list")


def run(args) -> int:
    from gennorm.zoo import list_models, zoo_roots

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
