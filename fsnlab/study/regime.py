"""The regime ladder (issue 16): FSN, base layer, FSN-MF and transformer at the tiny rung trained
1, 5, 15 and 50 epochs of one corpus, each budget with its own fitted schedule, so that the gap
to the transformer can be read against tokens per parameter up to the paper's regime (about
4,250 tokens per parameter at 50 epochs of the embedded corpus; the paper's 1M runs on enwik8
see 2,700 to 4,500).

This module holds what ``studies/regime_ladder.py`` and the report share:

* :func:`choose_lr`: the LR of the longest budget, taken from the LR check at the check budget
  (one seed per LR) once every run of that check has finished;
* :func:`regime_analysis`: tokens per parameter at every evaluation, and the copy-depth losses
  (:func:`fsnlab.study.analyses.copy_depth_analysis`) of the ladder runs at the copy budgets;
* :func:`gap_rows` / :func:`sign_changes`: each arm minus the transformer per budget, paired by
  seed, and where the sign of the mean difference changes;
* :func:`markdown_summary`: the study's answer as markdown (``summary.md``, for ``docs/quality.md``).

Its section of ``report.html`` is :mod:`fsnlab.study.kinds.regime_ladder`.

Every function works on partial results: a cell whose runs are not finished (or not yet in the
manifest, as the longest budget is while its LR check runs) shows as pending.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import xarray as xr

from fsnlab.study.align import aligned_by_seed, by_seed, tag_values
from fsnlab.study.formatting import fmt, fmt_ci, fmt_p
from fsnlab.study.labels import ARM_ORDER, label
from fsnlab.study.manifest import Manifest, run_state
from fsnlab.study.stats import describe, paired

KIND = "regime_ladder"
REFERENCE = "transformer"
COMPARED = ("fsn", "fsn-net", "ka", "fsn-mf")  # each minus the transformer
# a variant of the layer minus the layer, paired by seed; FSN − KA is the frustration kernel's own effect
# (the two presets differ only in the kernel), the paper's ablation (spec §6)
VARIANT_PAIRS = (("fsn-net", "fsn"), ("fsn", "ka"))
LADDER = "ladder"  # role of the runs that make the ladder's cells
LR_CHECK = "lr_check"  # role of the extra runs of the LR check (the check's default-LR run is a ladder run)


# -- the LR of the longest budget ---------------------------------------------------------------------


def final_bpc(run_dir: str | Path) -> float | None:
    """The last validation bpc of a finished run directory (None otherwise)."""
    from fsnlab.train import read_metrics

    run_dir = Path(run_dir)
    if run_state(run_dir).status != "done" or not (run_dir / "metrics.jsonl").is_file():
        return None
    evals = [r for r in read_metrics(run_dir) if r.get("event") == "eval"]
    return float(evals[-1]["val_bpc"]) if evals else None


def choose_lr(runs_dir: str | Path, candidates: dict[float, str], default: float, record: Any = None) -> dict[str, Any]:
    """The LR for the long runs of one arm from its LR check (``candidates``: LR → run name).

    Returns ``{"status", "lr", "check", "finished", "of"}``: ``status`` is ``chosen`` (every check
    run is done or failed, and ``lr`` is the one with the lowest final val bpc), ``waiting`` (some
    are not finished; ``lr`` is None) or ``fallback`` (all failed: the arm's default LR).
    ``check`` maps each LR (as text) to its final bpc, ``"failed"`` or None (not finished).
    ``record``: a :class:`~fsnlab.study.record.StudyRecord`; a check run with no checkpoint here
    that it holds as finished counts with its recorded bpc."""
    runs_dir = Path(runs_dir)
    check: dict[str, Any] = {}
    finished = 0
    for lr, name in sorted(candidates.items()):
        state = run_state(runs_dir / name)
        if state.status == "new" and record is not None and name in record:
            check[f"{lr:g}"] = record.final_bpc(name)
            finished += 1
        elif state.status == "done":
            check[f"{lr:g}"] = final_bpc(runs_dir / name)
            finished += 1
        elif state.status == "failed":
            check[f"{lr:g}"] = "failed"
            finished += 1
        else:
            check[f"{lr:g}"] = None
    out: dict[str, Any] = {"check": check, "finished": finished, "of": len(candidates), "lr": None}
    if finished < len(candidates):
        out["status"] = "waiting"
        return out
    scored = {lr: check[f"{lr:g}"] for lr in candidates if isinstance(check[f"{lr:g}"], float)}
    scored = {lr: v for lr, v in scored.items() if math.isfinite(v)}
    if not scored:
        out.update(status="fallback", lr=default)
        return out
    out.update(status="chosen", lr=min(scored, key=lambda lr: (scored[lr], abs(math.log(lr / default)))))
    return out


def lr_message(long_lr: dict[str, dict[str, Any]], budget: float, check_budget: float) -> str:
    """One line: the LR each arm's long runs use, or that they wait for the LR check."""
    parts = []
    for arm, info in long_lr.items():
        check = ", ".join(f"lr {lr}: {v:.4f}" if isinstance(v, float) else f"lr {lr}: {v or 'pending'}"
                          for lr, v in info.get("check", {}).items())
        if info["status"] == "waiting":
            parts.append(f"{arm} waits for its LR check at {check_budget:g} epochs "
                         f"({info['finished']}/{info['of']} runs finished: {check})")
        elif info["status"] == "given":
            parts.append(f"{arm} lr {info['lr']:g} (given with --long-lr)")
        elif info["status"] == "fallback":
            parts.append(f"{arm} lr {info['lr']:g} (every LR-check run failed: the arm's default)")
        else:
            parts.append(f"{arm} lr {info['lr']:g} (best of the LR check at {check_budget:g} epochs, seed 0: {check})")
    return f"regime ladder: {budget:g}-epoch runs: " + "; ".join(parts)


# -- analysis -------------------------------------------------------------------------------------------


def regime_analysis(
    ds: xr.Dataset,
    manifest: Manifest,
    runs_dir: str | Path,
    study_dir: str | Path,
    *,
    copy_budgets: Sequence[float],
    eval_bytes: int | None,
    batch_size: int = 32,
    device: str = "auto",
    log: Any = print,
) -> xr.Dataset:
    """Add ``tokens_per_parameter`` (run, eval) and the copy-depth variables of the ladder runs at
    ``copy_budgets`` (other runs: NaN sums, zero counts)."""
    from fsnlab.study.analyses import copy_depth_analysis

    params = ds["parameters"].values.astype(np.float64)
    params = np.where(params > 0, params, np.nan)
    ds["tokens_per_parameter"] = (("run", "eval"), ds["eval_tokens"].values / params[:, None])
    ds["tokens_per_parameter"].attrs.update(long_name="training tokens seen at the evaluation / parameters", units="1")
    budget = ds["budget"].values.astype(np.float64)
    role = ds["role"].values
    idx = np.flatnonzero((role == LADDER) & np.isin(budget, np.asarray(list(copy_budgets), dtype=np.float64)))
    if idx.size == 0:
        return ds
    sub_manifest = Manifest(manifest.study, manifest.title, manifest.scale, [manifest.runs[i] for i in idx],
                            dict(manifest.settings))
    sub = copy_depth_analysis(ds.isel(run=idx), sub_manifest, runs_dir, study_dir, eval_bytes=eval_bytes,
                              batch_size=batch_size, device=device, log=log)
    ds = ds.assign_coords(depth=sub["depth"].values, distance_bin=sub["distance_bin"].values)
    for name, fill in (("copy_loss_sum", np.nan), ("copy_count", 0), ("token_mean_bits", np.nan)):
        var = sub[name].reindex(run=ds["run"].values, fill_value=fill)
        ds[name] = (var.dims, var.values.astype(sub[name].dtype))
        ds[name].attrs.update(sub[name].attrs)
    ds.attrs.update({k: v for k, v in sub.attrs.items() if k.startswith("copy_")})
    ds.attrs["copy_budgets"] = json.dumps([float(b) for b in copy_budgets])
    return ds


# -- the gap against tokens per parameter ---------------------------------------------------------------


def _settings(ds: xr.Dataset) -> dict[str, Any]:
    try:
        return json.loads(ds.attrs.get("settings", "{}"))
    except ValueError:
        return {}


def _mask(ds: xr.Dataset, **tags: Any) -> np.ndarray:
    mask = np.ones(ds.sizes["run"], dtype=bool)
    for key, value in tags.items():
        values = ds[key].values
        mask &= np.isclose(values.astype(np.float64), float(value)) if key == "budget" else values == value
    return mask


def _cell(ds: xr.Dataset, budget: float, arm: str) -> xr.Dataset:
    return ds.isel(run=np.flatnonzero(_mask(ds, budget=budget, arm=arm, role=LADDER)))


def plan_cells(ds: xr.Dataset) -> list[dict[str, Any]]:
    """The study's cells (budget × arm) as planned in its settings, with what the dataset holds:
    ``runs`` (in the manifest), ``done`` and ``status`` (done, pending, waiting for the LR check)."""
    cells = []
    for cell in _settings(ds).get("plan", []):
        sub = _cell(ds, cell["budget"], cell["arm"])
        done = int((sub["status"].values == "done").sum())
        failed = int((sub["status"].values == "failed").sum())
        if cell.get("status") == "waiting":
            status = "waiting for the LR check"
        elif done == cell["seeds"]:
            status = "done"
        else:
            status = f"pending ({done}/{cell['seeds']} done" + (f", {failed} failed" if failed else "") + ")"
        cells.append({**cell, "runs": int(sub.sizes["run"]), "done": done, "failed": failed, "state": status})
    return cells


def _tokens_per_parameter(ds: xr.Dataset, budget: float, arm: str) -> tuple[float, bool]:
    """(tokens per parameter, measured?) of a cell: measured on its finished runs, else planned."""
    sub = _cell(ds, budget, arm)
    done = sub["status"].values == "done"
    if done.any() and "tokens_per_parameter" in sub:
        tpp = sub["tokens_per_parameter"].values[done]
        last = [row[np.isfinite(row)][-1] for row in tpp if np.isfinite(row).any()]
        if last:
            return float(np.mean(last)), True
    for cell in _settings(ds).get("plan", []):
        if math.isclose(cell["budget"], budget) and cell["arm"] == arm and cell.get("tokens_per_parameter"):
            return float(cell["tokens_per_parameter"]), False
    return math.nan, False


def gap_rows(ds: xr.Dataset, arm: str, reference: str = REFERENCE) -> list[dict[str, Any]]:
    """Per budget (ascending) where both cells are planned: the paired-by-seed difference
    ``arm − reference`` of the final val bpc (:func:`fsnlab.study.stats.paired`), the tokens per
    parameter of the ``arm`` cell, and the cells' states."""
    cells = {(c["budget"], c["arm"]): c for c in plan_cells(ds)}
    budgets = sorted({b for b, a in cells if a == arm} & {b for b, a in cells if a == reference})
    rows = []
    for budget in budgets:
        a, r = aligned_by_seed(_cell(ds, budget, arm)["final_val_bpc"], _cell(ds, budget, reference)["final_val_bpc"])
        stats = paired(a.values, r.values)
        delta = a - r
        tpp, measured = _tokens_per_parameter(ds, budget, arm)
        rows.append({
            "budget": budget, "tokens_per_parameter": tpp, "measured": measured, "stats": stats,
            "per_seed": {int(s): float(d) for s, d in zip(delta["seed"].values, delta.values) if math.isfinite(d)},
            "state": cells[(budget, arm)]["state"], "reference_state": cells[(budget, reference)]["state"],
            "lr": cells[(budget, arm)].get("lr"), "reference_lr": cells[(budget, reference)].get("lr"),
        })
    return rows


def _crossing(x1: float, d1: float, x2: float, d2: float) -> float:
    """Where the line through (log x1, d1), (log x2, d2) crosses 0, back in x."""
    if not (x1 > 0 and x2 > 0) or d1 == d2:
        return math.nan
    lx = math.log(x1) + (0.0 - d1) * (math.log(x2) - math.log(x1)) / (d2 - d1)
    return math.exp(lx)


def sign_changes(points: Sequence[tuple[float, float]]) -> list[dict[str, float]]:
    """Consecutive points (x, mean Δ) whose means have opposite signs, with the log-linear
    crossing: ``[{"x1", "d1", "x2", "d2", "x"}]``. NaN points are skipped."""
    pts = [(x, d) for x, d in points if math.isfinite(x) and math.isfinite(d)]
    out = []
    for (x1, d1), (x2, d2) in zip(pts, pts[1:]):
        if d1 != 0 and d2 != 0 and (d1 < 0) != (d2 < 0):
            out.append({"x1": x1, "d1": d1, "x2": x2, "d2": d2, "x": _crossing(x1, d1, x2, d2)})
    return out


def curve_gap(ds: xr.Dataset, budget: float, arm: str, reference: str = REFERENCE) -> list[dict[str, Any]]:
    """The paired difference at every evaluation along the runs of one budget (one schedule):
    ``[{"epoch", "tokens_per_parameter", "stats"}]``. Unfinished runs count up to their last
    evaluation (the two arms of a seed share their evaluation steps)."""
    a, r = _cell(ds, budget, arm), _cell(ds, budget, reference)
    if not a.sizes["run"] or not r.sizes["run"]:
        return []
    names = [v for v in ("val_bpc", "eval_epoch", "tokens_per_parameter") if v in a]
    a, r = xr.align(by_seed(a[names]), by_seed(r[["val_bpc"]]), join="inner")  # seed, eval
    out = []
    for e in range(ds.sizes["eval"]):
        stats = paired(a["val_bpc"].values[:, e], r["val_bpc"].values[:, e])
        if not stats["n"]:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an evaluation that some seeds have not reached
            ep = np.nanmean(a["eval_epoch"].values[:, e])
            tpp = np.nanmean(a["tokens_per_parameter"].values[:, e]) if "tokens_per_parameter" in a else math.nan
        out.append({"epoch": float(ep), "tokens_per_parameter": float(tpp), "stats": stats})
    return out


# -- words and numbers shared by the report and the summary ---------------------------------------------


def _percent(count: int, total: int) -> str:
    """A share of targets as ``12.3%``; a non-zero share below 0.05% as ``<0.1%``, never ``0.0%``."""
    share = 100 * count / max(total, 1)
    return "<0.1%" if 0 < share < 0.05 else f"{share:.1f}%"


def _num(x: float) -> str:
    """Tokens per parameter or epochs: whole numbers from 100 on, three significant digits below."""
    if not math.isfinite(x):
        return "–"
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def _fmt_tpp(x: float, measured: bool = True) -> str:
    if not math.isfinite(x):
        return "–"
    return _num(x) + ("" if measured else " (planned)")


def _budget_label(b: float) -> str:
    return f"{b:g} epoch" + ("" if b == 1 else "s")


def _sign_sentence(name: str, rows: list[dict[str, Any]]) -> str:
    """Plain words: where the arm is ahead or behind, whether the sign changes, the trend."""
    done = [r for r in rows if math.isfinite(r["stats"]["mean_diff"])]
    if not done:
        return f"{name}: no budget has paired results yet."
    words = []
    for r in done:
        s = r["stats"]
        sig = math.isfinite(s["ci_low"]) and (s["ci_low"] > 0 or s["ci_high"] < 0)
        side = "behind" if s["mean_diff"] > 0 else "ahead"
        words.append(f"{side} at {_budget_label(r['budget'])} (Δ {s['mean_diff']:+.3f}"
                     + (f", 95% CI [{s['ci_low']:+.3f}, {s['ci_high']:+.3f}]" if math.isfinite(s["ci_low"]) else "")
                     + ("" if sig or not math.isfinite(s["ci_low"]) else ", CI contains 0") + f", n={s['n']})")
    text = f"{name} is " + "; ".join(words) + "."
    changes = sign_changes([(r["tokens_per_parameter"], r["stats"]["mean_diff"]) for r in done])
    at = {r["tokens_per_parameter"]: _budget_label(r["budget"]) for r in done}
    if changes:
        text += " The sign of the mean gap changes " + "; ".join(
            f"between {at.get(c['x1'], '?')} ({_num(c['x1'])} tokens per parameter, Δ {c['d1']:+.3f}) and "
            f"{at.get(c['x2'], '?')} ({_num(c['x2'])}, Δ {c['d2']:+.3f}), crossing zero at about {_num(c['x'])} "
            "tokens per parameter by log-linear interpolation" for c in changes) + "."
    elif len(done) > 1:
        text += " The sign does not change over the budgets finished."
    if len(done) > 1:
        d1, d2 = done[-2]["stats"]["mean_diff"], done[-1]["stats"]["mean_diff"]
        trend = "narrows" if abs(d2) < abs(d1) else "widens"
        if (d1 < 0) != (d2 < 0):
            trend = "changes sign"
        text += (f" From {_budget_label(done[-2]['budget'])} to {_budget_label(done[-1]['budget'])} the gap {trend} "
                 f"({d1:+.3f} → {d2:+.3f}).")
    pending = [r for r in rows if not math.isfinite(r["stats"]["mean_diff"])]
    if pending:
        text += " Pending: " + ", ".join(_budget_label(r["budget"]) for r in pending) + "."
    return text


# -- a markdown summary (for docs/quality.md) -------------------------------------------------------------


def _copy_depth_table(sub: xr.Dataset) -> tuple[list[str], list[list[str]]]:
    """Markdown rows of one budget's copy-depth table: per depth bin, the share of targets, each
    arm's mean bits, each arm minus the transformer and each of :data:`VARIANT_PAIRS` whose arms
    both ran at this budget (FSN − KA: the kernel's effect by depth), paired by seed."""
    from fsnlab.study.kinds.copy_depth import arm_bins, bin_losses, target_share

    b = bin_losses(sub, "depth", 0)
    labels = [str(x) for x in b["bin"].values]
    ml = arm_bins(b).transpose("arm", "seed", "bin")
    arms = tag_values(sub, "arm", ARM_ORDER)
    share = target_share(b)
    total = max(int(share.sum()), 1)
    pairs = [(a, REFERENCE) for a in arms if a != REFERENCE] + [p for p in VARIANT_PAIRS if p[0] in arms and p[1] in arms]
    heads = ["depth", "share"] + [f"{label(a)} bits" for a in arms] + [f"Δ {label(a)} − {label(r)} [95% CI]" for a, r in pairs]
    rows = []
    for j, lab in enumerate(labels):
        row = [lab, _percent(share[j], total)]
        for a in arms:
            row.append(fmt(describe(ml.sel(arm=a).values[:, j])["mean"], 3))
        for a, ref in pairs:
            r = paired(ml.sel(arm=a).values[:, j], ml.sel(arm=ref).values[:, j]) if ref in arms else paired([], [])
            row.append(f"{fmt(r['mean_diff'], 3)} {fmt_ci(r['ci_low'], r['ci_high'], 3)}" if r["n"]
                       else "no targets" if not share[j] else "pending")
        rows.append(row)
    return heads, rows


def lr_check_rows(ds: xr.Dataset) -> tuple[list[str], list[list[Any]]]:
    """The LR check as a table (report and summary): per arm, the final val bpc of each LR at the
    check budget (seed 0) as the dataset holds it, how many have finished (done or failed), and the
    LR its longest budget uses. The LRs and that choice come from the settings, which the manifest
    fixed when its pass began; the values are read from the runs, so a dataset written when a pass
    stops shows the check runs that finished during it."""
    st = _settings(ds)
    long_lr = st.get("long_lr", {})
    check_budget = float(st.get("check_budget", 15))
    lrs = sorted({float(lr) for info in long_lr.values() for lr in info.get("check", {})})
    rows = []
    for arm, info in long_lr.items():
        cells, finished = [], 0
        for lr in lrs:
            at = np.flatnonzero(_mask(ds, arm=arm, budget=check_budget, seed=0) & np.isclose(ds["lr"].values.astype(float), lr))
            status = str(ds["status"].values[at[0]]) if at.size else "pending"
            finished += status in ("done", "failed")
            cells.append(fmt(float(ds["final_val_bpc"].values[at[0]])) if status == "done"
                         else status if status == "failed" else "pending")
        chosen = f"{info['lr']:g}" if info.get("lr") else "waiting"
        rows.append([label(arm)] + cells + [f"{finished}/{len(lrs)}", chosen, info["status"]])
    return ["arm"] + [f"lr {lr:g}" for lr in lrs] + ["finished", "LR of the longest budget", "how"], rows


def _md_table(heads: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def markdown_summary(ds: xr.Dataset) -> str:
    """The study's answer as markdown (the gap per budget with CIs, where its sign changes, the
    copy-depth tables), for ``docs/quality.md``; pending cells say so."""
    st = _settings(ds)
    done = int((ds["status"].values == "done").sum())
    recorded = int((ds["source"].values == "record").sum()) if "source" in ds.coords else 0
    lines = [f"Generated from `study.nc` ({ds.attrs.get('created', '?')}, {ds.attrs.get('scale', '?')} scale, "
             f"fsnlab commit {ds.attrs.get('git_commit', '?')}): {done}/{ds.sizes['run']} runs of the manifest done"
             + (f" ({recorded} of them read from the committed record, trained on an earlier machine)" if recorded else "")
             + (f"; the long runs of {', '.join(st['long_lr_waiting'])} wait for their LR check" if st.get("long_lr_waiting") else "")
             + ".", ""]
    rows = []
    sentences = []
    pairs = [(arm, REFERENCE) for arm in COMPARED] + list(VARIANT_PAIRS)
    for arm, reference in pairs:
        gr = gap_rows(ds, arm, reference)
        name = f"{label(arm)} − {label(reference)}"
        if gr:
            sentences.append(_sign_sentence(name, gr))
        for r in gr:
            s = r["stats"]
            rows.append([name, _budget_label(r["budget"]), _fmt_tpp(r["tokens_per_parameter"], r["measured"]),
                         f"{r['lr']:g} / {r['reference_lr']:g}" if r["lr"] and r["reference_lr"] else "waits for the LR check",
                         s["n"], fmt(s["mean_diff"], 3), fmt_ci(s["ci_low"], s["ci_high"], 3), fmt_p(s["t_p"]),
                         f"{r['state']} / {r['reference_state']}"])
    lines.append(_md_table(["comparison", "budget", "tokens / param", "peak LR (arm / reference)", "pairs", "mean Δ bpc",
                            "95% CI", "paired t p", "runs (arm / reference)"], rows))
    lines.append("")
    lines += [f"- {s}" for s in sentences]
    cells = plan_cells(ds)
    final_rows = []
    for c in cells:
        d = describe(_cell(ds, c["budget"], c["arm"])["final_val_bpc"].values)
        final_rows.append([_budget_label(c["budget"]), label(c["arm"]),
                           f"{c['lr']:g}" if c.get("lr") else "waits for the LR check", f"{c['done']}/{c['seeds']}",
                           f"{fmt(d['mean'], 3)} ± {fmt(d['sd'], 3)}" if d["n"] else c["state"]])
    lines += ["", _md_table(["budget", "arm", "peak LR", "seeds done", "final val bpc (mean ± sd)"], final_rows)]
    if st.get("long_lr"):
        heads, rows = lr_check_rows(ds)
        lines += ["", f"LR check at {_budget_label(float(st.get('check_budget', 15)))} (seed 0; final val bpc) and the "
                  "LR of the longest budget:", "", _md_table(heads, rows)]
    if "copy_loss_sum" in ds:
        for b in json.loads(ds.attrs.get("copy_budgets", "[]")):
            sub = ds.isel(run=np.flatnonzero(_mask(ds, budget=float(b), role=LADDER)))
            if not (sub["status"].values == "done").any():
                lines += ["", f"Copy depth, {_budget_label(float(b))}: pending."]
                continue
            heads, rows = _copy_depth_table(sub)
            eval_bytes = st.get("protocol", {}).get("eval_bytes")
            where = "the whole validation split" if eval_bytes in (None, -1) else f"the first {eval_bytes:,} validation bytes"
            lines += ["", f"Copy depth, {_budget_label(float(b))} (bits per target on {where}; Δ paired by seed):",
                      "", _md_table(heads, rows)]
    return "\n".join(lines) + "\n"


__all__ = ["KIND", "choose_lr", "curve_gap", "final_bpc", "gap_rows", "lr_check_rows", "lr_message", "markdown_summary", "plan_cells", "regime_analysis",
           "sign_changes"]
