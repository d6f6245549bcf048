"""A run directory on disk: where a new run goes, whether a folder holds one, and which files are
fsnlab's (what ``--overwrite`` may replace). The trainer (:mod:`fsnlab.train.trainer`) writes into
it; this module only names, checks, creates and clears it (docs/training.md, "Run directory")."""

from __future__ import annotations

import datetime
import json
import re
from pathlib import Path

from fsnlab.errors import ConfigError
from fsnlab.paths import check_writable
from fsnlab.train.checkpoint import LATEST_NAME
from fsnlab.train.lock import LOCK_NAME


def default_run_dir(preset: str) -> Path:
    """``runs/<preset>-<UTC timestamp>``, made unique."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    path = Path("runs") / f"{preset}-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = Path("runs") / f"{preset}-{stamp}-{n}"
    return path


# Files fsnlab writes into a run directory (what --overwrite may replace).
_RUN_FILES = re.compile(
    r"^(config\.json|environment\.json|environment-resume-\d+\.json|metrics\.jsonl|checkpoint(-\d+)?\.pt|"
    r"best\.pt|study-failure\.json|" + re.escape(LOCK_NAME) + r"|\..*\.tmp)$"
)


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` holds an fsnlab run: a checkpoint, or a ``config.json`` that fsnlab wrote."""
    if (path / LATEST_NAME).is_file():
        return True
    try:
        saved = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(saved, dict) and {"model", "train", "run"} <= set(saved)


def check_new_run_dir(run_dir: Path, overwrite: bool = False) -> None:
    """Refuse a place a new run cannot or must not be written to (one-line ConfigError)."""
    if run_dir.is_symlink() and not run_dir.exists():
        raise ConfigError(f"run directory {run_dir} is a broken symbolic link")
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"run directory {run_dir} is an existing file, not a directory; pick another --out")
    check_writable(run_dir, ConfigError, into=True)
    if not run_dir.is_dir():
        return
    if (run_dir / LATEST_NAME).exists() and not overwrite:
        raise ConfigError(
            f"{run_dir} already holds a run; continue it with --resume {run_dir}, pick another --out, "
            "or add --overwrite to replace it"
        )
    try:
        entries = sorted(p.name for p in run_dir.iterdir() if not _ignorable(p.name))
    except OSError as exc:
        raise ConfigError(f"cannot read run directory {run_dir}: {exc.strerror or exc}") from None
    if not entries or overwrite or is_run_dir(run_dir):
        return
    shown = ", ".join(entries[:3]) + (f" and {len(entries) - 3} more" if len(entries) > 3 else "")
    raise ConfigError(
        f"{run_dir} is not empty and not an fsnlab run directory (it holds {shown}); pick a new or empty --out, "
        "or add --overwrite to write the run into it (same-named files are replaced)"
    )


def _ignorable(name: str) -> bool:
    """Files that do not make a folder someone else's: the lock, temporary files, a study's failure record."""
    return name.startswith((LOCK_NAME, f".{LOCK_NAME}", ".fsnlab-write-test-")) or name == "study-failure.json"


def make_run_dir(run_dir: Path) -> bool:
    """Create the run directory; return whether it was created here."""
    if run_dir.is_dir():
        return False
    try:
        run_dir.mkdir(parents=True)
    except FileExistsError:
        if run_dir.is_dir():
            return False
        raise ConfigError(f"run directory {run_dir} is an existing file, not a directory; pick another --out") from None
    except OSError as exc:
        raise ConfigError(f"cannot create run directory {run_dir}: {exc.strerror or exc}") from None
    return True


def remove_if_empty(run_dir: Path) -> None:
    try:
        if run_dir.is_dir() and not any(run_dir.iterdir()):
            run_dir.rmdir()
    except OSError:
        pass


def clear_run_files(run_dir: Path) -> None:
    """Delete an earlier run's files (``--overwrite``); other files are left alone."""
    for path in run_dir.iterdir():
        if path.name != LOCK_NAME and _RUN_FILES.match(path.name) and path.is_file():
            path.unlink()
