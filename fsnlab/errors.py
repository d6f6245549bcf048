"""Typed exceptions. Library code raises these with a one-line, user-facing message;
only :mod:`fsnlab.cli` turns them into a line on stderr and a non-zero exit code."""


class FsnlabError(Exception):
    """Base class for every error fsnlab reports to a user."""


class ConfigError(FsnlabError):
    """An unknown preset, an invalid config field, or a config from an incompatible version."""


class DataError(FsnlabError):
    """A missing, empty, malformed or wrongly sized corpus."""


class CheckpointError(FsnlabError):
    """A missing, corrupt, unsafe or incompatible checkpoint."""


class TrainingError(FsnlabError):
    """Training cannot continue (e.g. a non-finite loss)."""


class RunLockedError(FsnlabError):
    """Another process is writing the run directory (it holds the directory's lock file)."""


def one_line(text: object) -> str:
    """``text`` (an exception's message, say) as a single line, nothing cut: the lines are joined
    with ``"; "`` and runs of whitespace become one space."""
    lines = [" ".join(line.split()) for line in str(text).splitlines()]
    return "; ".join(line for line in lines if line)
