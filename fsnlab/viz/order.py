"""Order parameters (spec §3.4, §10): the global Kuramoto R, ψ of the sequence through depth, each
token's local order parameter (its attended context's R), and the Daido |Z_n| per harmonic.

All quantities are read from the probe (``R_global``/``psi_global``, ``R``, ``Z_real``/``Z_imag``);
nothing is recomputed here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fsnlab.viz.common import PALETTE, VizError, base_layout, display_char, go, has_phases, require, sample_index, sample_label, values


def _check(ds: Any, *names: str) -> None:
    if not has_phases(ds):
        raise VizError("this probe holds no order parameters (a transformer has no phases)")
    require(ds, *names)


def global_order_figure(ds: Any, sample: int = 0, osc: int | None = None) -> Any:
    """``R_global`` and ``psi_global`` per stage: the depth profile of consensus (rank collapse shows
    as R → 1). Lines: the chosen coordinate, the mean over coordinates, and the 10–90 % band."""
    from plotly.subplots import make_subplots

    _check(ds, "R_global", "psi_global")
    s = sample_index(ds, sample)
    stages = [str(x) for x in ds["stage"].values]
    R = values(ds["R_global"].isel(sample=s).transpose("stage", "osc")).astype(float)
    psi = values(ds["psi_global"].isel(sample=s).transpose("stage", "osc")).astype(float)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=[0.62, 0.38])
    lo, hi = np.percentile(R, 10, axis=1), np.percentile(R, 90, axis=1)
    fig.add_trace(go.Scatter(x=stages, y=hi, mode="lines", line={"width": 0}, showlegend=False, hoverinfo="skip"), 1, 1)
    fig.add_trace(go.Scatter(x=stages, y=lo, mode="lines", line={"width": 0}, fill="tonexty",
                             fillcolor="rgba(0,114,178,0.15)", name="10–90 % of osc", hoverinfo="skip"), 1, 1)
    fig.add_trace(go.Scatter(x=stages, y=R.mean(1), mode="lines+markers", name="mean over osc", line={"color": "#0072B2"}), 1, 1)
    if osc is not None:
        fig.add_trace(go.Scatter(x=stages, y=R[:, int(osc)], mode="lines+markers", name=f"osc {osc}",
                                 line={"color": "#D55E00"}), 1, 1)
        fig.add_trace(go.Scatter(x=stages, y=psi[:, int(osc)], mode="lines+markers", name=f"ψ osc {osc}",
                                 line={"color": "#D55E00", "dash": "dot"}, showlegend=False), 2, 1)
    else:
        fig.add_trace(go.Scatter(x=stages, y=psi.mean(1), mode="lines+markers", showlegend=False), 2, 1)
    fig.update_layout(**base_layout(f"global order parameter R e^{{iψ}} through depth · sample {sample_label(ds, s)}"), height=380)
    fig.update_yaxes(title_text="R_global", range=[0, 1.02], row=1, col=1)
    fig.update_yaxes(title_text="ψ (rad)", range=[-3.2, 3.2], row=2, col=1)
    return fig


def local_order_heatmap(ds: Any, sample: int = 0, osc: int | str | None = "mean", selected: int | None = None) -> Any:
    """Each token's local order parameter ``R`` (``|Z⁰_{t,1}|``, its attended context's coherence) as
    a layer × position heatmap, for one coordinate or the mean over coordinates."""
    _check(ds, "R")
    s = sample_index(ds, sample)
    R = ds["R"].isel(sample=s).transpose("layer", "pos", "osc")
    z = values(R.mean("osc")) if osc in (None, "mean") else values(R.isel(osc=int(osc)))
    chars = [display_char(c) for c in values(ds["char"].isel(sample=s))]
    T = z.shape[1]
    layers = [int(v) for v in ds["layer"].values]
    custom = np.broadcast_to(np.array(chars, dtype=object)[None, :], z.shape)
    fig = go.Figure(go.Heatmap(
        z=z, x=np.arange(T), y=layers, zmin=0, zmax=1, colorscale="Viridis", customdata=custom,
        colorbar={"title": {"text": "R"}, "thickness": 12},
        hovertemplate="t=%{x} '%{customdata}'<br>layer %{y}<br>R=%{z:.3f}<extra></extra>",
    ))
    if selected is not None:
        fig.add_vline(x=int(selected), line={"color": "#D55E00", "width": 2})
    what = "mean over osc" if osc in (None, "mean") else f"osc {osc}"
    fig.update_layout(**base_layout(f"local order parameter R (attended context) · {what}"), height=260)
    fig.update_xaxes(title_text="position")
    fig.update_yaxes(title_text="layer", tickvals=layers, autorange="reversed")
    return fig


def daido_figure(ds: Any, sample: int = 0, osc: int = 0, pos: int | None = None) -> Any:
    """Daido order parameters ``|Z_n|`` per harmonic through the layers, for the attended tokens
    (delay 0, solid) and their successors (delay 1, dashed). ``pos=None``: mean over positions;
    otherwise the token at ``pos``."""
    _check(ds, "Z_real", "Z_imag")
    s = sample_index(ds, sample)
    sel = {"sample": s, "osc": int(osc)}
    if pos is not None:
        sel["pos"] = int(pos)
    zr = ds["Z_real"].isel(sel)
    zi = ds["Z_imag"].isel(sel)
    mag = np.hypot(values(zr), values(zi))  # (layer, delay, [pos,] harmonic)
    if pos is None:
        mag = np.nanmean(mag, axis=2)
    layers = [int(v) for v in ds["layer"].values]
    harmonics = [int(v) for v in ds["harmonic"].values]
    colors = PALETTE
    fig = go.Figure()
    for d in range(mag.shape[1]):
        for j, n in enumerate(harmonics):
            fig.add_trace(go.Scatter(
                x=layers, y=mag[:, d, j], mode="lines+markers", name=f"|Z{d}_{n}|",
                line={"color": colors[j % len(colors)], "dash": "solid" if d == 0 else "dash"},
            ))
    who = "mean over positions" if pos is None else f"token t={pos}"
    fig.update_layout(**base_layout(f"Daido |Z_n| per harmonic · osc {osc} · {who}"), height=300)
    fig.update_xaxes(title_text="layer", tickvals=layers)
    fig.update_yaxes(title_text="|Z_n|", rangemode="tozero")
    return fig
