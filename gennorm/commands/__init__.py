"""The `gennorm` verbs, one module each, named as the verb (`gennorm.cli.VERBS` maps them).

A verb module defines `DESCRIPTION` (help text with examples), `add_arguments(parser)` and
`run(args) -> int | None`: argument parsing, one call into the library, its one-line error
handling, nothing else. Importing one imports no torch, numpy, PIL or gradio (the library is
imported inside `run`), so `gennorm VERB --help` stays instant (tests/test_house.py).
"""
