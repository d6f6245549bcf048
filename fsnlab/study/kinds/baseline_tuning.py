"""Baseline tuning (spec §7.2): the peak-LR sweep that makes the transformer "tuned", and the same
sweep for the FSN; each arm's best LR, and the two arms at their best LRs paired by seed."""

from __future__ import annotations

import math
from typing import Any

import xarray as xr

from fsnlab.study import claims as C
from fsnlab.study.align import paired_by_seed, select, tag_values
from fsnlab.study.formatting import fmt, fmt_ci
from fsnlab.study.labels import ARM_ORDER, label
from fsnlab.study.page import Page, verdict
from fsnlab.study.sections import PAIRED_HEADERS, claim_row, curves, header, is_paper_protocol, paired_cells, paper_table
from fsnlab.study.stats import describe

KIND = "baseline_tuning"


def sweep(ds: xr.Dataset) -> dict[str, dict[float, dict[str, Any]]]:
    """Per arm and peak LR: :func:`describe` of the final val bpc, plus ``failed`` (runs that failed)."""
    out: dict[str, dict[float, dict[str, Any]]] = {}
    for arm in tag_values(ds, "arm", ARM_ORDER):
        sub = select(ds, arm=arm)
        out[arm] = {}
        for lr in tag_values(sub, "lr"):
            cell = select(sub, lr=lr)
            out[arm][lr] = {**describe(cell["final_val_bpc"].values), "failed": int((cell["status"].values == "failed").sum())}
    return out


def best_lrs(table: dict[str, dict[float, dict[str, Any]]]) -> dict[str, tuple[float, dict[str, Any]]]:
    """Per arm, the LR with the lowest mean final bpc (the first of equals) and its summary."""
    best: dict[str, tuple[float, dict[str, Any]]] = {}
    for arm, by_lr in table.items():
        for lr, s in by_lr.items():
            if math.isfinite(s["mean"]) and (arm not in best or s["mean"] < best[arm][1]["mean"]):
                best[arm] = (lr, s)
    return best


def section(page: Page, ds: xr.Dataset) -> None:
    from fsnlab.viz.common import series_color
    from fsnlab.viz.study import LOSS_AXIS, Series, ci_lines_figure

    header(page, ds, "The learning-rate sweep that makes the transformer baseline 'tuned', and the same sweep for the "
           "FSN (spec §7.2: peak LR over {1e-3, 2e-3, 3e-3, 5e-3} for both arms, at the budget compared).")
    table = sweep(ds)
    best = best_lrs(table)
    fig = ci_lines_figure([Series(label(arm), series_color(arm, i), list(by_lr), list(by_lr.values()))
                           for i, (arm, by_lr) in enumerate(table.items())],
                          "final validation loss against peak learning rate (95% CI over seeds)", "peak learning rate", LOSS_AXIS)
    comparable = ds.attrs.get("scale") == "paper" and is_paper_protocol(ds)
    why = "comparable (same sweep)" if comparable else ("not comparable (smoke scale)" if ds.attrs.get("scale") == "smoke" else "not comparable (not enwik8 at 1M)")
    t_best, f_best = best.get("transformer"), best.get("fsn")
    paper_table(page, [
        claim_row(C.TRANSFORMER_TUNED, f"best LR {t_best[0]:g} ({fmt(t_best[1]['mean'])})" if t_best else "–", verdict(None), why),
        claim_row(C.FSN_SWEEP, f"best LR {f_best[0]:g} ({fmt(f_best[1]['mean'])})" if f_best else "–", verdict(None), why),
        claim_row(C.PROTOTYPE_LR, f"best LR FSN {f_best[0]:g}, transformer {t_best[0]:g}" if f_best and t_best else "–",
                  verdict((f_best[0] >= t_best[0]) if f_best and t_best else None, False), "not comparable (different protocol)"),
    ])
    page.h(2, "Sweep")
    page.figure(fig)
    rows = [[label(arm), f"{lr:g}", s["n"], fmt(s["mean"]), fmt(s["sd"]), fmt(s["median"]), fmt_ci(s["ci_low"], s["ci_high"]), s["failed"]]
            for arm, by_lr in table.items() for lr, s in by_lr.items()]
    page.table(["arm", "peak LR", "n", "mean", "sd", "median", "95% CI (t)", "failed"], rows, left=2,
               caption="final validation bits per byte")
    page.table(["arm", "chosen LR (lowest mean)", "mean final bpc"], [[label(a), f"{lr:g}", fmt(s["mean"])] for a, (lr, s) in best.items()])
    if f_best and t_best:
        r = paired_by_seed(select(ds, arm="fsn", lr=f_best[0])["final_val_bpc"],
                           select(ds, arm="transformer", lr=t_best[0])["final_val_bpc"])
        page.table(PAIRED_HEADERS, [paired_cells("FSN (its best LR) − transformer (its best LR)", r)],
                   caption="each arm at its own best LR, paired by seed (choosing the best LR on the same runs biases both arms alike)")
    for arm in table:
        page.figure(curves(select(ds, arm=arm), "lr", f"{label(arm)}: validation loss per evaluation by peak LR", (),
                           names=lambda v: f"lr {v:g}"))
