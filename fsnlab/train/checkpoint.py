"""Checkpoint files: atomic writes, weights-only loads, keep-last-K and best.

A checkpoint is one ``torch.save`` file holding only tensors and plain containers, so it always
loads with ``torch.load(path, weights_only=True)``. Its keys:

``format_version``, ``fsnlab_version``, ``model`` (the uncompiled module's state_dict),
``model_config`` (:func:`fsnlab.models.config_to_dict`), ``train_config`` (:class:`TrainConfig`
as a dict), ``optimizer`` (its state_dict), ``step``, ``tokens``, ``total_steps``, ``world_size``,
``rng`` (:func:`fsnlab.train.rng.capture_rng`), ``best_val_bpc``, ``best_step``, ``loss_window``
(the running sum and count of the not-yet-logged training losses), ``elapsed_s``.

Every checkpoint also holds ``checksum``: ``{"algorithm": "sha256", "digest": ...}`` over every
tensor's bytes (with its dtype and shape) and every plain value of the payload, walked in a fixed
order (:func:`payload_checksum`). :func:`load_checkpoint` recomputes it, so damage to the stored
weights is refused in one line instead of loading silently; checkpoints written before the
checksum existed load as before.

A run directory holds ``checkpoint.pt`` (the latest), ``checkpoint-<step>.pt`` (the last K) and
``best.pt`` (lowest validation bpc): independent files (never hard links, so damage to one is not
damage to all), each written to a temporary file in the same directory, fsynced and renamed into
place with ``os.replace``, so a kill at any moment leaves the previous version readable.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from fsnlab.errors import CheckpointError, FsnlabError, one_line
from fsnlab.models import build_model, config_from_dict

FORMAT_VERSION = 1
LATEST_NAME = "checkpoint.pt"
BEST_NAME = "best.pt"
_STEP_FILE = re.compile(r"^checkpoint-(\d+)\.pt$")
REQUIRED_KEYS = ("format_version", "model", "model_config", "train_config", "step")
CHECKSUM_KEY = "checksum"


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
    """Load and check a checkpoint (weights-only, checksum); any failure is a one-line CheckpointError."""
    file = resolve_checkpoint(path)
    try:
        ckpt = torch.load(file, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for truncated, corrupt or unsafe files
        raise CheckpointError(f"cannot read checkpoint {file}: {_load_failure(exc)}") from None
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in REQUIRED_KEYS):
        raise CheckpointError(f"{file} is not an fsnlab checkpoint (missing keys)")
    if not isinstance(ckpt["format_version"], int) or ckpt["format_version"] > FORMAT_VERSION:
        raise CheckpointError(
            f"{file} has checkpoint format {ckpt['format_version']}; this fsnlab reads up to {FORMAT_VERSION}"
        )
    verify_checksum(ckpt, file)
    return ckpt


def _load_failure(exc: Exception) -> str:
    """Why ``torch.load`` failed, in one line and in full (torch's advice to load unsafely left out)."""
    text = str(exc).strip()
    if isinstance(exc, pickle.UnpicklingError) and "WeightsUnpickler error:" in text:
        detail = text.split("WeightsUnpickler error:", 1)[1].split("Check the documentation of torch.load", 1)[0]
        detail = one_line(detail.split(" Please use `torch.serialization", 1)[0]).rstrip(".")
        if "Unsupported global" in detail:
            return f"not a weights-only checkpoint: it holds Python objects fsnlab never unpickles ({detail})"
        return f"corrupt, truncated or not a checkpoint (unpickling failed: {detail or type(exc).__name__})"
    return "corrupt, truncated or not a checkpoint (" + (one_line(text) or type(exc).__name__) + ")"


def payload_checksum(state: dict[str, Any]) -> str:
    """SHA-256 over the payload without its checksum: every tensor's dtype, shape and bytes and
    every plain value, walked in a fixed order (dict keys sorted)."""
    digest = hashlib.sha256()

    def walk(obj: Any) -> None:
        if isinstance(obj, torch.Tensor):
            t = obj.detach()
            digest.update(f"T{t.dtype}{tuple(t.shape)}:".encode())
            if t.numel():
                flat = t.to("cpu").contiguous().reshape(-1)
                digest.update(memoryview(flat.view(torch.uint8).numpy()))
        elif isinstance(obj, dict):
            digest.update(f"{{{len(obj)}:".encode())
            for key in sorted(obj, key=lambda k: (type(k).__name__, str(k))):
                digest.update(f"{key!r}=".encode())
                walk(obj[key])
            digest.update(b"}")
        elif isinstance(obj, (list, tuple)):
            digest.update(f"[{len(obj)}:".encode())
            for item in obj:
                walk(item)
            digest.update(b"]")
        else:
            digest.update(f"{type(obj).__name__}:{obj!r};".encode())

    walk({k: v for k, v in state.items() if k != CHECKSUM_KEY})
    return digest.hexdigest()


def with_checksum(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` plus its ``checksum`` entry (what :class:`CheckpointStore` writes)."""
    return {**state, CHECKSUM_KEY: {"algorithm": "sha256", "digest": payload_checksum(state)}}


def verify_checksum(ckpt: dict[str, Any], file: Path) -> None:
    """Refuse a checkpoint whose contents do not match its stored checksum (none stored: accepted)."""
    stored = ckpt.get(CHECKSUM_KEY)
    if stored is None:
        return  # written before checkpoints carried a checksum
    if not isinstance(stored, dict) or stored.get("algorithm") != "sha256" or payload_checksum(ckpt) != stored.get("digest"):
        raise CheckpointError(
            f"checkpoint {file} is corrupt: its contents do not match the sha256 checksum stored with them "
            "(damaged on disk or in transfer); use another checkpoint of the run"
        )


def model_from_checkpoint(ckpt: dict[str, Any]) -> torch.nn.Module:
    """Rebuild the checkpoint's model (on CPU, in eval mode) with its saved weights."""
    try:
        model = build_model(config_from_dict(ckpt["model_config"]))
        model.load_state_dict(ckpt["model"])
    except FsnlabError as exc:
        raise CheckpointError(f"checkpoint model config is not usable: {exc}") from None
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint weights do not fit its model config: {one_line(exc)}") from None
    return model.eval()


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file in the same directory, fsync, then rename over ``path``."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(buffer.getbuffer(), path)


def atomic_write_bytes(data: bytes | memoryview, path: Path) -> None:
    """Write ``data`` to ``.<name>.tmp`` next to ``path``, fsync it, rename it over ``path``, fsync the directory."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)


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


def checkpoint_step(path: Path) -> int | None:
    """The step of the checkpoint at ``path``, or None where it is missing or unreadable."""
    try:
        return int(load_checkpoint(path)["step"])
    except (CheckpointError, ValueError, TypeError):
        return None


def later_checkpoints(run_dir: Path, step: int, exclude: Path | None = None) -> list[tuple[str, int]]:
    """The readable checkpoints of ``run_dir`` past ``step`` (name, step): what resuming from an
    older checkpoint would replace."""
    found = []
    exclude = exclude.resolve() if exclude is not None else None
    for s, path in step_checkpoints(run_dir):
        if s > step and path.resolve() != exclude:
            found.append((path.name, s))
    for name in (LATEST_NAME, BEST_NAME):
        path = run_dir / name
        if path.is_file() and path.resolve() != exclude:
            s = checkpoint_step(path)
            if s is not None and s > step:
                found.append((name, s))
    return found


def newest_intact(run_dir: Path, exclude: Path | None = None) -> tuple[Path, int] | None:
    """The newest step checkpoint of ``run_dir`` that loads and matches its checksum."""
    exclude = exclude.resolve() if exclude is not None else None
    for s, path in reversed(step_checkpoints(run_dir)):
        if path.resolve() != exclude and checkpoint_step(path) is not None:
            return path, s
    return None


class CheckpointStore:
    """Writes a run's checkpoints: latest, the last ``keep`` step files, and best."""

    def __init__(self, run_dir: Path, keep: int) -> None:
        self.run_dir = run_dir
        self.keep = keep

    @property
    def latest(self) -> Path:
        return self.run_dir / LATEST_NAME

    def save(self, state: dict[str, Any], is_best: bool) -> Path:
        """Write ``state`` (with its checksum) as the latest checkpoint, as a step file and, when it
        is the best so far, as ``best.pt``: serialised once, written as independent files, each
        atomically (the latest first, so that no step file is ever newer than it). Returns the
        latest checkpoint's path."""
        buffer = io.BytesIO()
        torch.save(with_checksum(state), buffer)
        data = buffer.getbuffer()
        atomic_write_bytes(data, self.latest)
        if self.keep:
            atomic_write_bytes(data, self.run_dir / f"checkpoint-{state['step']}.pt")
            for _, old in step_checkpoints(self.run_dir)[: -self.keep]:
                old.unlink(missing_ok=True)
        if is_best:
            atomic_write_bytes(data, self.run_dir / BEST_NAME)
        return self.latest

    def remove_temporary(self) -> None:
        """Delete temporary files a killed writer left behind (the caller holds the run's lock)."""
        for path in self.run_dir.glob(".*.pt.tmp"):
            path.unlink(missing_ok=True)

    def discard_after(self, step: int) -> None:
        """Drop checkpoints newer than ``step`` (left by a timeline a resume abandons, ``--rewind``)."""
        for s, path in step_checkpoints(self.run_dir):
            if s > step:
                path.unlink()
        best = self.run_dir / BEST_NAME
        if best.is_file():
            best_step = checkpoint_step(best)
            if best_step is None or best_step > step:
                best.unlink()
