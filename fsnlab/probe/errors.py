"""The probe's typed error (one-line, user-facing; :mod:`fsnlab.cli` turns it into exit code 2)."""

from fsnlab.errors import FsnlabError


class ProbeError(FsnlabError):
    """Bad probe input: empty text, text longer than the context without a stride, an existing or
    unknown output, or a model the probe cannot read."""
