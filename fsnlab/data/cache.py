"""Small file helpers shared by the corpus loaders: the cache directory, atomic writes,
read-only memory maps and (memoised) md5 sums."""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

import numpy as np

from fsnlab.errors import DataError


def cache_dir() -> Path:
    """Where derived corpus files go: ``$FSNLAB_CACHE``, else ``$XDG_CACHE_HOME/fsnlab``,
    else ``~/.cache/fsnlab``. Not created here."""
    env = os.environ.get("FSNLAB_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "fsnlab"


def write_atomically(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Create ``path`` by calling ``write(f)`` on a temporary file in the same directory and
    renaming it into place, so readers never see a half-written file. Raises OSError when
    the directory cannot be written; other exceptions from ``write`` propagate after cleanup."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def memmap_bytes(path: Path) -> np.ndarray:
    """The whole file as a read-only 1-D uint8 memory map (DataError if it is empty)."""
    if path.stat().st_size == 0:
        raise DataError(f"corpus file {path} is empty (0 bytes)")
    return np.memmap(path, dtype=np.uint8, mode="r")


def file_md5(path: Path) -> str:
    """md5 hex digest of a file, memoised per (path, size, mtime) within the process."""
    st = path.stat()
    return _md5(str(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _md5(path: str, size: int, mtime_ns: int) -> str:  # size/mtime_ns are only cache keys
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()
