"""Token phases on the unit circle, stage by stage (spec §3.1, §3.5).

One point per token at ``(r cos θ, r sin θ)`` for one phase coordinate (``osc``); ``r = 1`` (the
torus coordinate as it is) or ``r`` growing with position (a spiral, so that 1,000 tokens do not sit on
top of each other). The selected token's strongest couplings are drawn as lines to the attended
tokens, and dashed arrows lead from each attended token ``u`` to its successor ``u+1``: the delay term
pulls the selected token toward those successors (spec §3.4, §4).

The explorer animates the same picture in the browser (``apps/explorer/assets/explorer.js`` mirrors
:func:`phase_circle_figure`); :func:`phase_animation_figure` gives a self-contained plotly animation
for reports.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from fsnlab.viz.common import (
    CLASS_COLORS,
    CLASS_ORDER,
    VizError,
    base_layout,
    char_classes,
    circle_axes,
    display_char,
    go,
    has_phases,
    osc_head,
    sample_index,
    sample_label,
    unit_circle,
    values,
)

COLOR_MODES = ("position", "class")
RADIUS_MODES = ("unit", "position")
# Past this many tokens the scatter is drawn with WebGL (Scattergl).
WEBGL_THRESHOLD = 300


def token_phases(ds: Any, sample: int, osc: int) -> tuple[list[str], np.ndarray]:
    """Stage names and the phases ``theta[stage, pos]`` of coordinate ``osc`` in window ``sample``."""
    if not has_phases(ds):
        raise VizError("this probe holds no phases (a transformer has none)")
    s = sample_index(ds, sample)
    if not 0 <= int(osc) < ds.sizes["osc"]:
        raise VizError(f"osc {osc} is out of range (D = {ds.sizes['osc']})")
    theta = values(ds["theta"].isel(sample=s, osc=int(osc)).transpose("stage", "pos")).astype(np.float64)
    return [str(x) for x in ds["stage"].values], theta


def attention_layer(ds: Any, stage: int) -> int | None:
    """The layer whose attention step is in progress at ``stage``: the layer that reads these phases
    as its input (``embed`` -> 0, ``blocks.i.ffn`` -> i+1), or that just moved them
    (``blocks.i.attn`` -> i). None after the last block."""
    kinds = [str(k) for k in ds["stage_kind"].values]
    layers = [int(v) for v in ds["stage_layer"].values]
    n_layer = int(ds.sizes.get("layer", 0))
    kind, layer = kinds[stage], layers[stage]
    if kind == "embed":
        return 0 if n_layer else None
    if kind == "attn":
        return layer
    return layer + 1 if layer + 1 < n_layer else None


def attended_tokens(ds: Any, sample: int, layer: int, head: int, pos: int) -> list[tuple[int, float]]:
    """The top-k ``(u, A_{t,u})`` of token ``pos`` at ``layer``/``head`` (``attn_topk_*``), strongest first."""
    if "attn_topk_index" not in ds.variables:
        return []
    sel = {"sample": int(sample), "layer": int(layer), "head": int(head), "pos": int(pos)}
    idx = values(ds["attn_topk_index"].isel(sel))
    w = values(ds["attn_topk_weight"].isel(sel))
    return [(int(u), float(a)) for u, a in zip(idx, w) if u >= 0]


def _radius(n: int, mode: str) -> np.ndarray:
    if mode not in RADIUS_MODES:
        raise VizError(f"radius mode must be one of {RADIUS_MODES}, got {mode!r}")
    if mode == "unit" or n < 2:
        return np.ones(n)
    return 0.3 + 0.7 * np.arange(n) / (n - 1)


def phase_circle_figure(
    theta: Sequence[float],
    *,
    chars: Sequence[str] | None = None,
    color_by: str = "position",
    radius: str = "unit",
    selected: int | None = None,
    attended: Sequence[tuple[int, float]] | None = None,
    trail: Sequence[Sequence[float]] | None = None,
    mean_fields: dict[str, complex] | None = None,
    title: str | None = None,
) -> Any:
    """Tokens on the circle.

    ``theta (T,)`` phases; ``chars`` their characters (hover labels, class colours); ``selected`` a
    position; ``attended`` its ``(u, weight)`` couplings: lines ``t -> u`` (width by weight) and dashed
    arrows ``u -> u+1`` to each successor; ``trail`` earlier phase arrays (oldest first) drawn faded;
    ``mean_fields`` complex vectors drawn from the origin (e.g. ``{"Z0": ..., "Z1": ...}``, the
    order parameters of the attended tokens and of their successors).
    """
    th = np.asarray(theta, dtype=np.float64)
    T = th.size
    chars = list(chars) if chars is not None else [""] * T
    if color_by not in COLOR_MODES:
        raise VizError(f"color_by must be one of {COLOR_MODES}, got {color_by!r}")
    r = _radius(T, radius)
    pos = np.arange(T)
    labels = [display_char(c) for c in chars]
    hover = [f"t={i} '{labels[i]}'<br>θ={th[i]:+.3f}" for i in range(T)]
    Scatter = go.Scattergl if T > WEBGL_THRESHOLD else go.Scatter
    cx, cy = unit_circle()
    traces: list[Any] = [go.Scatter(x=cx, y=cy, mode="lines", line={"color": "#cccccc", "width": 1}, hoverinfo="skip", showlegend=False)]
    for j, old in enumerate(trail or []):
        o = np.asarray(old, dtype=np.float64)
        traces.append(
            Scatter(
                x=r * np.cos(o), y=r * np.sin(o), mode="markers", hoverinfo="skip", showlegend=False,
                marker={"size": 4, "color": "#888888", "opacity": 0.08 + 0.25 * (j + 1) / (len(trail) + 1)},
            )
        )
    x, y = r * np.cos(th), r * np.sin(th)
    if color_by == "position":
        traces.append(
            Scatter(
                x=x, y=y, mode="markers", name="tokens", customdata=pos, hovertext=hover, hoverinfo="text",
                marker={"size": 7, "color": pos, "colorscale": "Viridis", "showscale": True,
                        "colorbar": {"title": {"text": "position"}, "thickness": 12}},
            )
        )
    else:
        classes = np.asarray(char_classes(chars))
        for cls in CLASS_ORDER:
            m = classes == cls
            if not m.any():
                continue
            traces.append(
                Scatter(
                    x=x[m], y=y[m], mode="markers", name=cls, customdata=pos[m],
                    hovertext=[hover[i] for i in pos[m]], hoverinfo="text",
                    marker={"size": 7, "color": CLASS_COLORS[cls]},
                )
            )
    if selected is not None and 0 <= selected < T:
        t = int(selected)
        for u, w in attended or []:
            if not 0 <= u < T:
                continue
            traces.append(
                go.Scatter(
                    x=[x[t], x[u]], y=[y[t], y[u]], mode="lines", showlegend=False, hoverinfo="text",
                    hovertext=f"A[{t},{u}] = {w:.3f}", line={"color": "#D55E00", "width": 1 + 6 * float(w)},
                )
            )
            if u < t and u + 1 < T:  # the delay term couples t to u+1 (only when u+1 <= t)
                traces.append(
                    go.Scatter(
                        x=[x[u], x[u + 1]], y=[y[u], y[u + 1]], mode="lines+markers", showlegend=False,
                        hoverinfo="text", hovertext=f"successor {u}→{u + 1}",
                        line={"color": "#009E73", "width": 1.5, "dash": "dash"},
                        marker={"symbol": "arrow", "size": [0, 11], "angleref": "previous", "color": "#009E73"},
                    )
                )
        for name, z in (mean_fields or {}).items():
            traces.append(
                go.Scatter(
                    x=[0, float(np.real(z))], y=[0, float(np.imag(z))], mode="lines+markers", name=name,
                    line={"width": 2, "color": "#000000" if name.endswith("0") else "#009E73"},
                    marker={"symbol": "arrow", "size": [0, 12], "angleref": "previous"},
                    hovertext=f"{name}: |Z|={abs(z):.3f}, arg={np.angle(z):+.3f}", hoverinfo="text",
                )
            )
        traces.append(
            go.Scatter(
                x=[x[t]], y=[y[t]], mode="markers+text", name=f"t={t}", text=[labels[t]], textposition="top center",
                marker={"size": 16, "color": "rgba(0,0,0,0)", "line": {"width": 3, "color": "#000000"}},
                hoverinfo="skip",
            )
        )
    fig = go.Figure(traces)
    fig.update_layout(**circle_layout(title))
    return fig


def circle_layout(title: str | None = None) -> dict[str, Any]:
    """The layout of the phase figure (equal axes around the unit circle, legend below); the
    explorer's in-browser animation uses the same one."""
    legend = {"orientation": "h", "yanchor": "top", "y": -0.02, "xanchor": "left", "x": 0.0}
    return {**base_layout(title, legend=legend, **circle_axes(1.35)), "uirevision": "phases", "height": 520}


def _theta_and_chars(ds: Any, sample: int, osc: int) -> tuple[list[str], np.ndarray, list[str]]:
    stages, theta = token_phases(ds, sample, osc)
    chars = [str(c) for c in values(ds["char"].isel(sample=int(sample)))]
    return stages, theta, chars


def phase_figure(
    ds: Any,
    sample: int = 0,
    osc: int = 0,
    stage: int | str = -1,
    *,
    color_by: str = "position",
    radius: str = "unit",
    selected: int | None = None,
    trail: int = 0,
) -> Any:
    """The phases of window ``sample``, coordinate ``osc``, at one ``stage`` (index or name), with the
    selected token's top-k couplings of the attention step in progress (:func:`attention_layer`)."""
    stages, theta, chars = _theta_and_chars(ds, sample, osc)
    i = stages.index(stage) if isinstance(stage, str) else range(len(stages))[stage]
    attended, fields = None, None
    layer = attention_layer(ds, i)
    if selected is not None and layer is not None:
        attended = attended_tokens(ds, sample, layer, osc_head(ds, osc), selected)
        if "Z_real" in ds.variables:
            z = ds["Z_real"] + 1j * ds["Z_imag"]
            zz = values(z.isel(sample=int(sample), layer=layer, pos=int(selected), osc=int(osc), harmonic=0))
            fields = {f"Z{d}": complex(zz[d]) for d in range(zz.shape[0])}
    old = [theta[j] for j in range(max(0, i - trail), i)]
    title = f"phases · sample {sample_label(ds, sample)} · osc {osc} · {stages[i]}"
    return phase_circle_figure(theta[i], chars=chars, color_by=color_by, radius=radius, selected=selected,
                               attended=attended, trail=old, mean_fields=fields, title=title)


def phase_animation_figure(ds: Any, sample: int = 0, osc: int = 0, *, color_by: str = "position", radius: str = "unit") -> Any:
    """A plotly animation through the stages (play button and slider), self-contained for reports."""
    stages, theta, chars = _theta_and_chars(ds, sample, osc)
    first = phase_circle_figure(theta[0], chars=chars, color_by=color_by, radius=radius)
    n_static = 1  # the circle outline
    frames = []
    for i, name in enumerate(stages):
        fig_i = phase_circle_figure(theta[i], chars=chars, color_by=color_by, radius=radius)
        frames.append(go.Frame(data=list(fig_i.data[n_static:]), traces=list(range(n_static, len(fig_i.data))), name=name))
    first.frames = frames
    steps = [{"label": name, "method": "animate", "args": [[name], {"mode": "immediate", "frame": {"duration": 0, "redraw": True}}]} for name in stages]
    first.update_layout(
        title={"text": f"phases through the stages · sample {sample_label(ds, sample)} · osc {osc}", "x": 0.01},
        updatemenus=[{
            "type": "buttons", "x": 0.0, "y": -0.05, "xanchor": "left", "yanchor": "top", "direction": "left",
            "buttons": [
                {"label": "▶", "method": "animate", "args": [None, {"frame": {"duration": 600, "redraw": True}, "fromcurrent": True}]},
                {"label": "❚❚", "method": "animate", "args": [[None], {"mode": "immediate", "frame": {"duration": 0}}]},
            ],
        }],
        sliders=[{"steps": steps, "x": 0.12, "len": 0.88, "y": -0.05, "currentvalue": {"prefix": "stage: "}}],
    )
    return first
