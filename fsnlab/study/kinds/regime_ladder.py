"""The regime ladder's report (issue 16): the gap of each arm to the transformer against tokens per
parameter, per budget and along each schedule, the final losses per cell, the LR check and copy
depth at the copy budgets. The planning and the numbers live in :mod:`fsnlab.study.regime`; every
part shows pending cells as such."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import xarray as xr

from fsnlab.study import claims as C
from fsnlab.study.formatting import fmt, fmt_ci, fmt_p
from fsnlab.study.kinds.copy_depth import bin_section, deep_bins
from fsnlab.study.labels import label
from fsnlab.study.page import Page, verdict
from fsnlab.study.regime import (
    COMPARED, LADDER, _budget_label, _cell, _fmt_tpp, _mask, _num, _settings, _sign_sentence, curve_gap, gap_rows, lr_check_rows, plan_cells,
    sign_changes,
)
from fsnlab.study.sections import claim_row, curves, header, paper_table
from fsnlab.study.stats import describe

KIND = "regime_ladder"


def _why(ds: xr.Dataset) -> str:
    if ds.attrs.get("scale") == "smoke":
        return "not comparable (smoke scale)"
    return ("not comparable (tiny rung on the embedded corpus: the regime matches the paper's in epochs and tokens "
            "per parameter, not in size or corpus)")


def _delta_text(r: dict[str, Any] | None) -> str:
    if r is None:
        return "not planned"
    s = r["stats"]
    if not math.isfinite(s["mean_diff"]):
        return f"pending ({r['state']}; transformer {r['reference_state']})"
    return (f"Δ {fmt(s['mean_diff'])} {fmt_ci(s['ci_low'], s['ci_high'])} at {_fmt_tpp(r['tokens_per_parameter'])} "
            f"tokens/param, n={s['n']}, paired t p {fmt_p(s['t_p'])}")


def _ahead(r: dict[str, Any] | None) -> bool | None:
    if r is None or not math.isfinite(r["stats"]["mean_diff"]):
        return None
    return bool(r["stats"]["mean_diff"] < 0)


def claim_rows(ds: xr.Dataset, rows_by_arm: dict[str, list[dict[str, Any]]], top: float) -> list[list]:
    """The paper's claims at the longest budget (the copy-depth claims come with their section)."""
    why = _why(ds)
    last = {arm: next((r for r in rows_by_arm[arm] if math.isclose(r["budget"], top)), None) for arm in COMPARED}
    ka_ahead = _ahead(last["ka"])
    return [
        claim_row(C.FSN_BELOW_LONG_REGIME, f"{_budget_label(top)}: " + _delta_text(last["fsn"]), verdict(_ahead(last["fsn"]), False), why),
        claim_row(C.KA_BEHIND_KA_PAPER, f"{_budget_label(top)}: " + _delta_text(last["ka"]),
                  verdict(None if ka_ahead is None else not ka_ahead, False), why),
        claim_row(C.FSN_LEAD_EVERY_EPOCH,
                  "; ".join(f"{_budget_label(r['budget'])} {fmt(r['stats']['mean_diff'], 3)}" for r in rows_by_arm["fsn"]
                            if math.isfinite(r["stats"]["mean_diff"])) or "pending", verdict(None), why),
    ]


def section(page: Page, ds: xr.Dataset) -> None:
    st = _settings(ds)
    budgets = [float(b) for b in st.get("budgets", [])]
    check_budget = float(st.get("check_budget", 15))
    long_budgets = [b for b in budgets if b > check_budget]
    header(page, ds, "The regime ladder (issue 16): FSN, the unfrustrated base layer (KA), FSN-MF and the matched "
           "transformer at one rung, trained for several budgets of the same corpus, each with its own fitted "
           "schedule (2% warmup, cosine to 10% over the run's own length), evaluated on the validation split at "
           "every epoch. It asks whether the gap to the transformer changes sign as tokens per parameter reach "
           "the paper's regime (its 1M runs see about 2,700–4,500 tokens per parameter).")
    rows_by_arm = {arm: gap_rows(ds, arm) for arm in COMPARED}
    top = max(budgets) if budgets else math.nan
    copy_page = Page()  # shown further down; its claims join the paper table
    copy_rows = _copy_depth_section(copy_page, ds, st)
    paper_table(page, claim_rows(ds, rows_by_arm, top) + copy_rows)
    _gap_section(page, ds, rows_by_arm)
    _schedule_section(page, ds, check_budget, long_budgets)
    _final_section(page, ds)
    _lr_check_section(page, ds, st)
    page.extend(copy_page)
    page.h(2, "Validation curves")
    for b in budgets:
        sub = ds.isel(run=np.flatnonzero(_mask(ds, budget=b, role=LADDER)))
        if sub.sizes["run"] and np.isfinite(sub["val_bpc"].values).any():
            sub = sub.isel(eval=np.flatnonzero(np.isfinite(sub["val_bpc"].values).any(axis=0)))
            page.figure(curves(sub, "arm", f"{_budget_label(b)}: validation loss per evaluation (mean ± sd over seeds)"))
        else:
            page.p(f"{_budget_label(b)}: no evaluation yet.")


def _gap_section(page: Page, ds: xr.Dataset, rows_by_arm: dict[str, list[dict[str, Any]]]) -> None:
    page.h(2, "The gap against tokens per parameter")
    page.note("Δ = arm − transformer in final validation bits per byte, paired by seed (the arms of one seed see the same "
              "batches in the same order), with the t 95% CI of the mean difference over seeds; negative: the arm is "
              "better. Tokens per parameter = training tokens seen / the arm's parameter count. Each budget is its own "
              "run with its own schedule: this is the matched-budget comparison at that length.")
    for arm in COMPARED:
        if rows_by_arm[arm]:
            page.p(_sign_sentence(f"{label(arm)} − Transformer", rows_by_arm[arm]))
    table = []
    for arm in COMPARED:
        for r in rows_by_arm[arm]:
            s = r["stats"]
            table.append([f"{label(arm)} − Transformer", _budget_label(r["budget"]),
                          _fmt_tpp(r["tokens_per_parameter"], r["measured"]),
                          f"{r['lr']:g} / {r['reference_lr']:g}" if r["lr"] and r["reference_lr"] else "waits for the LR check",
                          s["n"], fmt(s["mean_diff"]), fmt(s["sd_diff"]), fmt_ci(s["ci_low"], s["ci_high"]),
                          fmt_p(s["t_p"]), fmt_p(s["wilcoxon_p"]), f"{s['wins']}/{s['n']}",
                          ", ".join(f"s{k} {v:+.4f}" for k, v in sorted(r["per_seed"].items())) or "–",
                          f"{r['state']} / {r['reference_state']}"])
    page.table(["comparison", "budget", "tokens / param", "peak LR (arm / transformer)", "pairs", "mean Δ", "sd Δ",
                "95% CI of Δ", "paired t p", "Wilcoxon p", "arm lower in", "per seed Δ", "runs (arm / transformer)"],
               table, left=2, caption="final validation bpc, arm − transformer, per budget")
    page.figure(_gap_figure(rows_by_arm))


def _gap_figure(rows_by_arm: dict[str, list[dict[str, Any]]]) -> Any:
    from fsnlab.viz.common import series_color
    from fsnlab.viz.study import Series, ci_lines_figure

    series = []
    for i, (arm, rows) in enumerate(rows_by_arm.items()):
        rows = [r for r in rows if math.isfinite(r["stats"]["mean_diff"]) and math.isfinite(r["tokens_per_parameter"])]
        if rows:
            series.append(Series(f"{label(arm)} − Transformer", series_color(arm, i), [r["tokens_per_parameter"] for r in rows],
                                 [r["stats"] for r in rows], [list(r["per_seed"].values()) for r in rows],
                                 text=[_budget_label(r["budget"]) for r in rows], width=2.5, marker_size=9,
                                 points_name=f"{label(arm)} seeds"))
    return ci_lines_figure(series, "Δ final validation bpc (arm − transformer) against tokens per parameter (95% CI over seeds; dots: seeds)",
                           "training tokens / parameters", "Δ bits per byte", zero_line=True, height=440)


def _schedule_section(page: Page, ds: xr.Dataset, check_budget: float, long_budgets: list[float]) -> None:
    from fsnlab.viz.common import series_color
    from fsnlab.viz.study import Series, ci_lines_figure

    gaps = [(b, arm, curve_gap(ds, b, arm)) for b in [check_budget, *long_budgets] for arm in COMPARED]
    gaps = [(b, arm, c) for b, arm, c in gaps if c]
    if not gaps:
        return
    page.h(2, "The gap along one schedule")
    page.note("Δ at every epoch of the runs of one budget (mean over the seeds paired so far; runs still training count "
              "up to their last evaluation). Inside a schedule the learning rate is still high before the end, so these "
              "points are not matched-budget results; they show how the gap moves as training goes on.")
    dashes = ("solid", "dash", "dot", "dashdot")
    budgets = sorted({b for b, _, _ in gaps})
    series = [Series(f"{label(arm)} − Transformer, {_budget_label(b)} schedule", series_color(arm, i),
                     [p["tokens_per_parameter"] for p in c], [p["stats"] for p in c],
                     dash=dashes[budgets.index(b) % len(dashes)], error_thickness=1)
              for i, (b, arm, c) in enumerate(gaps)]
    page.figure(ci_lines_figure(series, "Δ validation bpc at every evaluation of one schedule (95% CI over seeds)",
                                "training tokens / parameters", "Δ bits per byte", zero_line=True, height=440))
    rows = []
    for b, arm, c in gaps:
        ch = sign_changes([(p["epoch"], p["stats"]["mean_diff"]) for p in c])
        rows.append([f"{label(arm)} − Transformer", _budget_label(b), len(c), fmt(c[0]["stats"]["mean_diff"], 3),
                     fmt(c[-1]["stats"]["mean_diff"], 3),
                     "; ".join(f"between epoch {_num(x['x1'])} and {_num(x['x2'])}" for x in ch) or "none"])
    page.table(["comparison", "schedule", "evaluations", "Δ at the first", "Δ at the last", "sign changes"], rows, left=2)


def _final_section(page: Page, ds: xr.Dataset) -> None:
    page.h(2, "Final validation loss per budget and arm")
    rows = []
    for cell in plan_cells(ds):
        sub = _cell(ds, cell["budget"], cell["arm"])
        s = describe(sub["final_val_bpc"].values)
        rows.append([_budget_label(cell["budget"]), label(cell["arm"]),
                     f"{cell['lr']:g}" if cell.get("lr") else "waits for the LR check", f"{cell['done']}/{cell['seeds']}",
                     fmt(s["mean"]), fmt(s["sd"]), fmt_ci(s["ci_low"], s["ci_high"]),
                     ", ".join(f"s{int(k)} {fmt(v)}" for k, v in zip(sub["seed"].values, sub["final_val_bpc"].values)) or "–",
                     cell["state"]])
    page.table(["budget", "arm", "peak LR", "seeds done", "mean", "sd", "95% CI (t)", "per seed", "state"], rows, left=2,
               caption="final validation bits per byte (whole validation split at paper scale)")


def _lr_check_section(page: Page, ds: xr.Dataset, st: dict[str, Any]) -> None:
    long_lr = st.get("long_lr", {})
    if not long_lr:
        return
    check_budget = float(st.get("check_budget", 15))
    page.h(2, f"LR check at {_budget_label(check_budget)} (seed 0) and the LR of the longest budget")
    page.note("One seed per LR and arm at the check budget; once every run of an arm's check has finished (or failed), "
              "the longest budget's runs of that arm use the LR with the lowest final validation bpc (ties: the one "
              "nearest the default). Until then they wait: the study script trains them in a second pass once the "
              "check is finished. --long-lr ARM=LR sets the LR by hand.")
    heads, rows = lr_check_rows(ds)
    page.table(heads, rows, caption=f"final validation bpc at {_budget_label(check_budget)}")


def _copy_depth_section(page: Page, ds: xr.Dataset, st: dict[str, Any]) -> list[list[Any]]:
    """The copy-depth sections per copy budget; returns their claims (paper table rows)."""
    rows: list[list[Any]] = []
    budgets = json.loads(ds.attrs.get("copy_budgets", "null") or "null") or st.get("copy_budgets", [])
    why = "not comparable (smoke scale)" if ds.attrs.get("scale") == "smoke" else "not comparable (tiny rung, embedded corpus)"
    page.h(2, "Copy depth on the final checkpoints")
    if "copy_loss_sum" not in ds:
        page.p("No copy-depth results yet: they are computed for the finished ladder runs of "
               + ", ".join(_budget_label(float(b)) for b in budgets) + ".")
        return rows
    page.note(ds.attrs.get("copy_depth_definition", ""))
    deep = deep_bins(json.loads(ds.attrs["copy_depth_bin_labels"]))
    for b in budgets:
        b = float(b)
        sub = ds.isel(run=np.flatnonzero(_mask(ds, budget=b, role=LADDER)))
        if not (sub["status"].values == "done").any():
            page.p(f"{_budget_label(b)}: pending (no finished run yet).")
            continue
        deltas = bin_section(page, sub, "depth", 0, f"{_budget_label(b)}: bits per target by copy depth")
        ka = [r["mean_diff"] > 0 for r in deltas.get("ka", []) if math.isfinite(r["mean_diff"])]
        fsn = deltas.get("fsn", [])
        fsn_deep = [fsn[i]["mean_diff"] < 0 for i in deep if i < len(fsn) and math.isfinite(fsn[i]["mean_diff"])]
        rows.append(claim_row(C.KA_BEHIND_EVERY_DEPTH_LADDER, f"behind in {sum(ka)}/{len(ka)} depth bins" if ka else "pending",
                              verdict(all(ka) if ka else None, False), why,
                              statement=f"{_budget_label(b)}: {C.KA_BEHIND_EVERY_DEPTH_LADDER.statement}"))
        rows.append(claim_row(C.FSN_REVERSES_DEPTH_4_LADDER,
                              f"FSN ahead in {sum(fsn_deep)}/{len(fsn_deep)} bins with depth ≥ 4; Δ by bin "
                              + ", ".join(fmt(r["mean_diff"], 3) for r in fsn) if fsn_deep else "pending",
                              verdict(all(fsn_deep) if fsn_deep else None, False), why,
                              statement=f"{_budget_label(b)}: {C.FSN_REVERSES_DEPTH_4_LADDER.statement}"))
        bin_section(page, sub, "distance", 1, f"{_budget_label(b)}: bits per target by copy distance (depth ≥ 1)")
    return rows
