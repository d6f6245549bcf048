"""Runs of a study dataset selected and matched by their labels (xarray), not by position.

A study dataset (:mod:`fsnlab.study.dataset`) has one ``run`` dimension whose coordinates are the
runs' tags (``arm``, ``seed``, ``corpus``, ``lr``, ...). Comparisons across arms pair runs by
``seed``: :func:`by_seed` re-indexes a variable by its seed, :func:`paired_by_seed` aligns two such
variables (an inner join on ``seed``) before :func:`fsnlab.study.stats.paired`, and
:func:`by_group_and_seed` unstacks ``run`` into (group, seed) so that differences between groups
align by seed on their own.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np
import xarray as xr

from fsnlab.study.stats import paired


def ordered(values: Iterable[Any], preferred: Sequence[Any] = ()) -> list[Any]:
    """The distinct ``values``: those in ``preferred`` first (in its order), the rest sorted."""
    values = list(dict.fromkeys(values))
    first = [v for v in preferred if v in values]
    rest = [v for v in values if v not in first]
    try:
        rest = sorted(rest)
    except TypeError:
        pass
    return first + rest


def tag_values(ds: xr.Dataset, tag: str, preferred: Sequence[Any] = ()) -> list[Any]:
    """The distinct values of the run tag ``tag`` (empty if the dataset has no such tag)."""
    if tag not in ds.coords:
        return []
    return ordered([v.item() if hasattr(v, "item") else v for v in ds[tag].values], preferred)


def select(ds: xr.Dataset, **tags: Any) -> xr.Dataset:
    """The runs whose tags equal the given values (``select(ds, arm="fsn", corpus="text")``)."""
    mask = np.ones(ds.sizes["run"], dtype=bool)
    for key, value in tags.items():
        mask &= (ds[key] == value).values
    return ds.isel(run=np.flatnonzero(mask))


def by_seed(da: xr.DataArray) -> xr.DataArray:
    """``da`` with its ``run`` dimension replaced by ``seed`` (sorted; a seed that occurs twice
    keeps its last run). Without a ``seed`` tag the run's position is its seed."""
    if "seed" not in da.coords:
        da = da.assign_coords(seed=("run", np.arange(da.sizes["run"])))
    da = da.swap_dims(run="seed").drop_vars("run", errors="ignore")
    return da.drop_duplicates("seed", keep="last").sortby("seed")


def aligned_by_seed(a: xr.DataArray, b: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
    """``a`` and ``b`` indexed by seed, on the seeds both have (an inner join, sorted)."""
    a, b = xr.align(by_seed(a), by_seed(b), join="inner")
    return a.sortby("seed"), b.sortby("seed")


def paired_by_seed(a: xr.DataArray, b: xr.DataArray) -> dict[str, float]:
    """:func:`fsnlab.study.stats.paired` of ``a − b`` over the seeds both have (1-D along ``run``)."""
    a, b = aligned_by_seed(a, b)
    return paired(a.values, b.values)


def by_group_and_seed(da: xr.DataArray, group: str) -> xr.DataArray:
    """``da`` with ``run`` unstacked into ``group`` × ``seed`` (NaN where a group lacks a seed; a
    (group, seed) pair that occurs twice keeps its last run)."""
    other = [c for c in da.coords if c not in (group, "seed") and "run" in da[c].dims]
    stacked = da.drop_vars(other).set_index(run=[group, "seed"])
    stacked = stacked.isel(run=~stacked.indexes["run"].duplicated(keep="last"))
    return stacked.unstack("run").astype(np.float64)


__all__ = ["aligned_by_seed", "by_group_and_seed", "by_seed", "ordered", "paired_by_seed", "select", "tag_values"]
