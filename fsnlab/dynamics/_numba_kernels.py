"""Compiled loops behind :func:`fsnlab.dynamics.simulate.simulate` (``backend="numba"``).

Kept apart so that importing :mod:`fsnlab.dynamics` does not import numba; ``cache=True`` stores
the compiled code next to this file (``__pycache__``), so only the first run pays the JIT cost.

Right-hand side (see :mod:`fsnlab.dynamics.systems`), with ``z_k^n = e^{i n theta_k}`` computed
by repeated complex multiplication (one sin/cos per oscillator per evaluation):

* mean field: ``F_n = (K/N) (c_n sum_k z_k^n + d_n sum_k m_k z_k^n)``,
  ``dtheta_i/dt = omega_i + sum_n Im(F_n conj(z_i^n))``;
* dense: ``F_{i,n} = sum_k C[n, i, k] z_k^n``, ``dtheta_i/dt = omega_i + sum_n Im(F_{i,n} conj(z_i^n))``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True)
def _powers(theta, zr, zi):
    """``zr[n, k] + i zi[n, k] = e^{i (n+1) theta_k}``."""
    H, N = zr.shape
    for k in range(N):
        c1 = math.cos(theta[k])
        s1 = math.sin(theta[k])
        pr, pi = c1, s1
        for n in range(H):
            zr[n, k] = pr
            zi[n, k] = pi
            pr, pi = pr * c1 - pi * s1, pr * s1 + pi * c1


@njit(cache=True)
def _rhs(theta, omega, k_over_n, c_re, c_im, d_re, d_im, mult, has_d, dense, C_re, C_im, zr, zi, out):
    H, N = zr.shape
    if dense:
        _powers(theta, zr, zi)
        for i in range(N):
            acc = omega[i]
            for n in range(H):
                fr = 0.0
                fi = 0.0
                for k in range(N):
                    a = C_re[n, i, k]
                    b = C_im[n, i, k]
                    fr += a * zr[n, k] - b * zi[n, k]
                    fi += a * zi[n, k] + b * zr[n, k]
                acc += fi * zr[n, i] - fr * zi[n, i]
            out[i] = acc
        return
    # mean field: one pass for the powers and the (successor-weighted) sums, one for the output
    S = np.zeros((4, H))  # rows: sum Re, sum Im, successor-weighted sum Re, Im
    for k in range(N):
        c1 = math.cos(theta[k])
        s1 = math.sin(theta[k])
        pr, pi = c1, s1
        m = mult[k]
        for n in range(H):
            zr[n, k] = pr
            zi[n, k] = pi
            S[0, n] += pr
            S[1, n] += pi
            if has_d:
                S[2, n] += m * pr
                S[3, n] += m * pi
            pr, pi = pr * c1 - pi * s1, pr * s1 + pi * c1
    fr = np.empty(H)
    fi = np.empty(H)
    for n in range(H):
        fr[n] = k_over_n * (c_re[n] * S[0, n] - c_im[n] * S[1, n] + d_re[n] * S[2, n] - d_im[n] * S[3, n])
        fi[n] = k_over_n * (c_re[n] * S[1, n] + c_im[n] * S[0, n] + d_re[n] * S[3, n] + d_im[n] * S[2, n])
    for i in range(N):
        acc = omega[i]
        for n in range(H):
            acc += fi[n] * zr[n, i] - fr[n] * zi[n, i]
        out[i] = acc


@njit(cache=True)
def _record(theta, n_rec, Zr, Zi, row):
    N = theta.size
    for k in range(N):
        c1 = math.cos(theta[k])
        s1 = math.sin(theta[k])
        pr, pi = c1, s1
        for n in range(n_rec):
            Zr[row, n] += pr
            Zi[row, n] += pi
            pr, pi = pr * c1 - pi * s1, pr * s1 + pi * c1
    for n in range(n_rec):
        Zr[row, n] /= N
        Zi[row, n] /= N


@njit(cache=True)
def integrate(theta0, omega, k_over_n, c_re, c_im, d_re, d_im, mult, has_d, dense, C_re, C_im,
              dt, n_steps, method, noise, seed, record_every, n_rec, record_phases, H):
    """Euler (method 0) or RK4 (method 1) with additive Euler-Maruyama noise; see the module docstring."""
    N = theta0.size
    n_records = n_steps // record_every + 1
    Zr = np.zeros((n_records, n_rec))
    Zi = np.zeros((n_records, n_rec))
    phases = np.empty((n_records if record_phases else 0, N))
    zr = np.empty((H, N))
    zi = np.empty((H, N))
    theta = theta0.copy()
    k1 = np.empty(N)
    k2 = np.empty(N)
    k3 = np.empty(N)
    k4 = np.empty(N)
    tmp = np.empty(N)
    if noise > 0:
        np.random.seed(seed)
    amp = noise * math.sqrt(dt)
    _record(theta, n_rec, Zr, Zi, 0)
    if record_phases:
        phases[0] = theta
    row = 1
    for step in range(n_steps):
        if method == 0:
            _rhs(theta, omega, k_over_n, c_re, c_im, d_re, d_im, mult, has_d, dense, C_re, C_im, zr, zi, k1)
            for i in range(N):
                theta[i] += dt * k1[i]
        else:
            _rhs(theta, omega, k_over_n, c_re, c_im, d_re, d_im, mult, has_d, dense, C_re, C_im, zr, zi, k1)
            for i in range(N):
                tmp[i] = theta[i] + 0.5 * dt * k1[i]
            _rhs(tmp, omega, k_over_n, c_re, c_im, d_re, d_im, mult, has_d, dense, C_re, C_im, zr, zi, k2)
            for i in range(N):
                tmp[i] = theta[i] + 0.5 * dt * k2[i]
            _rhs(tmp, omega, k_over_n, c_re, c_im, d_re, d_im, mult, has_d, dense, C_re, C_im, zr, zi, k3)
            for i in range(N):
                tmp[i] = theta[i] + dt * k3[i]
            _rhs(tmp, omega, k_over_n, c_re, c_im, d_re, d_im, mult, has_d, dense, C_re, C_im, zr, zi, k4)
            for i in range(N):
                theta[i] += (dt / 6.0) * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i])
        if noise > 0:
            for i in range(N):
                theta[i] += amp * np.random.standard_normal()
        if (step + 1) % record_every == 0:
            _record(theta, n_rec, Zr, Zi, row)
            if record_phases:
                phases[row] = theta
            row += 1
    return Zr, Zi, phases, theta
