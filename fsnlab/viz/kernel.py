"""The learned kernel read as a coupling function (spec §10), and the data's frustration angles (§4).

* Γ(φ) = Σ_n Im(c_n e^{inφ}) and Γ⁺ from the delay coefficients d_n, as the probe evaluated them with
  :func:`fsnlab.models.kernel.coupling_function` (variable ``coupling_function``); a token coupled to
  one partner at phase difference φ = θ_u − θ_t moves by Γ(φ), so the stable locking offsets are the
  zeros with Γ'(φ*) > 0.
* The decomposition of each coefficient into the named objects of synchronization theory: the
  Kuramoto–Sakaguchi angle α = −arg c folded into (−π/2, π/2] and the signed Daido amplitude K
  (c = K e^{−iα}; K < 0 is repulsive), as the probe read them with ``kernel.sakaguchi_angle`` and
  ``kernel.daido_amplitude``; the delay coefficients d_n, whose KS reading has the data-given
  frustration −(nΔ_u + arg d_n).
* The distribution of the data's transitions Δ_u = θ_{u+1} − θ_u (variable ``transition``): the
  frustration the delay term receives from the text.
* The network kernel (spec §3.4, "Alternative reading [G, OQ-9]"): the coupling matrix K_ij of each head,
  harmonic and delay as heatmaps of the strength |K_ij| and the frustration −arg K_ij, from the probe's
  ``kernel_matrix_*`` variables (present only for ``kernel_form`` network1, network, low_rank).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from fsnlab.dynamics.circular import circular_mean, resultant_length
from fsnlab.viz.common import PALETTE, VizError, base_layout, go, has_phases, kernel_group_dim, require, sample_index, values

HARMONIC_COLORS = list(PALETTE)


def _check_kernel(ds: Any, layer: int, group: int) -> str:
    if not has_phases(ds):
        raise VizError("this probe holds no coupling kernel (a transformer has none)")
    require(ds, "kernel_real", "kernel_imag", "coupling_function", what="the coupling function")
    dim = kernel_group_dim(ds)
    if not 0 <= int(layer) < ds.sizes["layer"]:
        raise VizError(f"layer {layer} is out of range (L = {ds.sizes['layer']})")
    if not 0 <= int(group) < ds.sizes[dim]:
        raise VizError(f"{dim} {group} is out of range ({ds.sizes[dim]})")
    return dim


def kernel_coefficients(ds: Any, layer: int, group: int) -> np.ndarray:
    """The complex coefficients ``(delay, harmonic)`` of one layer and kernel group: row 0 is c_n,
    row 1 (when the kernel has a delay term) d_n."""
    dim = _check_kernel(ds, layer, group)
    sel = {"layer": int(layer), dim: int(group)}
    re = values(ds["kernel_real"].isel(sel).transpose("delay", "harmonic")).astype(np.float64)
    im = values(ds["kernel_imag"].isel(sel).transpose("delay", "harmonic")).astype(np.float64)
    return re + 1j * im


def kernel_table(ds: Any, layer: int, group: int) -> list[dict[str, Any]]:
    """One row per (delay, harmonic): the coefficient and its reading as a synchronization object."""
    dim = _check_kernel(ds, layer, group)
    coef = kernel_coefficients(ds, layer, group)
    sel = {"layer": int(layer), dim: int(group)}
    alpha = values(ds["sakaguchi_alpha"].isel(sel).transpose("delay", "harmonic")) if "sakaguchi_alpha" in ds else None
    K = values(ds["daido_K"].isel(sel).transpose("delay", "harmonic")) if "daido_K" in ds else None
    harmonics = [int(v) for v in ds["harmonic"].values]
    rows = []
    for d in range(coef.shape[0]):
        for j, n in enumerate(harmonics):
            c = coef[d, j]
            if d == 0:
                if abs(c) == 0:
                    reading = "off"
                else:
                    kind = "repulsive Daido" if c.real < 0 else "attractive"
                    kind += " harmonic" if n > 1 else " Kuramoto"
                    a = float(alpha[d, j]) if alpha is not None else 0.0
                    reading = kind + (f", static KS angle {a:+.3f}" if abs(a) > 1e-6 else "")
            else:
                reading = f"successor: KS with data frustration −({n}Δ_u + arg d)"
            rows.append({
                "term": ("c" if d == 0 else "d") + f"_{n}",
                "delay": d,
                "n": n,
                "re": float(c.real),
                "im": float(c.imag),
                "abs": float(abs(c)),
                "arg": float(np.angle(c)),
                "alpha": float(alpha[d, j]) if alpha is not None else float("nan"),
                "K": float(K[d, j]) if K is not None else float("nan"),
                "slope_at_0": float(n * c.real),
                "reading": reading,
            })
    return rows


def locking_offsets(phi: Sequence[float], gamma: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Zeros of a sampled coupling function on a periodic grid, split into stable (Γ' > 0) and unstable.

    With θ̇_t = Γ(θ_u − θ_t) and φ = θ_u − θ_t, φ̇ = −Γ(φ): a zero φ* is stable when Γ'(φ*) > 0 and the
    token locks at θ_t = θ_u − φ* (spec §10). Zeros are located by linear interpolation between grid
    points (the curve, not the kernel, is read: this is drawing, not a root solver).
    """
    x = np.asarray(phi, dtype=np.float64)
    y = np.asarray(gamma, dtype=np.float64)
    if x.size < 2:
        return np.array([]), np.array([])
    x2 = np.append(x, x[0] + 2 * math.pi)
    y2 = np.append(y, y[0])
    stable, unstable = [], []
    for i in range(x.size):
        a, b = y2[i], y2[i + 1]
        if a == 0.0 or a * b < 0:
            z = x2[i] if a == 0.0 else x2[i] + (x2[i + 1] - x2[i]) * a / (a - b)
            z = (z + math.pi) % (2 * math.pi) - math.pi
            (stable if b > a else unstable).append(z)
    return np.array(stable), np.array(unstable)


def coupling_function_figure(ds: Any, layer: int = 0, group: int = 0) -> Any:
    """Γ(φ) (attended tokens) and Γ⁺(φ) (their successors) of one layer and kernel group, with the
    stable (filled) and unstable (open) zeros of each."""
    dim = _check_kernel(ds, layer, group)
    phi = values(ds["grid"]).astype(np.float64)
    curves = values(ds["coupling_function"].isel({"layer": int(layer), dim: int(group)}).transpose("delay", "grid"))
    coef = kernel_coefficients(ds, layer, group)
    n = np.arange(1, coef.shape[1] + 1)
    fig = go.Figure()
    names = ["Γ(φ)  attended (c_n)", "Γ⁺(φ)  successors (d_n)"]
    colors = [PALETTE[0], PALETTE[2]]
    for d in range(curves.shape[0]):
        fig.add_trace(go.Scatter(x=phi, y=curves[d], mode="lines", name=names[d], line={"color": colors[d], "width": 2}))
        st, un = locking_offsets(phi, curves[d])
        if st.size:
            fig.add_trace(go.Scatter(x=st, y=np.zeros_like(st), mode="markers", name=f"stable φ* ({'Γ' if d == 0 else 'Γ⁺'})",
                                     marker={"color": colors[d], "size": 10, "symbol": "circle"},
                                     hovertemplate="φ*=%{x:.3f} (stable)<extra></extra>"))
        if un.size:
            fig.add_trace(go.Scatter(x=un, y=np.zeros_like(un), mode="markers", showlegend=False,
                                     marker={"color": "white", "size": 9, "symbol": "circle", "line": {"color": colors[d], "width": 2}},
                                     hovertemplate="φ*=%{x:.3f} (unstable)<extra></extra>"))
    slope = float(np.sum(n * coef[0].real))
    fig.add_hline(y=0, line={"color": "#999999", "width": 1})
    fig.update_layout(**base_layout(f"coupling function · layer {layer} · {dim} {group} · Γ'(0) = {slope:+.3f}"), height=340)
    fig.update_xaxes(title_text="φ = θ_u − θ_t (rad)", range=[-math.pi, math.pi],
                     tickvals=[-math.pi, -math.pi / 2, 0, math.pi / 2, math.pi], ticktext=["−π", "−π/2", "0", "π/2", "π"])
    fig.update_yaxes(title_text="θ̇_t")
    return fig


def kernel_polar_figure(ds: Any, layer: int = 0, group: int = 0) -> Any:
    """The coefficients c_n (solid) and d_n (dashed) as vectors in the complex plane: length |c_n|,
    angle arg c_n = −α (for K > 0). A vector in the left half-plane is a repulsive Daido term."""
    dim = _check_kernel(ds, layer, group)
    coef = kernel_coefficients(ds, layer, group)
    harmonics = [int(v) for v in ds["harmonic"].values]
    fig = go.Figure()
    for d in range(coef.shape[0]):
        for j, n in enumerate(harmonics):
            c = coef[d, j]
            label = ("c" if d == 0 else "d") + f"_{n}"
            fig.add_trace(go.Scatterpolar(
                r=[0, abs(c)], theta=[0, math.degrees(np.angle(c))], mode="lines+markers+text", name=label,
                text=["", label], textposition="top center",
                line={"color": HARMONIC_COLORS[j % len(HARMONIC_COLORS)], "width": 2, "dash": "solid" if d == 0 else "dash"},
                marker={"size": [0, 9]},
                hovertemplate=f"{label}<br>|·|=%{{r:.4f}}<br>arg=%{{theta:.1f}}°<extra></extra>",
            ))
    fig.update_layout(**base_layout(f"kernel coefficients · layer {layer} · {dim} {group}"), height=340,
                      polar={"angularaxis": {"direction": "counterclockwise", "rotation": 0}, "radialaxis": {"rangemode": "tozero"}})
    return fig


def frustration_histogram(
    ds: Any,
    sample: int = 0,
    layer: int = 0,
    osc: int | None = None,
    bins: int = 36,
    highlight: Sequence[float] | None = None,
) -> Any:
    """Polar histogram of the data's transitions Δ_u = θ_{u+1} − θ_u (the frustration the delay term
    receives) at one layer's input, for one coordinate or all; the circular mean and R are marked.
    ``highlight``: transitions to mark on the rim (e.g. those of the selected token's attended keys)."""
    if not has_phases(ds):
        raise VizError("this probe holds no transitions (a transformer has no phases)")
    require(ds, "transition")
    s = sample_index(ds, sample)
    sel = {"sample": s, "layer": int(layer)}
    if osc is not None:
        sel["osc"] = int(osc)
    delta = values(ds["transition"].isel(sel)).astype(np.float64).ravel()
    delta = delta[np.isfinite(delta)]
    edges = np.linspace(-math.pi, math.pi, bins + 1)
    counts, _ = np.histogram(delta, bins=edges)
    density = counts / max(1, counts.sum())
    centers = np.degrees((edges[:-1] + edges[1:]) / 2)
    fig = go.Figure(go.Barpolar(r=density, theta=centers, width=360 / bins, name="Δ_u",
                                marker={"color": "#56B4E9", "line": {"color": "#0072B2", "width": 0.5}},
                                hovertemplate="Δ=%{theta:.0f}°<br>fraction=%{r:.3f}<extra></extra>"))
    if delta.size:
        mean = float(circular_mean(delta))
        R = float(resultant_length(delta))
        top = float(density.max()) if density.size else 1.0
        fig.add_trace(go.Scatterpolar(r=[0, R * top], theta=[0, math.degrees(mean)], mode="lines+markers",
                                      name=f"mean {mean:+.2f} rad, R={R:.2f}", line={"color": "#000000", "width": 3},
                                      marker={"size": [0, 8]}))
    if highlight is not None and len(highlight):
        h = np.asarray([x for x in highlight if np.isfinite(x)], dtype=np.float64)
        top = float(density.max()) if density.size else 1.0
        fig.add_trace(go.Scatterpolar(r=np.full(h.size, top * 1.08), theta=np.degrees(h), mode="markers",
                                      name="attended keys' Δ", marker={"color": "#D55E00", "size": 10, "symbol": "diamond"}))
    what = f"osc {osc}" if osc is not None else "all osc"
    fig.update_layout(**base_layout(f"data frustration Δ_u = θ_u+1 − θ_u · layer {layer} input · {what}"), height=360,
                      polar={"angularaxis": {"direction": "counterclockwise", "rotation": 0}, "radialaxis": {"showticklabels": False}})
    return fig


# -- the network kernel (OQ-9): the coupling matrix K_ij ---------------------------------------


def has_kernel_matrix(ds: Any) -> bool:
    """True when the probe holds the network kernel's coupling matrices (``kernel_matrix_*``, OQ-9)."""
    return has_phases(ds) and "kernel_matrix_strength" in ds.variables and "kernel_matrix_alpha" in ds.variables


def kernel_matrix_figure(ds: Any, layer: int = 0, harmonic: int = 1, diagonal: bool = False) -> Any:
    """Heatmaps of the network kernel of one layer and harmonic ``n`` (1-based): for every head (columns) and
    delay, the coupling strength ``|K_ij|`` and the frustration angle ``alpha_ij = -arg K_ij`` (rows), receiver
    ``i`` down, sender ``j`` across, as the probe stored them (``kernel_matrix_strength``, ``kernel_matrix_alpha``).

    The diagonal ``K_ii`` is the per-group kernel ``c_n``, ``d_n`` (the coefficient table and the polar figure);
    by default it is left blank so that the colour scale is the cross-coupling's (``diagonal=True`` keeps it).
    """
    from plotly.subplots import make_subplots

    if not has_kernel_matrix(ds):
        raise VizError("this probe holds no coupling matrix: the kernel is diagonal (kernel_form='diagonal'), "
                       "so there is no cross-coupling between oscillators to draw")
    if not 0 <= int(layer) < ds.sizes["layer"]:
        raise VizError(f"layer {layer} is out of range (L = {ds.sizes['layer']})")
    harmonics = [int(v) for v in ds["harmonic"].values]
    if int(harmonic) not in harmonics:
        raise VizError(f"harmonic {harmonic} is not one of {harmonics}")
    sel = {"layer": int(layer), "harmonic": harmonics.index(int(harmonic))}
    dims = ("delay", "head", "osc_i", "osc_j")
    strength = values(ds["kernel_matrix_strength"].isel(sel).transpose(*dims)).astype(np.float64)
    alpha = values(ds["kernel_matrix_alpha"].isel(sel).transpose(*dims)).astype(np.float64)
    n_delay, H, Dh, _ = strength.shape
    if not diagonal:
        eye = np.eye(Dh, dtype=bool)
        strength = np.where(eye, np.nan, strength)
        alpha = np.where(eye, np.nan, alpha)
    finite = strength[np.isfinite(strength)]
    top = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    rows = []
    for d in range(n_delay):
        name = "K⁰ (attended)" if d == 0 else "K¹ (successors)"
        rows += [(d, "strength", f"|{name[:2]}_ij|"), (d, "alpha", f"−arg {name[:2]}_ij")]
    titles = [f"head {h} · {label}" for _, _, label in rows for h in range(H)]
    fig = make_subplots(rows=len(rows), cols=H, subplot_titles=titles, horizontal_spacing=0.06, vertical_spacing=0.06)
    axis = np.arange(Dh)
    for r, (d, kind, label) in enumerate(rows):
        z = strength[d] if kind == "strength" else alpha[d]
        for h in range(H):
            fig.add_trace(go.Heatmap(
                z=z[h], x=axis, y=axis, coloraxis="coloraxis" if kind == "strength" else "coloraxis2",
                hovertemplate=f"head {h} · {label}<br>i=%{{y}} ← j=%{{x}}<br>%{{z:.4f}}<extra></extra>",
            ), row=r + 1, col=h + 1)
    fig.update_yaxes(autorange="reversed", title_text="")
    for r in range(len(rows)):
        fig.update_yaxes(title_text="receiver i", row=r + 1, col=1)
    for h in range(H):
        fig.update_xaxes(title_text="sender j", row=len(rows), col=h + 1)
    bar = {"len": 0.45, "thickness": 12}
    what = "K_ij" + (" (diagonal = c_n, d_n)" if diagonal else " off the diagonal (the diagonal is c_n, d_n: the table)")
    fig.update_layout(
        **{**base_layout(f"network kernel · layer {layer} · n = {harmonic} · {what}"), "margin": {"l": 50, "r": 20, "t": 70, "b": 40}},
        height=max(320, 230 * len(rows)),
        coloraxis={"colorscale": "Viridis", "cmin": 0.0, "cmax": top,
                   "colorbar": {**bar, "title": {"text": "|K_ij|"}, "y": 0.78}},
        coloraxis2={"colorscale": "Twilight", "cmin": -math.pi, "cmax": math.pi,
                    "colorbar": {**bar, "title": {"text": "α_ij (rad)"}, "y": 0.22,
                                 "tickvals": [-math.pi, 0, math.pi], "ticktext": ["−π", "0", "π"]}},
    )
    return fig
