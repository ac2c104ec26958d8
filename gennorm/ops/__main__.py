"""`python -m gennorm.ops build | status`: the same command as `gennorm ops` (gennorm/commands/ops.py).

An entry point, not part of the op: it sits at the top of the data flow with the other verbs.
"""
import sys

if __name__ == "__main__":
    from gennorm.cli import main

    sys.exit(main(["ops", *sys.argv[1:]]))
