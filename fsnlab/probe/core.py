"""``probe`` and ``probe_to_file``: run text through a model and write what the network *is* (spec
§10) as a self-describing xarray dataset.

The work is one loop over batches of windows (:func:`iter_probe`): each batch runs through the hook
points (:mod:`fsnlab.probe.capture`) and becomes a dataset along ``sample``; the first also carries
the weight readings (:mod:`fsnlab.probe.weights`) and the global attributes. A writer
(:mod:`fsnlab.probe.writers`) either collects the batches (``probe``) or streams them to a zarr or
netCDF file (``probe_to_file``), so memory stays bounded by one batch.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import sys
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import xarray as xr
from tqdm import tqdm

from fsnlab import __version__
from fsnlab.models import config_to_dict
from fsnlab.models.kernel import SIGN_CONVENTION
from fsnlab.probe.capture import CaptureSettings, batch_variables
from fsnlab.probe.errors import ProbeError
from fsnlab.probe.options import ProbeOptions
from fsnlab.probe.schema import annotate, schema_json
from fsnlab.probe.text import ProbeText, as_probe_text, char_labels, window_starts
from fsnlab.probe.weights import static_dataset
from fsnlab.probe.writers import MemoryWriter, check_output, open_writer

NOT_APPLICABLE = (
    "not applicable: a transformer has no phases, order parameters or coupling kernel; this dataset holds "
    "per-token loss, characters, residual-stream norms and (with attention) the top-k attention weights"
)
DESCRIPTION = (
    "Probe of a Frustrated Synchronization Network (spec: Nunley, Attention as Frustrated Synchronization). "
    "Per window (sample) and position: input bytes and characters, next-byte loss in bits, token phases "
    "after every stage (theta, wrapped to [-pi, pi)), the Daido order parameters of the attended tokens "
    "and of their successors (Z_real/Z_imag; R and psi for n = 1), the global order parameter per stage, "
    "the force, the data's transitions, and the delay = Kuramoto-Sakaguchi identity evaluated on this run. "
    "Read from weights: the coupling kernel c, d with its Sakaguchi angles and signed Daido amplitudes, the "
    "coupling function on a grid, step sizes and temperatures. See the schema attribute and docs/probe.md."
)


def probe(
    model: torch.nn.Module,
    text: bytes | str | ProbeText,
    *,
    progress: bool = False,
    **options: Any,
) -> xr.Dataset:
    """Probe ``model`` on ``text`` and return the whole dataset in memory (for notebooks).

    ``options`` are the fields of :class:`ProbeOptions` (``stride``, ``attention``, ``top_k``,
    ``batch_size``, ``identity_positions``, ``grid_size``). For long texts prefer
    :func:`probe_to_file`, which streams to disk.
    """
    writer = MemoryWriter()
    for batch in iter_probe(model, text, ProbeOptions(**options), progress=progress):
        writer.append(batch)
    return writer.result()


def probe_to_file(
    checkpoint: str | os.PathLike[str],
    text: bytes | str | ProbeText,
    out: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    progress: bool = False,
    command: str | None = None,
    **options: Any,
) -> Path:
    """Probe the checkpoint (file or run directory) on ``text`` and stream the dataset to ``out``.

    The format follows the extension: ``.zarr`` or ``.nc`` (netCDF-4). Returns the written path.
    The checkpoint is read weights-only (:func:`fsnlab.train.checkpoint.load_checkpoint`).
    """
    opts = ProbeOptions(**options).validate()
    text = as_probe_text(text)
    check_output(Path(out).expanduser(), overwrite)  # fail before any work
    model, provenance = load_probe_model(checkpoint)
    history = command or f"fsnlab.probe.probe_to_file({str(checkpoint)!r}, out={str(out)!r})"
    return write_probe(model, text, out, opts, overwrite=overwrite, progress=progress, provenance=provenance, history=history)


def load_probe_model(checkpoint: str | os.PathLike[str]) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The checkpoint's model (CPU, eval mode) and its provenance attributes."""
    from fsnlab.train.checkpoint import load_checkpoint, model_from_checkpoint, resolve_checkpoint

    file = resolve_checkpoint(checkpoint)
    ckpt = load_checkpoint(file)
    return model_from_checkpoint(ckpt), checkpoint_provenance(file, ckpt)


def write_probe(
    model: torch.nn.Module,
    text: bytes | str | ProbeText,
    out: str | os.PathLike[str],
    options: ProbeOptions,
    *,
    overwrite: bool = False,
    progress: bool = False,
    provenance: dict[str, Any] | None = None,
    history: str = "fsnlab.probe.write_probe",
) -> Path:
    """Stream the probe of ``model`` on ``text`` to ``out`` (``.zarr`` or ``.nc``); return the path."""
    writer = open_writer(out, overwrite)
    try:
        for batch in iter_probe(model, text, options, progress=progress, provenance=provenance, history=history):
            writer.append(batch)
        return writer.close()
    except BaseException:
        writer.abort()
        raise


def checkpoint_provenance(file: Path, ckpt: dict[str, Any]) -> dict[str, Any]:
    """Attributes identifying the checkpoint: SHA-256 of the file, step, version, seed, data spec."""
    digest = hashlib.sha256()
    with open(file, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    train_config = ckpt.get("train_config") or {}
    return {
        "checkpoint_sha256": digest.hexdigest(),
        "checkpoint_step": int(ckpt.get("step", -1)),
        "checkpoint_fsnlab_version": str(ckpt.get("fsnlab_version", "unknown")),
        "seed": int(train_config["seed"]) if "seed" in train_config else "unknown",
        "train_data": str(train_config.get("data", "unknown")),
    }


def iter_probe(
    model: torch.nn.Module,
    text: bytes | str | ProbeText,
    options: ProbeOptions,
    *,
    progress: bool = False,
    provenance: dict[str, Any] | None = None,
    history: str = "fsnlab.probe.probe",
) -> Iterator[xr.Dataset]:
    """Yield the probe dataset batch by batch along ``sample``; the first batch carries the static
    variables and the global attributes."""
    options = options.validate()
    text = as_probe_text(text)
    model = getattr(model, "_orig_mod", model)  # a torch.compile wrapper: probe the uncompiled module
    cfg = getattr(model, "config", None)
    if getattr(cfg, "family", None) not in ("fsn", "transformer"):
        raise ProbeError("the probe reads fsnlab models (FSN, FSN-MF, transformer) built by fsnlab.build_model")
    if cfg.family == "fsn" and cfg.diagnostic_switches():
        raise ProbeError(f"the model uses the diagnostic {', '.join(cfg.diagnostic_switches())}, which leaves the spec's layer: the probe reads the FSN's coupling only")
    T = cfg.context_length
    starts = window_starts(text.length, T, options.stride)
    window = min(text.length, T)
    settings = _settings(cfg, window, options)
    data = np.frombuffer(text.data, dtype=np.uint8)
    labels = char_labels(text.data)
    device = next(model.parameters()).device
    with _eval_mode(model):
        static = static_dataset(model, window, options.grid_size, settings.top_k if settings.attention else None, settings.mode_top_k or None)
        attrs = global_attrs(model, text, options, settings, len(starts), window, provenance or {}, history)
        bar = tqdm(total=len(starts), disable=not progress, unit="window", file=sys.stderr, desc="probe")
        try:
            for lo in range(0, len(starts), options.batch_size):
                batch_starts = np.asarray(starts[lo : lo + options.batch_size], dtype=np.int64)
                positions = batch_starts[:, None] + np.arange(window)
                idx = torch.from_numpy(data[positions].astype(np.int64)).to(device)
                nxt = positions + 1
                targets = np.where(nxt < len(data), data[np.minimum(nxt, len(data) - 1)].astype(np.int64), -1)
                _, variables = batch_variables(model, idx, torch.from_numpy(targets).to(device), settings)
                coords = {
                    "sample": ("sample", np.arange(lo, lo + len(batch_starts), dtype=np.int64)),
                    "window_start": ("sample", batch_starts + text.start),
                    "byte_offset": (("sample", "pos"), positions + text.start),
                    "byte": (("sample", "pos"), data[positions]),
                    "char": (("sample", "pos"), labels[positions]),
                }
                ds = xr.Dataset(variables, coords=coords)
                if lo == 0:
                    ds = xr.merge([static, ds], join="exact", compat="equals")
                    ds.attrs = attrs
                    ds.attrs["schema"] = schema_json(ds)
                yield annotate(ds)
                bar.update(len(batch_starts))
        finally:
            bar.close()


def _settings(cfg: Any, window: int, options: ProbeOptions) -> CaptureSettings:
    fsn = cfg.family == "fsn"
    mode_k = min(options.top_k, cfg.n_modes) if fsn and cfg.ffn == "mean_field" and cfg.mf_select == "softmax" else 0
    positions = window if options.identity_positions is None else min(options.identity_positions, window)
    if not (fsn and cfg.kernel_spec.delay):
        positions = 0
    return CaptureSettings(options.attention, min(options.top_k, window), mode_k, positions)


@contextmanager
def _eval_mode(model: torch.nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def global_attrs(
    model: torch.nn.Module,
    text: ProbeText,
    options: ProbeOptions,
    settings: CaptureSettings,
    n_windows: int,
    window: int,
    provenance: dict[str, Any],
    history: str,
) -> dict[str, Any]:
    """CF global attributes and provenance (strings and numbers only: netCDF has no None or bool)."""
    cfg = model.config
    fsn = cfg.family == "fsn"
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    attrs: dict[str, Any] = {
        "Conventions": "CF-1.10",
        "title": f"fsnlab probe of a {cfg.family} model" + (f" (kernel {cfg.kernel}, ffn {cfg.ffn})" if fsn else ""),
        "source": f"fsnlab {__version__} probe",
        "references": "J. Nunley, Attention as Frustrated Synchronization, arXiv:2606.18694",
        "description": DESCRIPTION,
        "fsnlab_version": __version__,
        "git_commit": _git_commit() or "unknown",
        "checkpoint_sha256": "none (in-memory model)",
        "checkpoint_step": -1,
        "checkpoint_fsnlab_version": "none",
        "seed": "unknown",
        "train_data": "unknown",
        "model_family": cfg.family,
        "model_config": json.dumps(config_to_dict(cfg), sort_keys=True),
        "corpus": text.corpus,
        "split": text.split,
        "start": int(text.start),
        "length": int(text.length),
        "text_sha256": text.sha256,
        "context_length": int(cfg.context_length),
        "window_length": int(window),
        "n_windows": int(n_windows),
        "stride": int(options.stride) if options.stride is not None else "none",
        "attention": "top-k per query" if options.attention else "not stored",
        "top_k": int(settings.top_k),
        "identity_positions": int(settings.identity_positions),
        "grid_size": int(options.grid_size),
        "batch_size": int(options.batch_size),
        "sign_convention": SIGN_CONVENTION,
        "phase_wrap": "phases wrapped to [-pi, pi); float32 values clipped to +-3.1415925 (the largest float32 below pi)",
        "phase_quantities": "present" if fsn else NOT_APPLICABLE,
        "options": json.dumps(asdict(options), sort_keys=True),
    }
    attrs.update(provenance)
    attrs["history"] = f"{stamp}: {history}"
    return attrs


def _git_commit() -> str | None:
    try:
        from fsnlab.train.environment import git_commit
    except ImportError:
        return None
    return git_commit()
