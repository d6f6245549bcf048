"""Circular statistics of phases (spec §10: order parameters, transition statistics).

All angles are in radians. Functions take numpy arrays (torch tensors are converted) and reduce
along ``axis`` (default: all elements); weights, where accepted, broadcast against the angles.

Definitions (stated here once, because libraries disagree):

* **order parameter** ``Z_n = sum_j w_j e^{i n theta_j} / sum_j w_j`` (Kuramoto for n = 1, Daido
  for n >= 2); its modulus is the **resultant length** ``R_n`` and its argument the **mean angle**.
* **circular variance** ``V = 1 - R`` (Mardia & Jupp 2000, §2.3.1), in [0, 1]. scipy's
  ``circvar`` returned ``2 ln(1/R)`` before 1.8 and ``1 - R`` since; we never call it.
* **circular standard deviation** ``sqrt(-2 ln R)`` (Mardia & Jupp 2000, §2.3.1).
* **wrapping** maps to the half-open interval ``[-pi, pi)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

TWO_PI = 2.0 * math.pi


def _as_array(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def wrap(angle: Any) -> np.ndarray:
    """Wrap angles to ``[-pi, pi)``: ``(a + pi) mod 2 pi - pi`` (exactly ``-pi`` maps to ``-pi``)."""
    a = _as_array(angle)
    return np.mod(a + math.pi, TWO_PI) - math.pi


def order_parameter(angles: Any, n: int = 1, axis: int | None = None, weights: Any = None) -> np.ndarray:
    """Complex order parameter ``Z_n = <e^{i n theta}>`` (weighted mean along ``axis``)."""
    a = _as_array(angles).astype(float, copy=False)
    e = np.exp(1j * n * a)
    if weights is None:
        return np.mean(e, axis=axis)
    w = np.broadcast_to(_as_array(weights).astype(float), a.shape)
    return np.sum(w * e, axis=axis) / np.sum(w, axis=axis)


def resultant_length(angles: Any, axis: int | None = None, weights: Any = None, n: int = 1) -> np.ndarray:
    """Mean resultant length ``R = |<e^{i n theta}>|`` in [0, 1]: 1 = all in phase, ~0 = incoherent."""
    return np.abs(order_parameter(angles, n=n, axis=axis, weights=weights))


def circular_mean(angles: Any, axis: int | None = None, weights: Any = None) -> np.ndarray:
    """Mean direction ``arg <e^{i theta}>`` in ``[-pi, pi)`` (undefined, returned as-is, when R = 0)."""
    return wrap(np.angle(order_parameter(angles, axis=axis, weights=weights)))


def circular_variance(angles: Any, axis: int | None = None, weights: Any = None) -> np.ndarray:
    """Circular variance ``V = 1 - R``; 0 = concentrated, 1 = uniform-like."""
    return 1.0 - resultant_length(angles, axis=axis, weights=weights)


def circular_std(angles: Any, axis: int | None = None, weights: Any = None) -> np.ndarray:
    """Circular standard deviation ``sqrt(-2 ln R)`` (radians; infinite when R = 0)."""
    r = resultant_length(angles, axis=axis, weights=weights)
    with np.errstate(divide="ignore"):
        return np.sqrt(-2.0 * np.log(r))


@dataclass(frozen=True)
class RayleighResult:
    """Rayleigh test of uniformity against a unimodal alternative."""

    n: int  # sample size
    R: float  # mean resultant length
    z: float  # Rayleigh statistic n R^2
    pvalue: float


def rayleigh_test(angles: Any) -> RayleighResult:
    """Rayleigh test (H0: uniform on the circle) for a 1-D sample.

    Statistic ``z = n R^2``; p-value by the standard approximation (Zar 1999, eq. 27.4; Greenwood &
    Durand 1955)::

        p = exp( sqrt(1 + 4 n + 4 (n^2 - R_n^2)) - (1 + 2 n) ),   R_n = n R,

    clipped to [0, 1]. It is accurate to a few 1e-3 already for n >= 10; for large n it tends to
    ``exp(-z)``.
    """
    a = _as_array(angles).astype(float).ravel()
    n = a.size
    if n == 0:
        raise ValueError("rayleigh_test needs at least one angle")
    R = float(np.abs(np.mean(np.exp(1j * a))))
    Rn = n * R
    p = math.exp(math.sqrt(1.0 + 4.0 * n + 4.0 * (n * n - Rn * Rn)) - (1.0 + 2.0 * n))
    return RayleighResult(n=n, R=R, z=n * R * R, pvalue=min(max(p, 0.0), 1.0))
