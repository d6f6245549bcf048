"""Output paths checked before any work: every command that writes calls :func:`check_writable`
first, so a read-only filesystem, a path under ``/proc``, or a parent that is a file is one line
(exit 2) instead of a traceback after minutes of computing."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from fsnlab.errors import FsnlabError


def check_writable(path: str | os.PathLike[str], error: type[FsnlabError] = FsnlabError, *, into: bool = False) -> None:
    """Raise ``error`` (one line) unless ``path`` can be created next to its siblings: its nearest
    existing ancestor must be a directory in which a file can be made (tried with a temporary file,
    removed at once: permission bits alone do not tell, e.g. for root or on a read-only mount).
    ``into``: ``path`` is a directory that is written into (a run or study directory); when it
    exists, the test file is made inside it."""
    target = Path(path).expanduser()
    if into and target.is_dir():
        ancestor = target
    else:
        ancestor = target.parent
        while not ancestor.exists() and not ancestor.is_symlink() and ancestor != ancestor.parent:
            ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise error(f"cannot write {target}: {ancestor} is a file, not a directory")
    try:
        fd, name = tempfile.mkstemp(prefix=".fsnlab-write-test-", dir=ancestor)
    except OSError as exc:
        raise error(f"cannot write {target}: {ancestor} is not writable ({exc.strerror or exc})") from None
    os.close(fd)
    try:
        os.unlink(name)
    except OSError:
        pass
