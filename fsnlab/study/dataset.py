"""A study's numbers as one xarray dataset (netCDF): runs × evaluations × metrics.

Dimensions: ``run`` (one per manifest entry, named by its run directory) and ``eval`` (the
validation evaluations of a run, in order: every epoch boundary, every ``eval_interval`` steps and
the end). Per-run coordinates are the manifest tags (``arm``, ``seed``, ``corpus``, ``lr``,
``rung``, ``kernel``, ...) and ``preset``, ``data``, ``status``, ``parameters``, ``total_steps``,
``steps_done``. Variables: ``val_bpc``, ``eval_step``, ``eval_tokens``, ``eval_epoch``,
``eval_time`` (run, eval; NaN past a run's last evaluation), ``final_val_bpc`` (the last
evaluation of a finished run; NaN otherwise), ``last_val_bpc``, ``best_val_bpc`` and ``config``
(the run's resolved ``config.json`` as JSON text). Attributes: ``study``, ``title``, ``scale``,
``settings`` and ``manifest`` (JSON), provenance. Study analyses add their own variables
(copy depth: ``copy_loss_sum``/``copy_count``; kernel reading: ``kernel_*``).
"""

from __future__ import annotations

import datetime
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from fsnlab import __version__, parameter_breakdown
from fsnlab.errors import FsnlabError
from fsnlab.study.manifest import Manifest, StudyError, run_state
from fsnlab.train import read_metrics

DATASET_NAME = "study.nc"
PAPER_REFERENCE = "J. Nunley, Attention as Frustrated Synchronization, arXiv:2606.18694 (2026)"


def _tag_array(values: list[Any]) -> np.ndarray:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return np.array([str(v) if v is not None else "" for v in values])
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present) and len(present) == len(values):
        return np.array(values, dtype=np.int64)
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)
    return np.array(["" if v is None else str(v) for v in values])


def _parameters(run_dir: Path, config: Any, resolved: dict[str, Any] | None) -> int:
    if resolved is not None:
        try:
            return int(resolved["run"]["parameters"]["total"])
        except (KeyError, TypeError, ValueError):
            pass
    try:
        overrides = dict(config.model_overrides)
        if config.context_length:
            overrides["context_length"] = config.context_length
        import fsnlab

        return int(parameter_breakdown(fsnlab.build_model(config.preset, **overrides))["total"])
    except FsnlabError:
        return -1


def assemble(manifest: Manifest, runs_dir: str | os.PathLike[str]) -> xr.Dataset:
    """Read every run directory of ``manifest`` under ``runs_dir`` (finished or not) into a dataset."""
    from fsnlab.train.environment import git_commit

    runs_dir = Path(runs_dir)
    names = [r.name for r in manifest]
    if not names:
        raise StudyError("the manifest has no runs")
    curves: list[dict[str, list[float]]] = []
    per_run: dict[str, list[Any]] = {k: [] for k in ("preset", "data", "status", "parameters", "total_steps",
                                                      "steps_done", "tokens_per_step", "error", "config")}
    for run in manifest:
        run_dir = runs_dir / run.name
        state = run_state(run_dir)
        resolved = None
        if (run_dir / "config.json").is_file():
            try:
                resolved = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
            except ValueError:
                resolved = None
        records = read_metrics(run_dir) if (run_dir / "metrics.jsonl").is_file() else []
        evals = [r for r in records if r.get("event") == "eval"]
        curves.append({
            "val_bpc": [float(r["val_bpc"]) for r in evals],
            "eval_step": [float(r["step"]) for r in evals],
            "eval_tokens": [float(r["tokens"]) for r in evals],
            "eval_epoch": [float(r["epoch"]) for r in evals],
            "eval_time": [float(r.get("time", math.nan)) for r in evals],
        })
        per_run["preset"].append(run.config.preset)
        per_run["data"].append(run.config.data)
        per_run["status"].append(state.status)
        per_run["parameters"].append(_parameters(run_dir, run.config, resolved))
        total = state.total_steps if state.total_steps is not None else (resolved or {}).get("run", {}).get("total_steps")
        per_run["total_steps"].append(int(total) if total is not None else -1)
        per_run["steps_done"].append(int(evals[-1]["step"]) if evals else 0)
        per_run["tokens_per_step"].append(int((resolved or {}).get("run", {}).get("tokens_per_step", -1)))
        per_run["error"].append(state.error or "")
        per_run["config"].append(json.dumps(resolved if resolved is not None else {"train": run.config.to_dict()}, sort_keys=True))
    n_eval = max([len(c["val_bpc"]) for c in curves] + [1])
    data_vars: dict[str, Any] = {}
    for key in ("val_bpc", "eval_step", "eval_tokens", "eval_epoch", "eval_time"):
        arr = np.full((len(names), n_eval), np.nan)
        for i, c in enumerate(curves):
            arr[i, : len(c[key])] = c[key]
        data_vars[key] = (("run", "eval"), arr)
    last = np.array([c["val_bpc"][-1] if c["val_bpc"] else np.nan for c in curves])
    best = np.array([min(c["val_bpc"]) if c["val_bpc"] else np.nan for c in curves])
    finished = np.array([s == "done" for s in per_run["status"]])
    data_vars["final_val_bpc"] = ("run", np.where(finished, last, np.nan))
    data_vars["last_val_bpc"] = ("run", last)
    data_vars["best_val_bpc"] = ("run", best)
    data_vars["config"] = ("run", np.array(per_run.pop("config")))
    coords: dict[str, Any] = {"run": np.array(names), "eval": np.arange(n_eval)}
    tag_keys: list[str] = []
    for run in manifest:
        tag_keys += [k for k in run.tags if k not in tag_keys]
    for key in tag_keys:
        coords[key] = ("run", _tag_array([run.tags.get(key) for run in manifest]))
    for key, values in per_run.items():
        if key not in coords:
            coords[key] = ("run", _tag_array(values))
    ds = xr.Dataset(data_vars, coords=coords)
    _annotate(ds)
    ds.attrs.update({
        "Conventions": "CF-1.10",
        "title": manifest.title,
        "study": manifest.study,
        "scale": manifest.scale,
        "settings": json.dumps(manifest.settings, sort_keys=True, default=str),
        "manifest": json.dumps(manifest.to_dict(), sort_keys=True, default=str),
        "tags": json.dumps(tag_keys),
        "runs_dir": str(runs_dir.resolve()),
        "fsnlab_version": __version__,
        "git_commit": git_commit() or "unknown",
        "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "references": PAPER_REFERENCE,
        "units_note": "losses are bits per byte (cross-entropy / ln 2), spec §9.1",
    })
    return ds


def _annotate(ds: xr.Dataset) -> None:
    meta = {
        "val_bpc": ("validation loss at each evaluation", "bit"),
        "eval_step": ("optimizer step of the evaluation", "1"),
        "eval_tokens": ("training tokens seen at the evaluation", "1"),
        "eval_epoch": ("epochs (tokens / train bytes) at the evaluation", "1"),
        "eval_time": ("wall time of the run at the evaluation", "s"),
        "final_val_bpc": ("validation loss at the end of a finished run (NaN otherwise)", "bit"),
        "last_val_bpc": ("last validation loss recorded (finished or not)", "bit"),
        "best_val_bpc": ("lowest validation loss recorded", "bit"),
        "config": ("resolved config.json of the run (JSON)", ""),
    }
    for name, (long_name, units) in meta.items():
        ds[name].attrs.update({"long_name": long_name, "units": units})


def write_dataset(ds: xr.Dataset, study_dir: str | os.PathLike[str]) -> Path:
    """Write ``study_dir/study.nc`` (netCDF-4 via h5netcdf), atomically."""
    study_dir = Path(study_dir)
    study_dir.mkdir(parents=True, exist_ok=True)
    path = study_dir / DATASET_NAME
    tmp = study_dir / f".{DATASET_NAME}.partial"
    tmp.unlink(missing_ok=True)
    ds.to_netcdf(tmp, engine="h5netcdf")
    os.replace(tmp, path)
    return path


def open_study(path: str | os.PathLike[str]) -> xr.Dataset:
    """Load a study dataset (a ``study.nc`` or the study directory holding it) into memory."""
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / DATASET_NAME
    if not path.is_file():
        raise StudyError(f"no study dataset at {path} (run the study script first)")
    try:
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            ds = ds.load()
    except (OSError, ValueError) as exc:
        raise StudyError(f"cannot read study dataset {path}: {exc}") from None
    if "study" not in ds.attrs:
        raise StudyError(f"{path} is not an fsnlab study dataset (no 'study' attribute)")
    return ds


__all__ = ["DATASET_NAME", "assemble", "write_dataset", "open_study"]
