"""Circular statistics (fsnlab.dynamics.circular): definitions, edge cases, Rayleigh p-values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from fsnlab.dynamics.circular import (
    circular_mean,
    circular_std,
    circular_variance,
    order_parameter,
    rayleigh_test,
    resultant_length,
    wrap,
)


def test_wrap_is_half_open_and_periodic():
    x = np.array([-math.pi, math.pi, 3 * math.pi, -3 * math.pi, 0.5, 2 * math.pi + 0.5, -7.0])
    w = wrap(x)
    assert np.all(w >= -math.pi) and np.all(w < math.pi)
    assert w[0] == pytest.approx(-math.pi) and w[1] == pytest.approx(-math.pi)
    np.testing.assert_allclose(np.exp(1j * w), np.exp(1j * x), atol=1e-12)
    assert wrap(torch.tensor([4.0])).item() == pytest.approx(4.0 - 2 * math.pi)


def test_mean_and_resultant_length():
    a = np.array([0.1, -0.1, 0.3, -0.3]) + 2.0
    assert circular_mean(a) == pytest.approx(2.0)
    assert resultant_length(a) == pytest.approx((2 * math.cos(0.1) + 2 * math.cos(0.3)) / 4)
    # across the branch cut
    assert circular_mean(np.array([math.pi - 0.1, -math.pi + 0.1])) == pytest.approx(-math.pi, abs=1e-12)
    # weights and axes
    w = np.array([1.0, 0.0, 0.0, 0.0])
    assert circular_mean(a, weights=w) == pytest.approx(2.1)
    grid = np.stack([a, a + 1.0])
    np.testing.assert_allclose(circular_mean(grid, axis=1), [2.0, 3.0])


def test_variance_is_one_minus_R_and_std():
    rng = np.random.default_rng(0)
    a = rng.vonmises(0.5, 2.0, size=1000)
    R = resultant_length(a)
    assert circular_variance(a) == pytest.approx(1 - R)
    assert circular_std(a) == pytest.approx(math.sqrt(-2 * math.log(R)))
    assert circular_variance(np.zeros(5)) == pytest.approx(0.0)
    assert circular_variance(np.linspace(0, 2 * math.pi, 8, endpoint=False)) == pytest.approx(1.0)
    # scipy >= 1.8 agrees with 1 - R for its own circvar
    assert stats.circvar(a) == pytest.approx(1 - R, rel=1e-9)


def test_daido_order_parameter():
    two_clusters = np.array([0.3, 0.3 + math.pi] * 10)
    assert abs(order_parameter(two_clusters, n=1)) == pytest.approx(0.0, abs=1e-12)
    assert abs(order_parameter(two_clusters, n=2)) == pytest.approx(1.0)
    assert resultant_length(two_clusters, n=2) == pytest.approx(1.0)


def test_rayleigh_test():
    rng = np.random.default_rng(1)
    conc = rng.vonmises(0.0, 2.0, size=50)
    res = rayleigh_test(conc)
    assert res.pvalue < 1e-4 and res.z == pytest.approx(50 * res.R**2)
    # under H0 the p-values are uniform: reject ~5% at 0.05
    p = np.array([rayleigh_test(rng.uniform(-math.pi, math.pi, 30)).pvalue for _ in range(2000)])
    assert 0.035 < np.mean(p < 0.05) < 0.065
    # the approximation against the exact null distribution (Monte Carlo, n = 10)
    draws = rng.uniform(-math.pi, math.pi, size=(200_000, 10))
    z_null = 10 * np.abs(np.exp(1j * draws).mean(1)) ** 2
    for z0 in (2.9, 4.3):  # p around 0.05 and 0.01
        R0 = math.sqrt(z0 / 10)
        approx = rayleigh_test(_sample_with_R(R0, 10)).pvalue
        assert approx == pytest.approx(np.mean(z_null > z0), rel=0.08)
    with pytest.raises(ValueError):
        rayleigh_test([])


def _sample_with_R(R: float, n: int) -> np.ndarray:
    """n angles whose resultant length is exactly R: two symmetric groups at +-x with cos x = R."""
    x = math.acos(R)
    return np.array([x, -x] * (n // 2))
