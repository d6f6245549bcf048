"""Analyses that read the trained models of a study and add variables to its dataset.

* :func:`copy_depth_analysis` (spec §9.5): per-target losses of every finished run over the
  validation windows, pooled by copy depth and copy distance (``copy_loss_sum``, ``copy_count``:
  run × depth 0…32 × distance column).
* :func:`kernel_analysis` (spec §10): the learned coupling kernel of every finished FSN read with
  :func:`fsnlab.probe.probe`: Kuramoto–Sakaguchi angles, signed Daido amplitudes and the delay
  coefficients per layer, delay, head and harmonic, plus step sizes and temperatures.

Results per run are cached in ``<study_dir>/cache`` (keyed by run, checkpoint step and settings),
so rerunning a study recomputes nothing for runs it already analysed.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from fsnlab.data import load_corpus
from fsnlab.study.copydepth import (
    DEPTH_BIN_LABELS,
    DEPTH_BINS,
    DISTANCE_BIN_LABELS,
    DISTANCE_BINS,
    DISTANCE_COLUMNS,
    MAX_DEPTH,
    copy_depth_windows,
    copy_table,
)
from fsnlab.study.manifest import Manifest
from fsnlab.study.tokens import token_losses
from fsnlab.train import load_checkpoint, model_from_checkpoint


def _cache_path(study_dir: Path, kind: str, run: str, settings: dict[str, Any]) -> Path:
    key = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return study_dir / "cache" / f"{kind}-{run}-{key}.npz"


def copy_depth_analysis(
    ds: xr.Dataset,
    manifest: Manifest,
    runs_dir: str | Path,
    study_dir: str | Path,
    *,
    eval_bytes: int | None = None,
    split: str = "val",
    batch_size: int = 16,
    device: str = "auto",
    log: Any = print,
) -> xr.Dataset:
    """Add ``copy_loss_sum``/``copy_count`` (run, depth, distance_bin) and ``token_mean_bits``
    (run: the mean of the per-target losses, which equals the evaluation's bpc on the same bytes)."""
    runs_dir, study_dir = Path(runs_dir), Path(study_dir)
    n_depth, n_col = MAX_DEPTH + 1, len(DISTANCE_COLUMNS)
    sums = np.full((len(manifest), n_depth, n_col), np.nan)
    counts = np.zeros((len(manifest), n_depth, n_col), dtype=np.int64)
    means = np.full(len(manifest), np.nan)
    corpora: dict[str, Any] = {}
    depths: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
    status = ds["status"].values
    for i, run in enumerate(manifest):
        ckpt_path = runs_dir / run.name / "checkpoint.pt"
        if status[i] != "done" or not ckpt_path.is_file():  # a run taken from --record has no checkpoint here
            continue
        settings = {"split": split, "eval_bytes": eval_bytes, "mtime": ckpt_path.stat().st_mtime_ns, "v": 1}
        cache = _cache_path(study_dir, "copydepth", run.name, settings)
        if cache.is_file():
            with np.load(cache) as z:
                sums[i], counts[i], means[i] = z["sums"], z["counts"], float(z["mean"])
            continue
        if run.config.data not in corpora:
            corpora[run.config.data] = load_corpus(run.config.data)
        data = np.asarray(corpora[run.config.data].split(split))[:eval_bytes]
        model = model_from_checkpoint(load_checkpoint(ckpt_path))
        T = model.config.context_length
        if (run.config.data, T) not in depths:
            depths[(run.config.data, T)] = copy_depth_windows(data, T)
        depth, distance = depths[(run.config.data, T)]
        losses = token_losses(model, data, batch_size=batch_size, device=device)
        s, c = copy_table(depth, distance, losses)
        sums[i], counts[i], means[i] = s, c, float(losses.astype(np.float64).mean())
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, sums=s, counts=c, mean=means[i])
        if log:
            log(f"copy depth: {run.name}: mean {means[i]:.4f} bits over {losses.size:,} targets")
        del model
    ds = ds.assign_coords(depth=np.arange(n_depth), distance_bin=np.array(DISTANCE_COLUMNS))
    ds["copy_loss_sum"] = (("run", "depth", "distance_bin"), sums)
    ds["copy_count"] = (("run", "depth", "distance_bin"), counts)
    ds["token_mean_bits"] = ("run", means)
    ds["copy_loss_sum"].attrs.update(long_name="sum of per-target losses by copy depth and copy-distance bin", units="bit")
    ds["copy_count"].attrs.update(long_name="targets by copy depth and copy-distance bin", units="1")
    ds["token_mean_bits"].attrs.update(long_name="mean per-target loss over the analysed bytes", units="bit")
    ds.attrs.update({
        "copy_depth_definition": (
            "largest k >= 1 such that the k bytes ending at t occurred earlier in the same window ending at j < t "
            "with x[j+1] = x[t+1], capped at 32, 0 if none; distance t - j of the longest match, most recent on ties; "
            "windows are the non-overlapping evaluation windows of the model's context (spec §9.5, OQ-33)"
        ),
        "copy_depth_bins": json.dumps([list(b) for b in DEPTH_BINS]),
        "copy_depth_bin_labels": json.dumps(list(DEPTH_BIN_LABELS)),
        "copy_distance_bins": json.dumps([[lo, hi if math.isfinite(hi) else None] for lo, hi in DISTANCE_BINS]),
        "copy_distance_bin_labels": json.dumps(list(DISTANCE_BIN_LABELS)),
        "copy_split": split,
        "copy_eval_bytes": -1 if eval_bytes is None else int(eval_bytes),
    })
    return ds


KERNEL_VARIABLES = ("kernel_real", "kernel_imag", "sakaguchi_alpha", "daido_K")


def kernel_analysis(
    ds: xr.Dataset,
    manifest: Manifest,
    runs_dir: str | Path,
    study_dir: str | Path,
    *,
    text: bytes = b"In the beginning God created the heaven and the earth.",
    log: Any = print,
) -> xr.Dataset:
    """Add the kernel readings of :func:`fsnlab.probe.probe` per run: ``kernel_real``,
    ``kernel_imag``, ``sakaguchi_alpha``, ``daido_K`` (run, layer, delay, head, harmonic),
    ``temperature`` (run, layer, head) and ``step_size_mean``/``gate_mean`` (run, layer).
    Runs that are not finished FSNs get NaN."""
    from fsnlab.probe import probe

    runs_dir, study_dir = Path(runs_dir), Path(study_dir)
    readings: list[xr.Dataset | None] = []
    status = ds["status"].values
    attrs: dict[str, str] = {}
    for i, run in enumerate(manifest):
        ckpt_path = runs_dir / run.name / "checkpoint.pt"
        if status[i] != "done":
            readings.append(None)
            continue
        settings = {"mtime": ckpt_path.stat().st_mtime_ns, "v": 1}
        cache = _cache_path(study_dir, "kernel", run.name, settings).with_suffix(".nc")
        if cache.is_file():
            with xr.open_dataset(cache, engine="h5netcdf") as cached:
                reading = cached.load()
            readings.append(reading if reading.data_vars else None)
            continue
        model = model_from_checkpoint(load_checkpoint(ckpt_path))
        if getattr(model.config, "family", None) != "fsn":
            readings.append(None)
            continue
        p = probe(model, text, identity_positions=0)
        keep = [v for v in (*KERNEL_VARIABLES, "temperature") if v in p]
        reading = p[keep].reset_coords(drop=True)
        if "step_size" in p:
            reading["step_size_mean"] = p["step_size"].mean("osc")
        if "gate" in p:
            reading["gate_mean"] = p["gate"].mean("osc")
        for name in ("sign_convention",):
            if name in p.attrs:
                attrs[f"kernel_{name}"] = str(p.attrs[name])
        cache.parent.mkdir(parents=True, exist_ok=True)
        reading.to_netcdf(cache, engine="h5netcdf")
        readings.append(reading)
        if log:
            log(f"kernel reading: {run.name}")
    present = [r for r in readings if r is not None]
    if not present:
        return ds
    template = xr.concat(present, dim="run", join="outer").isel(run=0, drop=True) * np.nan
    stacked = xr.concat([r if r is not None else template for r in readings], dim="run", join="outer")
    stacked = stacked.assign_coords(run=ds["run"].values)
    for name in stacked.data_vars:
        ds[name] = stacked[name].astype(np.float64)
    for name, long_name, units in (
        ("kernel_real", "Re of the kernel coefficient (c_n at delay 0, d_n at delay 1)", "1"),
        ("kernel_imag", "Im of the kernel coefficient", "1"),
        ("sakaguchi_alpha", "Kuramoto-Sakaguchi angle alpha = -arg c folded into (-pi/2, pi/2]", "radian"),
        ("daido_K", "signed Daido amplitude K with c = K exp(-i alpha); K < 0 is repulsive", "1"),
        ("temperature", "softmax temperature beta per head", "1"),
        ("step_size_mean", "mean step size eta (coupling strength) over the layer's coordinates", "1"),
        ("gate_mean", "mean static gate over the layer's coordinates", "1"),
    ):
        if name in ds:
            ds[name].attrs.update(long_name=long_name, units=units)
    ds.attrs.update(attrs)
    return ds
