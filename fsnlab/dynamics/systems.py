"""Coupled phase-oscillator systems with complex multi-harmonic coupling and a one-step successor term.

The model (spec §2 sign convention, §3.4 kernel, §4 successor term)::

    dtheta_i/dt = omega_i
                + K sum_j W_ij sum_n Im( c_n e^{i n (theta_j      - theta_i)} )   # Kuramoto-Sakaguchi-Daido
                + K sum_j W_ij sum_n Im( d_n e^{i n (theta_{s(j)} - theta_i)} )   # successor (delay) term
                + sigma xi_i(t)                                                    # white noise

With ``c_n = K_n e^{-i alpha_n}`` the n-th term is ``K_n sin(n (theta_j - theta_i) - alpha_n)``: the
Kuramoto-Sakaguchi form of spec §2 (``alpha = -arg c``), Daido's higher harmonics for n >= 2. The
successor term is the FSN's delay term: oscillator i couples to the successor ``s(j)`` of every j it
is coupled to (default ``s(j) = j + 1``, and the last oscillator has none, as in a causal sequence).

Coupling modes:

* **mean field** (``W=None``): all-to-all uniform ``W_ij = 1/N`` (self included), evaluated in O(N H)
  per step through the Daido order parameters ``Z_n = (1/N) sum_j e^{i n theta_j}``;
* **dense** (``W`` an ``(N, N)`` array, or ``pair_c`` an ``(N, N, H)`` complex array of per-pair
  coefficients ``C_{ij,n}`` replacing ``W_ij c_n``): O(N^2 H) per step.

Because ``sum_j W_ij e^{i n theta_{s(j)}} = sum_k W'_ik e^{i n theta_k}`` with ``W'`` the
column-permuted weights, the successor term is itself a coupling matrix; in the mean field it is a
multiplicity-weighted order parameter. Both forms are built here once, for every backend.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from fsnlab.models.kernel import SIGN_CONVENTION

__all__ = [
    "SIGN_CONVENTION",
    "OscillatorSystem",
    "natural_frequencies",
    "default_successor",
    "successor_multiplicity",
    "successor_weights",
    "dense_coefficients",
    "rhs",
]


def default_successor(n: int) -> np.ndarray:
    """``s(j) = j + 1`` for ``j < n - 1``; the last oscillator has no successor (``-1``)."""
    s = np.arange(1, n + 1)
    s[-1] = -1
    return s


@dataclass
class OscillatorSystem:
    """A population of phase oscillators (see the module docstring for the equation).

    ``omega (N,)`` natural frequencies (rad per unit time); ``c (H,)`` complex harmonic coefficients
    (harmonic n = index + 1); ``K`` the overall coupling strength; ``d (H,)`` complex successor
    coefficients or None; ``W (N, N)`` real coupling weights or None for the uniform mean field;
    ``pair_c (N, N, H)`` complex per-pair coefficients (overrides ``W c`` for the delay-0 term);
    ``successor (N,)`` index of each oscillator's successor, ``-1`` for none; ``noise`` the
    amplitude sigma of additive white noise (Euler-Maruyama increments ``sigma sqrt(dt) N(0, 1)``).
    """

    omega: np.ndarray
    c: np.ndarray
    K: float = 1.0
    d: np.ndarray | None = None
    W: np.ndarray | None = None
    pair_c: np.ndarray | None = None
    successor: np.ndarray | None = None
    noise: float = 0.0
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.omega = np.asarray(self.omega, dtype=np.float64).ravel()
        self.c = np.atleast_1d(np.asarray(self.c, dtype=np.complex128))
        if self.d is not None:
            self.d = np.atleast_1d(np.asarray(self.d, dtype=np.complex128))
            if self.d.shape != self.c.shape:
                raise ValueError(f"d has {self.d.size} harmonics but c has {self.c.size}")
        n = self.n
        if self.W is not None:
            self.W = np.asarray(self.W, dtype=np.float64)
            if self.W.shape != (n, n):
                raise ValueError(f"W must be ({n}, {n}), got {self.W.shape}")
        if self.pair_c is not None:
            self.pair_c = np.asarray(self.pair_c, dtype=np.complex128)
            if self.pair_c.shape[:2] != (n, n):
                raise ValueError(f"pair_c must be ({n}, {n}, H), got {self.pair_c.shape}")
        self.successor = default_successor(n) if self.successor is None else np.asarray(self.successor, dtype=np.int64)
        if self.successor.shape != (n,) or self.successor.max() >= n or self.successor.min() < -1:
            raise ValueError("successor must hold one index in [-1, N) per oscillator")
        if self.noise < 0:
            raise ValueError("noise amplitude must be >= 0")

    @property
    def n(self) -> int:
        """Number of oscillators N."""
        return int(self.omega.size)

    @property
    def n_harmonics(self) -> int:
        """Number of harmonics H (the larger of c's and pair_c's)."""
        h = self.c.size
        if self.pair_c is not None:
            h = max(h, self.pair_c.shape[2])
        return int(h)

    @property
    def mean_field(self) -> bool:
        """True for all-to-all uniform coupling (the O(N) path)."""
        return self.W is None and self.pair_c is None

    def padded(self, coeffs: np.ndarray | None) -> np.ndarray:
        """Coefficients zero-padded to ``n_harmonics`` (zeros when None)."""
        out = np.zeros(self.n_harmonics, dtype=np.complex128)
        if coeffs is not None:
            out[: coeffs.size] = coeffs
        return out


def natural_frequencies(
    n: int,
    distribution: str = "lorentzian",
    width: float = 1.0,
    center: float = 0.0,
    method: str = "quantile",
    seed: int | None = 0,
) -> np.ndarray:
    """Natural frequencies for ``n`` oscillators.

    ``distribution``: ``lorentzian`` (Cauchy, half-width ``width`` = Delta, ``g(0) = 1/(pi Delta)``),
    ``gaussian`` (standard deviation ``width``) or ``identical``. ``method="quantile"`` places them
    at the quantiles ``(k + 1/2)/n`` (deterministic, small finite-size fluctuations, the usual
    choice for comparisons with N -> infinity theory); ``"random"`` draws them with ``seed``.
    """
    if distribution == "identical":
        return np.full(n, float(center))
    dist = {"lorentzian": stats.cauchy, "gaussian": stats.norm}.get(distribution)
    if dist is None:
        raise ValueError(f"unknown frequency distribution {distribution!r}; expected lorentzian, gaussian or identical")
    if method == "quantile":
        q = (np.arange(n) + 0.5) / n
        return center + width * dist.ppf(q)
    if method == "random":
        return center + width * dist.rvs(size=n, random_state=np.random.default_rng(seed))
    raise ValueError(f"unknown sampling method {method!r}; expected quantile or random")


def successor_multiplicity(successor: np.ndarray) -> np.ndarray:
    """``m_k = #{j : s(j) = k}``: the mean-field successor order parameter is ``(1/N) sum_k m_k e^{i n theta_k}``."""
    n = successor.size
    valid = successor >= 0
    return np.bincount(successor[valid], minlength=n).astype(np.float64)


def successor_weights(W: np.ndarray, successor: np.ndarray) -> np.ndarray:
    """``W'_ik = sum_{j : s(j) = k} W_ij``, so ``sum_j W_ij f(theta_{s(j)}) = sum_k W'_ik f(theta_k)``."""
    out = np.zeros_like(W)
    valid = np.nonzero(successor >= 0)[0]
    np.add.at(out.T, successor[valid], W.T[valid])
    return out


def dense_coefficients(system: OscillatorSystem, include_strength: bool = True) -> np.ndarray:
    """All coupling as one complex array ``C (H, N, N)`` including K and the successor term::

        dtheta_i/dt = omega_i + sum_n Im( e^{-i n theta_i} sum_k C[n, i, k] e^{i n theta_k} )

    ``include_strength=False`` leaves out the factor K. Cached on the system (O(N^2 H) to build).
    """
    key = ("dense", include_strength)
    if key in system._cache:
        return system._cache[key]
    n, h = system.n, system.n_harmonics
    W = system.W if system.W is not None else np.full((n, n), 1.0 / n)
    if system.pair_c is not None:
        C = np.zeros((h, n, n), dtype=np.complex128)
        C[: system.pair_c.shape[2]] = np.moveaxis(system.pair_c, 2, 0)
    else:
        C = system.padded(system.c)[:, None, None] * W[None]
    if system.d is not None:
        C = C + system.padded(system.d)[:, None, None] * successor_weights(W, system.successor)[None]
    if include_strength:
        C = system.K * C
    system._cache[key] = C
    return C


def rhs(system: OscillatorSystem, theta: np.ndarray) -> np.ndarray:
    """The deterministic right-hand side ``dtheta/dt (N,)`` in plain numpy (the reference for every backend)."""
    theta = np.asarray(theta, dtype=np.float64)
    n_h = np.arange(1, system.n_harmonics + 1)
    z = np.exp(1j * n_h[:, None] * theta[None, :])  # (H, N): e^{i n theta_k}
    if system.mean_field:
        m = successor_multiplicity(system.successor)
        field_n = system.padded(system.c) * z.sum(1)
        if system.d is not None:
            field_n = field_n + system.padded(system.d) * (z * m).sum(1)
        field_n = (system.K / system.n) * field_n  # (H,)
        return system.omega + np.imag(field_n[:, None] * np.conj(z)).sum(0)
    C = dense_coefficients(system)
    fields = np.einsum("nik,nk->ni", C, z)
    return system.omega + np.imag(fields * np.conj(z)).sum(0)


def lorentzian_g0(width: float) -> float:
    """``g(0)`` of a centred Lorentzian of half-width ``width``: ``1 / (pi Delta)``."""
    return 1.0 / (math.pi * width)


def gaussian_g0(width: float) -> float:
    """``g(0)`` of a centred Gaussian of standard deviation ``width``: ``1 / (sigma sqrt(2 pi))``."""
    return 1.0 / (width * math.sqrt(2.0 * math.pi))
