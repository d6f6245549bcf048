"""Ablation ladder of the coupling kernel (spec §6, OQ-32): the base layer, each frustration alone
and the full kernel on the same FSN layer, budget and seeds; each kernel paired by seed against the
base layer and against the full kernel."""

from __future__ import annotations

import math
from typing import Any

import xarray as xr

from fsnlab.study import claims as C
from fsnlab.study.align import select, tag_values
from fsnlab.study.formatting import fmt
from fsnlab.study.labels import KERNEL_ORDER
from fsnlab.study.page import Page, verdict
from fsnlab.study.sections import (
    PAIRED_HEADERS, SUMMARY_HEADERS, claim_row, curves, final_bars, header, paired_rows, paper_table, summary_rows,
)
from fsnlab.study.stats import describe

KIND = "ablation_ladder"
SINGLE = ("+harmonics", "+delay")  # the two frustrations whose gains the prototype found to act together


def kernel_label(value: Any) -> str:
    return str(value)


def kernel_stats(ds: xr.Dataset) -> dict[str, dict[str, float]]:
    """:func:`describe` of the final val bpc per kernel, in ladder order."""
    return {k: describe(select(ds, kernel=k)["final_val_bpc"].values) for k in tag_values(ds, "kernel", KERNEL_ORDER)}


def gains(stats_by: dict[str, dict[str, float]]) -> dict[str, float] | None:
    """The mean gain over the base layer of each single frustration and of the full kernel (None
    unless all were run and the base layer has a mean)."""
    base = stats_by.get("base")
    if not (base and all(k in stats_by for k in (*SINGLE, "full")) and math.isfinite(base["mean"])):
        return None
    return {k: base["mean"] - stats_by[k]["mean"] for k in (*SINGLE, "full")}


def claim_rows(stats_by: dict[str, dict[str, float]]) -> list[list]:
    kernels = list(stats_by)
    best = min(stats_by, key=lambda k: stats_by[k]["mean"] if math.isfinite(stats_by[k]["mean"]) else math.inf) if kernels else None
    rows = [
        claim_row(C.ABLATION_NUMBERS, "; ".join(f"{k} {fmt(stats_by[k]['mean'])}" for k in kernels), verdict(None), "no paper numbers"),
        claim_row(C.PROTOTYPE_KERNELS, f"best: {best}" if kernels else "–", verdict(None),
                  "not comparable (different protocol, indicative only)"),
    ]
    gain = gains(stats_by)
    if gain is not None:
        rows.append(claim_row(C.HARMONICS_AND_DELAY_TOGETHER,
                              f"gain full {fmt(gain['full'])} vs +harmonics {fmt(gain['+harmonics'])} + +delay {fmt(gain['+delay'])}",
                              verdict(gain["full"] > gain["+harmonics"] + gain["+delay"], False), "not comparable (indicative)"))
    return rows


def section(page: Page, ds: xr.Dataset) -> None:
    header(page, ds, "Ablation ladder of the coupling kernel (spec §6): the unfrustrated base layer, each kind of "
           "frustration alone (+harmonics: signed Daido harmonics; +sakaguchi: a static complex angle; +delay: the "
           "successor term) and the full kernel, all on the same FSN layer, budget and seeds.")
    stats_by = kernel_stats(ds)
    paper_table(page, claim_rows(stats_by))
    page.h(2, "Final validation loss by kernel")
    page.figure(final_bars(ds, "kernel", KERNEL_ORDER, "final validation loss by kernel (95% CI over seeds; dots: seeds)", kernel_label))
    page.table(["kernel"] + SUMMARY_HEADERS[1:], summary_rows(ds, "kernel", KERNEL_ORDER, names=kernel_label))
    if "base" in stats_by:
        page.table(PAIRED_HEADERS, paired_rows(ds, "kernel", "base", KERNEL_ORDER, names=kernel_label),
                   caption="paired by seed against the unfrustrated base layer (negative: the frustration helps)")
    if "full" in stats_by:
        page.table(PAIRED_HEADERS, paired_rows(ds, "kernel", "full", KERNEL_ORDER, names=kernel_label),
                   caption="paired by seed against the full kernel (positive: the full kernel is better)")
    page.h(2, "Validation curves")
    page.figure(curves(ds, "kernel", "validation loss per evaluation by kernel", KERNEL_ORDER, kernel_label))
