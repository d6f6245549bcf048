"""Copy depth (spec §9.5): each model's mean loss per copy-depth bin and per copy-distance bin of
the validation targets (the bins come from the data alone), each arm against the transformer
paired by seed. The regime ladder reuses :func:`bin_losses` and :func:`bin_section`."""

from __future__ import annotations

import json
import math
from typing import Any, Callable, Sequence

import numpy as np
import xarray as xr

from fsnlab.study import claims as C
from fsnlab.study.align import by_group_and_seed, tag_values
from fsnlab.study.formatting import fmt, fmt_ci, fmt_p
from fsnlab.study.labels import ARM_ORDER, label
from fsnlab.study.page import Page, verdict
from fsnlab.study.sections import SUMMARY_HEADERS, claim_row, comparability, curves, header, paper_table, settings, summary_rows
from fsnlab.study.stats import describe, paired

KIND = "copy_depth"
REFERENCE = "transformer"


def bin_losses(ds: xr.Dataset, kind: str, min_depth: int = 1) -> xr.Dataset:
    """Per run and bin: ``loss_sum`` (NaN for unfinished runs), ``count`` and ``mean_loss`` (bits
    per target) over copy-depth bins (``kind="depth"``) or copy-distance bins (``"distance"``, of
    the targets with depth ≥ ``min_depth``). The run coordinates (``arm``, ``seed``, ...) are kept."""
    sums, counts = ds["copy_loss_sum"], ds["copy_count"]  # run, depth, distance column
    if kind == "depth":
        bins = json.loads(ds.attrs["copy_depth_bins"])
        labels = json.loads(ds.attrs["copy_depth_bin_labels"])
        s = np.stack([np.nansum(sums.values[:, lo : hi + 1, :], axis=(1, 2)) for lo, hi in bins], axis=1)
        c = np.stack([counts.values[:, lo : hi + 1, :].sum(axis=(1, 2)) for lo, hi in bins], axis=1)
    else:
        labels = json.loads(ds.attrs["copy_distance_bin_labels"])
        s = np.nansum(sums.values[:, min_depth:, 1:], axis=1)
        c = counts.values[:, min_depth:, 1:].sum(axis=1)
    done = ds["status"].values == "done"
    s = np.where(done[:, None], s, np.nan)
    with np.errstate(all="ignore"):
        mean = s / np.where(c > 0, c, np.nan)
    run_coords = {k: v for k, v in ds["status"].coords.items() if k != "run"}
    return xr.Dataset({"loss_sum": (("run", "bin"), s), "count": (("run", "bin"), c), "mean_loss": (("run", "bin"), mean)},
                      coords={"run": ds["run"].values, "bin": labels, **{k: ("run", v.values) for k, v in run_coords.items()}})


def target_share(b: xr.Dataset) -> np.ndarray:
    """Targets per bin (the same for every model: from the first finished run)."""
    done = np.flatnonzero(b["status"].values == "done")
    return b["count"].values[done[0] if done.size else 0]


def arm_bins(b: xr.Dataset) -> xr.DataArray:
    """``mean_loss`` as (arm, seed, bin): arms align by seed."""
    return by_group_and_seed(b["mean_loss"], "arm")


def bin_section(page: Page, ds: xr.Dataset, kind: str, min_depth: int, title: str) -> dict[str, list[dict[str, float]]]:
    """The table and figures of one binning; returns per arm the paired difference from the
    transformer in each bin (:func:`fsnlab.study.stats.paired` dicts)."""
    from fsnlab.viz.common import series_color
    from fsnlab.viz.study import Series, bars_figure

    b = bin_losses(ds, kind, min_depth)
    labels = [str(x) for x in b["bin"].values]
    ml = arm_bins(b)  # arm, seed, bin
    arms = tag_values(ds, "arm", ARM_ORDER)
    share = target_share(b)
    total = max(int(share.sum()), 1)
    has_ref = REFERENCE in arms
    series = []
    for i, arm in enumerate(arms):
        vals = ml.sel(arm=arm).transpose("bin", "seed").values
        series.append(Series(label(arm), series_color(arm, i), labels, [describe(v) for v in vals], [list(v) for v in vals]))
    deltas: dict[str, list[dict[str, float]]] = {}
    delta_points: dict[str, list[list[float]]] = {}
    for arm in arms:
        if arm == REFERENCE or not has_ref:
            continue
        mine, ref = ml.sel(arm=arm).transpose("bin", "seed"), ml.sel(arm=REFERENCE).transpose("bin", "seed")
        deltas[arm] = [paired(m, r) for m, r in zip(mine.values, ref.values)]
        delta_points[arm] = [list(d) for d in (mine - ref).values]
    rows = []
    for j, lab in enumerate(labels):
        row = [lab, f"{100 * share[j] / total:.1f}%", fmt(int(share[j]))]
        for s in series:
            st = s.stats[j]
            row.append(f"{fmt(st['mean'])} {fmt_ci(st['ci_low'], st['ci_high'])}")
        for arm, rs in deltas.items():
            r = rs[j]
            row.append(f"{fmt(r['mean_diff'])} {fmt_ci(r['ci_low'], r['ci_high'])} (t p {fmt_p(r['t_p'])})")
        rows.append(row)
    heads = ["bin", "share of targets", "targets"] + [f"{label(a)} mean bits [95% CI]" for a in arms]
    heads += [f"Δ {label(a)} − Transformer [95% CI]" for a in deltas]
    page.h(2, title)
    page.table(heads, rows, caption="mean loss per target in each bin; Δ paired by seed (negative: lower loss than the transformer)")
    page.figure(bars_figure(series, f"{title}: mean loss per bin (95% CI over seeds; dots: seeds)", "bits per target"))
    delta_series = [Series(f"{label(arm)} − Transformer", series_color(arm, i), labels, rs, delta_points[arm])
                    for i, (arm, rs) in enumerate(deltas.items())]
    if delta_series:
        page.figure(bars_figure(delta_series, f"{title}: difference from the transformer (95% CI over seeds)",
                                "Δ bits per target", zero_line=True, bars=True))
    return deltas


def deep_bins(labels: Sequence[str], depth: int = 4) -> list[int]:
    """Indices of the depth bins whose lower edge is at least ``depth``."""
    return [i for i, lab in enumerate(labels) if int(lab.split("–")[0]) >= depth]


def _extreme_is_last(values: Sequence[float], pick: Callable[[np.ndarray], Any]) -> bool | None:
    """Is the extreme (argmin/argmax) of the finite values in the last non-empty bin?"""
    arr = np.asarray(values, dtype=np.float64)
    finite = np.flatnonzero(np.isfinite(arr))
    if finite.size < 2:
        return None
    return int(finite[int(pick(arr[finite]))]) == int(finite[-1])


def claim_rows(ds: xr.Dataset, depth_d: dict[str, list[dict[str, float]]], dist_d: dict[str, list[dict[str, float]]]) -> list[list]:
    """Our numbers next to the paper's copy-depth claims (spec §9.5)."""
    labels = json.loads(ds.attrs["copy_depth_bin_labels"])
    ok, why = comparability(ds)
    ka, fsn = depth_d.get("ka", []), depth_d.get("fsn", [])
    ka_behind = [r["mean_diff"] > 0 for r in ka if math.isfinite(r["mean_diff"])]
    deep = deep_bins(labels)
    fsn_ahead = [fsn[i]["mean_diff"] < 0 for i in deep if i < len(fsn) and math.isfinite(fsn[i]["mean_diff"])]
    dist_fsn = [r["mean_diff"] for r in dist_d.get("fsn", [])]
    dist_ka = [r["mean_diff"] for r in dist_d.get("ka", [])]
    return [
        claim_row(C.KA_BEHIND_EVERY_DEPTH, f"behind in {sum(ka_behind)}/{len(ka_behind)} depth bins",
                  verdict(all(ka_behind) if ka_behind else None, ok), why),
        claim_row(C.KA_WORST_LONG_RANGE, "Δ by distance bin: " + ", ".join(fmt(d, 3) for d in dist_ka),
                  verdict(_extreme_is_last(dist_ka, np.argmax), ok), why),
        claim_row(C.FSN_REVERSES_DEPTH_4, f"ahead in {sum(fsn_ahead)}/{len(fsn_ahead)} bins with depth ≥ 4",
                  verdict(all(fsn_ahead) if fsn_ahead else None, ok), why),
        claim_row(C.FSN_LONG_RANGE, "Δ by distance bin: " + ", ".join(fmt(d, 3) for d in dist_fsn),
                  verdict(_extreme_is_last(dist_fsn, np.argmin), ok), why),
        claim_row(C.DEPTHS_0_3, "Δ FSN: " + ", ".join(fmt(fsn[i]["mean_diff"], 3) for i in range(len(fsn)) if i not in deep),
                  verdict(None), why),
    ]


def section(page: Page, ds: xr.Dataset) -> None:
    header(page, ds, "Loss by copy depth (spec §9.5): the depth of every validation target is computed from the data "
           "alone, then each trained model's mean loss is pooled per depth bin and per copy-distance bin.")
    page.note(ds.attrs.get("copy_depth_definition", ""))
    if "copy_loss_sum" not in ds:
        page.p("No copy-depth analysis in this dataset.")
        return
    bins = Page()  # built first: the paper table comes first but needs their numbers
    depth_d = bin_section(bins, ds, "depth", 0, "By copy depth")
    dist_d = bin_section(bins, ds, "distance", 1, "By copy distance (targets with depth ≥ 1)")
    bin_section(bins, ds, "distance", 4, "By copy distance (targets with depth ≥ 4)")
    paper_table(page, claim_rows(ds, depth_d, dist_d))
    page.extend(bins)
    done = ds["status"].values == "done"
    if done.any() and "token_mean_bits" in ds:
        proto = settings(ds).get("protocol", {})
        same_bytes = ds.attrs.get("copy_eval_bytes") in (-1, None) and proto.get("eval_bytes") is None or \
            ds.attrs.get("copy_eval_bytes") == proto.get("eval_bytes")
        diff = np.abs(ds["token_mean_bits"].values[done] - ds["final_val_bpc"].values[done])
        page.note(f"Check: the mean of the per-target losses equals each run's final validation bpc to within "
                  f"{np.nanmax(diff):.2e} bits" + ("" if same_bytes else " (over different byte ranges: not expected to match)") + ".")
    page.h(2, "Validation curves")
    page.figure(curves(ds, "arm", "validation loss per evaluation (mean ± sd over seeds)"))
    page.table(SUMMARY_HEADERS, summary_rows(ds, "arm", ARM_ORDER), caption="final validation bits per byte")
