"""User-facing errors: the CLI prints their message (no traceback) and exits with `exit_code`."""


class GennormError(Exception):
    """A problem the user can fix (bad input, missing file, bad config). Exit code 2."""

    exit_code = 2


class DataError(GennormError, ValueError):
    """A dataset file or folder is missing, empty, corrupt or in the wrong layout."""


class ConfigError(GennormError, ValueError):
    """A config key is unknown or its value is not allowed."""


class CheckpointError(GennormError, ValueError):
    """A checkpoint does not match the network or run it is loaded into."""


class MissingWeightsError(GennormError, FileNotFoundError):
    """A metric network's weight file is not on disk (nothing is downloaded implicitly)."""
