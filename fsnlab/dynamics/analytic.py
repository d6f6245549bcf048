"""Closed-form results for Kuramoto-type populations, in the sign convention of spec §2.

Convention: ``dtheta_i/dt = omega_i + (K/N) sum_j sin(theta_j - theta_i - alpha)`` (Sakaguchi &
Kuramoto 1986 with the lag entering as ``-alpha``), i.e. the coefficient ``c_1 = e^{-i alpha}`` of
:mod:`fsnlab.models.kernel`. These are the references the simulators are tested against.

* **Critical coupling** (Kuramoto 1975): the incoherent state loses stability at
  ``K_c = 2 / (pi g(0))`` for a symmetric unimodal frequency density g; ``2 Delta`` for a Lorentzian
  of half-width Delta, ``sqrt(8/pi) sigma`` for a Gaussian.
* **Self-consistency** (Kuramoto 1975; alpha = 0): the stationary R solves
  ``1 = K int_{-pi/2}^{pi/2} cos^2(x) g(K R sin x) dx`` (locked oscillators; drifters contribute 0).
* **Ott-Antonsen** (Ott & Antonsen 2008) for a Lorentzian centred at omega_0, with the lag alpha::

      dZ/dt = (i omega_0 - Delta) Z + (K/2) (e^{-i alpha} Z - e^{i alpha} conj(Z) Z^2)

  so ``dR/dt = -Delta R + (K/2) cos(alpha) R (1 - R^2)`` and ``dpsi/dt = omega_0 - (K/2) sin(alpha) (1 + R^2)``:
  stationary ``R = sqrt(1 - 2 Delta / (K cos alpha))`` for ``K cos alpha > 2 Delta`` and the
  collective frequency ``Omega = omega_0 - K sin(alpha) + Delta tan(alpha)``.
* **Identical oscillators** (Delta = 0): the in-phase state rotates at ``Omega = omega - K sin alpha``
  (Sakaguchi), and with Daido harmonics ``Omega = omega + K Gamma(0) = omega + K sum_n Im c_n``.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
from scipy import integrate, optimize

from fsnlab.dynamics.systems import gaussian_g0, lorentzian_g0


def critical_coupling(g0: float) -> float:
    """Kuramoto's ``K_c = 2 / (pi g(0))``."""
    return 2.0 / (math.pi * g0)


def lorentzian_critical_coupling(width: float) -> float:
    """``K_c = 2 Delta`` for a Lorentzian of half-width Delta."""
    return critical_coupling(lorentzian_g0(width))


def gaussian_critical_coupling(width: float) -> float:
    """``K_c = sqrt(8/pi) sigma`` for a Gaussian of standard deviation sigma."""
    return critical_coupling(gaussian_g0(width))


def lorentzian_density(omega: np.ndarray, width: float, center: float = 0.0) -> np.ndarray:
    """``g(omega) = Delta / (pi ((omega - omega_0)^2 + Delta^2))``."""
    return width / (math.pi * ((np.asarray(omega) - center) ** 2 + width**2))


def gaussian_density(omega: np.ndarray, width: float, center: float = 0.0) -> np.ndarray:
    """``g(omega) = exp(-(omega - omega_0)^2 / (2 sigma^2)) / (sigma sqrt(2 pi))``."""
    x = (np.asarray(omega) - center) / width
    return np.exp(-0.5 * x * x) / (width * math.sqrt(2.0 * math.pi))


def ott_antonsen_R(K: float | np.ndarray, width: float, alpha: float = 0.0) -> np.ndarray:
    """Stationary ``R = sqrt(1 - 2 Delta / (K cos alpha))`` (0 below threshold), Lorentzian half-width Delta."""
    k_eff = np.asarray(K, dtype=float) * math.cos(alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = 1.0 - 2.0 * width / k_eff
    return np.where(k_eff > 2.0 * width, np.sqrt(np.clip(r2, 0.0, None)), 0.0)


def ott_antonsen_frequency(K: float, width: float, alpha: float, center: float = 0.0) -> float:
    """Collective frequency of the partially locked state: ``omega_0 - K sin(alpha) + Delta tan(alpha)``."""
    return center - K * math.sin(alpha) + width * math.tan(alpha)


def sakaguchi_locked_frequency(omega: float, K: float, alpha: float) -> float:
    """In-phase state of identical oscillators: ``Omega = omega - K sin(alpha)`` (spec §2 sign)."""
    return omega - K * math.sin(alpha)


def daido_inphase_frequency(omega: float, K: float, c: np.ndarray) -> float:
    """In-phase state of identical oscillators with harmonics: ``omega + K Gamma(0)``, ``Gamma(0) = sum_n Im c_n``.

    ``Gamma`` is evaluated by :func:`fsnlab.models.kernel.coupling_function` (the one definition).
    """
    import torch

    from fsnlab.models.kernel import coupling_function

    gamma0 = coupling_function(torch.as_tensor(np.asarray(c, dtype=np.complex128)), torch.zeros(1, dtype=torch.float64))
    return float(omega + K * gamma0.item())


def self_consistent_R(K: float, density: Callable[[np.ndarray], np.ndarray]) -> float:
    """Kuramoto's stationary R for a symmetric unimodal ``density`` (alpha = 0): the root in (0, 1] of
    ``1 = K int_{-pi/2}^{pi/2} cos^2 x g(K R sin x) dx``; 0 when only the incoherent state exists."""

    def excess(r: float) -> float:
        val, _ = integrate.quad(lambda x: math.cos(x) ** 2 * float(density(K * r * math.sin(x))), -math.pi / 2, math.pi / 2,
                                epsabs=1e-13, epsrel=1e-12)
        return K * val - 1.0

    if excess(1e-12) <= 0:
        return 0.0
    if excess(1.0) >= 0:
        return 1.0
    return float(optimize.brentq(excess, 1e-12, 1.0, xtol=1e-13))
