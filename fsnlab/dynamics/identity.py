"""Verify the delay identity (spec §4) on a real model and real text.

The FSN's delay term couples token ``t`` to the successor ``u+1`` of every token ``u`` it attends to.
Spec §4 shows by algebra that this equals Kuramoto-Sakaguchi coupling to ``u`` itself, with the
frustration angle set by the data's transition ``Delta_u = theta_{u+1} - theta_u``::

    sum_{u<t} W_{t,u} Im(d_n e^{i n (theta_{u+1} - theta_t)})
        = sum_{u<t} W_{t,u} |d_n| sin(n (theta_u - theta_t) - alpha_{u,n}),   alpha_{u,n} = -(n Delta_u + arg d_n).

For every layer with a delay term and every harmonic ``n`` we evaluate, on the layer's real input
phases and real attention weights:

* **(a) order parameter**: ``Im(e^{-i n theta_t} d_n Z1_{t,n})`` with ``Z1`` from ``hook_Z1``, i.e. as the
  network computes it, through the one-score-product attention (fsnlab.models.attention; no per-edge sum anywhere);
* **(a') successor**: :func:`fsnlab.models.kernel.successor_coupling`, the explicit per-edge sum over
  successors;
* **(b) Sakaguchi**: :func:`fsnlab.models.kernel.sakaguchi_coupling` to the attended tokens themselves,
  with ``alpha = delay_frustration(transitions(theta), d_n, n)``.

Comparisons ``b - a``, ``b - a'`` and ``a' - a`` are reported as max/RMS absolute and relative
residuals (relative = residual statistic / the same statistic of side (a)), in float64 (the model
cast with ``.double()``) and in the model's own dtype. **Controls** repeat ``b - a`` with a wrong
frustration angle: transitions shuffled across positions, zero transitions (``alpha = -arg d``, the
static part only) and ``alpha = 0``. They must give large residuals; if one does not, the check is
vacuous on this input and verification fails.

Delay weights ``W`` per head from the dense softmax ``A`` (``hook_attn``), by ``delay_mask`` (OQ-8):

* ``shared_zero_diag``: ``W = A`` strictly below the diagonal (shared normalisation);
* ``separate_strict``: the strictly-lower part renormalised per row (its own softmax over ``u < t``;
  row 0 is empty);
* ``shared_self``: as ``shared_zero_diag`` plus a diagonal term ``A_tt Im(d_n)``: the token is its own
  successor there, i.e. a transition ``Delta = 0`` (both explicit sides add it; ``Z1`` contains it).

**The network kernel** (spec §3.4, "Alternative reading [G, OQ-9]"; ``kernel_form`` network1, network,
low_rank): within each head the delay coefficient is a matrix ``K1_{n,ij} = d_{n,i} delta_ij + W1_{n,ij}``
(receiver ``i``, sender ``j``; ``W1`` the cross-coupling, zero diagonal), and the delay term to receiver
``i`` is ``sum_u W_{t,u} sum_j Im(K1_{n,ij} e^{in(theta_{u+1,j} - theta_{t,i})})``. The identity holds entry by
entry: it is Kuramoto-Sakaguchi coupling from oscillator ``j`` of ``u`` itself to oscillator ``i`` of ``t``
with strength ``|K1_ij|`` and frustration ``alpha_{u,ij} = -(n Delta_{u,j} + arg K1_ij)``. Every side splits
the sum over ``j`` into ``j = i`` (the diagonal: the per-coordinate edge sums above, unchanged, so a
diagonal model's numbers are those it always had) plus ``j != i`` (:func:`cross_edge_sides`, the same
sides over oscillator pairs); side (a) adds ``Im(e^{-in theta_{t,i}} sum_j W1_ij Z1_{t,j,n})``
(:func:`cross_order_parameter_side`). The controls use the wrong angle on every entry.

This module holds the one computation of the check, :func:`layer_identity` (every side and every
control of a layer, :class:`HarmonicSides` per harmonic). Its readers only reduce it:
:func:`verify_identity` (``fsnlab verify``), :func:`fsnlab.probe.physics.delay_identity` (the probe's
``delay_identity_*`` variables) and :func:`fsnlab.viz.token_identity` (the explorer's per-token terms).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from fsnlab.errors import FsnlabError
from fsnlab.models import capture
from fsnlab.models.kernel import (
    SIGN_CONVENTION,
    complex_mul,
    delay_weights,
    delay_frustration,
    harmonic_features,
    pair_sakaguchi_coupling,
    pair_successor_coupling,
    sakaguchi_coupling,
    successor_coupling,
    tangent_projection,
    transitions,
)

IDENTITY_COMPARISONS = ("sakaguchi-order_parameter", "sakaguchi-successor", "successor-order_parameter")
CONTROL_COMPARISONS = ("control:shuffled_transitions", "control:zero_transitions", "control:zero_angle")
COMPARISONS = IDENTITY_COMPARISONS + CONTROL_COMPARISONS
STATISTICS = ("max_abs", "rms_abs", "max_rel", "rms_rel")


class IdentityError(FsnlabError):
    """The identity cannot be checked on this model or input (no delay term, too little text)."""


def require_delay_model(model: torch.nn.Module, name: str = "model") -> None:
    """Raise :class:`IdentityError` (one line) unless ``model`` is an FSN with a delay kernel."""
    config = getattr(model, "config", None)
    family = getattr(config, "family", None)
    if family != "fsn":
        raise IdentityError(f"{name} is a {family or type(model).__name__} model: the delay identity (spec §4) needs an FSN with kernel '+delay' or 'full'")
    if config.diagnostic_switches():
        raise IdentityError(f"{name} uses the diagnostic {', '.join(config.diagnostic_switches())}: it leaves the spec's layer, so the delay identity (spec §4) does not apply")
    if not config.kernel_spec.delay:
        raise IdentityError(f"{name} has kernel {config.kernel!r}, which has no delay term: the delay identity (spec §4) needs kernel '+delay' or 'full'")


# -- pieces ------------------------------------------------------------------------------------


def order_parameter_side(theta: torch.Tensor, z1: torch.Tensor, d: torch.Tensor, n: int) -> torch.Tensor:
    """Side (a): ``Im(e^{-i n theta_t} d_n Z1_{t,n})`` via :func:`~fsnlab.models.kernel.tangent_projection`.

    ``theta (..., T, D)``, ``z1 (..., T, D)`` complex (harmonic n), ``d (D,)`` complex.
    """
    cos_n, sin_n = harmonic_features(theta, n)
    cos_n, sin_n = cos_n[..., n - 1 : n], sin_n[..., n - 1 : n]
    w = complex_mul((d.real, d.imag), (z1.real, z1.imag))
    return tangent_projection(cos_n, sin_n, (w[0].unsqueeze(-1), w[1].unsqueeze(-1)))


def self_successor_term(diag: torch.Tensor, d: torch.Tensor, n: int, sakaguchi: bool) -> torch.Tensor:
    """``shared_self`` diagonal: ``A_tt Im(d_n)`` (successor form) or ``A_tt |d| sin(-alpha)`` with
    ``alpha = delay_frustration(0, d, n)`` (Sakaguchi form). ``diag (..., T)`` -> ``(..., T, D)``."""
    if sakaguchi:
        alpha = delay_frustration(torch.zeros_like(d.real), d, n)
        per = torch.abs(d) * torch.sin(-alpha)
    else:
        per = torch.abs(d) * torch.sin(torch.angle(d))
    return diag.unsqueeze(-1) * per


# -- the network kernel's cross-coupling (OQ-9): the same sides over oscillator pairs j != i ------


def cross_order_parameter_side(theta: torch.Tensor, z1: torch.Tensor, cross: torch.Tensor, n: int) -> torch.Tensor:
    """Side (a)'s cross part: ``Im(e^{-i n theta_{t,i}} sum_{j != i} W1_{n,ij} Z1_{t,j,n})`` (spec §3.4, OQ-9),
    via :func:`~fsnlab.models.kernel.tangent_projection`.

    ``theta (..., T, D)``, ``z1 (..., T, D)`` complex (harmonic n, ``hook_Z1``), ``cross (H, D_h, D_h)`` complex:
    the cross-coupling within each head (receiver ``i``, sender ``j``, zero diagonal); coordinate ``h D_h + i``
    is oscillator ``i`` of head ``h``.
    """
    H, Dh = cross.shape[0], cross.shape[-1]
    pull = torch.einsum("hij,...hj->...hi", cross, z1.unflatten(-1, (H, Dh))).flatten(-2)  # sum_j W_ij Z1_j
    cos_n, sin_n = harmonic_features(theta, n)
    cos_n, sin_n = cos_n[..., n - 1 : n], sin_n[..., n - 1 : n]
    return tangent_projection(cos_n, sin_n, (pull.real.unsqueeze(-1), pull.imag.unsqueeze(-1)))


CROSS_SIDES = ("successor", "sakaguchi", "shuffled", "zero_transitions", "zero_angle")


def cross_edge_sides(
    receiver: torch.Tensor, sender: torch.Tensor, W: torch.Tensor, cross: torch.Tensor, n: int, perm: torch.Tensor
) -> dict[str, torch.Tensor]:
    """The edge sums of :class:`HarmonicSides` over oscillator pairs (the cross-coupling of the network kernel,
    spec §3.4 OQ-9, and §4 entry by entry), for receivers ``i`` of one chunk and senders ``j`` of another:

    * ``successor``: ``sum_u W_{t,u} sum_j Im(W1_ij e^{in(theta_{u+1,j} - theta_{t,i})})`` (step 5, left);
    * ``sakaguchi``: ``sum_u W_{t,u} sum_j |W1_ij| sin(n(theta_{u,j} - theta_{t,i}) - alpha_{u,ij})`` with
      ``alpha_{u,ij} = delay_frustration(Delta_{u,j}, W1_ij, n) = -(n Delta_{u,j} + arg W1_ij)`` (step 6);
    * the controls: ``shuffled`` (``Delta`` permuted by ``perm``), ``zero_transitions``, ``zero_angle``.

    ``receiver (B, H, T, c_i)``, ``sender (B, H, T, c_j)`` the phases in head layout, ``W (B, H, T, T)`` the delay
    weights, ``cross (H, c_i, c_j)`` complex. Returns ``(B, H, T, c_i)`` tensors named as :data:`CROSS_SIDES`.
    """
    k_edge = cross[:, None, None]  # (H, 1, 1, c_i, c_j) against the (B, H, T_t, T_u, c_i, c_j) pair terms
    k_node = cross[:, None]  # (H, 1, c_i, c_j) against (B, H, T_u, c_i, c_j)
    strength = torch.abs(k_edge)
    delta = transitions(sender)[..., :, None, :]  # Delta_{u,j}: (B, H, T_u, 1, c_j)

    def sakaguchi(alpha: torch.Tensor) -> torch.Tensor:
        return pair_sakaguchi_coupling(receiver, sender, W, alpha, strength, n)

    return {
        "successor": pair_successor_coupling(receiver, sender, W, k_edge, n),
        "sakaguchi": sakaguchi(delay_frustration(delta, k_node, n)),
        "shuffled": sakaguchi(delay_frustration(delta[..., perm, :, :], k_node, n)),
        "zero_transitions": sakaguchi(delay_frustration(torch.zeros_like(delta), k_node, n)),
        "zero_angle": sakaguchi(torch.zeros_like(delay_frustration(delta, k_node, n))),
    }


def cross_self_successor_term(diag: torch.Tensor, heads: torch.Tensor, cross: torch.Tensor, n: int, sakaguchi: bool) -> torch.Tensor:
    """``shared_self``'s diagonal through the cross-coupling: the token is its own successor (``Delta = 0``), so
    ``A_tt sum_j Im(W1_ij e^{in(theta_{t,j} - theta_{t,i})})`` (successor form) or
    ``A_tt sum_j |W1_ij| sin(n(theta_{t,j} - theta_{t,i}) - alpha_ij)`` with ``alpha = delay_frustration(0, W1_ij, n)``
    (Sakaguchi form). ``diag (B, H, T)``, ``heads (B, H, T, D_h)``, ``cross (H, D_h, D_h)`` -> ``(B, H, T, D_h)``."""
    phase = n * (heads[..., None, :] - heads[..., :, None])  # (B, H, T, i, j)
    k_node = cross[:, None]
    if sakaguchi:
        alpha = delay_frustration(torch.zeros_like(phase), k_node, n)
        per = torch.abs(k_node) * torch.sin(phase - alpha)
    else:
        per = torch.abs(k_node) * torch.sin(phase + torch.angle(k_node))
    return diag.unsqueeze(-1) * per.sum(-1)


def shuffled_positions(T: int, generator: torch.Generator) -> torch.Tensor:
    """A permutation of positions ``0..T-2`` (the ones with a transition) with no fixed point, ``T-1`` kept."""
    m = T - 1
    if m < 2:
        return torch.arange(T)
    perm = torch.randperm(m, generator=generator)
    fixed = perm == torch.arange(m)
    if fixed.any():  # rotate the fixed points among themselves (or with a neighbour) to remove them
        idx = torch.nonzero(fixed).flatten()
        if idx.numel() == 1:
            j = (idx[0] + 1) % m
            perm[idx[0]], perm[j] = perm[j].clone(), perm[idx[0]].clone()
        else:
            perm[idx] = perm[idx.roll(1)]
    return torch.cat([perm, torch.tensor([T - 1])])


def shuffle_generator(seed: int, n: int) -> torch.Generator:
    """The generator of harmonic ``n``'s shuffled-transition control for a layer seeded ``seed``
    (:func:`verify_identity` seeds layer ``i`` with ``seed + 1000 i``, so every chunk of windows gets
    the same permutation)."""
    return torch.Generator().manual_seed(seed + n)


# -- the check: every side and every control of one layer, computed once ------------------------

# Largest number of elements in one (B, H, T_t, T_u, c) edge tensor: the coordinates of a head are
# processed in chunks below it, so memory stays bounded for any context.
EDGE_CHUNK_ELEMENTS = 4_000_000

EDGE_SIDES = ("transition", "frustration", "successor", "sakaguchi", "shuffled", "zero_transitions", "zero_angle")


@dataclass
class HarmonicSides:
    """Every side of the identity (spec §4) and every control for one layer and harmonic ``n``.

    All tensors are ``(B, T, D)`` in the inputs' dtype. The edge sums run over the strict past
    ``u < t`` with the delay weights ``W`` of :func:`~fsnlab.models.kernel.delay_weights`:

    * ``successor`` (a'): ``sum_u W_{t,u} Im(d_n e^{in(theta_{u+1} - theta_t)})`` (step 5, left);
    * ``sakaguchi`` (b): ``sum_u W_{t,u} |d_n| sin(n(theta_u - theta_t) - alpha_{u,n})`` with
      ``alpha = frustration = delay_frustration(transition, d_n, n)`` (step 6);
    * the controls, (b) with a wrong angle: ``shuffled`` (transitions permuted across positions),
      ``zero_transitions`` (``alpha = -arg d_n``), ``zero_angle`` (``alpha = 0``);
    * ``order_parameter`` (a): ``Im(e^{-in theta_t} d_n Z1_{t,n})`` from the network's ``Z1`` (step 7),
      the complete delay term; None when no ``Z1`` was given.

    ``self_successor``/``self_sakaguchi``: ``shared_self``'s diagonal, where the token is its own
    successor (``Delta = 0``), in the successor and the Sakaguchi form; None for the other masks.
    :meth:`full` adds them to give the complete delay term each way.
    """

    n: int
    transition: torch.Tensor
    frustration: torch.Tensor
    successor: torch.Tensor
    sakaguchi: torch.Tensor
    shuffled: torch.Tensor
    zero_transitions: torch.Tensor
    zero_angle: torch.Tensor
    order_parameter: torch.Tensor | None = None
    self_successor: torch.Tensor | None = None
    self_sakaguchi: torch.Tensor | None = None

    def full(self) -> dict[str, torch.Tensor]:
        """The complete delay term each way: the edge sums plus the ``shared_self`` diagonal (in the
        successor form for ``successor``, the Sakaguchi form for (b) and the controls with a transition;
        ``alpha = 0`` gives ``|d| sin 0 = 0`` there), and ``order_parameter`` when present."""
        out = {"successor": _plus(self.successor, self.self_successor)}
        for key in ("sakaguchi", "shuffled", "zero_transitions"):
            out[key] = _plus(getattr(self, key), self.self_sakaguchi)
        out["zero_angle"] = self.zero_angle
        if self.order_parameter is not None:
            out["order_parameter"] = self.order_parameter
        return out

    def comparisons(self) -> dict[str, torch.Tensor]:
        """The residuals of :data:`COMPARISONS` on the complete delay term: ``b - a``, ``b - a'``,
        ``a' - a`` and each control minus ``a`` (needs ``order_parameter``)."""
        s = self.full()
        a = s["order_parameter"]
        return {
            "sakaguchi-order_parameter": s["sakaguchi"] - a,
            "sakaguchi-successor": s["sakaguchi"] - s["successor"],
            "successor-order_parameter": s["successor"] - a,
            "control:shuffled_transitions": s["shuffled"] - a,
            "control:zero_transitions": s["zero_transitions"] - a,
            "control:zero_angle": s["zero_angle"] - a,
        }


def _plus(x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    return x if y is None else x + y


def edge_sides(theta: torch.Tensor, W: torch.Tensor, d: torch.Tensor, n: int, perm: torch.Tensor) -> dict[str, torch.Tensor]:
    """The edge sums of :class:`HarmonicSides` in head layout: ``theta (B, H, T, c)``, ``W (B, H, T, T)``,
    ``d (H, c)`` complex, ``perm (T,)`` the shuffled control's positions. Returns ``(B, H, T, c)`` tensors
    named as :data:`EDGE_SIDES`, each from :mod:`fsnlab.models.kernel` (spec §4 steps 2-6)."""
    d_edge = d[:, None, None, :]  # broadcasts against the (B, H, T_t, T_u, c) edge terms
    d_node = d[:, None, :]  # broadcasts against (B, H, T, c)
    strength = torch.abs(d_edge)
    delta = transitions(theta)
    alpha = delay_frustration(delta, d_node, n)
    return {
        "transition": delta,
        "frustration": alpha,
        "successor": successor_coupling(theta, W, d_edge, n),
        "sakaguchi": sakaguchi_coupling(theta, W, alpha, strength, n),
        "shuffled": sakaguchi_coupling(theta, W, delay_frustration(delta[..., perm, :], d_node, n), strength, n),
        "zero_transitions": sakaguchi_coupling(theta, W, delay_frustration(torch.zeros_like(delta), d_node, n), strength, n),
        "zero_angle": sakaguchi_coupling(theta, W, torch.zeros_like(alpha), strength, n),
    }


def harmonic_sides(
    theta: torch.Tensor,
    W: torch.Tensor,
    diag: torch.Tensor | None,
    z1: torch.Tensor | None,
    d: torch.Tensor,
    n: int,
    generator: torch.Generator,
    max_elements: int = EDGE_CHUNK_ELEMENTS,
    cross: torch.Tensor | None = None,
) -> HarmonicSides:
    """:class:`HarmonicSides` of one layer at harmonic ``n``.

    ``theta (B, T, D)`` the layer's input phases; ``W (B, H, T, T)`` and ``diag (B, H, T)`` or None from
    :func:`~fsnlab.models.kernel.delay_weights`; ``z1 (B, T, D)`` complex (harmonic ``n``) or None;
    ``d (D,)`` complex, the delay coefficients per coordinate; ``generator`` draws the shuffled control's
    permutation. Coordinate ``i`` belongs to head ``i // (D / H)``. The coordinates of each head are
    processed in chunks so that an edge tensor holds at most about ``max_elements`` elements.

    ``cross (H, D_h, D_h)`` complex: the network kernel's delay cross-coupling ``W1_n`` (OQ-9; receiver ``i``,
    sender ``j``, zero diagonal), or None for the diagonal kernel. Each side then adds its sum over ``j != i``
    (:func:`cross_edge_sides`, :func:`cross_self_successor_term`, :func:`cross_order_parameter_side`), chunked
    over receivers and senders under the same bound; with None nothing is added (the diagonal numbers).
    """
    B, T, D = theta.shape
    H = W.shape[1]
    Dh = D // H
    heads = theta.reshape(B, T, H, Dh).transpose(1, 2)  # (B, H, T, Dh)
    d_heads = d.reshape(H, Dh)
    perm = shuffled_positions(T, generator)
    chunk = max(1, min(Dh, max_elements // max(1, B * H * T * T)))
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in EDGE_SIDES}
    for lo in range(0, Dh, chunk):
        sl = slice(lo, min(Dh, lo + chunk))
        for key, val in edge_sides(heads[..., sl], W, d_heads[:, sl], n, perm).items():
            parts[key].append(val)
    sides = {key: _coordinates(torch.cat(vals, -1)) for key, vals in parts.items()}
    if cross is not None:
        for key, val in _cross_sides(heads, W, cross, n, perm, max_elements).items():
            sides[key] = sides[key] + val
    if diag is not None:
        d_node = d_heads[:, None, :]
        sides["self_successor"] = _coordinates(self_successor_term(diag, d_node, n, sakaguchi=False))
        sides["self_sakaguchi"] = _coordinates(self_successor_term(diag, d_node, n, sakaguchi=True))
        if cross is not None:
            sides["self_successor"] = sides["self_successor"] + _coordinates(cross_self_successor_term(diag, heads, cross, n, sakaguchi=False))
            sides["self_sakaguchi"] = sides["self_sakaguchi"] + _coordinates(cross_self_successor_term(diag, heads, cross, n, sakaguchi=True))
    if z1 is not None:
        sides["order_parameter"] = order_parameter_side(theta, z1, d, n)
        if cross is not None:
            sides["order_parameter"] = sides["order_parameter"] + cross_order_parameter_side(theta, z1, cross, n)
    return HarmonicSides(n=n, **sides)


def _cross_sides(
    heads: torch.Tensor, W: torch.Tensor, cross: torch.Tensor, n: int, perm: torch.Tensor, max_elements: int
) -> dict[str, torch.Tensor]:
    """:func:`cross_edge_sides` over every (receiver, sender) pair of each head, in blocks of receivers and
    senders so that a pair tensor ``(B, H, T, T, c_i, c_j)`` holds at most about ``max_elements`` elements
    (at least one pair). Returns ``(B, T, D)`` tensors named as :data:`CROSS_SIDES`."""
    B, H, T, Dh = heads.shape
    edges = max(1, B * H * T * T)
    cj = max(1, min(Dh, max_elements // edges))
    ci = max(1, min(Dh, max_elements // (edges * cj)))
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in CROSS_SIDES}
    for lo in range(0, Dh, ci):
        si = slice(lo, min(Dh, lo + ci))
        acc: dict[str, torch.Tensor] | None = None
        for lo_j in range(0, Dh, cj):
            sj = slice(lo_j, min(Dh, lo_j + cj))
            block = cross_edge_sides(heads[..., si], heads[..., sj], W, cross[:, si, sj], n, perm)
            acc = block if acc is None else {k: acc[k] + block[k] for k in CROSS_SIDES}
        for k in CROSS_SIDES:
            parts[k].append(acc[k])
    return {k: _coordinates(torch.cat(v, -1)) for k, v in parts.items()}


def _coordinates(x: torch.Tensor) -> torch.Tensor:
    """Head layout ``(B, H, T, Dh)`` back to coordinates ``(B, T, H Dh)``."""
    B, H, T, Dh = x.shape
    return x.transpose(1, 2).reshape(B, T, H * Dh)


def layer_identity(
    theta: torch.Tensor,
    attn: torch.Tensor,
    z1: torch.Tensor | None,
    d: torch.Tensor,
    delay_mask: str,
    seed: int = 0,
    max_elements: int = EDGE_CHUNK_ELEMENTS,
    cross: torch.Tensor | None = None,
) -> list[HarmonicSides]:
    """The identity check of one layer: :class:`HarmonicSides` for every harmonic ``n = 1..N``.

    ``theta (B, T, D)``, ``attn (B, H, T, T)`` the dense softmax (``hook_attn``), ``z1 (B, T, D, N)``
    complex (``hook_Z1``) or None, ``d (D, N)`` complex, all in one dtype, which the check runs in.
    The delay weights follow ``delay_mask`` (OQ-8); harmonic ``n``'s shuffled control draws from
    :func:`shuffle_generator` ``(seed, n)``. The probe, ``fsnlab verify`` and the explorer reduce this.
    ``cross (H, N, D_h, D_h)`` complex: the network kernel's delay cross-coupling (:func:`delay_cross_coupling`),
    or None; a harmonic whose cross-coupling is zero (``network1`` beyond n = 1) is checked as diagonal.
    """
    W, diag = delay_weights(attn, delay_mask)
    return [
        harmonic_sides(theta, W, diag, None if z1 is None else z1[..., n - 1], d[:, n - 1], n,
                       shuffle_generator(seed, n), max_elements, _harmonic_cross(cross, n))
        for n in range(1, d.shape[-1] + 1)
    ]


def _harmonic_cross(cross: torch.Tensor | None, n: int) -> torch.Tensor | None:
    """Harmonic ``n``'s cross-coupling ``(H, D_h, D_h)``, or None where there is none (or it is zero)."""
    if cross is None:
        return None
    c = cross[:, n - 1]
    return c if bool(torch.any(c != 0)) else None


def delay_cross_coupling(attn: torch.nn.Module, dtype: torch.dtype) -> torch.Tensor | None:
    """The network kernel's delay cross-coupling ``W1_{h,n,ij}`` of one attention module as complex
    ``(H, N, D_h, D_h)`` in the complex dtype of ``dtype`` (zero for the harmonics the form does not cover),
    from ``attn.network.cross_matrix(1)`` (spec §3.4, OQ-9); None for the diagonal kernel or without delay.
    ``K1 = diag(d) + W1`` is ``attn.coupling_matrices()[1]`` (complex64; this keeps the model's precision)."""
    net = getattr(attn, "network", None)
    if net is None or 1 not in net.delays:
        return None
    re, im = net.cross_matrix(1)
    w = torch.complex(re.detach().to(dtype), im.detach().to(dtype))
    H, n_cover, Dh, _ = w.shape
    N = attn.config.kernel_spec.n_harmonics
    out = torch.zeros(H, N, Dh, Dh, dtype=w.dtype, device=w.device)
    out[:, :n_cover] = w
    return out


def layer_sides(
    theta: torch.Tensor,
    attn: torch.Tensor,
    z1: torch.Tensor,
    d: torch.Tensor,
    n: int,
    delay_mask: str,
    n_head: int,
    generator: torch.Generator,
    cross: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """The complete sides (:meth:`HarmonicSides.full`) for one layer and harmonic: ``theta (B, T, D)``,
    ``attn (B, H, T, T)`` with ``H = n_head``, ``z1 (B, T, D)`` complex (harmonic n), ``d (D,)`` complex,
    ``cross (H, D_h, D_h)`` complex (the network kernel's cross-coupling at this harmonic) or None.
    Returns ``(B, T, D)`` tensors named ``order_parameter``, ``successor``, ``sakaguchi``, ``shuffled``,
    ``zero_transitions`` and ``zero_angle``."""
    if attn.shape[1] != n_head:
        raise ValueError(f"attn has {attn.shape[1]} heads, not {n_head}")
    W, diag = delay_weights(attn, delay_mask)
    return harmonic_sides(theta, W, diag, z1, d, n, generator, cross=cross).full()


# -- running the model -------------------------------------------------------------------------


def model_in_dtype(model: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """A copy of ``model`` in ``dtype`` and eval mode (the caller's model is left as it is)."""
    return copy.deepcopy(model).to(dtype).eval()


def capture_layers(
    model: torch.nn.Module, ids: torch.Tensor, dtype: torch.dtype, copy_model: bool = True
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Run ``model`` in ``dtype`` (a copy unless ``copy_model=False``, which requires it to be in
    ``dtype`` already) on ``ids (B, T)`` and collect, per layer, the input phases, the dense
    attention, ``Z1``, the delay coefficients ``d (D, N)`` (complex, that dtype) and, for the network
    kernel, its delay cross-coupling ``cross (H, N, D_h, D_h)`` (:func:`delay_cross_coupling`; None for
    the diagonal kernel), all read from the layer's own hook points and parameters; ``sources`` names them.
    """
    m = model_in_dtype(model, dtype) if copy_model else model
    ids = ids.to(next(m.parameters()).device)
    n_layer = len(m.blocks)
    names = [f"blocks.{i}.attn.{h}" for i in range(n_layer) for h in ("hook_theta_in", "hook_Z1", "hook_attn")]
    with torch.no_grad(), capture(m, names) as cache:
        m(ids)
    sources = {"theta": "hook_theta_in", "Z1": "hook_Z1", "attn": "hook_attn"}
    layers = []
    with torch.no_grad():
        for i in range(n_layer):
            layer = m.blocks[i].attn
            theta = cache[f"blocks.{i}.attn.hook_theta_in"]
            if theta.dtype != dtype:
                raise IdentityError(f"layer {i} ran in {theta.dtype}, not {dtype}")
            _, d_pair = layer.coordinate_coefficients()
            d = torch.complex(d_pair[0].detach().to(dtype), d_pair[1].detach().to(dtype))
            cross = delay_cross_coupling(layer, dtype)
            layers.append(
                {"theta": theta, "attn": cache[f"blocks.{i}.attn.hook_attn"], "z1": cache[f"blocks.{i}.attn.hook_Z1"], "d": d,
                 "cross": None if cross is None else cross.to(theta.device)}
            )
    return layers, sources


# -- the driver: fsnlab verify's reduction ------------------------------------------------------


class _Statistics:
    """Running max/RMS of the :data:`COMPARISONS` residuals and of side (a), per (precision, layer,
    harmonic), over chunks of windows."""

    def __init__(self, n_precision: int, n_layer: int, n_harmonic: int) -> None:
        self.res_max = np.zeros((n_precision, n_layer, n_harmonic, len(COMPARISONS)))
        self.res_ss = np.zeros_like(self.res_max)
        self.ref_max = np.zeros((n_precision, n_layer, n_harmonic))
        self.ref_ss = np.zeros_like(self.ref_max)
        self.count = np.zeros_like(self.ref_max)

    def add(self, p: int, layer: int, sides: HarmonicSides) -> None:
        """Fold one chunk's :class:`HarmonicSides` of ``layer`` in precision ``p`` into the statistics."""
        key = (p, layer, sides.n - 1)
        pairs = sides.comparisons()
        for c, name in enumerate(COMPARISONS):
            r = pairs[name].abs().double()
            self.res_max[key + (c,)] = max(self.res_max[key + (c,)], float(r.max()))
            self.res_ss[key + (c,)] += float(r.pow(2).sum())
        aa = sides.order_parameter.abs().double()
        self.ref_max[key] = max(self.ref_max[key], float(aa.max()))
        self.ref_ss[key] += float(aa.pow(2).sum())
        self.count[key] += aa.numel()

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """``(stats, term)``: :data:`STATISTICS` stacked last ``(P, L, N, C, 4)`` and the delay term's
        RMS and max ``(P, L, N, 2)`` (relative = residual statistic / the same statistic of side a)."""
        rms = np.sqrt(self.res_ss / self.count[..., None])
        ref_rms = np.sqrt(self.ref_ss / self.count)
        with np.errstate(divide="ignore", invalid="ignore"):
            stats = np.stack([self.res_max, rms, self.res_max / self.ref_max[..., None], rms / ref_rms[..., None]], -1)
        return stats, np.stack([ref_rms, self.ref_max], -1)


def head_coefficients(d: torch.Tensor, n_head: int) -> tuple[np.ndarray, np.ndarray]:
    """``|d|`` and ``arg d`` per head and harmonic from ``d (D, N)`` (the mean over a head's coordinates
    when the kernel is per coordinate): ``(H, N)`` each."""
    dd = d.reshape(n_head, d.shape[0] // n_head, d.shape[1]).cpu().to(torch.complex128)
    return dd.abs().mean(1).numpy(), (dd / dd.abs().clamp_min(1e-300)).mean(1).angle().numpy()


def verify_identity(
    model: torch.nn.Module,
    ids: torch.Tensor | Sequence[int],
    tolerance: float = 1e-10,
    control_margin: float = 1e3,
    seed: int = 0,
    model_dtype: torch.dtype | None = None,
    window_budget: float = 2**24,
) -> Any:
    """Check the delay identity on every layer and harmonic of ``model`` for the byte ids ``(B, T)``:
    :func:`layer_identity` on each layer's captured input, reduced to statistics over windows.

    Windows are processed in chunks of at most ``window_budget / (T^2 D_h)`` (the per-edge sides build
    ``(B, T, T, D_h)`` tensors; ``/ (T^2 D_h^2)`` for the network kernel, whose sides run over oscillator
    pairs), so any amount of text runs in bounded memory.

    Returns an ``xarray.Dataset`` with variables ``max_abs``, ``rms_abs``, ``max_rel``, ``rms_rel`` over
    ``(precision, layer, harmonic, comparison)``, ``term_rms``/``term_max`` (the size of the delay term,
    side a), ``d_abs``/``d_arg`` over ``(layer, head, harmonic)``; attrs ``passed`` (1/0: every float64
    identity residual <= ``tolerance``), ``controls_discriminate`` (1/0: every float64 control residual
    > ``control_margin * tolerance``), ``failures`` (one line each) and provenance.
    """
    require_delay_model(model)
    ids = torch.as_tensor(ids, dtype=torch.long)
    if ids.ndim == 1:
        ids = ids[None]
    if ids.shape[-1] < 3:
        raise IdentityError(f"need at least 3 tokens per window to check the identity, got {ids.shape[-1]}")
    cfg = model.config
    model_dtype = model_dtype or next(model.parameters()).dtype
    precisions = {"float64": torch.float64}
    if model_dtype != torch.float64:
        precisions[str(model_dtype).replace("torch.", "")] = model_dtype
    n_layer, N, H = cfg.n_layer, cfg.kernel_spec.n_harmonics, cfg.n_head
    acc = _Statistics(len(precisions), n_layer, N)
    d_abs = np.zeros((n_layer, H, N))
    d_arg = np.zeros((n_layer, H, N))
    sources: dict[str, dict[str, str]] = {}
    T = ids.shape[1]
    network = getattr(cfg, "kernel_form", "diagonal") != "diagonal"
    per_chunk = max(1, int(window_budget // (T * T * cfg.head_dim * (cfg.head_dim if network else 1))))
    for p, (pname, dtype) in enumerate(precisions.items()):
        m = model_in_dtype(model, dtype)
        for k, start in enumerate(range(0, ids.shape[0], per_chunk)):
            layers, src = capture_layers(m, ids[start : start + per_chunk], dtype, copy_model=False)
            sources.setdefault(pname, {}).update(src)
            for i, lay in enumerate(layers):
                if p == 0 and k == 0:
                    d_abs[i], d_arg[i] = head_coefficients(lay["d"], H)
                for sides in layer_identity(lay["theta"], lay["attn"], lay["z1"], lay["d"], cfg.delay_mask, seed + 1000 * i,
                                            cross=lay["cross"]):
                    acc.add(p, i, sides)
    stats, term = acc.arrays()
    ds = _identity_dataset(stats, term, d_abs, d_arg, list(precisions))
    failures = _failures(ds, tolerance, control_margin)
    ds.attrs.update({
        "title": "FSN delay identity (spec §4): successor coupling = Kuramoto-Sakaguchi coupling with data-given frustration",
        "sign_convention": SIGN_CONVENTION,
        "frustration": ("alpha_{u,n,ij} = -(n Delta_{u,j} + arg K1_{n,ij}), K1 = diag(d) + W1 (network kernel, OQ-9)" if network
                        else "alpha_{u,n} = -(n Delta_u + arg d_n), Delta_u = theta_{u+1} - theta_u"),
        "tolerance": float(tolerance),
        "control_margin": float(control_margin),
        "control_threshold": float(tolerance * control_margin),
        "passed": int(not any(f.startswith("identity") for f in failures)),
        "controls_discriminate": int(not any(f.startswith("control") for f in failures)),
        "failures": "\n".join(failures),
        "delay_mask": cfg.delay_mask,
        "kernel": cfg.kernel,
        "kernel_form": getattr(cfg, "kernel_form", "diagonal"),
        "n_windows": int(ids.shape[0]),
        "window_length": int(ids.shape[1]),
        "seed": int(seed),
        **{f"source_{p}_{k}": v for p, src in sources.items() for k, v in src.items()},
    })
    return ds


def _identity_dataset(stats: np.ndarray, term: np.ndarray, d_abs: np.ndarray, d_arg: np.ndarray, precisions: list[str]) -> Any:
    """The variables of :func:`verify_identity`'s dataset (no attrs yet)."""
    import xarray as xr

    _, n_layer, N, _, _ = stats.shape
    coords = {
        "precision": precisions,
        "layer": np.arange(n_layer),
        "harmonic": np.arange(1, N + 1),
        "comparison": list(COMPARISONS),
        "head": np.arange(d_abs.shape[1]),
    }
    dims = ("precision", "layer", "harmonic", "comparison")
    long = {"max_abs": "max |residual|", "rms_abs": "RMS residual",
            "max_rel": "max |residual| / max |delay term|", "rms_rel": "RMS residual / RMS delay term"}
    data = {k: (dims, stats[..., j], {"units": "1" if "rel" in k else "rad per unit step", "long_name": long[k]}) for j, k in enumerate(STATISTICS)}
    data["term_rms"] = (("precision", "layer", "harmonic"), term[..., 0], {"units": "rad per unit step", "long_name": "RMS of the delay term Im(e^{-in theta} d_n Z1_n)"})
    data["term_max"] = (("precision", "layer", "harmonic"), term[..., 1], {"units": "rad per unit step", "long_name": "max |delay term|"})
    data["d_abs"] = (("layer", "head", "harmonic"), d_abs, {"units": "1", "long_name": "|d_{h,n}| (delay coupling strength)"})
    data["d_arg"] = (("layer", "head", "harmonic"), d_arg, {"units": "rad", "long_name": "arg d_{h,n}"})
    return xr.Dataset(data, coords=coords)


def _failures(ds: Any, tolerance: float, control_margin: float) -> list[str]:
    """One line per float64 identity residual above ``tolerance`` and per control that does not fail."""
    out = []
    f64 = ds.sel(precision="float64")
    for i in ds.layer.values:
        for n in ds.harmonic.values:
            for comp in IDENTITY_COMPARISONS:
                v = float(f64.max_abs.sel(layer=i, harmonic=n, comparison=comp))
                if not v <= tolerance:
                    out.append(f"identity: layer {i} harmonic {n} {comp}: max |residual| {v:.3e} > tolerance {tolerance:.1e}")
            for comp in CONTROL_COMPARISONS:
                v = float(f64.max_abs.sel(layer=i, harmonic=n, comparison=comp))
                if not v > tolerance * control_margin:
                    out.append(f"control: layer {i} harmonic {n} {comp}: max |residual| {v:.3e} is not above "
                               f"{tolerance * control_margin:.1e}: the wrong frustration angle is not detected, so the check is vacuous here")
    return out


# -- reporting ---------------------------------------------------------------------------------


def identity_summary(ds: Any) -> dict[str, Any]:
    """A JSON-ready dict of :func:`verify_identity`'s result: flags, attrs and one row per
    (precision, layer, harmonic, comparison)."""
    rows = []
    for p in ds.precision.values:
        for i in ds.layer.values:
            for n in ds.harmonic.values:
                for comp in ds.comparison.values:
                    sel = ds.sel(precision=p, layer=i, harmonic=n, comparison=comp)
                    rows.append({"precision": str(p), "layer": int(i), "harmonic": int(n), "comparison": str(comp),
                                 **{k: _num(sel[k]) for k in STATISTICS}})
    terms = [{"precision": str(p), "layer": int(i), "harmonic": int(n),
              "term_rms": _num(ds.term_rms.sel(precision=p, layer=i, harmonic=n)),
              "term_max": _num(ds.term_max.sel(precision=p, layer=i, harmonic=n))}
             for p in ds.precision.values for i in ds.layer.values for n in ds.harmonic.values]
    attrs = {k: v for k, v in ds.attrs.items() if k not in ("passed", "controls_discriminate", "failures")}
    return {
        "passed": bool(ds.attrs["passed"]) and bool(ds.attrs["controls_discriminate"]),
        "identity_passed": bool(ds.attrs["passed"]),
        "controls_discriminate": bool(ds.attrs["controls_discriminate"]),
        "failures": [f for f in ds.attrs["failures"].split("\n") if f],
        "max_float64_identity_residual": _num(ds.max_abs.sel(precision="float64", comparison=list(IDENTITY_COMPARISONS)).max()),
        "min_float64_control_residual": _num(ds.max_abs.sel(precision="float64", comparison=list(CONTROL_COMPARISONS)).min()),
        "attrs": attrs,
        "delay_term": terms,
        "residuals": rows,
    }


def _num(x: Any) -> float | None:
    v = float(x)
    return None if math.isnan(v) else v


def format_identity_table(ds: Any, max_failures: int = 8) -> str:
    """A readable report: identity residuals per layer and harmonic, the controls, and a verdict."""
    precs = [str(p) for p in ds.precision.values]
    low = [p for p in precs if p != "float64"]
    lines = []
    cols = ("|a| rms", "b-a max", "b-a rms", "rel", "b-a' max", "a'-a max")
    head = f"{'layer':>5} {'n':>2} {cols[0]:>9}  {cols[1]:>9} {cols[2]:>9} {cols[3]:>8}  {cols[4]:>9} {cols[5]:>9}"
    if low:
        head += f"  {low[0] + ' b-a':>12} {'rel':>8}"
    lines.append("identity residuals (float64 unless noted); a = order parameter (hook_Z1), a' = successor sum, b = Sakaguchi form")
    lines.append(head)
    for i in ds.layer.values:
        for n in ds.harmonic.values:
            s = ds.sel(layer=i, harmonic=n)
            f = s.sel(precision="float64")
            row = (f"{int(i):>5} {int(n):>2} {float(f.term_rms):>9.3e}  "
                   f"{float(f.max_abs.sel(comparison='sakaguchi-order_parameter')):>9.2e} "
                   f"{float(f.rms_abs.sel(comparison='sakaguchi-order_parameter')):>9.2e} "
                   f"{float(f.max_rel.sel(comparison='sakaguchi-order_parameter')):>8.1e}  "
                   f"{float(f.max_abs.sel(comparison='sakaguchi-successor')):>9.2e} "
                   f"{float(f.max_abs.sel(comparison='successor-order_parameter')):>9.2e}")
            if low:
                m = s.sel(precision=low[0], comparison="sakaguchi-order_parameter")
                row += f"  {float(m.max_abs):>12.2e} {float(m.max_rel):>8.1e}"
            lines.append(row)
    lines.append("")
    lines.append("controls (float64, b - a with a wrong frustration angle; each must be large): max |residual| (relative)")
    lines.append(f"{'layer':>5} {'n':>2}  {'shuffled transitions':>22} {'zero transitions':>22} {'alpha = 0':>22}")
    for i in ds.layer.values:
        for n in ds.harmonic.values:
            f = ds.sel(precision="float64", layer=i, harmonic=n)
            cells = [f"{float(f.max_abs.sel(comparison=c)):.2e} ({float(f.max_rel.sel(comparison=c)):.2f})" for c in CONTROL_COMPARISONS]
            lines.append(f"{int(i):>5} {int(n):>2}  " + " ".join(f"{c:>22}" for c in cells))
    lines.append("")
    summary = identity_summary(ds)
    tol, thr = ds.attrs["tolerance"], ds.attrs["control_threshold"]
    worst = summary["max_float64_identity_residual"]
    weakest = summary["min_float64_control_residual"]
    if summary["identity_passed"]:
        lines.append(f"identity: PASS, largest float64 residual {worst:.2e} <= tolerance {tol:.1e}")
    else:
        lines.append(f"identity: FAIL, largest float64 residual {worst:.2e} > tolerance {tol:.1e}")
    if summary["controls_discriminate"]:
        lines.append(f"controls: PASS, every wrong frustration angle misses by >= {weakest:.2e} (threshold {thr:.1e})")
    else:
        lines.append(f"controls: FAIL, a wrong frustration angle gives {weakest:.2e} <= {thr:.1e}: THE CHECK IS VACUOUS ON THIS INPUT")
    shown = summary["failures"][:max_failures]
    for f in shown:
        lines.append(f"  {f}")
    if len(summary["failures"]) > len(shown):
        lines.append(f"  ... and {len(summary['failures']) - len(shown)} more (--json lists all)")
    return "\n".join(lines)
