"""Oscillator dynamics for reading an FSN as a dynamical system (spec §2, §4, §10).

* :mod:`~fsnlab.dynamics.circular`: circular statistics (mean, R, variance = 1 - R, Rayleigh test).
* :mod:`~fsnlab.dynamics.systems` / :mod:`~fsnlab.dynamics.simulate`: Kuramoto, Kuramoto-Sakaguchi and
  Kuramoto-Daido populations with complex multi-harmonic coupling, natural frequencies, noise and the
  FSN's one-step successor term; numba, numpy and torch integrators (Euler, RK4).
* :mod:`~fsnlab.dynamics.analytic`: closed-form results the simulators are tested against.
* :mod:`~fsnlab.dynamics.fitting`: estimate a coupling function's Fourier coefficients from trajectories.
* :mod:`~fsnlab.dynamics.population`: run a trained layer's kernel as a population (R(t), R vs K).
* :mod:`~fsnlab.dynamics.identity`: verify the delay identity (spec §4) on a trained model.
"""

from fsnlab.dynamics.circular import (
    circular_mean,
    circular_std,
    circular_variance,
    order_parameter,
    rayleigh_test,
    resultant_length,
    wrap,
)
from fsnlab.dynamics.simulate import Trajectory, simulate, simulate_torch
from fsnlab.dynamics.systems import OscillatorSystem, natural_frequencies, rhs

__all__ = [
    "OscillatorSystem",
    "Trajectory",
    "circular_mean",
    "circular_std",
    "circular_variance",
    "natural_frequencies",
    "order_parameter",
    "rayleigh_test",
    "resultant_length",
    "rhs",
    "simulate",
    "simulate_torch",
    "wrap",
]
