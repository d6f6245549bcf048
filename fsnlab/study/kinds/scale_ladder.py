"""Scale ladder (spec §9.4, OQ-31): FSN and the transformer at each rung of matched parameter
counts; per rung the FSN minus the transformer, paired by seed."""

from __future__ import annotations

import math

import numpy as np
import xarray as xr

from fsnlab.study import claims as C
from fsnlab.study.align import paired_by_seed, select, tag_values
from fsnlab.study.formatting import fmt, fmt_ci, fmt_p
from fsnlab.study.labels import ARM_ORDER, RUNG_ORDER, label
from fsnlab.study.page import Page, verdict
from fsnlab.study.sections import claim_row, curves, header, paper_table
from fsnlab.study.stats import describe

KIND = "scale_ladder"
PAPER_RUNGS = ("1m", "2m", "4m")  # the rungs the paper reports complete


def rung_deltas(ds: xr.Dataset, rungs: list) -> list[dict[str, float]]:
    """Per rung: the FSN's final val bpc minus the transformer's, paired by seed."""
    out = []
    for rung in rungs:
        sub = select(ds, rung=rung)
        out.append(paired_by_seed(select(sub, arm="fsn")["final_val_bpc"], select(sub, arm="transformer")["final_val_bpc"]))
    return out


def ladder_figure(ds: xr.Dataset, rungs: list, arms: list) -> object:
    """Final val bpc against parameters per arm (mean with 95% CI over seeds)."""
    from fsnlab.viz.common import series_color
    from fsnlab.viz.study import LOSS_AXIS, Series, ci_lines_figure

    series = []
    for i, arm in enumerate(arms):
        xs, stats = [], []
        for rung in rungs:
            sub = select(ds, arm=arm, rung=rung)
            if sub.sizes["run"]:
                xs.append(float(np.nanmean(sub["parameters"].values)))
                stats.append(describe(sub["final_val_bpc"].values))
        series.append(Series(label(arm), series_color(arm, i), xs, stats, text=[str(r) for r in rungs]))
    return ci_lines_figure(series, "final validation loss against parameters (95% CI over seeds)", "parameters", LOSS_AXIS)


def section(page: Page, ds: xr.Dataset) -> None:
    header(page, ds, "Scale ladder (spec §9.4, OQ-31): FSN and the transformer at each rung of matched parameter "
           "counts, same protocol per rung.")
    rungs = tag_values(ds, "rung", RUNG_ORDER)
    arms = tag_values(ds, "arm", ARM_ORDER)
    deltas = rung_deltas(ds, rungs)
    rows = []
    for rung, r in zip(rungs, deltas):
        sub = select(ds, rung=rung)
        params = {label(a): fmt(int(np.nanmax(select(sub, arm=a)["parameters"].values))) for a in arms if select(sub, arm=a).sizes["run"]}
        rows.append([rung, ", ".join(f"{k} {v}" for k, v in params.items())]
                    + [fmt(describe(select(sub, arm=a)["final_val_bpc"].values)["mean"]) for a in arms]
                    + [fmt(r["mean_diff"]), fmt_ci(r["ci_low"], r["ci_high"]), fmt_p(r["t_p"]), fmt_p(r["wilcoxon_p"]), f"{r['wins']}/{r['n']}"])
    ahead = [d["mean_diff"] < 0 for r, d in zip(rungs, deltas) if r in PAPER_RUNGS and math.isfinite(d["mean_diff"])]
    comparable = ds.attrs.get("scale") == "paper" and any(str(d).startswith("enwik8") for d in ds["data"].values)
    why = "comparable (direction only)" if comparable else ("not comparable (smoke scale)" if ds.attrs.get("scale") == "smoke" else "not comparable (not enwik8)")
    paper_table(page, [
        claim_row(C.LADDER_PERSISTS, "Δ FSN − transformer: " + ", ".join(f"{r} {fmt(d['mean_diff'])}" for r, d in zip(rungs, deltas)),
                  verdict(all(ahead) if ahead else None, comparable), why),
        claim_row(C.LADDER_8M, f"Δ {fmt(deltas[rungs.index('8m')]['mean_diff'])}" if "8m" in rungs else "not run", verdict(None), "no paper number"),
    ])
    page.h(2, "Ladder")
    page.figure(ladder_figure(ds, rungs, arms))
    page.table(["rung", "parameters"] + [f"{label(a)} mean" for a in arms] + ["Δ FSN − transformer", "95% CI", "paired t p", "Wilcoxon p", "FSN lower in"],
               rows, left=2, caption="final validation bits per byte; Δ paired by seed")
    for rung in rungs:
        page.figure(curves(select(ds, rung=rung), "arm", f"{rung}: validation loss per evaluation"))
