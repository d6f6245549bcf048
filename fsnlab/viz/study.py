"""Figures of study datasets (``fsnlab report``): validation curves over seeds, means with
confidence intervals per category or along an axis, and kernel coefficients per seed.

Like the probe figures, these draw and compute nothing beyond what a plot needs (a mean and sd
band over the seeds of a curve); the statistics they show (:func:`fsnlab.study.stats.describe` and
``paired`` dicts: ``mean``/``mean_diff``, ``ci_low``, ``ci_high``, ``n``) come from the caller.
Colours are the one palette of :mod:`fsnlab.viz.common`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from fsnlab.viz.common import PALETTE, go, series_color, with_alpha

LOSS_AXIS = "validation bits per byte"


@dataclass
class Series:
    """One named series of a figure: per x (a category or a value) a summary dict and, optionally,
    the per-seed values drawn as dots beside it."""

    name: str
    color: str
    x: Sequence[Any]
    stats: Sequence[Mapping[str, float]]
    points: Sequence[Sequence[float]] = ()
    text: Sequence[str] | None = None  # hover text per x
    dash: str | None = None
    width: float | None = None
    marker_size: float | None = None
    error_thickness: float | None = None
    points_name: str | None = None  # legend name of the per-seed dots (default: "<name> seeds")


def _mean(s: Mapping[str, float]) -> float:
    return s.get("mean", s.get("mean_diff", math.nan))


def _error(stats: Sequence[Mapping[str, float]], thickness: float | None = None, width: float | None = None) -> dict[str, Any]:
    """Asymmetric error bars from each summary's CI (0 where the CI is undefined)."""
    means = [_mean(s) for s in stats]
    hi = [s["ci_high"] - m if math.isfinite(s["ci_high"]) else 0 for s, m in zip(stats, means)]
    lo = [m - s["ci_low"] if math.isfinite(s["ci_low"]) else 0 for s, m in zip(stats, means)]
    error: dict[str, Any] = {"type": "data", "symmetric": False, "array": hi, "arrayminus": lo}
    if thickness is not None:
        error["thickness"] = thickness
    if width is not None:
        error["width"] = width
    return error


def _num(x: float) -> str:
    return f"{x:.4f}" if math.isfinite(x) else "–"


def _x_axis(ds: Any) -> tuple[str, str]:
    """Epochs when the runs reach at least one, else training tokens."""
    epochs = ds["eval_epoch"].values
    if np.isfinite(epochs).any() and np.nanmax(epochs) >= 1:
        return "eval_epoch", "epoch"
    return "eval_tokens", "training tokens"


def curves_figure(ds: Any, group: str, values: Sequence[Any], title: str,
                  names: Callable[[Any], str] = str) -> Any:
    """Validation bpc at every evaluation of a study dataset, one colour per value of the run tag
    ``group`` (in the order of ``values``): the mean over its runs (seeds), a band of ±1 sd, and each
    run as a thin line."""
    fig = go.Figure()
    xvar, xtitle = _x_axis(ds)
    for i, value in enumerate(values):
        sub = ds.isel(run=np.flatnonzero(ds[group].values == value))
        y = sub["val_bpc"].values
        if not np.isfinite(y).any():
            continue
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # evaluations past the end of the shorter runs are all NaN
            x = np.nanmax(sub[xvar].values, axis=0)
            keep = np.isfinite(x)
            mean = np.nanmean(y, axis=0)[keep]
            sd = np.nan_to_num(np.nanstd(y, axis=0, ddof=1)[keep]) if y.shape[0] > 1 else np.zeros(keep.sum())
        xs, c = x[keep], series_color(value, i)
        name = names(value)
        fig.add_trace(go.Scatter(x=np.concatenate([xs, xs[::-1]]), y=np.concatenate([mean + sd, (mean - sd)[::-1]]),
                                 fill="toself", fillcolor=with_alpha(c, 0.18), line={"width": 0}, hoverinfo="skip",
                                 showlegend=False, legendgroup=name))
        for r in range(y.shape[0]):
            seed = sub["seed"].values[r] if "seed" in sub.coords else r
            fig.add_trace(go.Scatter(x=sub[xvar].values[r], y=y[r], mode="lines", line={"width": 0.7, "color": c},
                                     opacity=0.45, name=f"{name} seed {seed}", legendgroup=name, showlegend=False))
        fig.add_trace(go.Scatter(x=xs, y=mean, mode="lines+markers", line={"width": 2.5, "color": c},
                                 name=f"{name} (n={y.shape[0]})", legendgroup=name))
    fig.update_layout(title=title, xaxis_title=xtitle, yaxis_title=LOSS_AXIS, template="plotly_white",
                      height=420, legend={"orientation": "v"})
    return fig


def bars_figure(series: Sequence[Series], title: str, yaxis: str, zero_line: bool = False, bars: bool = False) -> Any:
    """Per category (each series' ``x``): the mean with its 95% CI as an error bar, and the per-seed
    values as small dots beside it. Means are markers (a loss axis need not start at 0) unless
    ``bars`` (for differences, drawn from 0)."""
    fig = go.Figure()
    for s in series:
        categories = list(s.x)
        means = [_mean(st) for st in s.stats]
        error = _error(s.stats, thickness=1.5, width=6)
        n = [st.get("n", 0) for st in s.stats]
        hover = [f"{s.name}<br>{cat}: {_num(m)} (n={k})" for cat, m, k in zip(categories, means, n)]
        if bars:
            fig.add_trace(go.Bar(x=categories, y=means, name=s.name, marker_color=s.color, offsetgroup=s.name,
                                 error_y=error, hovertext=hover, hoverinfo="text"))
        else:
            fig.add_trace(go.Scatter(x=categories, y=means, name=s.name, mode="markers", offsetgroup=s.name,
                                     marker={"color": s.color, "size": 11, "symbol": "diamond"}, error_y=error,
                                     hovertext=hover, hoverinfo="text"))
        xs, ys = [], []
        for cat, vals in zip(categories, s.points):
            for v in vals:
                if math.isfinite(v):
                    xs.append(cat)
                    ys.append(v)
        if xs:
            fig.add_trace(go.Scatter(x=xs, y=ys, name=f"{s.name} (seeds)", mode="markers", offsetgroup=s.name,
                                     marker={"color": s.color, "size": 5, "opacity": 0.55, "line": {"width": 0.5, "color": "black"}},
                                     showlegend=False, hoverinfo="y"))
    fig.update_layout(title=title, yaxis_title=yaxis, barmode="group", scattermode="group", template="plotly_white",
                      height=420)
    if zero_line:
        fig.add_hline(y=0, line={"color": "black", "width": 1})
    return fig


def ci_lines_figure(series: Sequence[Series], title: str, xaxis_title: str, yaxis_title: str, *,
                    log_x: bool = True, zero_line: bool = False, height: int = 420) -> Any:
    """Each series as a line through its means along ``x`` with 95% CI error bars, and its per-seed
    values (``points``) as dots at the same x."""
    fig = go.Figure()
    for s in series:
        line: dict[str, Any] = {"color": s.color}
        if s.width is not None:
            line["width"] = s.width
        if s.dash is not None:
            line["dash"] = s.dash
        extra: dict[str, Any] = {}
        if s.marker_size is not None:
            extra["marker"] = {"size": s.marker_size}
        if s.text is not None:
            extra["text"] = list(s.text)
        fig.add_trace(go.Scatter(x=list(s.x), y=[_mean(st) for st in s.stats], mode="lines+markers", name=s.name, line=line,
                                 error_y=_error(s.stats, thickness=s.error_thickness), **extra))
        xs = [x for x, vals in zip(s.x, s.points) for v in vals if math.isfinite(v)]
        ys = [v for vals in s.points for v in vals if math.isfinite(v)]
        if xs:
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", name=s.points_name or f"{s.name} seeds", showlegend=False,
                                     marker={"color": s.color, "size": 5, "opacity": 0.5}))
    if zero_line:
        fig.add_hline(y=0, line={"color": "black", "width": 1})
    layout: dict[str, Any] = {"title": title, "xaxis_title": xaxis_title, "yaxis_title": yaxis_title,
                              "template": "plotly_white", "height": height}
    if log_x:
        layout["xaxis_type"] = "log"
    fig.update_layout(**layout)
    return fig


@dataclass
class SeedCoefficients:
    """The coefficients of one seed: x labels (layer and coefficient), values, hover text."""

    seed: int
    x: Sequence[str]
    y: Sequence[float]
    text: Sequence[str]


def coefficients_figure(seeds: Sequence[SeedCoefficients], title: str, yaxis_title: str, zero_line: bool = False) -> Any:
    """Kernel coefficients (one dot per head) per layer and coefficient, a group of dots per seed."""
    fig = go.Figure()
    for si, s in enumerate(seeds):
        fig.add_trace(go.Box(x=list(s.x), y=list(s.y), name=f"seed {s.seed}", boxpoints="all", jitter=0.4, pointpos=0,
                             fillcolor="rgba(0,0,0,0)", line={"color": "rgba(0,0,0,0)"},
                             marker={"color": PALETTE[si % len(PALETTE)], "size": 6}, text=list(s.text)))
    fig.update_layout(title=title, yaxis_title=yaxis_title, boxmode="group", template="plotly_white", height=420)
    if zero_line:
        fig.add_hline(y=0, line={"color": "black", "width": 1})
    return fig


__all__ = ["LOSS_AXIS", "SeedCoefficients", "Series", "bars_figure", "ci_lines_figure", "coefficients_figure", "curves_figure"]
