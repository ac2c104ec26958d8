"""User-facing errors: the CLI prints their message (no traceback) and exits with `exit_code`."""
import errno


def did_you_mean(name: str, choices) -> str:
    """' (did you mean 'x'?)' for the closest of `choices` to a misspelt `name`, or '' (difflib)."""
    import difflib

    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


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


def os_error_hint(err: OSError, todo: str = "") -> str:
    """'; what to do' about an OSError, to append to a message naming the path and the reason."""
    actions = {errno.ENOSPC: "free space there or choose another folder",
               errno.EDQUOT: "free space there or choose another folder",
               errno.EROFS: "choose a writable folder",
               errno.EACCES: "choose a folder you may use, or change its permissions",
               errno.EPERM: "choose a folder you may use, or change its permissions",
               errno.ENOENT: "check the path", errno.ENOTDIR: "check the path", errno.EISDIR: "check the path"}
    action = todo or actions.get(err.errno, "")
    return f"; {action}" if action else ""


def write_error(what: str, err: OSError, todo: str = "") -> "GennormError":
    """A GennormError for a failed write: 'cannot write WHAT (PATH: reason); todo'."""
    name = str(err.filename) if err.filename is not None else ""
    where = f"{name}: " if name and name not in what and not name.endswith(".tmp") else ""
    reason = err.strerror or str(err).splitlines()[0]
    return GennormError(f"cannot write {what} ({where}{reason}){os_error_hint(err, todo)}")
