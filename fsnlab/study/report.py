"""A self-contained HTML report of a study, rebuilt from its dataset alone (``fsnlab report``).

The page holds plotly figures (plotly.js inlined once, so it opens offline), the statistics of
:mod:`fsnlab.study.stats` computed from the dataset, a table that puts our numbers next to the
paper's (spec §9) and marks whether they are comparable, the runs and the study's settings.
"""

from __future__ import annotations

import html
import json
import math
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import xarray as xr

from fsnlab.study.stats import describe, paired

ARM_ORDER = ("transformer", "fsn", "fsn-mf", "ka")
ARM_LABELS = {"transformer": "Transformer", "fsn": "FSN", "fsn-mf": "FSN-MF", "ka": "KA (base)"}
KERNEL_ORDER = ("base", "+harmonics", "+sakaguchi", "+delay", "full")
COLORS = {
    "transformer": "#444444", "fsn": "#d62728", "fsn-mf": "#ff7f0e", "ka": "#1f77b4",
    "base": "#1f77b4", "+harmonics": "#9467bd", "+sakaguchi": "#8c564b", "+delay": "#e377c2", "full": "#d62728",
}
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22")


# -- small helpers -----------------------------------------------------------------------------------


def fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return "–"
    if isinstance(x, (int, np.integer)):
        return f"{int(x):,}"
    try:
        x = float(x)
    except (TypeError, ValueError):
        return html.escape(str(x))
    if not math.isfinite(x):
        return "–"
    return f"{x:.{digits}f}"


def fmt_p(p: float) -> str:
    if p is None or not math.isfinite(p):
        return "–"
    return f"{p:.3g}"


def fmt_ci(lo: float, hi: float, digits: int = 4) -> str:
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "–"
    return f"[{lo:.{digits}f}, {hi:.{digits}f}]"


def label(value: Any) -> str:
    return ARM_LABELS.get(str(value), str(value))


def color(value: Any, index: int = 0) -> str:
    return COLORS.get(str(value), PALETTE[index % len(PALETTE)])


def _order(values: Iterable[Any], preferred: Sequence[Any] = ()) -> list[Any]:
    values = list(dict.fromkeys(values))
    first = [v for v in preferred if v in values]
    rest = [v for v in values if v not in first]
    try:
        rest = sorted(rest)
    except TypeError:
        pass
    return first + rest


def tag_values(ds: xr.Dataset, tag: str, preferred: Sequence[Any] = ()) -> list[Any]:
    if tag not in ds.coords:
        return []
    return _order([v.item() if hasattr(v, "item") else v for v in ds[tag].values], preferred)


def select(ds: xr.Dataset, **tags: Any) -> xr.Dataset:
    mask = np.ones(ds.sizes["run"], dtype=bool)
    for key, value in tags.items():
        mask &= ds[key].values == value
    return ds.isel(run=np.flatnonzero(mask))


def by_seed(ds: xr.Dataset, value: np.ndarray | str) -> dict[int, float]:
    """{seed: value} over the runs of ``ds`` (value: a variable name or an array along run)."""
    arr = ds[value].values if isinstance(value, str) else np.asarray(value)
    seeds = ds["seed"].values if "seed" in ds.coords else np.arange(ds.sizes["run"])
    return {int(s): float(v) for s, v in zip(seeds, arr)}


def paired_by_seed(a: dict[int, float], b: dict[int, float]) -> dict[str, float]:
    seeds = sorted(set(a) & set(b))
    return paired([a[s] for s in seeds], [b[s] for s in seeds])


# -- the page --------------------------------------------------------------------------------------


CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{font-size:1.3em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}h3{font-size:1.1em}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right;vertical-align:top}
th{background:#f3f3f3}td.l,th.l{text-align:left}caption{caption-side:top;text-align:left;font-weight:600;padding:.3em 0}
.warn{background:#fff3cd;border:1px solid #e0c060;padding:.6em 1em;border-radius:4px}
.note{color:#555;font-size:.9em}.yes{color:#1a7f37;font-weight:600}.no{color:#b42318;font-weight:600}.nc{color:#888}
details{margin:.6em 0}pre{background:#f6f6f6;padding:.6em;overflow:auto;font-size:.8em}
"""


class Page:
    def __init__(self, title: str) -> None:
        self.title = title
        self.parts: list[str] = []
        self._plotly = False

    def h(self, level: int, text: str) -> None:
        self.parts.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def p(self, text: str, cls: str | None = None, raw: bool = False) -> None:
        body = text if raw else html.escape(text)
        self.parts.append(f"<p class='{cls}'>{body}</p>" if cls else f"<p>{body}</p>")

    def raw(self, content: str) -> None:
        self.parts.append(content)

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[Any]], caption: str | None = None,
              left: int = 1) -> None:
        out = ["<table>"]
        if caption:
            out.append(f"<caption>{html.escape(caption)}</caption>")
        out.append("<tr>" + "".join(f"<th class='{'l' if i < left else ''}'>{html.escape(h)}</th>" for i, h in enumerate(headers)) + "</tr>")
        for row in rows:
            cells = []
            for i, cell in enumerate(row):
                text = cell if isinstance(cell, _Html) else html.escape(str(cell))
                cells.append(f"<td class='{'l' if i < left else ''}'>{text}</td>")
            out.append("<tr>" + "".join(cells) + "</tr>")
        out.append("</table>")
        self.parts.append("".join(out))

    def figure(self, fig: Any) -> None:
        self.parts.append(fig.to_html(full_html=False, include_plotlyjs=not self._plotly, config={"responsive": True}))
        self._plotly = True

    def details(self, summary: str, content: str) -> None:
        self.parts.append(f"<details><summary>{html.escape(summary)}</summary><pre>{html.escape(content)}</pre></details>")

    def render(self) -> str:
        return (
            "<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(self.title)}</title><style>{CSS}</style></head><body>"
            + "\n".join(self.parts) + "</body></html>\n"
        )


class _Html(str):
    """A table cell that is already HTML."""


def verdict(ok: bool | None, comparable: bool = True) -> _Html:
    if ok is None:
        return _Html("<span class='nc'>–</span>")
    word = "yes" if ok else "no"
    return _Html(f"<span class='{word if comparable else 'nc'}'>{word}</span>")


def _go() -> Any:
    try:
        import plotly.graph_objects as go
    except ImportError:
        from fsnlab.study.manifest import StudyError

        raise StudyError("the study report needs plotly: pip install plotly (or pip install 'fsnlab[studies]')") from None
    return go


# -- figures ---------------------------------------------------------------------------------------


def _x_axis(ds: xr.Dataset) -> tuple[str, str]:
    epochs = ds["eval_epoch"].values
    if np.isfinite(epochs).any() and np.nanmax(epochs) >= 1:
        return "eval_epoch", "epoch"
    return "eval_tokens", "training tokens"


def curves_figure(ds: xr.Dataset, group: str, title: str, preferred: Sequence[Any] = (),
                  names: Callable[[Any], str] = label) -> Any:
    """Validation bpc at every evaluation: the mean over seeds per group, a band of ±1 sd, and the
    individual seeds as thin lines."""
    go = _go()
    fig = go.Figure()
    xvar, xtitle = _x_axis(ds)
    for i, value in enumerate(tag_values(ds, group, preferred)):
        sub = select(ds, **{group: value})
        y = sub["val_bpc"].values
        if not np.isfinite(y).any():
            continue
        x = np.nanmax(sub[xvar].values, axis=0)
        keep = np.isfinite(x)
        with np.errstate(all="ignore"), _quiet():
            mean = np.nanmean(y, axis=0)[keep]
            sd = np.nan_to_num(np.nanstd(y, axis=0, ddof=1)[keep]) if y.shape[0] > 1 else np.zeros(keep.sum())
        xs, c = x[keep], color(value, i)
        name = names(value)
        fig.add_trace(go.Scatter(x=np.concatenate([xs, xs[::-1]]), y=np.concatenate([mean + sd, (mean - sd)[::-1]]),
                                 fill="toself", fillcolor=_alpha(c, 0.18), line={"width": 0}, hoverinfo="skip",
                                 showlegend=False, legendgroup=name))
        for r in range(y.shape[0]):
            seed = sub["seed"].values[r] if "seed" in sub.coords else r
            fig.add_trace(go.Scatter(x=sub[xvar].values[r], y=y[r], mode="lines", line={"width": 0.7, "color": c},
                                     opacity=0.45, name=f"{name} seed {seed}", legendgroup=name, showlegend=False))
        fig.add_trace(go.Scatter(x=xs, y=mean, mode="lines+markers", line={"width": 2.5, "color": c},
                                 name=f"{name} (n={y.shape[0]})", legendgroup=name))
    fig.update_layout(title=title, xaxis_title=xtitle, yaxis_title="validation bits per byte", template="plotly_white",
                      height=420, legend={"orientation": "v"})
    return fig


def bars_figure(categories: Sequence[str], series: Sequence[tuple[str, str, Sequence[dict[str, float]], Sequence[Sequence[float]]]],
                title: str, yaxis: str, zero_line: bool = False, bars: bool = False) -> Any:
    """Per category and series: the mean with its 95% CI as an error bar, and the per-seed values as
    small dots beside it. Means are markers (a loss axis need not start at 0) unless ``bars`` (for
    differences, drawn from 0). ``series``: (name, colour, summaries per category (describe() or
    paired() dicts), per-seed values per category)."""
    go = _go()
    fig = go.Figure()
    for name, c, stats_list, points in series:
        means = [s.get("mean", s.get("mean_diff", math.nan)) for s in stats_list]
        hi = [s["ci_high"] - m if math.isfinite(s["ci_high"]) else 0 for s, m in zip(stats_list, means)]
        lo = [m - s["ci_low"] if math.isfinite(s["ci_low"]) else 0 for s, m in zip(stats_list, means)]
        error = {"type": "data", "symmetric": False, "array": hi, "arrayminus": lo, "thickness": 1.5, "width": 6}
        n = [s.get("n", 0) for s in stats_list]
        hover = [f"{name}<br>{cat}: {fmt(m)} (n={k})" for cat, m, k in zip(categories, means, n)]
        if bars:
            fig.add_trace(go.Bar(x=list(categories), y=means, name=name, marker_color=c, offsetgroup=name,
                                 error_y=error, hovertext=hover, hoverinfo="text"))
        else:
            fig.add_trace(go.Scatter(x=list(categories), y=means, name=name, mode="markers", offsetgroup=name,
                                     marker={"color": c, "size": 11, "symbol": "diamond"}, error_y=error,
                                     hovertext=hover, hoverinfo="text"))
        xs, ys = [], []
        for cat, vals in zip(categories, points):
            for v in vals:
                if math.isfinite(v):
                    xs.append(cat)
                    ys.append(v)
        if xs:
            fig.add_trace(go.Scatter(x=xs, y=ys, name=f"{name} (seeds)", mode="markers", offsetgroup=name,
                                     marker={"color": c, "size": 5, "opacity": 0.55, "line": {"width": 0.5, "color": "black"}},
                                     showlegend=False, hoverinfo="y"))
    fig.update_layout(title=title, yaxis_title=yaxis, barmode="group", scattermode="group", template="plotly_white",
                      height=420)
    if zero_line:
        fig.add_hline(y=0, line={"color": "black", "width": 1})
    return fig


def _alpha(hex_color: str, a: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{a})"


class _quiet:
    def __enter__(self) -> None:
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc: Any) -> None:
        self._w.__exit__(*exc)


# -- shared sections -------------------------------------------------------------------------------


def settings(ds: xr.Dataset) -> dict[str, Any]:
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
    if ds.attrs.get("scale") != "paper":
        return False, "not comparable (smoke scale)"
    if not is_paper_protocol(ds, **kw):
        return False, "not comparable (not enwik8 at 1M)"
    if epochs is not None:
        ours = settings(ds).get("protocol", {}).get("epochs")
        if ours is None or abs(float(ours) - epochs) > 1e-9:
            return False, f"not comparable (we trained {ours} epochs, the paper {epochs:g})"
    return True, "comparable"


def header(page: Page, ds: xr.Dataset, what: str) -> None:
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
        page.raw("<p class='warn'><b>Smoke scale.</b> Tiny models trained for a few dozen steps on CPU: these numbers "
                 "show that the study runs end to end. They are <b>not comparable</b> with the paper's.</p>")
    if status["done"] < ds.sizes["run"]:
        page.raw(f"<p class='warn'>{ds.sizes['run'] - status['done']} run(s) are not finished; their final values "
                 "are left out of every statistic (rerun the study script to finish them).</p>")


def paper_table(page: Page, rows: Sequence[Sequence[Any]]) -> None:
    page.h(2, "Our numbers next to the paper's (spec §9)")
    page.table(["claim (paper)", "paper", "ours", "agrees", "comparable?"], rows, left=1)
    page.p("Paper values come from the abstract and the review summary (spec §1, §9); losses are bits per byte. "
           "'agrees': for a direction, whether ours points the same way; for a number, whether our 95% CI contains the paper's "
           "value (or overlaps its mean ± 2 sd). It means something only where the row is comparable (grey otherwise).",
           cls="note")


def summary_rows(ds: xr.Dataset, group: str, preferred: Sequence[Any] = (), value: str = "final_val_bpc",
                 names: Callable[[Any], str] = label) -> list[list[Any]]:
    rows = []
    for v in tag_values(ds, group, preferred):
        sub = select(ds, **{group: v})
        s = describe(sub[value].values)
        seeds = ", ".join(fmt(x) for x in sub[value].values)
        rows.append([names(v), s["n"], fmt(s["mean"]), fmt(s["sd"]), fmt(s["median"]), fmt_ci(s["ci_low"], s["ci_high"]), seeds])
    return rows


SUMMARY_HEADERS = ["arm", "n", "mean", "sd", "median", "95% CI (t)", "per seed"]
PAIRED_HEADERS = ["arm − reference", "pairs", "mean Δ", "sd Δ", "95% CI of Δ", "paired t p", "Wilcoxon p", "lower in"]


def paired_rows(ds: xr.Dataset, group: str, reference: Any, preferred: Sequence[Any] = (),
                value: str = "final_val_bpc", names: Callable[[Any], str] = label) -> list[list[Any]]:
    ref = by_seed(select(ds, **{group: reference}), value)
    rows = []
    for v in tag_values(ds, group, preferred):
        if v == reference:
            continue
        r = paired_by_seed(by_seed(select(ds, **{group: v}), value), ref)
        rows.append([f"{names(v)} − {names(reference)}", r["n"], fmt(r["mean_diff"]), fmt(r["sd_diff"]),
                     fmt_ci(r["ci_low"], r["ci_high"]), fmt_p(r["t_p"]), fmt_p(r["wilcoxon_p"]), f"{r['wins']}/{r['n']} seeds"])
    return rows


def final_bars(ds: xr.Dataset, group: str, preferred: Sequence[Any], title: str,
               names: Callable[[Any], str] = label) -> Any:
    cats, stats_list, points = [], [], []
    for v in tag_values(ds, group, preferred):
        vals = select(ds, **{group: v})["final_val_bpc"].values
        cats.append(names(v))
        stats_list.append(describe(vals))
        points.append(list(vals))
    return bars_figure(cats, [("final validation bpc", "#444444", stats_list, points)], title, "validation bits per byte")


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
    page.p("Within one seed every arm draws the same batches in the same order (the data stream is seeded by the "
           "seed alone and all arms share the context length and batch size) and initialises from the same "
           "distributions. Parameters per arm: " + "; ".join(f"{label(k)} {', '.join(fmt(x) for x in v)}" for k, v in sorted(params.items())),
           cls="note")


def settings_block(page: Page, ds: xr.Dataset) -> None:
    page.h(2, "Settings")
    page.details("study settings (JSON)", json.dumps(settings(ds), indent=2, sort_keys=True))
    page.details("manifest (JSON)", json.dumps(json.loads(ds.attrs.get("manifest", "{}")), indent=2, sort_keys=True))


def _contains(ours: dict[str, float], paper: float, paper_sd: float | None = None) -> bool | None:
    """Does our 95% CI contain the paper's value (or overlap the paper's mean ± 2 sd)?"""
    lo, hi = ours["ci_low"], ours["ci_high"]
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return None
    spread = 2 * paper_sd if paper_sd else 0.0
    return bool(lo <= paper + spread and hi >= paper - spread)


def every_eval_below(ds: xr.Dataset, arm: str, ref: str = "transformer", **tags: Any) -> tuple[bool | None, str]:
    """Is the arm's mean validation loss below the reference's at every evaluation (and per seed)?"""
    a, b = select(ds, arm=arm, **tags), select(ds, arm=ref, **tags)
    if a.sizes["run"] == 0 or b.sizes["run"] == 0:
        return None, "–"
    with _quiet():
        ma, mb = np.nanmean(a["val_bpc"].values, axis=0), np.nanmean(b["val_bpc"].values, axis=0)
    keep = np.isfinite(ma) & np.isfinite(mb)
    if not keep.any():
        return None, "–"
    below = ma[keep] < mb[keep]
    seed_cells = 0
    seed_below = 0
    ra = {int(s): a["val_bpc"].values[i] for i, s in enumerate(a["seed"].values)}
    rb = {int(s): b["val_bpc"].values[i] for i, s in enumerate(b["seed"].values)}
    for s in set(ra) & set(rb):
        k = np.isfinite(ra[s]) & np.isfinite(rb[s])
        seed_cells += int(k.sum())
        seed_below += int((ra[s][k] < rb[s][k]).sum())
    return bool(below.all()), f"mean below at {int(below.sum())}/{int(keep.sum())} evaluations; per seed {seed_below}/{seed_cells}"


# -- study sections ------------------------------------------------------------------------------------


def _matched_budget(page: Page, ds: xr.Dataset) -> None:
    header(page, ds, "FSN against a parameter-matched RoPE-SwiGLU transformer (and the KA base layer and FSN-MF) "
           "at the same token budget, with identical seeds, schedules and initialisation distributions (spec §9.2, §9.3).")
    arms = tag_values(ds, "arm", ARM_ORDER)
    corpora = tag_values(ds, "corpus", ("text", "code"))
    text = select(ds, corpus="text") if "text" in corpora else ds
    ok50, why50 = comparability(text, 50.0)
    ok30, why30 = comparability(text, 30.0)
    okany, whyany = comparability(text)
    t = describe(select(text, arm="transformer")["final_val_bpc"].values)
    f = describe(select(text, arm="fsn")["final_val_bpc"].values)
    k = describe(select(text, arm="ka")["final_val_bpc"].values)
    mf = paired_by_seed(by_seed(select(text, arm="fsn-mf"), "final_val_bpc"), by_seed(select(text, arm="transformer"), "final_val_bpc"))
    fsn_seeds = select(text, arm="fsn")["final_val_bpc"].values
    every_text, every_text_s = every_eval_below(ds, "fsn", corpus="text")
    every_code, every_code_s = every_eval_below(ds, "fsn", corpus="code")
    pm = lambda s: f"{fmt(s['mean'])} ± {fmt(s['sd'])} (n={s['n']}), 95% CI {fmt_ci(s['ci_low'], s['ci_high'])}"  # noqa: E731
    d_text = paired_by_seed(by_seed(select(text, arm="fsn"), "final_val_bpc"), by_seed(select(text, arm="transformer"), "final_val_bpc"))
    code = select(ds, corpus="code")
    d_code = paired_by_seed(by_seed(select(code, arm="fsn"), "final_val_bpc"), by_seed(select(code, arm="transformer"), "final_val_bpc"))
    on_paper = ds.attrs.get("scale") == "paper"
    rows = [
        ["FSN below the tuned transformer at matched parameters and budget (text)", "yes (1.5953 vs 1.611)",
         f"Δ FSN − transformer {fmt(d_text['mean_diff'])} {fmt_ci(d_text['ci_low'], d_text['ci_high'])}, paired t p {fmt_p(d_text['t_p'])}",
         verdict(d_text["mean_diff"] < 0 if math.isfinite(d_text["mean_diff"]) else None, okany), whyany],
        ["tuned transformer, enwik8 1M, 50 epochs ('converged')", "1.611", pm(t), verdict(_contains(t, 1.611), ok50), why50],
        ["FSN, enwik8 1M, 50 epochs", "1.5953 ± 0.0014", pm(f), verdict(_contains(f, 1.5953, 0.0014), ok50), why50],
        ["FSN, 30 epochs: every seed below the transformer's 1.611", "every seed < 1.611",
         f"max over seeds {fmt(np.nanmax(fsn_seeds) if np.isfinite(fsn_seeds).any() else math.nan)}",
         verdict(bool(np.nanmax(fsn_seeds) < 1.611) if np.isfinite(fsn_seeds).any() else None, ok30), why30],
        ["FSN below the transformer at every epoch measured (text)", "yes", every_text_s, verdict(every_text, okany), whyany],
        ["FSN below the transformer at every epoch measured (code)", "yes (no numbers)",
         every_code_s + (f"; final Δ {fmt(d_code['mean_diff'])} {fmt_ci(d_code['ci_low'], d_code['ci_high'])}" if d_code["n"] else ""),
         verdict(every_code, on_paper), "direction only (no code numbers in the paper)" if on_paper else "not comparable (smoke scale)"],
        ["FSN-MF (no MLP) tracks / approaches the transformer (text)", "no number",
         f"Δ FSN-MF − transformer {fmt(mf['mean_diff'])} {fmt_ci(mf['ci_low'], mf['ci_high'])}", verdict(None), "qualitative only"],
        ["KA paper: KA 1.637 ± 0.010 behind the transformer's 1.616 ± 0.004 (enwik8 1M, budget unknown)", "1.637 / 1.616",
         f"KA {pm(k)}", verdict(bool(k["mean"] > t["mean"]) if k["n"] and t["n"] else None, okany),
         "direction only (the KA paper's budget is not known)" if okany else whyany],
    ]
    paper_table(page, rows)
    for corpus in corpora:
        sub = select(ds, corpus=corpus)
        page.h(2, f"{corpus}: validation curves")
        page.figure(curves_figure(sub, "arm", f"{corpus}: validation loss per evaluation (mean ± sd over seeds)", ARM_ORDER))
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


def _baseline_tuning(page: Page, ds: xr.Dataset) -> None:
    header(page, ds, "The learning-rate sweep that makes the transformer baseline 'tuned', and the same sweep for the "
           "FSN (spec §7.2: peak LR over {1e-3, 2e-3, 3e-3, 5e-3} for both arms, at the budget compared).")
    arms = tag_values(ds, "arm", ARM_ORDER)
    go = _go()
    fig = go.Figure()
    best: dict[str, tuple[float, dict[str, float]]] = {}
    table_rows = []
    for i, arm in enumerate(arms):
        sub = select(ds, arm=arm)
        lrs = tag_values(sub, "lr")
        means, lo, hi = [], [], []
        for lr in lrs:
            vals = select(sub, lr=lr)["final_val_bpc"].values
            s = describe(vals)
            means.append(s["mean"])
            lo.append(s["mean"] - s["ci_low"] if math.isfinite(s["ci_low"]) else 0)
            hi.append(s["ci_high"] - s["mean"] if math.isfinite(s["ci_high"]) else 0)
            failed = int((select(sub, lr=lr)["status"].values == "failed").sum())
            table_rows.append([label(arm), f"{lr:g}", s["n"], fmt(s["mean"]), fmt(s["sd"]), fmt(s["median"]),
                               fmt_ci(s["ci_low"], s["ci_high"]), failed])
            if math.isfinite(s["mean"]) and (arm not in best or s["mean"] < best[arm][1]["mean"]):
                best[arm] = (lr, s)
        fig.add_trace(go.Scatter(x=lrs, y=means, mode="lines+markers", name=label(arm), line={"color": color(arm, i)},
                                 error_y={"type": "data", "symmetric": False, "array": hi, "arrayminus": lo}))
    fig.update_layout(title="final validation loss against peak learning rate (95% CI over seeds)", xaxis_type="log",
                      xaxis_title="peak learning rate", yaxis_title="validation bits per byte", template="plotly_white", height=420)
    comparable = ds.attrs.get("scale") == "paper" and is_paper_protocol(ds)
    why = "comparable (same sweep)" if comparable else ("not comparable (smoke scale)" if ds.attrs.get("scale") == "smoke" else "not comparable (not enwik8 at 1M)")
    t_best = best.get("transformer")
    f_best = best.get("fsn")
    rows = [
        ["transformer is tuned by an LR sweep", "sweep not reported (spec §7.2 proposes {1e-3, 2e-3, 3e-3, 5e-3})",
         f"best LR {t_best[0]:g} ({fmt(t_best[1]['mean'])})" if t_best else "–", verdict(None), why],
        ["the same sweep for the FSN", "not reported", f"best LR {f_best[0]:g} ({fmt(f_best[1]['mean'])})" if f_best else "–", verdict(None), why],
        ["spec §13 prototype (0.21M, 600 steps): the FSN gains from a higher LR, the transformer does not",
         "FSN 2.39 at 1e-2 vs 2.72 at 3e-3; transformer flat",
         (f"best LR FSN {f_best[0]:g}, transformer {t_best[0]:g}" if f_best and t_best else "–"),
         verdict((f_best[0] >= t_best[0]) if f_best and t_best else None, False), "not comparable (different protocol)"],
    ]
    paper_table(page, rows)
    page.h(2, "Sweep")
    page.figure(fig)
    page.table(["arm", "peak LR", "n", "mean", "sd", "median", "95% CI (t)", "failed"], table_rows, left=2,
               caption="final validation bits per byte")
    page.table(["arm", "chosen LR (lowest mean)", "mean final bpc"],
               [[label(a), f"{lr:g}", fmt(s["mean"])] for a, (lr, s) in best.items()])
    if "fsn" in best and "transformer" in best:
        a = by_seed(select(select(ds, arm="fsn"), lr=best["fsn"][0]), "final_val_bpc")
        b = by_seed(select(select(ds, arm="transformer"), lr=best["transformer"][0]), "final_val_bpc")
        r = paired_by_seed(a, b)
        page.table(PAIRED_HEADERS, [["FSN (its best LR) − transformer (its best LR)", r["n"], fmt(r["mean_diff"]), fmt(r["sd_diff"]),
                                     fmt_ci(r["ci_low"], r["ci_high"]), fmt_p(r["t_p"]), fmt_p(r["wilcoxon_p"]), f"{r['wins']}/{r['n']} seeds"]],
                   caption="each arm at its own best LR, paired by seed (choosing the best LR on the same runs biases both arms alike)")
    for arm in arms:
        sub = select(ds, arm=arm)
        page.figure(curves_figure(sub, "lr", f"{label(arm)}: validation loss per evaluation by peak LR",
                                  names=lambda v: f"lr {v:g}"))


def _bins(ds: xr.Dataset, kind: str, min_depth: int = 1) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Per-run loss sums and counts per depth bin (kind='depth') or distance bin ('distance',
    positions with depth >= min_depth)."""
    sums, counts = ds["copy_loss_sum"].values, ds["copy_count"].values  # run, depth, column
    if kind == "depth":
        bins = json.loads(ds.attrs["copy_depth_bins"])
        labels = json.loads(ds.attrs["copy_depth_bin_labels"])
        s = np.stack([np.nansum(sums[:, lo : hi + 1, :], axis=(1, 2)) for lo, hi in bins], axis=1)
        c = np.stack([counts[:, lo : hi + 1, :].sum(axis=(1, 2)) for lo, hi in bins], axis=1)
    else:
        labels = json.loads(ds.attrs["copy_distance_bin_labels"])
        s = np.nansum(sums[:, min_depth:, 1:], axis=1)
        c = counts[:, min_depth:, 1:].sum(axis=1)
    done = ds["status"].values == "done"
    s = np.where(done[:, None], s, np.nan)
    with np.errstate(all="ignore"):
        return labels, s, c


def _bin_section(page: Page, ds: xr.Dataset, kind: str, min_depth: int, title: str) -> dict[str, list[dict[str, float]]]:
    labels, s, c = _bins(ds, kind, min_depth)
    with np.errstate(all="ignore"):
        mean_loss = s / np.where(c > 0, c, np.nan)  # run, bin
    arms = tag_values(ds, "arm", ARM_ORDER)
    share = c[np.flatnonzero(ds["status"].values == "done")[0]] if (ds["status"].values == "done").any() else c[0]
    total = max(int(share.sum()), 1)
    rows, series, deltas, delta_series = [], [], {}, []
    delta_points: dict[str, list[list[float]]] = {}
    for i, arm in enumerate(arms):
        idx = np.flatnonzero(ds["arm"].values == arm)
        stats_list = [describe(mean_loss[idx, b]) for b in range(len(labels))]
        series.append((label(arm), color(arm, i), stats_list, [list(mean_loss[idx, b]) for b in range(len(labels))]))
    ref_idx = np.flatnonzero(ds["arm"].values == "transformer")
    ref_seeds = ds["seed"].values[ref_idx]
    for b, lab in enumerate(labels):
        row = [lab, f"{100 * share[b] / total:.1f}%", fmt(int(share[b]))]
        for arm in arms:
            idx = np.flatnonzero(ds["arm"].values == arm)
            st = describe(mean_loss[idx, b])
            row.append(f"{fmt(st['mean'])} {fmt_ci(st['ci_low'], st['ci_high'])}")
        for arm in arms:
            if arm == "transformer" or not len(ref_idx):
                continue
            idx = np.flatnonzero(ds["arm"].values == arm)
            mine = dict(zip(map(int, ds["seed"].values[idx]), mean_loss[idx, b]))
            ref = dict(zip(map(int, ref_seeds), mean_loss[ref_idx, b]))
            r = paired_by_seed(mine, ref)
            deltas.setdefault(arm, []).append(r)
            delta_points.setdefault(arm, []).append([mine[k] - ref[k] for k in sorted(set(mine) & set(ref))])
            row.append(f"{fmt(r['mean_diff'])} {fmt_ci(r['ci_low'], r['ci_high'])} (t p {fmt_p(r['t_p'])})")
        rows.append(row)
    heads = ["bin", "share of targets", "targets"] + [f"{label(a)} mean bits [95% CI]" for a in arms]
    heads += [f"Δ {label(a)} − Transformer [95% CI]" for a in arms if a != "transformer" and len(ref_idx)]
    page.h(2, title)
    page.table(heads, rows, caption="mean loss per target in each bin; Δ paired by seed (negative: lower loss than the transformer)")
    page.figure(bars_figure(labels, series, f"{title}: mean loss per bin (95% CI over seeds; dots: seeds)", "bits per target"))
    for i, (arm, rs) in enumerate(deltas.items()):
        delta_series.append((f"{label(arm)} − Transformer", color(arm, i), rs, delta_points[arm]))
    if delta_series:
        page.figure(bars_figure(labels, delta_series, f"{title}: difference from the transformer (95% CI over seeds)",
                                "Δ bits per target", zero_line=True, bars=True))
    return deltas


def _extreme_is_last(values: Sequence[float], pick: Callable[[np.ndarray], Any]) -> bool | None:
    """Is the extreme (argmin/argmax) of the finite values in the last non-empty bin?"""
    arr = np.asarray(values, dtype=np.float64)
    finite = np.flatnonzero(np.isfinite(arr))
    if finite.size < 2:
        return None
    return int(finite[int(pick(arr[finite]))]) == int(finite[-1])


def _copy_depth(page: Page, ds: xr.Dataset) -> None:
    header(page, ds, "Loss by copy depth (spec §9.5): the depth of every validation target is computed from the data "
           "alone, then each trained model's mean loss is pooled per depth bin and per copy-distance bin.")
    page.p(ds.attrs.get("copy_depth_definition", ""), cls="note")
    if "copy_loss_sum" not in ds:
        page.p("No copy-depth analysis in this dataset.")
        return
    # Build the sections into a scratch page first: the paper table comes first but needs their numbers.
    scratch = Page("")
    scratch._plotly = False
    depth_d = _bin_section(scratch, ds, "depth", 0, "By copy depth")
    dist_d = _bin_section(scratch, ds, "distance", 1, "By copy distance (targets with depth ≥ 1)")
    _bin_section(scratch, ds, "distance", 4, "By copy distance (targets with depth ≥ 4)")
    labels = json.loads(ds.attrs["copy_depth_bin_labels"])
    ok, why = comparability(ds)
    ka = depth_d.get("ka", [])
    fsn = depth_d.get("fsn", [])
    ka_behind = [r["mean_diff"] > 0 for r in ka if math.isfinite(r["mean_diff"])]
    deep = [i for i, lab in enumerate(labels) if int(lab.split("–")[0]) >= 4]
    fsn_ahead = [fsn[i]["mean_diff"] < 0 for i in deep if i < len(fsn) and math.isfinite(fsn[i]["mean_diff"])]
    dist_fsn = [r["mean_diff"] for r in dist_d.get("fsn", [])]
    dist_ka = [r["mean_diff"] for r in dist_d.get("ka", [])]
    long_range = _extreme_is_last(dist_fsn, np.argmin)
    ka_long = _extreme_is_last(dist_ka, np.argmax)
    rows = [
        ["unfrustrated base (KA) behind the converged transformer at every copy depth", "every bin",
         f"behind in {sum(ka_behind)}/{len(ka_behind)} depth bins", verdict(all(ka_behind) if ka_behind else None, ok), why],
        ["KA worst on long-range copy events", "worst at long range",
         "Δ by distance bin: " + ", ".join(fmt(d, 3) for d in dist_ka), verdict(ka_long, ok), why],
        ["FSN reverses the deficit at every copy depth ≥ 4", "FSN ahead in bins 4–7 … 24–32",
         f"ahead in {sum(fsn_ahead)}/{len(fsn_ahead)} bins with depth ≥ 4", verdict(all(fsn_ahead) if fsn_ahead else None, ok), why],
        ["FSN's advantage concentrated on long-range copying", "largest at long range",
         "Δ by distance bin: " + ", ".join(fmt(d, 3) for d in dist_fsn), verdict(long_range, ok), why],
        ["depths 0–3", "not stated (OQ-33)", "Δ FSN: " + ", ".join(fmt(fsn[i]["mean_diff"], 3) for i in range(len(fsn)) if i not in deep),
         verdict(None), why],
    ]
    paper_table(page, rows)
    page.parts.extend(scratch.parts)
    if scratch._plotly and not page._plotly:
        page._plotly = True
    done = ds["status"].values == "done"
    if done.any() and "token_mean_bits" in ds:
        proto = settings(ds).get("protocol", {})
        same_bytes = ds.attrs.get("copy_eval_bytes") in (-1, None) and proto.get("eval_bytes") is None or \
            ds.attrs.get("copy_eval_bytes") == proto.get("eval_bytes")
        diff = np.abs(ds["token_mean_bits"].values[done] - ds["final_val_bpc"].values[done])
        page.p(f"Check: the mean of the per-target losses equals each run's final validation bpc to within "
               f"{np.nanmax(diff):.2e} bits" + ("" if same_bytes else " (over different byte ranges: not expected to match)") + ".",
               cls="note")
    page.h(2, "Validation curves")
    page.figure(curves_figure(ds, "arm", "validation loss per evaluation (mean ± sd over seeds)", ARM_ORDER))
    page.table(SUMMARY_HEADERS, summary_rows(ds, "arm", ARM_ORDER), caption="final validation bits per byte")


def _kernel_label(v: Any) -> str:
    return str(v)


def _ablation_ladder(page: Page, ds: xr.Dataset) -> None:
    header(page, ds, "Ablation ladder of the coupling kernel (spec §6): the unfrustrated base layer, each kind of "
           "frustration alone (+harmonics: signed Daido harmonics; +sakaguchi: a static complex angle; +delay: the "
           "successor term) and the full kernel, all on the same FSN layer, budget and seeds.")
    kernels = tag_values(ds, "kernel", KERNEL_ORDER)
    stats_by = {k: describe(select(ds, kernel=k)["final_val_bpc"].values) for k in kernels}
    rows = [
        ["per-component ablation numbers", "not recovered (OQ-32)",
         "; ".join(f"{k} {fmt(stats_by[k]['mean'])}" for k in kernels), verdict(None), "no paper numbers"],
        ["spec §13 prototype (0.21M, 600 steps, one seed): first harmonic complex 2.90, + delay 2.88, four harmonics "
         "without delay 2.84, four harmonics + delay 2.72", "full kernel best; harmonics and delay act together",
         f"best: {min(stats_by, key=lambda k: stats_by[k]['mean'] if math.isfinite(stats_by[k]['mean']) else math.inf)}" if kernels else "–",
         verdict(None), "not comparable (different protocol, indicative only)"],
    ]
    base = stats_by.get("base")
    if base and all(k in stats_by for k in ("+harmonics", "+delay", "full")) and math.isfinite(base["mean"]):
        gain = {k: base["mean"] - stats_by[k]["mean"] for k in ("+harmonics", "+delay", "full")}
        rows.append(["harmonics and delay act together far more than apart (§13)", "full gain > sum of single gains",
                     f"gain full {fmt(gain['full'])} vs +harmonics {fmt(gain['+harmonics'])} + +delay {fmt(gain['+delay'])}",
                     verdict(gain["full"] > gain["+harmonics"] + gain["+delay"], False), "not comparable (indicative)"])
    paper_table(page, rows)
    page.h(2, "Final validation loss by kernel")
    page.figure(final_bars(ds, "kernel", KERNEL_ORDER, "final validation loss by kernel (95% CI over seeds; dots: seeds)", _kernel_label))
    page.table(["kernel"] + SUMMARY_HEADERS[1:], summary_rows(ds, "kernel", KERNEL_ORDER, names=_kernel_label))
    if "base" in kernels:
        page.table(PAIRED_HEADERS, paired_rows(ds, "kernel", "base", KERNEL_ORDER, names=_kernel_label),
                   caption="paired by seed against the unfrustrated base layer (negative: the frustration helps)")
    if "full" in kernels:
        page.table(PAIRED_HEADERS, paired_rows(ds, "kernel", "full", KERNEL_ORDER, names=_kernel_label),
                   caption="paired by seed against the full kernel (positive: the full kernel is better)")
    page.h(2, "Validation curves")
    page.figure(curves_figure(ds, "kernel", "validation loss per evaluation by kernel", KERNEL_ORDER, _kernel_label))


def _scale_ladder(page: Page, ds: xr.Dataset) -> None:
    header(page, ds, "Scale ladder (spec §9.4, OQ-31): FSN and the transformer at each rung of matched parameter "
           "counts, same protocol per rung.")
    rungs = tag_values(ds, "rung", ("tiny", "small", "1m", "2m", "4m", "8m"))
    arms = tag_values(ds, "arm", ARM_ORDER)
    go = _go()
    fig = go.Figure()
    for i, arm in enumerate(arms):
        xs, ys, lo, hi = [], [], [], []
        for rung in rungs:
            sub = select(select(ds, arm=arm), rung=rung)
            if not sub.sizes["run"]:
                continue
            s = describe(sub["final_val_bpc"].values)
            xs.append(float(np.nanmean(sub["parameters"].values)))
            ys.append(s["mean"])
            lo.append(s["mean"] - s["ci_low"] if math.isfinite(s["ci_low"]) else 0)
            hi.append(s["ci_high"] - s["mean"] if math.isfinite(s["ci_high"]) else 0)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=label(arm), line={"color": color(arm, i)},
                                 text=[r for r in rungs], error_y={"type": "data", "symmetric": False, "array": hi, "arrayminus": lo}))
    fig.update_layout(title="final validation loss against parameters (95% CI over seeds)", xaxis_type="log",
                      xaxis_title="parameters", yaxis_title="validation bits per byte", template="plotly_white", height=420)
    rows, deltas = [], []
    for rung in rungs:
        sub = select(ds, rung=rung)
        r = paired_by_seed(by_seed(select(sub, arm="fsn"), "final_val_bpc"), by_seed(select(sub, arm="transformer"), "final_val_bpc"))
        deltas.append(r)
        params = {label(a): fmt(int(np.nanmax(select(sub, arm=a)["parameters"].values))) for a in arms if select(sub, arm=a).sizes["run"]}
        rows.append([rung, ", ".join(f"{k} {v}" for k, v in params.items())]
                    + [fmt(describe(select(sub, arm=a)["final_val_bpc"].values)["mean"]) for a in arms]
                    + [fmt(r["mean_diff"]), fmt_ci(r["ci_low"], r["ci_high"]), fmt_p(r["t_p"]), fmt_p(r["wilcoxon_p"]), f"{r['wins']}/{r['n']}"])
    paper_rungs = [r for r in rungs if r in ("1m", "2m", "4m")]
    ahead = [d["mean_diff"] < 0 for r, d in zip(rungs, deltas) if r in paper_rungs and math.isfinite(d["mean_diff"])]
    comparable = ds.attrs.get("scale") == "paper" and any(str(d).startswith("enwik8") for d in ds["data"].values)
    why = "comparable (direction only)" if comparable else ("not comparable (smoke scale)" if ds.attrs.get("scale") == "smoke" else "not comparable (not enwik8)")
    paper_table(page, [
        ["the FSN's advantage persists up the ladder, complete through 4M", "FSN ahead at 1M, 2M, 4M (no numbers)",
         "Δ FSN − transformer: " + ", ".join(f"{r} {fmt(d['mean_diff'])}" for r, d in zip(rungs, deltas)),
         verdict(all(ahead) if ahead else None, comparable), why],
        ["8M rung", "in progress", f"Δ {fmt(deltas[rungs.index('8m')]['mean_diff'])}" if "8m" in rungs else "not run", verdict(None), "no paper number"],
    ])
    page.h(2, "Ladder")
    page.figure(fig)
    page.table(["rung", "parameters"] + [f"{label(a)} mean" for a in arms] + ["Δ FSN − transformer", "95% CI", "paired t p", "Wilcoxon p", "FSN lower in"],
               rows, left=2, caption="final validation bits per byte; Δ paired by seed")
    for rung in rungs:
        sub = select(ds, rung=rung)
        page.figure(curves_figure(sub, "arm", f"{rung}: validation loss per evaluation", ARM_ORDER))


def _axial_mean(angles: np.ndarray, weights: np.ndarray | None = None, axis: int = -1) -> np.ndarray:
    """Circular mean of angles defined modulo π (α is folded into (−π/2, π/2]; α + π with −K is the
    same coupling): the doubled-angle mean, halved."""
    w = np.ones_like(angles) if weights is None else np.nan_to_num(weights)
    z = np.nansum(w * np.exp(2j * np.nan_to_num(angles)), axis=axis)
    return np.angle(z) / 2


def _axial_sd(angles: np.ndarray) -> float:
    """Circular standard deviation of angles modulo π: sqrt(−2 ln R) / 2 of the doubled angles."""
    a = np.asarray(angles, dtype=np.float64)
    a = a[np.isfinite(a)]
    if a.size < 2:
        return math.nan
    R = float(np.abs(np.mean(np.exp(2j * a))))
    return math.sqrt(max(-2.0 * math.log(max(R, 1e-300)), 0.0)) / 2


def _kernel_reading(page: Page, ds: xr.Dataset) -> None:
    header(page, ds, "The learned coupling kernel of trained FSNs read as a coupling function (spec §10): "
           "Kuramoto–Sakaguchi angles α = −arg c, signed Daido amplitudes K (c = K e^{−iα}; K < 0 is repulsive) and the "
           "delay (successor) coefficients d, per layer, head and harmonic, across seeds.")
    if "sakaguchi_alpha" not in ds:
        page.p("No kernel readings in this dataset.")
        return
    page.p("Sign convention: " + ds.attrs.get("kernel_sign_convention", "dθ_i/dt = Σ_j K_ij sin(θ_j − θ_i − α)"), cls="note")
    done = ds["status"].values == "done"
    sub = ds.isel(run=np.flatnonzero(done))
    group_dim = [d for d in sub["sakaguchi_alpha"].dims if d not in ("run", "layer", "delay", "harmonic")][0]
    arms = tag_values(sub, "arm", ARM_ORDER)
    rows_all = []
    summary_rows_ = []
    for arm in arms:
        a = select(sub, arm=arm)
        alpha = a["sakaguchi_alpha"]  # run, layer, delay, group, harmonic
        K = a["daido_K"]
        for layer in alpha["layer"].values:
            for delay in alpha["delay"].values:
                for n in alpha["harmonic"].values:
                    al = alpha.sel(layer=layer, delay=delay, harmonic=n).transpose("run", group_dim).values
                    kk = K.sel(layer=layer, delay=delay, harmonic=n).transpose("run", group_dim).values
                    if not np.isfinite(kk).any() or np.nanmax(np.abs(kk)) == 0:
                        continue
                    # permutation-invariant per-seed summaries (heads are not matched across seeds)
                    seed_alpha = _axial_mean(al, np.abs(kk), axis=1)
                    seed_K = np.nanmean(kk, axis=1)
                    seed_rep = np.nanmean(kk < 0, axis=1)
                    sk = describe(seed_K)
                    a_mean = float(_axial_mean(seed_alpha[None, :], axis=1)[0])
                    within = float(np.nanmean(np.nanstd(kk, axis=1, ddof=1))) if kk.shape[1] > 1 else math.nan
                    summary_rows_.append([label(arm), int(layer), int(delay), int(n), fmt(a_mean, 3), fmt(_axial_sd(seed_alpha), 3),
                                          fmt(sk["mean"], 3), fmt(sk["sd"], 3), fmt(within, 3), fmt(float(np.nanmean(seed_rep)), 2)])
                    for r in range(al.shape[0]):
                        for h in range(al.shape[1]):
                            rows_all.append((arm, int(layer), int(delay), int(n), int(a["seed"].values[r]), h, al[r, h], kk[r, h]))
    n_rep = sum(1 for row in rows_all if row[7] < 0)
    ok = ds.attrs.get("scale") == "paper"
    paper_table(page, [
        ["each kernel coefficient is a named synchronization object (KS angle, Daido term, delay)", "qualitative; no values recovered",
         f"{len(rows_all)} coefficients read; {n_rep} with K < 0 (repulsive Daido terms)", verdict(None), "no paper numbers"],
        ["digest: frustration angles initialised small and random", "low confidence",
         f"median |α| (harmonic 1, delay 0): {fmt(float(np.nanmedian([abs(r[6]) for r in rows_all if r[3] == 1 and r[2] == 0])) if rows_all else math.nan, 3)} rad",
         verdict(None), "not comparable" if not ok else "no paper numbers"],
    ])
    page.h(2, "Reproducibility across seeds")
    page.p("Heads are interchangeable, so head h of one seed need not be head h of another. Each seed is therefore "
           "summarised by permutation-invariant statistics over its heads (the |K|-weighted circular mean of α, the mean K "
           "and the fraction of repulsive heads); 'over seeds' is the spread of those summaries (for α the circular sd of "
           "angles modulo π, since α + π with −K is the same coupling), to be read against the spread of K across the heads "
           "of one seed. Angles of harmonics with K near 0 are ill-defined: hence the |K| weights.", cls="note")
    page.table(["arm", "layer", "delay", "harmonic", "α mean over seeds", "α sd over seeds", "K mean over seeds", "K sd over seeds",
                "K sd across heads (mean over seeds)", "fraction repulsive"], summary_rows_, left=4)
    go = _go()
    for arm in arms:
        for var, title, unit in (("sakaguchi_alpha", "Kuramoto–Sakaguchi angle α", "radian"), ("daido_K", "signed Daido amplitude K", "1")):
            fig = go.Figure()
            seeds = sorted({r[4] for r in rows_all if r[0] == arm})
            for si, seed in enumerate(seeds):
                pts = [r for r in rows_all if r[0] == arm and r[4] == seed]
                x = [f"L{r[1]} {'d' if r[2] else 'c'}{r[3]}" for r in pts]
                y = [r[6] if var == "sakaguchi_alpha" else r[7] for r in pts]
                fig.add_trace(go.Box(x=x, y=y, name=f"seed {seed}", boxpoints="all", jitter=0.4, pointpos=0,
                                     fillcolor="rgba(0,0,0,0)", line={"color": "rgba(0,0,0,0)"},
                                     marker={"color": PALETTE[si % len(PALETTE)], "size": 6},
                                     text=[f"head {r[5]}" for r in pts]))
            fig.update_layout(title=f"{label(arm)}: {title} per layer and coefficient (c_n: delay 0, d_n: delay 1); dots: heads",
                              yaxis_title=unit, boxmode="group", template="plotly_white", height=420)
            if var == "daido_K":
                fig.add_hline(y=0, line={"color": "black", "width": 1})
            page.figure(fig)
        a = select(sub, arm=arm)
        extra = []
        for layer in a["layer"].values:
            row = [label(arm), int(layer)]
            for var in ("step_size_mean", "gate_mean"):
                if var in a:
                    s = describe(a[var].sel(layer=layer).values)
                    row.append(f"{fmt(s['mean'], 3)} ± {fmt(s['sd'], 3)}")
                else:
                    row.append("–")
            if "temperature" in a:
                s = describe(a["temperature"].sel(layer=layer).mean(group_dim if group_dim in a["temperature"].dims else "head").values)
                row.append(f"{fmt(s['mean'], 3)} ± {fmt(s['sd'], 3)}")
            else:
                row.append("–")
            extra.append(row)
        page.table(["arm", "layer", "step size η (mean ± sd over seeds)", "gate", "temperature β (head mean)"], extra, left=2)
    page.h(2, "All coefficients")
    page.details("every coefficient (arm, layer, delay, harmonic, seed, head, α, K)",
                 "\n".join(f"{r[0]}\t{r[1]}\t{r[2]}\t{r[3]}\t{r[4]}\t{r[5]}\t{r[6]:.5f}\t{r[7]:.5f}" for r in rows_all))
    page.h(2, "Validation curves of the runs read")
    page.figure(curves_figure(ds, "arm", "validation loss per evaluation", ARM_ORDER))


def _regime_ladder(page: Page, ds: xr.Dataset) -> None:
    from fsnlab.study.regime import report_section  # it imports this module

    report_section(page, ds)


SECTIONS: dict[str, Callable[[Page, xr.Dataset], None]] = {
    "matched_budget": _matched_budget,
    "baseline_tuning": _baseline_tuning,
    "copy_depth": _copy_depth,
    "ablation_ladder": _ablation_ladder,
    "scale_ladder": _scale_ladder,
    "kernel_reading": _kernel_reading,
    "regime_ladder": _regime_ladder,
}


def _generic(page: Page, ds: xr.Dataset) -> None:
    header(page, ds, "A study of fsnlab runs.")
    group = "arm" if "arm" in ds.coords else None
    if group:
        page.figure(curves_figure(ds, group, "validation loss per evaluation", ARM_ORDER))
        page.table(SUMMARY_HEADERS, summary_rows(ds, group, ARM_ORDER))


def build_html(ds: xr.Dataset) -> str:
    page = Page(ds.attrs.get("title", "fsnlab study"))
    SECTIONS.get(ds.attrs.get("study", ""), _generic)(page, ds)
    runs_table(page, ds)
    settings_block(page, ds)
    page.p(f"Reference: {ds.attrs.get('references', '')}. Rebuild this page with: fsnlab report STUDY_DIR", cls="note")
    return page.render()


def write_report(ds: xr.Dataset, path: str | os.PathLike[str]) -> Path:
    """Write the report of ``ds`` to ``path`` (atomically) and return it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(build_html(ds), encoding="utf-8")
    os.replace(tmp, path)
    return path
