"""Source-code corpora: the ``*.py`` files under a directory (default: the running Python's
standard library) or an explicit file list, joined with a separator byte and cached on disk."""

from __future__ import annotations

import hashlib
import os
import sysconfig
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from fsnlab.data.cache import cache_dir, file_md5, memmap_bytes, write_atomically
from fsnlab.errors import DataError

SEPARATOR = b"\x1e"  # ASCII "record separator", placed between consecutive files
EXCLUDED_DIRS = frozenset({"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"})
ORDER_SALT = b"fsnlab-code-order-v1\x00"
ORDER_RULE = (
    "directory: *.py files found under the root, skipping any directory named "
    + ", ".join(sorted(EXCLUDED_DIRS))
    + "; sorted by sha256(salt + relative POSIX path), ties by path (a fixed pseudo-random shuffle); "
    "explicit file list: in the order given"
)


def stdlib_dir() -> Path:
    """The running Python's standard library directory."""
    return Path(sysconfig.get_paths()["stdlib"]).resolve()


def shuffled(relpaths: list[str]) -> list[str]:
    """The fixed pseudo-random file order: by salted sha256 of each relative path."""
    return sorted(relpaths, key=lambda p: (hashlib.sha256(ORDER_SALT + p.encode()).digest(), p))


def find_sources(root: Path) -> list[str]:
    """Relative POSIX paths of the ``*.py`` files under ``root`` (excluded directories pruned,
    symlinked directories not followed), in :func:`shuffled` order."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in EXCLUDED_DIRS]
        for filename in filenames:
            full = Path(dirpath, filename)
            if filename.endswith(".py") and full.is_file():
                found.append(full.relative_to(root).as_posix())
    return shuffled(sorted(found))


def load_code(arg: str) -> tuple[str, np.ndarray, dict[str, Any]]:
    """(normalised name, bytes, description) for ``code``, ``code:DIR`` or ``code:F1,F2,...``."""
    if not arg:
        root: Path | None = stdlib_dir()
        name = "code"
    else:
        parts = [p.strip() for p in arg.split(",") if p.strip()]
        paths = [Path(p).expanduser().resolve() for p in parts]
        for path in paths:
            if not path.exists():
                raise DataError(f"code corpus path not found: {path}")
        if len(paths) == 1 and paths[0].is_dir():
            root = paths[0]
            name = f"code:{root}"
        else:
            for path in paths:
                if not path.is_file():
                    raise DataError(f"code corpus list entries must be files, not directories: {path}")
            root = None
            name = "code:" + ",".join(str(p) for p in paths)

    if root is not None:
        if not root.is_dir():
            raise DataError(f"code corpus directory not found: {root}")
        files = [(rel, root / rel) for rel in find_sources(root)]
        if not files:
            raise DataError(f"no *.py files under {root} (after excluding test directories)")
    else:
        files = [(str(p), p) for p in paths]

    data, cache_path = _concatenation(root, files)
    description = {
        "kind": "code",
        "source": str(root) if root is not None else [str(p) for _, p in files],
        "n_files": len(files),
        "separator": "0x1E (one byte between consecutive files)",
        "file_order": ORDER_RULE,
        "cache": str(cache_path) if cache_path is not None else None,
        "md5": file_md5(cache_path) if cache_path is not None else hashlib.md5(data.tobytes()).hexdigest(),
    }
    return name, data, description


def _concatenation(root: Path | None, files: list[tuple[str, Path]]) -> tuple[np.ndarray, Path | None]:
    """The joined bytes, memory-mapped from ``cache_dir()/code/<key>.bin``; the key hashes the
    root, the ordered file list and each file's size and mtime. Falls back to memory when the
    cache directory is not writable."""
    key = hashlib.sha256(f"fsnlab-code-v1\x00{root}\x00".encode())
    expected = len(SEPARATOR) * (len(files) - 1)
    for rel, path in files:
        st = path.stat()
        expected += st.st_size
        key.update(f"{rel}\x00{st.st_size}\x00{st.st_mtime_ns}\x00".encode())
    if expected == 0:
        raise DataError(f"code corpus is empty: {len(files)} file(s) with 0 bytes")
    cache_path = cache_dir() / "code" / f"{key.hexdigest()[:24]}.bin"
    if cache_path.is_file() and cache_path.stat().st_size == expected:
        return memmap_bytes(cache_path), cache_path
    try:
        write_atomically(cache_path, lambda f: _write_joined(files, f))
        return memmap_bytes(cache_path), cache_path
    except OSError:
        chunks = [path.read_bytes() for _, path in files]
        return np.frombuffer(SEPARATOR.join(chunks), dtype=np.uint8), None


def _write_joined(files: list[tuple[str, Path]], out: BinaryIO) -> None:
    for i, (_, path) in enumerate(files):
        if i:
            out.write(SEPARATOR)
        out.write(path.read_bytes())
