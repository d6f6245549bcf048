"""Checkpoint files: atomic writes, weights-only loads, keep-last-K and best.

A checkpoint is one ``torch.save`` file holding only tensors and plain containers, so it always
loads with ``torch.load(path, weights_only=True)``. Its keys:

``format_version``, ``fsnlab_version``, ``model`` (the uncompiled module's state_dict),
``model_config`` (:func:`fsnlab.models.config_to_dict`), ``train_config`` (:class:`TrainConfig`
as a dict), ``optimizer`` (its state_dict), ``step``, ``tokens``, ``total_steps``, ``world_size``,
``rng`` (:func:`fsnlab.train.rng.capture_rng`), ``best_val_bpc``, ``best_step``, ``loss_window``
(the running sum and count of the not-yet-logged training losses), ``elapsed_s``.

A run directory holds ``checkpoint.pt`` (the latest), ``checkpoint-<step>.pt`` (the last K) and
``best.pt`` (lowest validation bpc). Every file appears by ``os.replace`` of a complete temporary
file, so a kill at any moment leaves the previous version readable.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from fsnlab.errors import CheckpointError, FsnlabError
from fsnlab.models import build_model, config_from_dict

FORMAT_VERSION = 1
LATEST_NAME = "checkpoint.pt"
BEST_NAME = "best.pt"
_STEP_FILE = re.compile(r"^checkpoint-(\d+)\.pt$")
REQUIRED_KEYS = ("format_version", "model", "model_config", "train_config", "step")


def resolve_checkpoint(path: str | os.PathLike[str]) -> Path:
    """A checkpoint file, or a run directory meaning its latest ``checkpoint.pt`` (``runs/latest``
    too, where it is a pointer file rather than a symlink: :mod:`fsnlab.train.latest`)."""
    from fsnlab.train.latest import follow_latest

    p = follow_latest(path)
    if p.is_dir():
        latest = p / LATEST_NAME
        if not latest.is_file():
            raise CheckpointError(f"run directory {p} has no {LATEST_NAME}")
        return latest
    if not p.is_file():
        raise CheckpointError(f"no checkpoint file or run directory at {p}")
    return p


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and sanity-check a checkpoint (weights-only); any failure is a one-line CheckpointError."""
    file = resolve_checkpoint(path)
    try:
        ckpt = torch.load(file, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for truncated, corrupt or unsafe files
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        problem = "corrupt, truncated or not a checkpoint"
        raise CheckpointError(f"cannot read checkpoint {file}: {problem} ({reason})") from None
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in REQUIRED_KEYS):
        raise CheckpointError(f"{file} is not an fsnlab checkpoint (missing keys)")
    if ckpt["format_version"] > FORMAT_VERSION:
        raise CheckpointError(
            f"{file} has checkpoint format {ckpt['format_version']}; this fsnlab reads up to {FORMAT_VERSION}"
        )
    return ckpt


def model_from_checkpoint(ckpt: dict[str, Any]) -> torch.nn.Module:
    """Rebuild the checkpoint's model (on CPU, in eval mode) with its saved weights."""
    try:
        model = build_model(config_from_dict(ckpt["model_config"]))
        model.load_state_dict(ckpt["model"])
    except FsnlabError as exc:
        raise CheckpointError(f"checkpoint model config is not usable: {exc}") from None
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(f"checkpoint weights do not fit its model config: {first}") from None
    return model.eval()


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file in the same directory, fsync, then rename over ``path``."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _atomic_copy(src: Path, dst: Path) -> None:
    """Make ``dst`` a second name for the finished file ``src`` (hard link; copy where unsupported)."""
    tmp = dst.with_name(f".{dst.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(dst.parent)


def _fsync_dir(directory: Path) -> None:
    """Persist a rename (POSIX); silently skipped where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def step_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """The ``checkpoint-<step>.pt`` files of a run, oldest first."""
    found = [(int(m.group(1)), p) for p in run_dir.iterdir() if (m := _STEP_FILE.match(p.name))]
    return sorted(found)


class CheckpointStore:
    """Writes a run's checkpoints: latest, the last ``keep`` step files, and best."""

    def __init__(self, run_dir: Path, keep: int) -> None:
        self.run_dir = run_dir
        self.keep = keep

    @property
    def latest(self) -> Path:
        return self.run_dir / LATEST_NAME

    def save(self, state: dict[str, Any], is_best: bool) -> Path:
        """Write ``state`` as the latest checkpoint (serialised once, then linked); return its path."""
        atomic_save(state, self.latest)
        if self.keep:
            _atomic_copy(self.latest, self.run_dir / f"checkpoint-{state['step']}.pt")
            for _, old in step_checkpoints(self.run_dir)[: -self.keep]:
                old.unlink(missing_ok=True)
        if is_best:
            _atomic_copy(self.latest, self.run_dir / BEST_NAME)
        return self.latest

    def discard_after(self, step: int) -> None:
        """Drop checkpoints newer than ``step`` (left by a timeline a resume abandons)."""
        for s, path in step_checkpoints(self.run_dir):
            if s > step:
                path.unlink()
        best = self.run_dir / BEST_NAME
        if best.is_file() and load_checkpoint(best)["step"] > step:
            best.unlink()
