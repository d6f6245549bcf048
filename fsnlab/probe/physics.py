"""What the probe computes from captured tensors: order parameters, top-k couplings and the
delay-identity check on the very run (spec §4, §10).

The kernel physics itself is never re-derived here: the identity is evaluated with
:func:`fsnlab.models.kernel.successor_coupling`, :func:`~fsnlab.models.kernel.sakaguchi_coupling`,
:func:`~fsnlab.models.kernel.delay_frustration` and :func:`~fsnlab.models.kernel.transitions`, and the
network's own delay force with :func:`~fsnlab.models.kernel.tangent_projection`. This module only
prepares their inputs (per-head views, the delay weights each ``delay_mask`` implies) and reduces
their outputs to maxima.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from fsnlab.models.kernel import (
    complex_mul,
    delay_weights,
    delay_frustration,
    harmonic_features,
    sakaguchi_coupling,
    successor_coupling,
    tangent_projection,
    transitions,
)

# Largest number of float64 elements in one (B, H, P, P, c) edge tensor of the identity check; the
# coordinates are processed in chunks below it so that memory stays bounded for any context.
EDGE_CHUNK_ELEMENTS = 4_000_000


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one intra-op thread: the identity check is many small elementwise ops, for which
    thread hand-offs cost more than they save (and, on a busy machine, far more)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def global_order_parameter(theta: torch.Tensor) -> torch.Tensor:
    """Global Kuramoto order parameter ``mean_t e^{i theta_t}`` over positions (dim -2), complex128.

    ``theta (..., T, D)`` -> ``(..., D)``; ``|.|`` is the global R, ``arg`` the mean phase (spec §10).
    """
    theta = theta.double()
    return torch.complex(torch.cos(theta).mean(-2), torch.sin(theta).mean(-2))


def top_k(weights: torch.Tensor, k: int, causal: bool) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest weights along the last dim and their indices (float32, int32).

    With ``causal`` the last two dims are (query t, key u) and slots beyond the ``t + 1`` visible keys
    get weight 0 and index -1, so that a future key is never reported.
    """
    values, indices = torch.topk(weights.float(), k, dim=-1, sorted=True)
    if causal:
        t = torch.arange(weights.shape[-2], device=weights.device)[:, None]
        invalid = indices > t
        values = values.masked_fill(invalid, 0.0)
        indices = indices.masked_fill(invalid, -1)
    return values.numpy().astype(np.float32), indices.numpy().astype(np.int32)


@dataclass
class IdentityResult:
    """Per-window results of :func:`delay_identity` (numpy, float64)."""

    residual: np.ndarray  # (B, N): max |successor - KS with data frustration|
    control: np.ndarray  # (B, N): max |successor - KS with zero frustration|
    coupling_max: np.ndarray  # (B, N): max |successor|
    force_check: np.ndarray  # (B,): max |network delay force - explicit sum over harmonics|


def delay_identity(
    theta: torch.Tensor,
    attn: torch.Tensor,
    d: torch.Tensor,
    z1: torch.Tensor,
    delay_mask: str,
    positions: int,
) -> IdentityResult:
    """Check the delay identity (spec §4) and the network's delay force on the first ``positions`` queries.

    ``theta (B, T, D)``: the layer's input phases; ``attn (B, H, T, T)``: its coupling weights;
    ``d (D, N)`` complex: the delay coefficients expanded per coordinate; ``z1 (B, T, D, N)`` complex:
    the layer's ``hook_Z1``. Everything is cast to float64. The queries ``t < P`` only involve keys
    ``u < t < P``, so cutting the window to its first ``P`` positions is exact for them.

    Per harmonic n, with ``W`` from :func:`delay_weights` (strictly-lower edges only):

    * ``succ_n = successor_coupling(theta, W, d_n, n)`` (the network's way: successors of attended tokens);
    * ``ks_n = sakaguchi_coupling(theta, W, delay_frustration(transitions(theta), d_n, n), |d_n|, n)``;
    * ``ctl_n`` as ``ks_n`` with zero frustration (the control);

    and the network's own delay force ``sum_n Im(e^{-in theta} d_n Z1_n)`` (``tangent_projection``)
    against ``sum_n succ_n`` (plus ``A_tt Im d_n`` for ``shared_self``, whose diagonal couples a token
    to itself).
    """
    B, T, D = theta.shape
    H = attn.shape[1]
    P = min(positions, T)
    Dh = D // H
    N = d.shape[-1]
    th = theta[:, :P].double()
    a = attn[:, :, :P, :P].double()
    w, _ = delay_weights(a, delay_mask)  # shared_self's diagonal is added separately below
    d = d.to(torch.complex128)
    heads = th.reshape(B, P, H, Dh).transpose(1, 2)  # (B, H, P, Dh)
    d_heads = d.reshape(H, Dh, N)
    chunk = max(1, min(Dh, EDGE_CHUNK_ELEMENTS // max(1, B * H * P * P)))

    with single_thread():
        return _delay_identity(th, a, w, d, heads, d_heads, z1, delay_mask, chunk)


def _delay_identity(
    th: torch.Tensor,
    a: torch.Tensor,
    w: torch.Tensor,
    d: torch.Tensor,
    heads: torch.Tensor,
    d_heads: torch.Tensor,
    z1: torch.Tensor,
    delay_mask: str,
    chunk: int,
) -> IdentityResult:
    """The body of :func:`delay_identity` on prepared float64 inputs (``th (B, P, D)``, ``a``/``w``
    ``(B, H, P, P)``, ``d (D, N)``, ``heads (B, H, P, Dh)``, ``d_heads (H, Dh, N)``)."""
    B, P, D = th.shape
    H, Dh, N = d_heads.shape
    residual = np.zeros((B, N))
    control = np.zeros((B, N))
    coupling_max = np.zeros((B, N))
    explicit = torch.zeros(B, H, P, Dh, dtype=torch.float64)
    for lo in range(0, Dh, chunk):
        sl = slice(lo, min(Dh, lo + chunk))
        th_c = heads[..., sl]
        delta = transitions(th_c)
        for n in range(1, N + 1):
            d_n = d_heads[:, sl, n - 1]  # (H, c)
            d_edge = d_n[:, None, None, :]  # broadcasts against (B, H, P_t, P_u, c)
            d_node = d_n[:, None, :]  # broadcasts against (B, H, P, c)
            succ = successor_coupling(th_c, w, d_edge, n)
            ks = sakaguchi_coupling(th_c, w, delay_frustration(delta, d_node, n), d_edge.abs(), n)
            ctl = sakaguchi_coupling(th_c, w, torch.zeros_like(th_c), d_edge.abs(), n)
            residual[:, n - 1] = np.maximum(residual[:, n - 1], _max_abs(succ - ks))
            control[:, n - 1] = np.maximum(control[:, n - 1], _max_abs(succ - ctl))
            coupling_max[:, n - 1] = np.maximum(coupling_max[:, n - 1], _max_abs(succ))
            explicit[..., sl] += succ

    explicit = explicit.transpose(1, 2).reshape(B, P, D)
    if delay_mask == "shared_self":
        diag = torch.diagonal(a, dim1=-2, dim2=-1)  # (B, H, P): A_tt
        self_term = diag.transpose(1, 2).repeat_interleave(Dh, dim=-1) * d.imag.sum(-1)  # A_tt sum_n Im d_n
        explicit = explicit + self_term
    cos_n, sin_n = harmonic_features(th, N)
    z = z1[:, :P].to(torch.complex128)
    network = tangent_projection(cos_n, sin_n, complex_mul((d.real, d.imag), (z.real, z.imag)))
    force_check = (network - explicit).abs().flatten(1).max(-1).values.numpy()
    return IdentityResult(residual, control, coupling_max, force_check)


def _max_abs(x: torch.Tensor) -> np.ndarray:
    """``max |x|`` over every dim but the first (NaN-free inputs)."""
    return x.abs().flatten(1).max(-1).values.numpy()
