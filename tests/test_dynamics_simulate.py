"""Oscillator simulators (fsnlab.dynamics.simulate): backends agree, solve_ivp agrees, and the
analytic results of Kuramoto, Sakaguchi-Kuramoto, Ott-Antonsen and Daido are reproduced."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from fsnlab.dynamics import OscillatorSystem, natural_frequencies, rhs, simulate, simulate_torch
from fsnlab.dynamics.analytic import (
    daido_inphase_frequency,
    gaussian_critical_coupling,
    gaussian_density,
    lorentzian_critical_coupling,
    ott_antonsen_frequency,
    ott_antonsen_R,
    sakaguchi_locked_frequency,
    self_consistent_R,
)
from fsnlab.dynamics.systems import dense_coefficients, successor_weights

C2 = np.array([0.8 * np.exp(-0.4j), -0.3 * np.exp(0.2j)])  # attractive, frustrated first harmonic; repulsive second
D2 = np.array([0.25 * np.exp(0.7j), 0.1 * np.exp(-1.1j)])


def _systems(n: int = 16) -> dict[str, OscillatorSystem]:
    rng = np.random.default_rng(3)
    om = rng.normal(0.0, 0.4, n)
    W = rng.random((n, n))
    W /= W.sum(1, keepdims=True)
    pair = (rng.normal(size=(n, n, 2)) + 1j * rng.normal(size=(n, n, 2))) / n
    return {
        "mean_field": OscillatorSystem(om, C2, K=1.3),
        "mean_field_delay": OscillatorSystem(om, C2, K=1.3, d=D2),
        "dense_delay": OscillatorSystem(om, C2, K=0.9, d=D2, W=W),
        "pair": OscillatorSystem(om, C2, K=1.1, pair_c=pair, d=D2, W=W),
    }


def _explicit_rhs(s: OscillatorSystem, theta: np.ndarray) -> np.ndarray:
    """The model equation as a literal double sum (no order parameters, no matrices)."""
    n = s.n
    W = s.W if s.W is not None else np.full((n, n), 1.0 / n)
    out = s.omega.copy()
    for i in range(n):
        for j in range(n):
            for h in range(s.n_harmonics):
                m = h + 1
                cij = s.pair_c[i, j, h] if s.pair_c is not None else W[i, j] * s.c[h]
                out[i] += s.K * (cij * np.exp(1j * m * (theta[j] - theta[i]))).imag
                if s.d is not None and s.successor[j] >= 0:
                    out[i] += s.K * W[i, j] * (s.d[h] * np.exp(1j * m * (theta[s.successor[j]] - theta[i]))).imag
    return out


@pytest.mark.parametrize("name", ["mean_field", "mean_field_delay", "dense_delay", "pair"])
def test_rhs_is_the_model_equation(name):
    s = _systems(12)[name]
    theta = np.random.default_rng(0).uniform(-7, 7, s.n)
    np.testing.assert_allclose(rhs(s, theta), _explicit_rhs(s, theta), atol=1e-12)


def test_sakaguchi_sign_convention_of_spec_section_2():
    """c = e^{-i alpha} gives (K/N) sum_j sin(theta_j - theta_i - alpha) (spec §2)."""
    rng = np.random.default_rng(1)
    n, K, alpha = 9, 1.7, 0.6
    theta, om = rng.uniform(-3, 3, n), rng.normal(size=n)
    s = OscillatorSystem(om, [np.exp(-1j * alpha)], K=K)
    expected = om + (K / n) * np.sin(theta[None, :] - theta[:, None] - alpha).sum(1)
    np.testing.assert_allclose(rhs(s, theta), expected, atol=1e-13)


def test_successor_term_is_a_column_permuted_coupling():
    rng = np.random.default_rng(2)
    n = 7
    W = rng.random((n, n))
    succ = np.array([3, 0, -1, 6, 2, 2, 1])
    Wp = successor_weights(W, succ)
    f = rng.normal(size=n)
    np.testing.assert_allclose(Wp @ f, np.array([sum(W[i, j] * f[succ[j]] for j in range(n) if succ[j] >= 0) for i in range(n)]))


@pytest.mark.parametrize("method", ["euler", "rk4"])
@pytest.mark.parametrize("name", ["mean_field", "mean_field_delay", "dense_delay", "pair"])
def test_backends_agree(name, method):
    s = _systems()[name]
    theta0 = np.random.default_rng(4).uniform(-math.pi, math.pi, s.n)
    runs = {b: simulate(s, theta0, 0.02, 100, method=method, backend=b, record_every=10) for b in ("numba", "numpy", "torch")}
    for b in ("numpy", "torch"):
        np.testing.assert_allclose(runs[b].final, runs["numba"].final, atol=1e-11)
        np.testing.assert_allclose(runs[b].Z, runs["numba"].Z, atol=1e-11)
    assert runs["numba"].Z.shape == (11, 2) and runs["numba"].t[-1] == pytest.approx(2.0)


@pytest.mark.parametrize("name", ["mean_field_delay", "dense_delay"])
def test_rk4_matches_solve_ivp_and_euler_converges_at_first_order(name):
    s = _systems()[name]
    theta0 = np.random.default_rng(5).uniform(-math.pi, math.pi, s.n)
    T = 4.0
    ref = solve_ivp(lambda t, y: rhs(s, y), (0, T), theta0, method="DOP853", rtol=1e-12, atol=1e-12).y[:, -1]
    rk4 = simulate(s, theta0, 0.01, 400, method="rk4").final
    assert np.abs(rk4 - ref).max() < 1e-8
    e1 = np.abs(simulate(s, theta0, 0.01, 400, method="euler").final - ref).max()
    e2 = np.abs(simulate(s, theta0, 0.005, 800, method="euler").final - ref).max()
    assert 1.8 < e1 / e2 < 2.2


def test_torch_batch_over_coupling_strengths_matches_single_runs():
    s = _systems()["mean_field_delay"]
    theta0 = np.random.default_rng(6).uniform(-math.pi, math.pi, (3, s.n))
    Ks = np.array([0.2, 1.0, 2.5])
    batch = simulate_torch(s, theta0, 0.05, 100, K=Ks, record_every=20)
    for b, k in enumerate(Ks):
        single = simulate(OscillatorSystem(s.omega, s.c, K=k, d=s.d), theta0[b], 0.05, 100, record_every=20)
        np.testing.assert_allclose(batch.Z[b], single.Z, atol=1e-11)


# -- analytic results ------------------------------------------------------------------------------

N_LARGE = 4000


def _stationary_R(system: OscillatorSystem, t_max: float = 150.0, dt: float = 0.1, n: int = 1, seed: int = 0) -> float:
    theta0 = np.random.default_rng(seed).uniform(-math.pi, math.pi, system.n)
    traj = simulate(system, theta0, dt, int(t_max / dt), record_every=5)
    return float(traj.stationary_R(n))


def test_kuramoto_lorentzian_critical_coupling_and_ott_antonsen_R():
    """K_c = 2/(pi g(0)) = 2 Delta, and R = sqrt(1 - 2 Delta / K) above it (tolerance 0.02 at N = 4000)."""
    delta = 0.5
    Kc = lorentzian_critical_coupling(delta)
    assert Kc == pytest.approx(2 * delta)
    om = natural_frequencies(N_LARGE, "lorentzian", delta)
    assert _stationary_R(OscillatorSystem(om, [1.0], K=0.6 * Kc)) < 0.05
    Ks = np.array([1.3, 1.6, 2.0, 3.0]) * Kc
    R = np.array([_stationary_R(OscillatorSystem(om, [1.0], K=k)) for k in Ks])
    np.testing.assert_allclose(R, ott_antonsen_R(Ks, delta), atol=0.02)
    # R^2 = 1 - K_c / K: a straight line in 1/K whose slope estimates K_c (within 4%)
    slope, intercept = np.polyfit(1 / Ks, R**2, 1)
    assert -slope == pytest.approx(Kc, rel=0.04) and intercept == pytest.approx(1.0, abs=0.03)


def test_kuramoto_gaussian_critical_coupling_and_self_consistency():
    """K_c = 2/(pi g(0)) = sqrt(8/pi) sigma for a Gaussian; R matches Kuramoto's self-consistency (0.02)."""
    sigma = 0.5
    Kc = gaussian_critical_coupling(sigma)
    assert Kc == pytest.approx(math.sqrt(8 / math.pi) * sigma)
    dens = lambda w: gaussian_density(w, sigma)  # noqa: E731
    assert self_consistent_R(0.999 * Kc, dens) == 0.0
    assert 0 < self_consistent_R(1.001 * Kc, dens) < 0.1
    om = natural_frequencies(N_LARGE, "gaussian", sigma)
    assert _stationary_R(OscillatorSystem(om, [1.0], K=0.7 * Kc)) < 0.05
    for f in (1.2, 1.6):
        assert _stationary_R(OscillatorSystem(om, [1.0], K=f * Kc)) == pytest.approx(self_consistent_R(f * Kc, dens), abs=0.02)


def test_sakaguchi_identical_oscillators_lock_at_omega_minus_K_sin_alpha():
    """In-phase state of identical oscillators: Omega = omega - K sin(alpha) (spec §2 convention)."""
    omega, K, alpha = 1.0, 2.0, 0.5
    theta0 = np.random.default_rng(0).uniform(-0.5, 0.5, 16)
    traj = simulate(OscillatorSystem(np.full(16, omega), [np.exp(-1j * alpha)], K=K), theta0, 0.01, 3000, record_every=100)
    assert traj.R()[-1] == pytest.approx(1.0, abs=1e-9)
    psi = np.unwrap(np.angle(traj.Z[:, 0]))
    Omega = (psi[-1] - psi[-11]) / (traj.t[-1] - traj.t[-11])
    assert Omega == pytest.approx(sakaguchi_locked_frequency(omega, K, alpha), abs=1e-8)
    assert Omega < omega  # a positive lag slows the locked group in this convention


def test_ott_antonsen_with_frustration():
    """Lorentzian + lag: R = sqrt(1 - 2 Delta/(K cos alpha)), Omega = omega_0 - K sin alpha + Delta tan alpha."""
    delta, K, alpha, center = 0.4, 2.5, 0.6, 1.0
    om = natural_frequencies(N_LARGE, "lorentzian", delta, center=center)
    theta0 = np.random.default_rng(0).uniform(-math.pi, math.pi, N_LARGE)
    traj = simulate(OscillatorSystem(om, [np.exp(-1j * alpha)], K=K), theta0, 0.05, 3000, record_every=10)
    assert traj.stationary_R() == pytest.approx(float(ott_antonsen_R(K, delta, alpha)), abs=0.02)
    psi = np.unwrap(np.angle(traj.Z[:, 0]))
    half = psi.size // 2
    Omega = (psi[-1] - psi[half]) / (traj.t[-1] - traj.t[half])
    assert Omega == pytest.approx(ott_antonsen_frequency(K, delta, alpha, center), abs=0.01)


def test_daido_inphase_frequency_and_two_cluster_state():
    c = np.array([0.6 * np.exp(-0.3j), 0.4 * np.exp(0.5j), -0.1j])
    omega, K = 0.3, 1.5
    theta0 = np.random.default_rng(1).uniform(-0.3, 0.3, 12)
    traj = simulate(OscillatorSystem(np.full(12, omega), c, K=K), theta0, 0.01, 4000, record_every=100)
    psi = np.unwrap(np.angle(traj.Z[:, 0]))
    Omega = (psi[-1] - psi[-11]) / (traj.t[-1] - traj.t[-11])
    assert traj.R()[-1] == pytest.approx(1.0, abs=1e-8)
    assert Omega == pytest.approx(daido_inphase_frequency(omega, K, c), abs=1e-8)
    # a pure attractive second harmonic splits identical oscillators into two antipodal clusters
    theta0 = np.random.default_rng(2).uniform(-math.pi, math.pi, 40)
    traj = simulate(OscillatorSystem(np.zeros(40), [0.0, 1.0], K=1.0), theta0, 0.05, 2000, record_every=100)
    assert traj.R(2)[-1] == pytest.approx(1.0, abs=1e-6) and traj.R(1)[-1] < 0.9


def test_euler_maruyama_noise_diffuses_at_sigma_squared():
    """Uncoupled noisy oscillators: Var(theta(t) - omega t) = sigma^2 t (numba and torch)."""
    n, sigma, T, dt = 3000, 0.3, 4.0, 0.02
    s = OscillatorSystem(np.full(n, 0.7), [0.0], K=0.0, noise=sigma)
    for backend in ("numba", "torch"):
        traj = simulate(s, np.zeros(n), dt, int(T / dt), method="euler", backend=backend, seed=3)
        spread = traj.final - 0.7 * T
        assert spread.mean() == pytest.approx(0.0, abs=4 * sigma * math.sqrt(T / n))
        assert spread.var() == pytest.approx(sigma**2 * T, rel=0.1)  # ~4 standard errors at n = 3000
    # reproducible by seed
    a = simulate(s, np.zeros(n), dt, 10, method="euler", seed=5).final
    b = simulate(s, np.zeros(n), dt, 10, method="euler", seed=5).final
    np.testing.assert_array_equal(a, b)


def test_dense_coefficients_include_strength_and_delay():
    s = _systems(6)["dense_delay"]
    C = dense_coefficients(s)
    C1 = dense_coefficients(s, include_strength=False)
    np.testing.assert_allclose(C, s.K * C1)
    assert C.shape == (2, 6, 6)


def test_bad_arguments():
    s = _systems(5)["mean_field"]
    with pytest.raises(ValueError):
        simulate(s, np.zeros(4), 0.1, 10)
    with pytest.raises(ValueError):
        simulate(s, np.zeros(5), 0.1, 10, method="leapfrog")
    with pytest.raises(ValueError):
        simulate(s, np.zeros(5), 0.1, 10, backend="jax")
    with pytest.raises(ValueError):
        OscillatorSystem(np.zeros(3), [1.0], W=np.ones((2, 2)))
    with pytest.raises(ValueError):
        natural_frequencies(3, "uniform")
