"""`gennorm zoo list | table`: the models gennorm finds, where, in which set, and their metrics (gennorm.zoo)."""
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
    from pathlib import Path

    from gennorm.errors import ConfigError
    from gennorm.zoo import default_root, list_models, listing, markdown_table

    if args.action == "list":
        print(listing())
        return 0
    root = Path(args.models) if args.models else default_root()
    if root is None or not list_models(root):
        raise ConfigError(f"no models in {root or 'any zoo folder'}; give --models DIR (see gennorm zoo list)")
    print(markdown_table(list_models(root)))
    return 0
