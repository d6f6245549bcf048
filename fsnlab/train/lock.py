"""One writer per run directory: ``RUN/fsnlab.lock`` names the process that writes it.

``fsnlab train``, ``fsnlab train --resume`` and the study runner hold the lock while they write a
run directory, so a second writer (a resume started while the run still trains, two studies
sharing a run pool) is refused in one line instead of interleaving ``metrics.jsonl`` and
checkpoints. The lock file is JSON: the owner's ``pid``, ``host``, process start time, command
line and the UTC time it was taken. It appears atomically (a complete temporary file hard-linked
into place, which fails when a lock exists) and is removed when the writer exits, also on an
error or Ctrl-C. A lock left by a process that was killed (``kill -9``, a crashed node) is
*stale*: when its PID is no longer running on this host (or is now another process), the next
writer reports it and takes it over; a lock from another host is never taken over automatically.

The lock is re-entrant within a process: :func:`fsnlab.study.runner.train_one` holds it around
:func:`fsnlab.train.train`, which takes it again.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any, Iterator

from fsnlab.errors import ConfigError, RunLockedError

LOCK_NAME = "fsnlab.lock"

_HELD: dict[Path, int] = {}  # run directories this process holds -> nesting depth


def _host() -> str:
    return socket.gethostname()


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused PID apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:
        return stat.rsplit(")", 1)[1].split()[19]
    except IndexError:
        return None


def _running(pid: int, start_time: str | None) -> bool:
    """Whether ``pid`` is a live process on this host (and the same one, where start times are known)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, owned by someone else
    except OSError:
        return False
    now = _start_time(pid)
    return not (start_time and now and now != start_time)


def lock_path(run_dir: str | os.PathLike[str]) -> Path:
    return Path(run_dir) / LOCK_NAME


def read_lock(run_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The lock record of a run directory; None when it is not locked; ``{}`` when unreadable."""
    path = lock_path(run_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        record = json.loads(text)
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def live_holder(run_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The lock record of the process writing ``run_dir`` now, or None: not locked, an unreadable
    lock, or a stale one (its process on this host is gone). Another host's lock counts as live."""
    record = read_lock(run_dir)
    if not record or not isinstance(record.get("pid"), int):
        return None
    if record.get("host") != _host():
        return record
    return record if _running(record["pid"], record.get("start_time")) else None


def _describe(record: dict[str, Any]) -> str:
    since = f" since {record['since']}" if record.get("since") else ""
    return f"process {record.get('pid', '?')} on {record.get('host', '?')}{since}"


def _note(message: str) -> None:
    print(f"fsnlab: note: {message}", file=sys.stderr, flush=True)


def _acquire(run_dir: Path) -> None:
    path = lock_path(run_dir)
    pid = os.getpid()
    record = {
        "pid": pid,
        "host": _host(),
        "start_time": _start_time(pid),
        "since": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join(sys.argv),
    }
    tmp = run_dir / f".{LOCK_NAME}.{pid}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write to run directory {run_dir}: {exc.strerror or exc}") from None
    try:
        for _ in range(5):
            try:
                _link_or_create(tmp, path)
                return
            except FileExistsError:
                pass
            holder = read_lock(run_dir)
            if holder is None:
                continue  # released meanwhile: try again
            same_host = holder.get("host") == record["host"]
            holder_pid = holder.get("pid")
            if holder and not isinstance(holder_pid, int):
                holder = {}
            if holder and holder_pid == pid and same_host:
                return  # our own lock (a second session in this process)
            if holder and (not same_host or _running(holder_pid, holder.get("start_time"))):
                where = "" if same_host else (
                    f"; if no fsnlab runs there any more, delete {path}"
                )
                raise RunLockedError(
                    f"run directory {run_dir} is in use by {_describe(holder)} "
                    f"({holder.get('command') or 'fsnlab'}); wait for it to finish or stop it{where}"
                )
            # stale: the owner is gone (or the file is unreadable); take it over
            stale = path.with_name(f".{LOCK_NAME}.stale.{pid}")
            try:
                os.replace(path, stale)
            except FileNotFoundError:
                continue  # another process took it over first: look again
            stale.unlink(missing_ok=True)
            what = _describe(holder) if holder else "an unreadable lock file"
            _note(f"{run_dir} was locked by {what}, which is no longer running; taking over its lock")
        raise RunLockedError(f"run directory {run_dir}: could not take its lock {path} (contended)")
    finally:
        tmp.unlink(missing_ok=True)


def _link_or_create(tmp: Path, path: Path) -> None:
    """Put the complete file ``tmp`` at ``path`` unless ``path`` exists (FileExistsError then)."""
    try:
        os.link(tmp, path)
        return
    except FileExistsError:
        raise
    except OSError:
        pass  # no hard links on this filesystem: exclusive create instead
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(tmp.read_bytes())
        f.flush()
        os.fsync(f.fileno())


def _release(run_dir: Path) -> None:
    holder = read_lock(run_dir)
    if holder and holder.get("pid") == os.getpid() and holder.get("host") == _host():
        lock_path(run_dir).unlink(missing_ok=True)


def release_all() -> None:
    """Remove every lock this process holds (before an immediate exit, e.g. a second Ctrl-C)."""
    for run_dir in list(_HELD):
        try:
            _release(run_dir)
        except OSError:
            pass
    _HELD.clear()


@contextlib.contextmanager
def run_lock(run_dir: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold the lock of ``run_dir`` (which must exist) for the ``with`` block.

    Raises :class:`RunLockedError` (one line) when another live process holds it, and
    :class:`ConfigError` when the directory cannot be written."""
    key = Path(run_dir).resolve()
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield key
        finally:
            _HELD[key] -= 1
        return
    _acquire(Path(run_dir))
    _HELD[key] = 1
    try:
        yield key
    finally:
        if _HELD.pop(key, None) is not None:
            _release(key)
