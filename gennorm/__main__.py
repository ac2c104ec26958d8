"""`python -m gennorm ...` is the same as the `gennorm` command."""
import sys

from gennorm.cli import main

sys.exit(main())
