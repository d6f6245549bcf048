"""``runs/latest``: a stable name for the newest run, so that docs can show literal commands.

``fsnlab train`` points ``<parent of the run dir>/latest`` at a new run: a relative symlink
(``latest -> fsn-small-20260101-120000``), replaced atomically (a new link under a temporary name,
then ``os.replace``). Where symlinks cannot be made (Windows without the privilege, some network
file systems), ``latest`` is instead a small text file holding the run directory's name, written
the same atomic way; every command that takes a run directory follows it (:func:`follow_latest`).
If neither can be written, or ``latest`` is something else (a real directory, a file of another
kind), it is left alone and :func:`point_latest` says why; training itself never fails on this.
"""

from __future__ import annotations

import os
from pathlib import Path

LATEST = "latest"
_MAX_POINTER_BYTES = 4096


def point_latest(run_dir: str | os.PathLike[str]) -> tuple[Path | None, str]:
    """Point ``<parent>/latest`` at ``run_dir``. Returns ``(path of latest, "")`` when done, or
    ``(None, reason)`` when it was left alone (one line, for a note; never raises)."""
    run = Path(run_dir)
    parent = run.parent
    link = parent / LATEST
    if run.name == LATEST:
        return None, f"the run directory itself is named {LATEST!r}"
    if link.exists() and not link.is_symlink() and not _is_pointer_file(link):
        return None, f"{link} exists and is not a link or pointer file written by fsnlab"
    tmp = parent / f".{LATEST}.{os.getpid()}.tmp"
    try:
        _remove_quietly(tmp)
        try:
            os.symlink(run.name, tmp, target_is_directory=True)
        except (OSError, NotImplementedError, AttributeError):
            _remove_quietly(tmp)
            tmp.write_text(run.name + "\n", encoding="utf-8")  # no symlinks here: a pointer file
        os.replace(tmp, link)
    except OSError as exc:
        _remove_quietly(tmp)
        return None, f"cannot write {link}: {exc.strerror or exc}"
    return link, ""


def follow_latest(path: str | os.PathLike[str]) -> Path:
    """``path``, or the run directory a ``latest`` pointer file names (a symlink needs no help)."""
    p = Path(path).expanduser()
    if _is_pointer_file(p):
        name = p.read_text(encoding="utf-8").strip()
        return p.parent / name
    return p


def _is_pointer_file(p: Path) -> bool:
    """A regular file named ``latest`` holding one line: the name of a sibling directory."""
    try:
        if p.name != LATEST or p.is_symlink() or not p.is_file() or p.stat().st_size > _MAX_POINTER_BYTES:
            return False
        name = p.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return False
    return bool(name) and "\n" not in name and "/" not in name and "\\" not in name and name not in (".", "..")


def _remove_quietly(p: Path) -> None:
    try:
        if p.is_symlink() or p.is_file():
            p.unlink()
    except OSError:
        pass
