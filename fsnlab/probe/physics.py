"""What the probe computes from captured tensors: order parameters, top-k couplings and the
delay-identity check on the very run (spec §4, §10).

The identity itself is computed once, by :func:`fsnlab.dynamics.identity.layer_identity` (every side
and every control, from :mod:`fsnlab.models.kernel`'s functions), the same check ``fsnlab verify`` and
the explorer reduce. This module only cuts the captured tensors to the checked queries, casts them to
float64 and reduces the sides to the per-window maxima the probe stores.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

import numpy as np
import torch

if TYPE_CHECKING:
    from fsnlab.dynamics.identity import HarmonicSides


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
    cross: torch.Tensor | None = None,
) -> IdentityResult:
    """Check the delay identity (spec §4) and the network's delay force on the first ``positions`` queries.

    ``theta (B, T, D)``: the layer's input phases; ``attn (B, H, T, T)``: its coupling weights;
    ``d (D, N)`` complex: the delay coefficients expanded per coordinate; ``z1 (B, T, D, N)`` complex:
    the layer's ``hook_Z1``; ``cross (H, N, D_h, D_h)`` complex: the network kernel's delay cross-coupling
    (OQ-9, :func:`fsnlab.dynamics.identity.delay_cross_coupling`) or None for the diagonal kernel.
    Everything is cast to float64. The queries ``t < P`` only involve keys ``u < t < P``, so cutting the
    window to its first ``P`` positions is exact for them.
    """
    # imported here: fsnlab.dynamics loads scipy, which a probe without the check does not need
    from fsnlab.dynamics.identity import layer_identity

    P = min(positions, theta.shape[1])
    th = theta[:, :P].double()
    a = attn[:, :, :P, :P].double()
    z = z1[:, :P].to(torch.complex128)
    with single_thread():
        w = None if cross is None else cross.to(torch.complex128)
        return identity_result(layer_identity(th, a, z, d.to(torch.complex128), delay_mask, cross=w))


def identity_result(sides: list[HarmonicSides]) -> IdentityResult:
    """The probe's reduction of one layer's :func:`~fsnlab.dynamics.identity.layer_identity`, per window:

    * ``residual``: ``max |successor - sakaguchi|`` per harmonic (step 5; the strictly-lower edges,
      i.e. without ``shared_self``'s diagonal, which is the same number in both forms);
    * ``control``: ``max |successor - zero_angle|`` (``alpha = 0``: large unless the data's frustration
      is what the delay term carries);
    * ``coupling_max``: ``max |successor|``, the scale of the residual;
    * ``force_check``: the network's own delay force ``sum_n Im(e^{-in theta} d_n Z1_n)`` (from
      ``hook_Z1``) against the explicit ``sum_n successor_n`` (plus ``A_tt Im d_n`` for ``shared_self``).

    For the network kernel (OQ-9) every side includes the cross-coupling: the delay force is
    ``sum_n Im(e^{-in theta_{t,i}} sum_j K1_{n,ij} Z1_{t,j,n})`` and the edge sums run over the pairs ``(i, j)``.
    """
    residual = np.stack([_max_abs(s.successor - s.sakaguchi) for s in sides], -1)
    control = np.stack([_max_abs(s.successor - s.zero_angle) for s in sides], -1)
    coupling_max = np.stack([_max_abs(s.successor) for s in sides], -1)
    network = sum(s.order_parameter for s in sides)
    explicit = sum(s.full()["successor"] for s in sides)
    return IdentityResult(residual, control, coupling_max, _max_abs(network - explicit))


def _max_abs(x: torch.Tensor) -> np.ndarray:
    """``max |x|`` over every dim but the first (NaN-free inputs)."""
    return x.abs().flatten(1).max(-1).values.numpy()
