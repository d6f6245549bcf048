"""The delay identity (spec §4), term by term for one token, and the whole-run residual table.

For token t, layer ℓ, coordinate i (owned by head h) and harmonic n, each attended key u < t
contributes to the delay term

    successor form (the network's way):   W_{t,u} Im(d_n e^{in(θ_{u+1} − θ_t)})
    Kuramoto–Sakaguchi form:              W_{t,u} |d_n| sin(n(θ_u − θ_t) − α_{u,n}),  α_{u,n} = −(nΔ_u + arg d_n)

with Δ_u = θ_{u+1} − θ_u the data's transition. Both, and the α = 0 control, come from the one
identity check :func:`fsnlab.dynamics.identity.harmonic_sides` (which ``fsnlab verify`` and the probe
reduce too), evaluated edge by edge in float64 on the phases the probe stored for the layer's input,
with the weights W from the probe's top-k couplings (``attn_topk_*``). So the page shows the k
strongest terms and their partial sums; the full sum as the network computed it (from its order
parameter Z¹, :func:`~fsnlab.dynamics.identity.order_parameter_side`) and the probe's exact whole-run
residual (``delay_identity_*``) are shown next to them.

For the network kernel (spec §3.4, "Alternative reading [G, OQ-9]"; the probe's ``kernel_matrix_*``),
the delay coefficient is a matrix K¹_ij = d_i δ_ij + W¹_ij within the head, and each edge's term to
coordinate i sums over the head's senders j: W_{t,u} Σ_j Im(K¹_ij e^{in(θ_{u+1,j} − θ_t,i)}) and
W_{t,u} Σ_j |K¹_ij| sin(n(θ_{u,j} − θ_{t,i}) − α_{u,ij}), α_{u,ij} = −(nΔ_{u,j} + arg K¹_ij). The shown
Δ_u and α_u are those of the diagonal entry (j = i).

Nothing here re-derives the kernel's physics: :func:`token_identity` only slices the dataset into
the check's inputs (one three-position window ``[θ_u, θ_{u+1}, θ_t]`` per edge) and reads its outputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from fsnlab.dynamics.circular import wrap
from fsnlab.dynamics.identity import cross_order_parameter_side, harmonic_sides, order_parameter_side, shuffle_generator
from fsnlab.viz.common import (
    VizError,
    base_layout,
    circle_axes,
    display_char,
    go,
    has_phases,
    input_stage,
    kernel_group_dim,
    kernel_index,
    model_config,
    osc_head,
    require,
    sample_index,
    sample_label,
    unit_circle,
    values,
)
from fsnlab.viz.kernel import has_kernel_matrix


@dataclass
class IdentityTerm:
    """One attended key's contribution to the delay term, both ways."""

    rank: int  # rank k in the probe's top-k (0 = strongest)
    u: int  # attended position
    succ: int  # its successor's position (u + 1; t itself for the shared_self diagonal)
    attention: float  # A_{t,u}
    weight: float  # W_{t,u}, the delay term's weight on this edge
    char_u: str
    char_succ: str
    theta_u: float
    theta_succ: float
    delta: float  # Δ_u = θ_{u+1} − θ_u, wrapped to [−π, π)
    alpha: float  # α_{u,n} = −(nΔ_u + arg d_n), wrapped to [−π, π)
    successor: float  # W Im(d e^{in(θ_{u+1} − θ_t)})
    sakaguchi: float  # W |d| sin(n(θ_u − θ_t) − α)
    control: float  # W |d| sin(n(θ_u − θ_t)): the same with α = 0 (a wrong angle)


@dataclass
class TokenIdentity:
    """The delay identity for one token, layer, coordinate and harmonic, term by term."""

    sample: int
    layer: int
    pos: int
    osc: int
    head: int
    harmonic: int
    theta_t: float
    d: complex
    delay_mask: str
    top_k: int
    terms: list[IdentityTerm] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    complete: bool = False  # the top-k holds every key u <= t: the partial sums are the full sums
    approximate_weights: bool = False  # separate_strict without A_tt: W normalised over the shown keys
    network: float | None = None  # Im(e^{-in θ_t} d_n Z¹_{t,n}) from the probe's Z1: the full delay term
    probe_residual: float | None = None  # delay_identity_residual (sample, layer, harmonic)
    probe_control: float | None = None  # delay_identity_control (sample, layer, harmonic)
    probe_positions: int | None = None  # the queries t < P the probe checked
    cross: bool = False  # the network kernel (OQ-9): every term sums over the head's senders j

    @property
    def successor_sum(self) -> float:
        return float(sum(x.successor for x in self.terms))

    @property
    def sakaguchi_sum(self) -> float:
        return float(sum(x.sakaguchi for x in self.terms))

    @property
    def control_sum(self) -> float:
        return float(sum(x.control for x in self.terms))

    @property
    def residual(self) -> float:
        """|successor sum − Kuramoto–Sakaguchi sum| over the shown terms (rounding level)."""
        return abs(self.successor_sum - self.sakaguchi_sum)

    @property
    def max_term_residual(self) -> float:
        return max((abs(x.successor - x.sakaguchi) for x in self.terms), default=0.0)

    @property
    def control_residual(self) -> float:
        """|successor sum − sum with α = 0|: what a wrong frustration angle gives (not small)."""
        return abs(self.successor_sum - self.control_sum)

    @property
    def covered_weight(self) -> float:
        return float(sum(x.weight for x in self.terms))

    def targets(self) -> list[float]:
        """Per term, the phase this term alone would lock θ_t to: θ_u − α_{u,n}/n, wrapped."""
        n = self.harmonic
        return [float(wrap(x.theta_u - x.alpha / n)) for x in self.terms]

    def rows(self) -> list[dict[str, Any]]:
        """Table rows: one per term with running partial sums of both forms."""
        out, acc_s, acc_k = [], 0.0, 0.0
        for x in self.terms:
            acc_s += x.successor
            acc_k += x.sakaguchi
            out.append({
                "k": x.rank, "u": x.u, "u+1": x.succ,
                "chars": f"{display_char(x.char_u)}→{display_char(x.char_succ)}",
                "A": x.attention, "W": x.weight, "Δ_u": x.delta, "α_u": x.alpha,
                "successor": x.successor, "sakaguchi": x.sakaguchi, "difference": x.successor - x.sakaguchi,
                "Σ successor": acc_s, "Σ sakaguchi": acc_k,
            })
        return out

    def summary(self) -> dict[str, Any]:
        return {
            "successor_sum": self.successor_sum, "sakaguchi_sum": self.sakaguchi_sum, "residual": self.residual,
            "max_term_residual": self.max_term_residual, "control_sum": self.control_sum,
            "control_residual": self.control_residual, "network": self.network, "complete": self.complete,
            "covered_weight": self.covered_weight, "probe_residual": self.probe_residual, "probe_control": self.probe_control,
            **({"cross_coupling": True} if self.cross else {}),
        }


def has_delay(ds: Any) -> bool:
    """True when the probed kernel has a delay term (``delay`` dim of length 2)."""
    return has_phases(ds) and "kernel_real" in ds.variables and int(ds.sizes.get("delay", 1)) >= 2


def token_identity(ds: Any, sample: int, layer: int, pos: int, harmonic: int = 1, osc: int = 0) -> TokenIdentity:
    """Evaluate the delay identity for token ``pos`` edge by edge over its top-k attended keys.

    ``harmonic`` is the order n (1-based); ``osc`` the phase coordinate (its head is ``osc_head``).
    Needs a probe of a delay kernel made with ``--attention``.
    """
    if not has_delay(ds):
        raise VizError("the delay identity needs a probe of a kernel with a delay term ('+delay' or 'full')")
    require(ds, "attn_topk_index", "attn_topk_weight", what="the per-token identity")
    s = sample_index(ds, sample)
    L, T, D = ds.sizes["layer"], ds.sizes["pos"], ds.sizes["osc"]
    harmonics = [int(v) for v in ds["harmonic"].values]
    if not 0 <= layer < L or not 0 <= pos < T or not 0 <= osc < D or harmonic not in harmonics:
        raise VizError(f"out of range: layer {layer} (L={L}), pos {pos} (T={T}), osc {osc} (D={D}), harmonic {harmonic} ({harmonics})")
    j = harmonics.index(harmonic)
    n = int(harmonic)
    head = osc_head(ds, osc)
    group = kernel_index(ds, osc)
    gdim = kernel_group_dim(ds)
    ksel = {"layer": layer, "delay": 1, gdim: group, "harmonic": j}
    d_val = complex(float(values(ds["kernel_real"].isel(ksel))), float(values(ds["kernel_imag"].isel(ksel))))
    theta = values(ds["theta"].isel(sample=s, stage=input_stage(ds, layer), osc=osc)).astype(np.float64)  # (T,)
    chars = [str(c) for c in values(ds["char"].isel(sample=s))]
    tsel = {"sample": s, "layer": layer, "head": head, "pos": pos}
    keys = values(ds["attn_topk_index"].isel(tsel)).astype(np.int64)
    attn = values(ds["attn_topk_weight"].isel(tsel)).astype(np.float64)
    delay_mask = str(model_config(ds).get("delay_mask", "shared_zero_diag"))

    out = TokenIdentity(sample=sample_label(ds, s), layer=layer, pos=pos, osc=osc, head=head, harmonic=n, theta_t=float(theta[pos]),
                        d=d_val, delay_mask=delay_mask, top_k=int(keys.size))
    valid = keys >= 0
    out.complete = int(valid.sum()) >= pos + 1  # every visible key u <= t is among the top-k
    diag = attn[valid & (keys == pos)]
    a_tt = float(diag[0]) if diag.size else None
    edges: list[tuple[int, int, int, float, float]] = []  # (rank, u, successor, A, W)
    strict_sum = float(attn[valid & (keys < pos)].sum())
    for rank, (u, a) in enumerate(zip(keys, attn)):
        if u < 0:
            continue
        if u >= pos:
            if u == pos and delay_mask == "shared_self":
                edges.append((rank, int(u), int(pos), float(a), float(a)))  # the token is its own successor (Δ = 0)
            elif u == pos:
                out.skipped.append(f"k={rank}: u = t = {pos} (the diagonal has no successor yet; A = {a:.4f})")
            continue
        w = float(a)
        if delay_mask == "separate_strict":  # the delay term's own softmax over u < t: rows renormalised
            if a_tt is not None and a_tt < 1.0:
                w = float(a) / (1.0 - a_tt)
            elif strict_sum > 0:
                w = float(a) / strict_sum
                out.approximate_weights = not out.complete
        edges.append((rank, int(u), int(u) + 1, float(a), w))

    network = _head_network(ds, s, layer, head, j, osc) if has_kernel_matrix(ds) else None
    if network is not None:
        out.cross = True
        if edges:
            _evaluate_network_edges(out, edges, chars, n, *network)
        if "Z_real" in ds.variables:
            out.network = _network_term(ds, s, layer, head, pos, j, n, *network)
    elif edges:
        _evaluate_edges(out, edges, theta, chars, d_val, n)

    if network is None and "Z_real" in ds.variables:  # the network's full delay term for this harmonic, from its own Z1
        zsel = {"sample": s, "layer": layer, "delay": 1, "pos": pos, "osc": osc, "harmonic": j}
        z1 = torch.complex(torch.tensor(float(values(ds["Z_real"].isel(zsel))), dtype=torch.float64),
                           torch.tensor(float(values(ds["Z_imag"].isel(zsel))), dtype=torch.float64))
        force = order_parameter_side(torch.tensor([[theta[pos]]], dtype=torch.float64), z1.reshape(1, 1),
                                     torch.tensor([d_val], dtype=torch.complex128), n)
        out.network = float(force[0, 0])
    if "delay_identity_residual" in ds.variables:
        rsel = {"sample": s, "layer": layer, "harmonic": j}
        out.probe_residual = float(values(ds["delay_identity_residual"].isel(rsel)))
        out.probe_control = float(values(ds["delay_identity_control"].isel(rsel))) if "delay_identity_control" in ds else None
        try:
            out.probe_positions = int(ds.attrs.get("identity_positions"))
        except (TypeError, ValueError):
            out.probe_positions = None
    return out


def _evaluate_edges(out: TokenIdentity, edges: list, theta: np.ndarray, chars: list[str], d_val: complex, n: int) -> None:
    """Both forms and the ``alpha = 0`` control for every edge, read from the identity check
    :func:`fsnlab.dynamics.identity.harmonic_sides` (the one ``fsnlab verify`` and the probe reduce).

    Each edge (t, u) becomes a three-position window ``[θ_u, θ_succ, θ_t]`` (one head, one coordinate)
    with a single weight ``W[2, 0]``: the successor side then reads the successor of position 0
    (``θ_succ``), and the transition ``Δ_u = θ_succ − θ_u`` is row 0, exactly as on the full sequence.
    """
    t = out.pos
    E = len(edges)
    win = torch.empty(E, 3, 1, dtype=torch.float64)
    W = torch.zeros(E, 1, 3, 3, dtype=torch.float64)
    for e, (_, u, succ, _, w) in enumerate(edges):
        win[e, :, 0] = torch.tensor([theta[u], theta[succ], theta[t]], dtype=torch.float64)
        W[e, 0, 2, 0] = w
    d = torch.tensor([d_val], dtype=torch.complex128)
    sides = harmonic_sides(win, W, None, None, d, n, shuffle_generator(0, n))
    for e, (rank, u, succ, a, w) in enumerate(edges):
        out.terms.append(IdentityTerm(
            rank=rank, u=u, succ=succ, attention=a, weight=w,
            char_u=chars[u], char_succ=chars[succ], theta_u=float(theta[u]), theta_succ=float(theta[succ]),
            delta=float(wrap(float(sides.transition[e, 0, 0]))), alpha=float(wrap(float(sides.frustration[e, 0, 0]))),
            successor=float(sides.successor[e, 2, 0]), sakaguchi=float(sides.sakaguchi[e, 2, 0]),
            control=float(sides.zero_angle[e, 2, 0]),
        ))


def _head_network(ds: Any, s: int, layer: int, head: int, j: int, osc: int) -> tuple[np.ndarray, torch.Tensor, torch.Tensor, int]:
    """The network kernel's inputs for one head: its coordinates' input phases ``(T, D_h)``, the diagonal
    ``d (D_h,)`` (``kernel_real/_imag``, per group as the diagonal kernel reads it) and the cross-coupling
    ``W1 (1, D_h, D_h)`` (``kernel_matrix_*`` off the diagonal), complex128, and ``osc``'s index in the head."""
    heads = values(ds["osc_head"]).astype(np.int64)
    coords = np.flatnonzero(heads == head)
    theta = values(ds["theta"].isel(sample=s, stage=input_stage(ds, layer), osc=coords)).astype(np.float64)  # (T, D_h)
    gdim = kernel_group_dim(ds)
    groups = [kernel_index(ds, int(c)) for c in coords]
    ksel = {"layer": layer, "delay": 1, "harmonic": j}
    d = torch.tensor([complex(float(values(ds["kernel_real"].isel({**ksel, gdim: g}))), float(values(ds["kernel_imag"].isel({**ksel, gdim: g}))))
                      for g in groups], dtype=torch.complex128)
    msel = {**ksel, "head": head}
    dims = ("osc_i", "osc_j")
    k = (values(ds["kernel_matrix_real"].isel(msel).transpose(*dims)).astype(np.float64)
         + 1j * values(ds["kernel_matrix_imag"].isel(msel).transpose(*dims)).astype(np.float64))
    np.fill_diagonal(k, 0.0)  # the diagonal is d (above); W1 is the cross-coupling
    return theta, d, torch.from_numpy(k)[None], int(np.flatnonzero(coords == osc)[0])


def _evaluate_network_edges(out: TokenIdentity, edges: list, chars: list[str], n: int,
                            theta: np.ndarray, d: torch.Tensor, cross: torch.Tensor, i: int) -> None:
    """:func:`_evaluate_edges` for the network kernel: each edge's window holds every coordinate of the head
    (``[θ_u, θ_succ, θ_t]`` of shape ``(3, D_h)``), and :func:`~fsnlab.dynamics.identity.harmonic_sides` adds the
    cross-coupling's sum over senders ``j``; the term read is coordinate ``i``'s."""
    t = out.pos
    E = len(edges)
    win = torch.empty(E, 3, theta.shape[1], dtype=torch.float64)
    W = torch.zeros(E, 1, 3, 3, dtype=torch.float64)
    for e, (_, u, succ, _, w) in enumerate(edges):
        win[e] = torch.from_numpy(np.stack([theta[u], theta[succ], theta[t]]))
        W[e, 0, 2, 0] = w
    sides = harmonic_sides(win, W, None, None, d, n, shuffle_generator(0, n), cross=cross)
    for e, (rank, u, succ, a, w) in enumerate(edges):
        out.terms.append(IdentityTerm(
            rank=rank, u=u, succ=succ, attention=a, weight=w,
            char_u=chars[u], char_succ=chars[succ], theta_u=float(theta[u, i]), theta_succ=float(theta[succ, i]),
            delta=float(wrap(float(sides.transition[e, 0, i]))), alpha=float(wrap(float(sides.frustration[e, 0, i]))),
            successor=float(sides.successor[e, 2, i]), sakaguchi=float(sides.sakaguchi[e, 2, i]),
            control=float(sides.zero_angle[e, 2, i]),
        ))


def _network_term(ds: Any, s: int, layer: int, head: int, pos: int, j: int, n: int,
                  theta: np.ndarray, d: torch.Tensor, cross: torch.Tensor, i: int) -> float:
    """The full delay term to coordinate ``i`` as the network computed it: ``Im(e^{-in θ_{t,i}} Σ_j K¹_ij Z¹_{t,j,n})``
    from the probe's ``Z¹`` of the head (:func:`order_parameter_side` plus :func:`cross_order_parameter_side`)."""
    coords = np.flatnonzero(values(ds["osc_head"]).astype(np.int64) == head)
    zsel = {"sample": s, "layer": layer, "delay": 1, "pos": pos, "osc": coords, "harmonic": j}
    z1 = torch.complex(torch.from_numpy(values(ds["Z_real"].isel(zsel)).astype(np.float64)),
                       torch.from_numpy(values(ds["Z_imag"].isel(zsel)).astype(np.float64)))[None]  # (1, D_h)
    th = torch.from_numpy(theta[pos])[None]
    force = order_parameter_side(th, z1, d, n) + cross_order_parameter_side(th, z1, cross, n)
    return float(force[0, i])


# -- figures ----------------------------------------------------------------------------------


def identity_terms_figure(ti: TokenIdentity) -> Any:
    """Both forms term by term (bars) and their running partial sums (lines); the network's full
    delay term (from Z¹) as a horizontal line."""
    labels = [f"k={x.rank} u={x.u} '{display_char(x.char_u)}'" for x in ti.terms]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=labels, y=[x.successor for x in ti.terms], name="successor form W·Im(d e^{in(θ_u+1−θ_t)})",
                         marker={"color": "#009E73"}))
    fig.add_trace(go.Bar(x=labels, y=[x.sakaguchi for x in ti.terms], name="KS form W·|d| sin(n(θ_u−θ_t)−α_u)",
                         marker={"color": "#0072B2"}))
    fig.add_trace(go.Bar(x=labels, y=[x.control for x in ti.terms], name="control α=0 (wrong angle)",
                         marker={"color": "#cccccc"}, visible="legendonly"))
    fig.add_trace(go.Scatter(x=labels, y=np.cumsum([x.successor for x in ti.terms]), mode="lines+markers",
                             name="Σ successor", line={"color": "#009E73", "dash": "dot"}))
    fig.add_trace(go.Scatter(x=labels, y=np.cumsum([x.sakaguchi for x in ti.terms]), mode="lines+markers",
                             name="Σ KS", line={"color": "#0072B2", "dash": "dash"}, marker={"symbol": "x"}))
    if ti.network is not None:
        fig.add_hline(y=ti.network, line={"color": "#000000", "width": 1, "dash": "dash"},
                      annotation_text=f"full delay term (network, Z¹): {ti.network:+.3e}", annotation_position="top left")
    title = (f"delay term of t={ti.pos} · layer {ti.layer} · osc {ti.osc} (head {ti.head}) · n={ti.harmonic} · "
             f"top-{ti.top_k} terms")
    legend = {"orientation": "h", "yanchor": "top", "y": -0.25, "xanchor": "left", "x": 0.0}
    fig.update_layout(**base_layout(title, legend=legend), barmode="group", height=360)
    fig.update_yaxes(title_text="contribution to θ̇_t (rad)")
    return fig


def identity_circle_figure(ti: TokenIdentity, chars: list[str] | None = None) -> Any:
    """Each term's frustration on the circle: the attended token θ_u (orange), its successor θ_u+1
    (green), and an arc from θ_u through −α_u/n to where that term alone would lock θ_t
    (θ_u − α_u/n = θ_u+1 + arg d / n); the token θ_t is the black ring."""
    n = ti.harmonic
    cx, cy = unit_circle()
    fig = go.Figure(go.Scatter(x=cx, y=cy, mode="lines", line={"color": "#cccccc", "width": 1}, hoverinfo="skip", showlegend=False))
    targets = ti.targets()
    for e, (x, target) in enumerate(zip(ti.terms, targets)):
        r = 1.0 + 0.07 * (e + 1)
        sweep = -x.alpha / n  # from θ_u to the term's locking phase
        arc = x.theta_u + np.linspace(0.0, sweep, 40)
        fig.add_trace(go.Scatter(
            x=r * np.cos(arc), y=r * np.sin(arc), mode="lines+markers", showlegend=e == 0, name="frustration arc −α_u/n",
            line={"color": "#CC79A7", "width": 1 + 4 * min(1.0, x.weight)},
            marker={"symbol": "arrow", "size": [0] * 39 + [10], "angleref": "previous", "color": "#CC79A7"},
            hovertext=f"k={x.rank} u={x.u}: α_u={x.alpha:+.3f} (Δ_u={x.delta:+.3f}), W={x.weight:.3f}", hoverinfo="text",
        ))
        fig.add_trace(go.Scatter(x=[r * math.cos(x.theta_u), math.cos(x.theta_u)], y=[r * math.sin(x.theta_u), math.sin(x.theta_u)],
                                 mode="lines", line={"color": "#dddddd", "width": 1}, hoverinfo="skip", showlegend=False))
    fig.add_trace(go.Scatter(
        x=[math.cos(x.theta_u) for x in ti.terms], y=[math.sin(x.theta_u) for x in ti.terms], mode="markers+text",
        text=[display_char(x.char_u) for x in ti.terms], textposition="bottom center", name="attended θ_u",
        marker={"color": "#E69F00", "size": 9},
        hovertext=[f"u={x.u} '{display_char(x.char_u)}' θ={x.theta_u:+.3f}" for x in ti.terms], hoverinfo="text",
    ))
    fig.add_trace(go.Scatter(
        x=[math.cos(x.theta_succ) for x in ti.terms], y=[math.sin(x.theta_succ) for x in ti.terms], mode="markers+text",
        text=[display_char(x.char_succ) for x in ti.terms], textposition="top center", name="successor θ_u+1",
        marker={"color": "#009E73", "size": 9, "symbol": "square"},
        hovertext=[f"u+1={x.succ} '{display_char(x.char_succ)}' θ={x.theta_succ:+.3f}" for x in ti.terms], hoverinfo="text",
    ))
    rr = [1.0 + 0.07 * (e + 1) for e in range(len(targets))]
    fig.add_trace(go.Scatter(x=[r * math.cos(a) for r, a in zip(rr, targets)], y=[r * math.sin(a) for r, a in zip(rr, targets)],
                             mode="markers", name="lock target θ_u − α_u/n", marker={"color": "#CC79A7", "size": 7, "symbol": "star"},
                             hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=[math.cos(ti.theta_t)], y=[math.sin(ti.theta_t)], mode="markers", name=f"θ_t (t={ti.pos})",
                             marker={"size": 16, "color": "rgba(0,0,0,0)", "line": {"width": 3, "color": "#000000"}}))
    extent = 1.2 + 0.07 * len(ti.terms)
    fig.update_layout(**base_layout(f"frustration angles α_u = −(nΔ_u + arg d) · n={n} · arg d={np.angle(ti.d):+.3f}",
                                    **circle_axes(extent)), height=420)
    return fig


def identity_residual_table(ds: Any, sample: int | None = None) -> list[dict[str, Any]]:
    """The probe's whole-run check (``delay_identity_*``, float64, exact sums over every edge of the
    first ``identity_positions`` queries): one row per layer and harmonic, for one window or the
    maximum over windows (``sample=None``)."""
    if not has_delay(ds) or "delay_identity_residual" not in ds.variables:
        return []
    res = ds["delay_identity_residual"]
    ctl = ds.get("delay_identity_control")
    cmax = ds.get("delay_coupling_max")
    fchk = ds.get("delay_force_check")

    def reduce(da: Any) -> np.ndarray | None:
        if da is None:
            return None
        da = da.isel(sample=sample_index(ds, sample)) if sample is not None else da.max("sample")
        return values(da)

    r, c, m, f = reduce(res), reduce(ctl), reduce(cmax), reduce(fchk)
    harmonics = [int(v) for v in ds["harmonic"].values]
    rows = []
    for layer in range(r.shape[0]):
        for j, n in enumerate(harmonics):
            rows.append({
                "layer": layer, "n": n, "residual": float(r[layer, j]),
                "control": float(c[layer, j]) if c is not None else float("nan"),
                "coupling_max": float(m[layer, j]) if m is not None else float("nan"),
                "force_check": float(f[layer]) if f is not None else float("nan"),
            })
    return rows
