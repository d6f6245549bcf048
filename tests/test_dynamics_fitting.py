"""Coupling-function fitting (fsnlab.dynamics.fitting): planted coefficients are recovered."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fsnlab.dynamics import OscillatorSystem, natural_frequencies, rhs, simulate
from fsnlab.dynamics.fitting import finite_difference, fit_coupling_function

ALPHA = 0.4
C = np.array([0.9 * np.exp(-1j * ALPHA), -0.35 * np.exp(-1j * -0.3)])  # frustrated attraction + repulsive 2nd harmonic


def _trajectories(system: OscillatorSystem, runs: int = 5, steps: int = 400, dt: float = 0.01, method: str = "rk4"):
    rng = np.random.default_rng(0)
    return [simulate(system, rng.uniform(-math.pi, math.pi, system.n), dt, steps, method=method, record_phases=True, seed=k).theta
            for k in range(runs)]


def test_recovers_planted_sakaguchi_angle_and_daido_amplitudes():
    om = natural_frequencies(40, "gaussian", 0.3, method="random", seed=1)
    fit = fit_coupling_function(_trajectories(OscillatorSystem(om, C, K=1.0)), 0.01, n_harmonics=2)
    np.testing.assert_allclose(fit.c, C, atol=1e-4)
    np.testing.assert_allclose(fit.alpha, [ALPHA, -0.3], atol=1e-4)  # alpha = -arg c, spec §10
    np.testing.assert_allclose(fit.amplitude, [0.9, -0.35], atol=1e-4)  # negative = repulsive
    np.testing.assert_allclose(fit.omega, om, atol=1e-4)
    assert fit.r2 > 0.999999
    phi = np.linspace(-math.pi, math.pi, 9)
    np.testing.assert_allclose(fit.coupling_function(phi), (C[None, :] * np.exp(1j * np.outer(phi, [1, 2]))).imag.sum(1), atol=1e-4)


def test_recovers_successor_coefficients_with_structured_coupling():
    rng = np.random.default_rng(2)
    n = 30
    W = rng.random((n, n)) ** 3
    W /= W.sum(1, keepdims=True)
    D = np.array([0.4 * np.exp(0.7j), 0.2 * np.exp(-1.0j)])
    om = rng.normal(0, 0.3, n)
    s = OscillatorSystem(om, C, K=1.0, d=D, W=W)
    fit = fit_coupling_function(_trajectories(s), 0.01, 2, W=W, successor=True)
    np.testing.assert_allclose(fit.c, C, atol=1e-4)
    np.testing.assert_allclose(fit.d, D, atol=1e-4)


def test_exact_derivatives_give_exact_coefficients():
    om = natural_frequencies(20, "lorentzian", 0.2, method="random", seed=3)
    s = OscillatorSystem(om, C, K=1.0)
    trajs = _trajectories(s, runs=2, steps=100)
    derivs = [np.array([rhs(s, th) for th in traj]) for traj in trajs]
    fit = fit_coupling_function(trajs, 0.01, 2, derivatives=derivs, omega=om)
    np.testing.assert_allclose(fit.c, C, atol=1e-10)


def test_noisy_data_within_standard_errors():
    om = natural_frequencies(40, "gaussian", 0.3, method="random", seed=4)
    s = OscillatorSystem(om, C, K=1.0, noise=0.05)
    fit = fit_coupling_function(_trajectories(s, runs=6, steps=600, method="euler"), 0.01, 2, scheme="forward")
    err = np.abs(fit.c - C)
    assert np.all(err < 0.08)
    assert np.all(err.real < 5 * np.abs(fit.c_stderr) + 0.01)
    assert fit.alpha[0] == pytest.approx(ALPHA, abs=0.08)


def test_finite_difference_schemes():
    t = np.linspace(0, 1, 101)[:, None] * np.array([[1.0, 2.0]])
    d, at = finite_difference(t ** 2, 0.01, "central")
    np.testing.assert_allclose(d[:, 0], 2 * np.sqrt(at[:, 0]), atol=1e-9)  # d(x^2)/dx = 2x, exact for central differences
    d, at = finite_difference(t, 0.01, "forward")
    np.testing.assert_allclose(d, np.array([[1.0, 2.0]]).repeat(100, 0), atol=1e-9)
    with pytest.raises(ValueError):
        finite_difference(t, 0.01, "backward")
