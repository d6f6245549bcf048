"""Report parts every study kind shares: the header, the table of our numbers next to the paper's
claims, summaries and paired comparisons per group, the runs, the protocol check and the settings.

Each function adds blocks to a :class:`fsnlab.study.page.Page` or returns table rows; the numbers
come from :mod:`fsnlab.study.stats` over runs selected and paired by label (:mod:`fsnlab.study.align`).
"""

from __future__ import annotations

import json
import math
import warnings
from typing import Any, Callable, Sequence

import numpy as np
import xarray as xr

from fsnlab.study.align import aligned_by_seed, paired_by_seed, select, tag_values
from fsnlab.study.claims import Claim
from fsnlab.study.formatting import fmt, fmt_ci, fmt_p
from fsnlab.study.labels import ARM_ORDER, label
from fsnlab.study.page import Page, Verdict, verdict
from fsnlab.study.stats import describe

SUMMARY_HEADERS = ["arm", "n", "mean", "sd", "median", "95% CI (t)", "per seed"]
PAIRED_HEADERS = ["arm − reference", "pairs", "mean Δ", "sd Δ", "95% CI of Δ", "paired t p", "Wilcoxon p", "lower in"]
PAPER_HEADERS = ["claim (paper)", "paper", "ours", "agrees", "comparable?"]


# -- the study's settings and whether it is comparable with the paper -------------------------------------


def settings(ds: xr.Dataset) -> dict[str, Any]:
    """The study's settings (the ``settings`` JSON attribute); empty if unreadable."""
    try:
        return json.loads(ds.attrs.get("settings", "{}"))
    except ValueError:
        return {}


def is_paper_protocol(ds: xr.Dataset, data_kind: str = "enwik8", rung: str = "1m") -> bool:
    """Paper scale on enwik8 at the 1M rung with the spec's 64 × 512 batches."""
    if ds.attrs.get("scale") != "paper":
        return False
    texts = [d for d in ds["data"].values if str(d).startswith(data_kind)]
    rungs = {str(p).rsplit("-", 1)[-1] for p in ds["preset"].values}
    return bool(texts) and rungs == {rung}


def comparability(ds: xr.Dataset, epochs: float | None = None, **kw: Any) -> tuple[bool, str]:
    """(comparable with the paper's numbers?, why) for the runs of ``ds`` (at ``epochs``, if given)."""
    if ds.attrs.get("scale") != "paper":
        return False, "not comparable (smoke scale)"
    if not is_paper_protocol(ds, **kw):
        return False, "not comparable (not enwik8 at 1M)"
    if epochs is not None:
        ours = settings(ds).get("protocol", {}).get("epochs")
        if ours is None or abs(float(ours) - epochs) > 1e-9:
            return False, f"not comparable (we trained {ours} epochs, the paper {epochs:g})"
    return True, "comparable"


def contains(ours: dict[str, float], claim: Claim) -> bool | None:
    """Does our 95% CI contain the claim's value (or overlap its mean ± 2 sd)?"""
    lo, hi = ours["ci_low"], ours["ci_high"]
    if not (math.isfinite(lo) and math.isfinite(hi)) or claim.value is None:
        return None
    spread = 2 * claim.sd if claim.sd else 0.0
    return bool(lo <= claim.value + spread and hi >= claim.value - spread)


# -- header and the paper table ---------------------------------------------------------------------------


def header(page: Page, ds: xr.Dataset, what: str) -> None:
    """The title, what the study asks, its protocol and provenance, and notices for smoke scale
    and unfinished runs."""
    page.h(1, ds.attrs.get("title", "fsnlab study"))
    page.p(what)
    proto = settings(ds).get("protocol", {})
    length = f"{proto.get('max_steps')} steps" if proto.get("max_steps") else f"{proto.get('epochs')} epochs"
    status = {s: int((ds["status"].values == s).sum()) for s in ("done", "partial", "new", "failed")}
    rows = [
        ["study", ds.attrs.get("study", "?")],
        ["scale", ds.attrs.get("scale", "?")],
        ["training length", length],
        ["batch × context", f"{proto.get('batch_size')} × {proto.get('context_length') or 'preset'}"],
        ["evaluation bytes", "whole validation split" if proto.get("eval_bytes") in (None, -1) else f"first {proto.get('eval_bytes'):,}"],
        ["runs", f"{ds.sizes['run']} ({', '.join(f'{n} {s}' for s, n in status.items() if n)})"],
        ["created", ds.attrs.get("created", "?")],
        ["fsnlab", f"{ds.attrs.get('fsnlab_version', '?')} (commit {ds.attrs.get('git_commit', '?')})"],
        ["runs directory", ds.attrs.get("runs_dir", "?")],
    ]
    page.table(["", ""], rows, left=2)
    if ds.attrs.get("scale") == "smoke":
        page.add("smoke_scale")
    if status["done"] < ds.sizes["run"]:
        page.add("unfinished", count=ds.sizes["run"] - status["done"])


def claim_row(claim: Claim, ours: str, agrees: Verdict, comparable: str, statement: str | None = None) -> list[Any]:
    """A row of the paper table: the claim and the paper's value (from :mod:`fsnlab.study.claims`),
    ours, whether they agree and whether that means anything."""
    return [claim.statement if statement is None else statement, claim.paper, ours, agrees, comparable]


def paper_table(page: Page, rows: Sequence[Sequence[Any]]) -> None:
    page.h(2, "Our numbers next to the paper's (spec §9)")
    page.table(PAPER_HEADERS, rows, left=1)
    page.note("Paper values come from the abstract and the review summary (spec §1, §9); losses are bits per byte. "
              "'agrees': for a direction, whether ours points the same way; for a number, whether our 95% CI contains the paper's "
              "value (or overlaps its mean ± 2 sd). It means something only where the row is comparable (grey otherwise).")


# -- per-group summaries and paired comparisons -----------------------------------------------------------


def summary_rows(ds: xr.Dataset, group: str, preferred: Sequence[Any] = (), value: str = "final_val_bpc",
                 names: Callable[[Any], str] = label) -> list[list[Any]]:
    """Per value of ``group``: n, mean, sd, median, t CI and the per-seed values of ``value``."""
    rows = []
    for v in tag_values(ds, group, preferred):
        sub = select(ds, **{group: v})
        s = describe(sub[value].values)
        seeds = ", ".join(fmt(x) for x in sub[value].values)
        rows.append([names(v), s["n"], fmt(s["mean"]), fmt(s["sd"]), fmt(s["median"]), fmt_ci(s["ci_low"], s["ci_high"]), seeds])
    return rows


def paired_cells(name: str, r: dict[str, float]) -> list[Any]:
    """A row of :data:`PAIRED_HEADERS` from a :func:`fsnlab.study.stats.paired` dict."""
    return [name, r["n"], fmt(r["mean_diff"]), fmt(r["sd_diff"]), fmt_ci(r["ci_low"], r["ci_high"]), fmt_p(r["t_p"]),
            fmt_p(r["wilcoxon_p"]), f"{r['wins']}/{r['n']} seeds"]


def paired_rows(ds: xr.Dataset, group: str, reference: Any, preferred: Sequence[Any] = (),
                value: str = "final_val_bpc", names: Callable[[Any], str] = label) -> list[list[Any]]:
    """Each value of ``group`` minus ``reference``, paired by seed."""
    ref = select(ds, **{group: reference})[value]
    rows = []
    for v in tag_values(ds, group, preferred):
        if v == reference:
            continue
        r = paired_by_seed(select(ds, **{group: v})[value], ref)
        rows.append(paired_cells(f"{names(v)} − {names(reference)}", r))
    return rows


def every_eval_below(ds: xr.Dataset, arm: str, ref: str = "transformer", **tags: Any) -> tuple[bool | None, str]:
    """Is the arm's mean validation loss below the reference's at every evaluation (and per seed)?"""
    a, b = select(ds, arm=arm, **tags), select(ds, arm=ref, **tags)
    if a.sizes["run"] == 0 or b.sizes["run"] == 0:
        return None, "–"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ma, mb = a["val_bpc"].mean("run").values, b["val_bpc"].mean("run").values
    keep = np.isfinite(ma) & np.isfinite(mb)
    if not keep.any():
        return None, "–"
    below = ma[keep] < mb[keep]
    va, vb = aligned_by_seed(a["val_bpc"], b["val_bpc"])  # seed, eval
    both = np.isfinite(va.values) & np.isfinite(vb.values)
    seed_below = int((va.values[both] < vb.values[both]).sum())
    return bool(below.all()), f"mean below at {int(below.sum())}/{int(keep.sum())} evaluations; per seed {seed_below}/{int(both.sum())}"


# -- figures shared by several kinds -----------------------------------------------------------------------


def curves(ds: xr.Dataset, group: str, title: str, preferred: Sequence[Any] = ARM_ORDER,
           names: Callable[[Any], str] = label) -> Any:
    """:func:`fsnlab.viz.study.curves_figure` of the values of ``group`` in report order."""
    from fsnlab.viz.study import curves_figure

    return curves_figure(ds, group, tag_values(ds, group, preferred), title, names)


def final_bars(ds: xr.Dataset, group: str, preferred: Sequence[Any], title: str,
               names: Callable[[Any], str] = label) -> Any:
    """The final validation bpc per value of ``group``: mean with 95% CI, and the seeds as dots."""
    from fsnlab.viz.common import PALETTE
    from fsnlab.viz.study import LOSS_AXIS, Series, bars_figure

    cats, stats_list, points = [], [], []
    for v in tag_values(ds, group, preferred):
        vals = select(ds, **{group: v})["final_val_bpc"].values
        cats.append(names(v))
        stats_list.append(describe(vals))
        points.append(list(vals))
    return bars_figure([Series("final validation bpc", PALETTE[-1], cats, stats_list, points)], title, LOSS_AXIS)


# -- runs, protocol, settings -------------------------------------------------------------------------------


def runs_table(page: Page, ds: xr.Dataset) -> None:
    page.h(2, "Runs")
    tags = [t for t in json.loads(ds.attrs.get("tags", "[]")) if t in ds.coords]
    rows = []
    for i in range(ds.sizes["run"]):
        r = ds.isel(run=i)
        rows.append([str(r["run"].values)] + [str(r[t].values) for t in tags]
                    + [str(r["status"].values), f"{int(r['steps_done'])}/{int(r['total_steps'])}",
                       fmt(int(r["parameters"])), fmt(float(r["final_val_bpc"])), fmt(float(r["best_val_bpc"])),
                       str(r["error"].values)])
    page.table(["run"] + tags + ["status", "steps", "parameters", "final bpc", "best bpc", "error"], rows, left=1 + len(tags))


def protocol_check(page: Page, ds: xr.Dataset, group: str) -> None:
    """Do the arms share seeds, data order, schedule and budget? (the review's request, spec §0.1)"""
    fields = ["data", "seed", "batch_size", "context_length", "max_steps", "epochs", "lr", "warmup_frac",
              "min_lr_ratio", "weight_decay", "beta1", "beta2", "grad_clip", "eval_interval", "eval_bytes"]
    configs = [json.loads(c).get("train", {}) for c in ds["config"].values]
    groups = ds[group].values
    rows = []
    keys = sorted({(c.get("data"), c.get("seed")) for c in configs}, key=str)
    for f in fields:
        if f in ("data", "seed"):
            continue
        same = True
        for key in keys:
            vals = {json.dumps(c.get(f)) for c, g in zip(configs, groups) if (c.get("data"), c.get("seed")) == key}
            same &= len(vals) <= 1
        rows.append([f, verdict(same)])
    seeds = {g: sorted({c.get("seed") for c, gg in zip(configs, groups) if gg == g}) for g in set(groups)}
    same_seeds = len({json.dumps(v) for v in seeds.values()}) == 1
    rows.insert(0, ["seeds (model init and data order)", verdict(same_seeds)])
    params = {str(g): sorted({int(p) for p, gg in zip(ds["parameters"].values, groups) if gg == g}) for g in set(groups)}
    page.h(3, "Protocol check: identical across arms (per corpus and seed)")
    page.table(["setting", "identical"], rows, left=1)
    page.note("Within one seed every arm draws the same batches in the same order (the data stream is seeded by the "
              "seed alone and all arms share the context length and batch size) and initialises from the same "
              "distributions. Parameters per arm: " + "; ".join(f"{label(k)} {', '.join(fmt(x) for x in v)}" for k, v in sorted(params.items())))


def settings_block(page: Page, ds: xr.Dataset) -> None:
    page.h(2, "Settings")
    page.details("study settings (JSON)", json.dumps(settings(ds), indent=2, sort_keys=True))
    page.details("manifest (JSON)", json.dumps(json.loads(ds.attrs.get("manifest", "{}")), indent=2, sort_keys=True))


__all__ = [
    "PAIRED_HEADERS", "PAPER_HEADERS", "SUMMARY_HEADERS", "claim_row", "comparability", "contains", "curves",
    "every_eval_below", "final_bars", "header", "is_paper_protocol", "paired_cells", "paired_rows", "paper_table",
    "protocol_check", "runs_table", "settings", "settings_block", "summary_rows",
]
