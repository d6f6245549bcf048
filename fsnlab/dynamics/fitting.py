"""Estimate a coupling function from observed phase trajectories (spec §10: reading a coupling function).

Model (the equation of :mod:`fsnlab.dynamics.systems`, written with real Fourier coefficients
``c_n = a_n + i b_n``)::

    dtheta_i/dt = omega_i + sum_n [ a_n S_{i,n} + b_n C_{i,n} ]  (+ the same with d_n on successors)
    S_{i,n} = sum_j W_ij sin(n (theta_j - theta_i)),   C_{i,n} = sum_j W_ij cos(n (theta_j - theta_i))

since ``Im(c_n e^{i n phi}) = a_n sin(n phi) + b_n cos(n phi)``. The derivative comes from finite
differences of the sampled, unwrapped trajectory (central: O(dt^2) bias; forward: unbiased under
additive noise, O(dt) bias) or is given (e.g. the exact right-hand side). The natural frequencies
are eliminated per oscillator by demeaning (Frisch-Waugh), so ``N`` intercepts cost nothing;
``a_n, b_n`` then follow from one linear least-squares problem. The fitted ``c_n`` include the
overall strength K (``c_fit = K c``).

The reading of the result (frustration angle ``alpha_n = -arg c_n``, signed Daido amplitude) is done by
:func:`fsnlab.models.kernel.sakaguchi_angle` and :func:`~fsnlab.models.kernel.daido_amplitude`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from fsnlab.dynamics.systems import default_successor, successor_weights


@dataclass
class CouplingFit:
    """Least-squares estimate of a coupling function's Fourier coefficients.

    ``c (H,)`` complex (times K); ``d (H,)`` successor coefficients or None; ``omega`` per-oscillator
    or common natural frequencies; ``c_stderr``/``d_stderr`` standard errors of the real and imaginary
    parts (complex, ``stderr(a) + i stderr(b)``); ``residual_rms`` of the derivative; ``r2``.
    """

    c: np.ndarray
    d: np.ndarray | None
    omega: np.ndarray
    c_stderr: np.ndarray
    d_stderr: np.ndarray | None
    residual_rms: float
    r2: float
    n_samples: int

    @property
    def alpha(self) -> np.ndarray:
        """Kuramoto-Sakaguchi frustration angle per harmonic, ``c = K e^{-i alpha}``, alpha in (-pi/2, pi/2] (spec §10)."""
        import torch

        from fsnlab.models.kernel import sakaguchi_angle

        return sakaguchi_angle(torch.as_tensor(self.c)).numpy()

    @property
    def amplitude(self) -> np.ndarray:
        """Signed Daido amplitude K_n of the canonical form (negative = repulsive harmonic, spec §10)."""
        import torch

        from fsnlab.models.kernel import daido_amplitude

        return daido_amplitude(torch.as_tensor(self.c)).numpy()

    def coupling_function(self, phi: np.ndarray) -> np.ndarray:
        """``Gamma(phi) = sum_n Im(c_n e^{i n phi})`` of the fit (:func:`fsnlab.models.kernel.coupling_function`)."""
        import torch

        from fsnlab.models.kernel import coupling_function

        return coupling_function(torch.as_tensor(self.c), torch.as_tensor(np.asarray(phi, dtype=np.float64))).numpy()


def finite_difference(theta: np.ndarray, dt: float, scheme: str = "central") -> tuple[np.ndarray, np.ndarray]:
    """``(dtheta/dt, theta at the same samples)`` from a trajectory ``theta (S, N)`` sampled every ``dt``."""
    if scheme == "central":
        return (theta[2:] - theta[:-2]) / (2.0 * dt), theta[1:-1]
    if scheme == "forward":
        return (theta[1:] - theta[:-1]) / dt, theta[:-1]
    raise ValueError(f"unknown finite-difference scheme {scheme!r}; expected central or forward")


def _features(theta: np.ndarray, n_harmonics: int, W: np.ndarray | None, successor: np.ndarray | None) -> np.ndarray:
    """Regressors ``(S, N, 2H)`` = ``[S_{i,n}, C_{i,n}]``; with ``successor`` they use ``theta_{s(j)}``."""
    S_, N = theta.shape
    n = np.arange(1, n_harmonics + 1)
    z = np.exp(1j * theta[..., None] * n)  # (S, N, H)
    if W is None:
        if successor is None:
            field = z.mean(1, keepdims=True)  # (S, 1, H): Z_n
        else:
            m = np.bincount(successor[successor >= 0], minlength=N).astype(float)
            field = (z * m[None, :, None]).sum(1, keepdims=True) / N
    else:
        Wx = W if successor is None else successor_weights(W, successor)
        field = np.einsum("ik,skh->sih", Wx, z)  # (S, N, H)
    pull = field * np.conj(z)  # sum_j W_ij e^{i n (theta_j - theta_i)}
    return np.concatenate([pull.imag, pull.real], axis=-1)  # a_n multiplies Im, b_n multiplies Re


def fit_coupling_function(
    trajectories: np.ndarray | Sequence[np.ndarray],
    dt: float,
    n_harmonics: int,
    W: np.ndarray | None = None,
    successor: bool | np.ndarray = False,
    omega: str | np.ndarray = "individual",
    scheme: str = "central",
    derivatives: np.ndarray | Sequence[np.ndarray] | None = None,
) -> CouplingFit:
    """Fit ``c_n`` (and optionally ``d_n``) from one or several trajectories ``theta (S, N)``.

    ``W``: the coupling weights (None: the uniform mean field 1/N). ``successor``: also fit the delay
    coefficients ``d_n`` (True: the default successor ``j + 1``; or an index array). ``omega``:
    ``"individual"`` (one per oscillator), ``"common"`` (one for all), or a known ``(N,)`` array.
    ``derivatives``: the observed ``dtheta/dt`` at each sample instead of finite differences.

    In a uniform mean field the successor order parameter differs from the plain one by a single
    oscillator, so ``c`` and ``d`` are not separately identifiable there: fit ``d`` with a
    non-uniform ``W`` (as in the FSN, where W is the attention).
    """
    trajs = [np.asarray(trajectories, dtype=float)] if np.ndim(trajectories) == 2 else [np.asarray(t, dtype=float) for t in trajectories]
    derivs = None
    if derivatives is not None:
        derivs = [np.asarray(derivatives, dtype=float)] if np.ndim(derivatives) == 2 else [np.asarray(x, dtype=float) for x in derivatives]
    N = trajs[0].shape[1]
    succ = None
    if successor is not False:
        succ = default_successor(N) if successor is True else np.asarray(successor, dtype=np.int64)
    ys, Xs = [], []
    for k, th in enumerate(trajs):
        if derivs is not None:
            y, at = derivs[k], th
        else:
            y, at = finite_difference(th, dt, scheme)
        X = _features(at, n_harmonics, W, None)
        if succ is not None:
            X = np.concatenate([X, _features(at, n_harmonics, W, succ)], axis=-1)
        ys.append(y)
        Xs.append(X)
    y = np.concatenate(ys, 0)  # (S, N)
    X = np.concatenate(Xs, 0)  # (S, N, P)
    if isinstance(omega, str):
        if omega == "individual":
            y_mean, X_mean = y.mean(0, keepdims=True), X.mean(0, keepdims=True)
        elif omega == "common":
            y_mean, X_mean = y.mean((0, 1), keepdims=True), X.mean((0, 1), keepdims=True)
        else:
            raise ValueError(f"unknown omega mode {omega!r}; expected individual, common or an array")
        yc, Xc = y - y_mean, X - X_mean
    else:
        known = np.asarray(omega, dtype=float)
        yc, Xc = y - known[None, :], X
    P = X.shape[-1]
    A = Xc.reshape(-1, P)
    b = yc.reshape(-1)
    coef, *_ = np.linalg.lstsq(A, b, rcond=None)
    resid = b - A @ coef
    if isinstance(omega, str):
        om = (y_mean - (X_mean @ coef)).reshape(-1)
        om = om if omega == "individual" else np.full(N, om[0])
    else:
        om = np.asarray(omega, dtype=float)
    n_intercepts = 0 if not isinstance(omega, str) else N if omega == "individual" else 1
    dof = max(A.shape[0] - P - n_intercepts, 1)
    sigma2 = float(resid @ resid) / dof
    cov = sigma2 * np.linalg.pinv(A.T @ A)
    se = np.sqrt(np.clip(np.diag(cov), 0, None))
    H = n_harmonics
    c = coef[:H] + 1j * coef[H : 2 * H]
    c_se = se[:H] + 1j * se[H : 2 * H]
    d = d_se = None
    if succ is not None:
        d = coef[2 * H : 3 * H] + 1j * coef[3 * H : 4 * H]
        d_se = se[2 * H : 3 * H] + 1j * se[3 * H : 4 * H]
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return CouplingFit(
        c=c, d=d, omega=om, c_stderr=c_se, d_stderr=d_se,
        residual_rms=float(np.sqrt(np.mean(resid**2))),
        r2=1.0 - float(resid @ resid) / ss_tot if ss_tot > 0 else float("nan"),
        n_samples=int(b.size),
    )
