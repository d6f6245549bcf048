"""A study's committed dataset read back as the record of its finished runs (``--record``).

The run directory is a run's state (:mod:`fsnlab.study.runner`), but run directories live in
``runs/``, which is not under version control: a study that spans several machines or sittings
loses its finished runs with the machine. Its ``study.nc``, committed (e.g.
``studies/results/regime_ladder.nc``), holds everything the dataset and the report need of each
finished run: the learning curve, the final bpc, the resolved config and the analyses' variables
(copy depth, ...). With ``--record PATH`` a study takes a run that is *done* in that record and has
no checkpoint in this pool from the record instead of training it again:

* the runner does not train it (outcome ``recorded``) and ``--dry-run`` lists it as ``recorded``;
* :meth:`StudyRecord.restore` copies its rows (every variable and coordinate along ``run``) into
  the assembled dataset, before the analyses (so they see its curve and its final bpc) and after
  them (so the variables of analyses that need the checkpoint, which is gone, come from the record);
* its per-run coordinate ``source`` reads ``record`` (``runs`` for a run read from its directory).

A run is matched by its name, which carries the digest of its identity
(:func:`fsnlab.study.manifest.run_name`), so a run whose config changed is never taken from the
record. A run with a directory here (finished or not) is always read from its directory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Collection, Iterable

import numpy as np
import xarray as xr

from fsnlab.study.dataset import open_study
from fsnlab.study.manifest import Manifest, StudyError, run_state

SOURCE_RUNS = "runs"
SOURCE_RECORD = "record"


class StudyRecord:
    """The finished runs of one committed study dataset."""

    def __init__(self, ds: xr.Dataset, path: str | os.PathLike[str] = "") -> None:
        self.ds = ds
        self.path = Path(path)
        status = ds["status"].values if "status" in ds.coords or "status" in ds else np.array([])
        self._done = {str(n) for n, s in zip(ds["run"].values, status) if s == "done"}

    @classmethod
    def load(cls, path: str | os.PathLike[str], study: str | None = None) -> "StudyRecord":
        """Read ``path`` (a ``study.nc`` or its folder); ``study``: the kind it must hold."""
        ds = open_study(path)
        if study is not None and ds.attrs.get("study") != study:
            raise StudyError(f"--record {path} holds a {ds.attrs.get('study')} study, not {study}")
        return cls(ds, path)

    def __contains__(self, name: object) -> bool:
        return name in self._done

    def __len__(self) -> int:
        return len(self._done)

    def final_bpc(self, name: str) -> float | None:
        """The recorded final val bpc of a finished run (None if the record does not hold it)."""
        if name not in self._done:
            return None
        value = float(self.ds["final_val_bpc"].sel(run=name).values)
        return value if np.isfinite(value) else None

    def recorded_runs(self, manifest: Manifest, runs_dir: str | os.PathLike[str]) -> set[str]:
        """The runs of ``manifest`` to take from the record: done there, with no checkpoint in ``runs_dir``."""
        runs_dir = Path(runs_dir)
        return {run.name for run in manifest if run.name in self._done and run_state(runs_dir / run.name).status == "new"}

    def restore(self, ds: xr.Dataset, names: Collection[str]) -> xr.Dataset:
        """``ds`` with the rows of ``names`` (those it holds) replaced by the record's: every
        variable and coordinate that has the ``run`` dimension (variables the record has and ``ds``
        lacks are added, filled for the other runs with NaN, 0, "" or False); the ``eval``
        dimension grows to the longer of the two. Sets ``source`` (``runs`` / ``record``)."""
        present = [str(n) for n in ds["run"].values]
        rows = [i for i, n in enumerate(present) if n in names and n in self._done]
        if "source" not in ds.coords:
            ds = ds.assign_coords(source=("run", np.array([SOURCE_RUNS] * len(present))))
        if not rows:
            return ds
        taken = [present[i] for i in rows]
        rec = self.ds.sel(run=taken)
        n_eval = max(ds.sizes.get("eval", 0), rec.sizes.get("eval", 0))
        if "eval" in ds.dims and ds.sizes["eval"] < n_eval:
            ds = ds.reindex(eval=np.arange(n_eval))
        if "eval" in rec.dims and rec.sizes["eval"] < n_eval:
            rec = rec.reindex(eval=np.arange(n_eval))
        for dim in rec.dims:  # the analyses' own dimensions (depth, distance_bin, ...)
            if dim in ("run", "eval") or dim in ds.dims:
                continue
            if dim in rec.coords:
                ds = ds.assign_coords({dim: rec[dim].values})
        for name in _run_variables(rec):
            var = rec[name]
            if any(d != "run" and d in ds.dims and ds.sizes[d] != rec.sizes[d] for d in var.dims):
                continue  # another shape of an analysis dimension: not comparable, leave this run's own
            if any(d not in ds.dims for d in var.dims):
                continue
            if name in ds.variables:
                target = ds[name]
                if set(target.dims) != set(var.dims):
                    continue
                dims = target.dims
                values = np.array(target.values, copy=True)
            else:
                dims = var.dims
                values = np.full(tuple(ds.sizes[d] for d in dims), _fill(var.dtype), dtype=var.dtype)
            new = var.transpose(*dims).values
            if values.dtype.kind in "US" or new.dtype.kind in "US":
                values = values.astype(object)
            where: list[object] = [slice(None)] * values.ndim
            where[dims.index("run")] = rows
            values[tuple(where)] = new
            if values.dtype == object:
                values = values.astype(str)
            attrs = dict(var.attrs if name not in ds.variables else ds[name].attrs)
            if name in ds.coords or (name not in ds.variables and name in rec.coords):
                ds = ds.assign_coords({name: (dims, values, attrs)})
            else:
                ds[name] = (dims, values, attrs)
        source = ds["source"].values.astype(object)
        source[rows] = SOURCE_RECORD
        ds = ds.assign_coords(source=("run", source.astype(str)))
        ds["source"].attrs.update(long_name="where the run's numbers come from: its run directory or the --record dataset")
        return ds


def _run_variables(ds: xr.Dataset) -> Iterable[str]:
    for name in list(ds.coords) + list(ds.data_vars):
        if name != "run" and name != "source" and "run" in ds[name].dims:
            yield str(name)


def _fill(dtype: np.dtype) -> object:
    if dtype.kind == "f":
        return np.nan
    if dtype.kind in "iu":
        return 0
    if dtype.kind == "b":
        return False
    return ""


__all__ = ["SOURCE_RECORD", "SOURCE_RUNS", "StudyRecord"]
