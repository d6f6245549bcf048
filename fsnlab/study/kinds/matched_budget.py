"""Matched budget (spec §9.2, §9.3): FSN against the parameter-matched transformer, with the base
layer (KA) and FSN-MF, at one token budget, on text and code; every comparison paired by seed."""

from __future__ import annotations

import math

import numpy as np
import xarray as xr

from fsnlab.study import claims as C
from fsnlab.study.align import paired_by_seed, select, tag_values
from fsnlab.study.formatting import fmt, fmt_ci, fmt_p
from fsnlab.study.labels import ARM_ORDER, label
from fsnlab.study.page import Page, verdict
from fsnlab.study.sections import (
    PAIRED_HEADERS, SUMMARY_HEADERS, claim_row, comparability, contains, curves, every_eval_below, final_bars,
    header, paired_rows, paper_table, protocol_check, summary_rows,
)
from fsnlab.study.stats import describe

KIND = "matched_budget"


def fsn_minus_transformer(ds: xr.Dataset, arm: str = "fsn") -> dict[str, float]:
    """The final val bpc of ``arm`` minus the transformer's, paired by seed."""
    return paired_by_seed(select(ds, arm=arm)["final_val_bpc"], select(ds, arm="transformer")["final_val_bpc"])


def _pm(s: dict[str, float]) -> str:
    return f"{fmt(s['mean'])} ± {fmt(s['sd'])} (n={s['n']}), 95% CI {fmt_ci(s['ci_low'], s['ci_high'])}"


def claim_rows(ds: xr.Dataset) -> list[list]:
    """Our numbers next to the paper's claims (spec §9.2, §9.3, Part B.4)."""
    corpora = tag_values(ds, "corpus", ("text", "code"))
    text = select(ds, corpus="text") if "text" in corpora else ds
    ok50, why50 = comparability(text, 50.0)
    ok30, why30 = comparability(text, 30.0)
    okany, whyany = comparability(text)
    t = describe(select(text, arm="transformer")["final_val_bpc"].values)
    f = describe(select(text, arm="fsn")["final_val_bpc"].values)
    k = describe(select(text, arm="ka")["final_val_bpc"].values)
    mf = fsn_minus_transformer(text, "fsn-mf")
    fsn_seeds = select(text, arm="fsn")["final_val_bpc"].values
    every_text, every_text_s = every_eval_below(ds, "fsn", corpus="text")
    every_code, every_code_s = every_eval_below(ds, "fsn", corpus="code")
    d_text = fsn_minus_transformer(text)
    d_code = fsn_minus_transformer(select(ds, corpus="code"))
    on_paper = ds.attrs.get("scale") == "paper"
    threshold = C.FSN_30_EVERY_SEED.value
    any_seed = np.isfinite(fsn_seeds).any()
    return [
        claim_row(C.FSN_BELOW_TRANSFORMER,
                  f"Δ FSN − transformer {fmt(d_text['mean_diff'])} {fmt_ci(d_text['ci_low'], d_text['ci_high'])}, paired t p {fmt_p(d_text['t_p'])}",
                  verdict(d_text["mean_diff"] < 0 if math.isfinite(d_text["mean_diff"]) else None, okany), whyany,
                  statement=C.FSN_BELOW_TRANSFORMER.statement + " (text)"),
        claim_row(C.TRANSFORMER_50, _pm(t), verdict(contains(t, C.TRANSFORMER_50), ok50), why50),
        claim_row(C.FSN_50, _pm(f), verdict(contains(f, C.FSN_50), ok50), why50),
        claim_row(C.FSN_30_EVERY_SEED, f"max over seeds {fmt(np.nanmax(fsn_seeds) if any_seed else math.nan)}",
                  verdict(bool(np.nanmax(fsn_seeds) < threshold) if any_seed else None, ok30), why30),
        claim_row(C.FSN_EVERY_EPOCH_TEXT, every_text_s, verdict(every_text, okany), whyany,
                  statement=C.FSN_EVERY_EPOCH_TEXT.statement + " (text)"),
        claim_row(C.FSN_EVERY_EPOCH_CODE,
                  every_code_s + (f"; final Δ {fmt(d_code['mean_diff'])} {fmt_ci(d_code['ci_low'], d_code['ci_high'])}" if d_code["n"] else ""),
                  verdict(every_code, on_paper), "direction only (no code numbers in the paper)" if on_paper else "not comparable (smoke scale)",
                  statement=C.FSN_EVERY_EPOCH_CODE.statement + " (code)"),
        claim_row(C.FSN_MF_TRACKS, f"Δ FSN-MF − transformer {fmt(mf['mean_diff'])} {fmt_ci(mf['ci_low'], mf['ci_high'])}",
                  verdict(None), "qualitative only", statement=C.FSN_MF_TRACKS.statement + " (text)"),
        claim_row(C.KA_BEHIND_TRANSFORMER, f"KA {_pm(k)}", verdict(bool(k["mean"] > t["mean"]) if k["n"] and t["n"] else None, okany),
                  "direction only (the KA paper's budget is not known)" if okany else whyany),
    ]


def section(page: Page, ds: xr.Dataset) -> None:
    header(page, ds, "FSN against a parameter-matched RoPE-SwiGLU transformer (and the KA base layer and FSN-MF) "
           "at the same token budget, with identical seeds, schedules and initialisation distributions (spec §9.2, §9.3).")
    paper_table(page, claim_rows(ds))
    arms = tag_values(ds, "arm", ARM_ORDER)
    for corpus in tag_values(ds, "corpus", ("text", "code")):
        sub = select(ds, corpus=corpus)
        page.h(2, f"{corpus}: validation curves")
        page.figure(curves(sub, "arm", f"{corpus}: validation loss per evaluation (mean ± sd over seeds)"))
        page.h(2, f"{corpus}: final validation loss")
        page.table(SUMMARY_HEADERS, summary_rows(sub, "arm", ARM_ORDER), caption="final validation bits per byte over seeds")
        if "transformer" in arms:
            page.table(PAIRED_HEADERS, paired_rows(sub, "arm", "transformer", ARM_ORDER),
                       caption="paired by seed against the transformer (negative Δ: lower loss than the transformer)")
            rows = []
            for arm in arms:
                if arm != "transformer":
                    ok, s = every_eval_below(ds, arm, corpus=corpus)
                    rows.append([label(arm), verdict(ok), s])
            page.table(["arm", "below the transformer at every evaluation", "count"], rows)
        page.figure(final_bars(sub, "arm", ARM_ORDER, f"{corpus}: final validation loss (95% CI over seeds; dots: seeds)"))
        protocol_check(page, sub, "arm")
