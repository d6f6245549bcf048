"""Integrators for :class:`~fsnlab.dynamics.systems.OscillatorSystem`: numba (CPU), numpy and torch.

All three integrate the same equation (see :mod:`fsnlab.dynamics.systems`) with the same schemes:

* ``method="euler"``: ``theta += dt f(theta)``;
* ``method="rk4"``: classical fourth-order Runge-Kutta on the drift;
* noise (``system.noise = sigma > 0``): an additive Euler-Maruyama increment ``sigma sqrt(dt) xi``
  after the drift step (for additive noise this is a consistent scheme of strong order 1/2 with
  either drift method).

Cost per right-hand side: O(N H) in the mean field (order parameters), O(N^2 H) with dense
coupling. Phases are carried unwrapped in float64 (torch: any float dtype, batched over initial
conditions and coupling strengths, on any device). Every simulator records the Daido order
parameters ``Z_n(t) = (1/N) sum_j e^{i n theta_j(t)}`` every ``record_every`` steps, and optionally
the phases.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from fsnlab.dynamics.systems import OscillatorSystem, dense_coefficients, rhs, successor_multiplicity
from fsnlab.models.kernel import SIGN_CONVENTION

METHODS = {"euler": 0, "rk4": 1}
BACKENDS = ("numba", "numpy", "torch")


@dataclass
class Trajectory:
    """A simulated run. ``t (S,)``; ``Z (..., S, H)`` complex order parameters (harmonic n = index + 1);
    ``theta (..., S, N)`` recorded phases or None; ``final (..., N)`` the last state. Leading ``...``
    are the batch dimensions of the torch simulator (none for numba/numpy)."""

    t: np.ndarray
    Z: np.ndarray
    theta: np.ndarray | None
    final: np.ndarray

    def R(self, n: int = 1) -> np.ndarray:
        """``|Z_n(t)|``, the Kuramoto (n = 1) or Daido (n >= 2) order parameter over time."""
        return np.abs(self.Z[..., n - 1])

    def stationary_R(self, n: int = 1, fraction: float = 0.5) -> np.ndarray:
        """Time average of ``R_n`` over the last ``fraction`` of the records."""
        r = self.R(n)
        start = int(round(r.shape[-1] * (1 - fraction)))
        return r[..., start:].mean(-1)

    def to_dataset(self) -> Any:
        """An ``xarray.Dataset`` with ``R``/``psi`` over ``(time, harmonic)`` (plus batch dims ``run_k``)."""
        import xarray as xr

        batch = [f"run_{k}" for k in range(self.Z.ndim - 2)]
        dims = (*batch, "time", "harmonic")
        coords = {"time": ("time", self.t, {"units": "1 (model time)", "long_name": "time"}),
                  "harmonic": ("harmonic", np.arange(1, self.Z.shape[-1] + 1), {"long_name": "harmonic order n"})}
        ds = xr.Dataset(
            {
                "R": (dims, np.abs(self.Z), {"units": "1", "long_name": "order parameter modulus |Z_n|", "valid_min": 0.0, "valid_max": 1.0}),
                "psi": (dims, np.angle(self.Z), {"units": "rad", "long_name": "order parameter phase arg Z_n"}),
            },
            coords=coords,
            attrs={"sign_convention": SIGN_CONVENTION},
        )
        if self.theta is not None:
            ds["theta"] = ((*batch, "time", "osc"), self.theta, {"units": "rad", "long_name": "oscillator phase (unwrapped)"})
        return ds


def simulate(
    system: OscillatorSystem,
    theta0: np.ndarray,
    dt: float,
    n_steps: int,
    method: str = "rk4",
    backend: str = "numba",
    record_every: int = 1,
    record_phases: bool = False,
    n_record_harmonics: int | None = None,
    seed: int = 0,
) -> Trajectory:
    """Integrate ``system`` from ``theta0 (N,)`` for ``n_steps`` steps of ``dt``.

    ``backend``: ``numba`` (compiled loops; default), ``numpy`` (vectorised, the readable
    reference) or ``torch`` (see :func:`simulate_torch` for batches and GPUs). Records every
    ``record_every`` steps (and the initial state) the order parameters of harmonics
    ``1..n_record_harmonics`` (default: the system's ``H``, at least 1).
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {sorted(METHODS)}")
    if n_steps < 0 or record_every < 1 or dt <= 0:
        raise ValueError("need n_steps >= 0, record_every >= 1 and dt > 0")
    theta0 = np.asarray(theta0, dtype=np.float64).ravel()
    if theta0.size != system.n:
        raise ValueError(f"theta0 has {theta0.size} phases for {system.n} oscillators")
    n_rec = n_record_harmonics or max(system.n_harmonics, 1)
    if backend == "numba":
        return _simulate_numba(system, theta0, dt, n_steps, method, record_every, record_phases, n_rec, seed)
    if backend == "numpy":
        return _simulate_numpy(system, theta0, dt, n_steps, method, record_every, record_phases, n_rec, seed)
    if backend == "torch":
        traj = simulate_torch(system, theta0[None], dt, n_steps, method, record_every=record_every,
                              record_phases=record_phases, n_record_harmonics=n_rec, seed=seed)
        return Trajectory(traj.t, traj.Z[0], None if traj.theta is None else traj.theta[0], traj.final[0])
    raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")


def record_times(dt: float, n_steps: int, record_every: int) -> np.ndarray:
    """Times of the records: 0, then every ``record_every`` steps."""
    return dt * record_every * np.arange(n_steps // record_every + 1)


# -- numpy -------------------------------------------------------------------------------------


def _drift_step(f, theta, dt: float, method: str):  # noqa: ANN001, ANN201  (numpy or torch arrays)
    """One step of the drift ``dtheta/dt = f(theta)``: explicit Euler or classical RK4 (module doc).
    Array-generic: the numpy and the torch integrators share it (numba has its own, compiled)."""
    if method == "euler":
        return theta + dt * f(theta)
    k1 = f(theta)
    k2 = f(theta + 0.5 * dt * k1)
    k3 = f(theta + 0.5 * dt * k2)
    k4 = f(theta + dt * k3)
    return theta + (dt / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4)


def _order_parameters_np(theta: np.ndarray, n_rec: int) -> np.ndarray:
    n = np.arange(1, n_rec + 1)
    return np.exp(1j * n[:, None] * theta[None, :]).mean(1)


def _simulate_numpy(system, theta0, dt, n_steps, method, record_every, record_phases, n_rec, seed) -> Trajectory:
    rng = np.random.default_rng(seed)
    f = lambda th: rhs(system, th)  # noqa: E731
    theta = theta0.copy()
    Z, phases = [_order_parameters_np(theta, n_rec)], [theta.copy()] if record_phases else None
    for step in range(n_steps):
        theta = _drift_step(f, theta, dt, method)
        if system.noise > 0:
            theta = theta + system.noise * math.sqrt(dt) * rng.standard_normal(theta.size)
        if (step + 1) % record_every == 0:
            Z.append(_order_parameters_np(theta, n_rec))
            if phases is not None:
                phases.append(theta.copy())
    return Trajectory(record_times(dt, n_steps, record_every), np.array(Z),
                      None if phases is None else np.array(phases), theta)


# -- numba -------------------------------------------------------------------------------------


def _simulate_numba(system, theta0, dt, n_steps, method, record_every, record_phases, n_rec, seed) -> Trajectory:
    from fsnlab.dynamics import _numba_kernels as nk

    h = system.n_harmonics
    c = system.padded(system.c)
    d = system.padded(system.d)
    mult = successor_multiplicity(system.successor)
    if system.mean_field:
        C = np.zeros((0, 0, 0), dtype=np.complex128)
    else:
        C = dense_coefficients(system)
    Zr, Zi, phases, final = nk.integrate(
        theta0, system.omega, system.K / system.n, c.real.copy(), c.imag.copy(), d.real.copy(), d.imag.copy(),
        mult, system.d is not None, not system.mean_field, np.ascontiguousarray(C.real), np.ascontiguousarray(C.imag),
        float(dt), int(n_steps), METHODS[method], float(system.noise), int(seed), int(record_every), int(n_rec),
        bool(record_phases), int(h),
    )
    return Trajectory(record_times(dt, n_steps, record_every), Zr + 1j * Zi, phases if record_phases else None, final)


# -- torch -------------------------------------------------------------------------------------


def simulate_torch(
    system: OscillatorSystem,
    theta0: Any,
    dt: float,
    n_steps: int,
    method: str = "rk4",
    K: Any = None,
    record_every: int = 1,
    record_phases: bool = False,
    n_record_harmonics: int | None = None,
    seed: int = 0,
    device: Any = None,
    dtype: Any = None,
) -> Trajectory:
    """Batched torch integration: ``theta0 (B, N)`` initial states, optional ``K (B,)`` coupling
    strengths replacing ``system.K`` per batch row (a bifurcation sweep in one call).

    Runs on ``device`` (default CPU) in ``dtype`` (default float64). Returns a :class:`Trajectory`
    with a leading batch dimension, as numpy arrays.
    """
    import torch

    dtype = dtype or torch.float64
    device = torch.device(device or "cpu")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {sorted(METHODS)}")
    th = torch.as_tensor(np.asarray(theta0, dtype=np.float64), dtype=dtype, device=device)
    if th.ndim == 1:
        th = th[None]
    B, N = th.shape
    if N != system.n:
        raise ValueError(f"theta0 has {N} phases for {system.n} oscillators")
    Kb = torch.as_tensor(np.broadcast_to(np.asarray(system.K if K is None else K, dtype=np.float64), (B,)).copy(),
                         dtype=dtype, device=device)
    omega = torch.as_tensor(system.omega, dtype=dtype, device=device)
    H = system.n_harmonics
    n_rec = n_record_harmonics or max(H, 1)
    f = _torch_rhs(system, omega, Kb, dtype, device)
    gen = torch.Generator(device=device).manual_seed(seed) if system.noise > 0 else None

    def record(theta):
        ang = theta.unsqueeze(-1) * torch.arange(1, n_rec + 1, dtype=dtype, device=device)
        return torch.complex(torch.cos(ang).mean(1), torch.sin(ang).mean(1))

    Z, phases = [record(th)], [th.clone()] if record_phases else None
    for step in range(n_steps):
        th = _drift_step(f, th, dt, method)
        if gen is not None:
            th = th + system.noise * math.sqrt(dt) * torch.randn(th.shape, generator=gen, dtype=dtype, device=device)
        if (step + 1) % record_every == 0:
            Z.append(record(th))
            if phases is not None:
                phases.append(th.clone())
    Zt = torch.stack(Z, 1).cpu().numpy()
    ph = torch.stack(phases, 1).cpu().numpy() if phases is not None else None
    return Trajectory(record_times(dt, n_steps, record_every), Zt, ph, th.cpu().numpy())


def _torch_rhs(system: OscillatorSystem, omega, Kb, dtype, device):
    """The right-hand side as a closure over torch tensors: ``theta (B, N) -> dtheta/dt (B, N)``."""
    import torch

    H = system.n_harmonics
    n_h = torch.arange(1, H + 1, dtype=dtype, device=device)
    if system.mean_field:
        c = torch.as_tensor(system.padded(system.c), device=device)
        cr, ci = c.real.to(dtype), c.imag.to(dtype)
        has_d = system.d is not None
        if has_d:
            d = torch.as_tensor(system.padded(system.d), device=device)
            dr, di = d.real.to(dtype), d.imag.to(dtype)
            m = torch.as_tensor(successor_multiplicity(system.successor), dtype=dtype, device=device)
        scale = (Kb / system.n)[:, None]  # (B, 1)

        def f(theta):
            ang = theta.unsqueeze(-1) * n_h  # (B, N, H)
            zr, zi = torch.cos(ang), torch.sin(ang)
            Sr, Si = zr.sum(1), zi.sum(1)  # (B, H)
            Fr, Fi = cr * Sr - ci * Si, cr * Si + ci * Sr
            if has_d:
                Pr, Pi = torch.einsum("bnh,n->bh", zr, m), torch.einsum("bnh,n->bh", zi, m)
                Fr, Fi = Fr + dr * Pr - di * Pi, Fi + dr * Pi + di * Pr
            Fr, Fi = scale * Fr, scale * Fi
            return omega + (Fi.unsqueeze(1) * zr - Fr.unsqueeze(1) * zi).sum(-1)

        return f
    C = dense_coefficients(system, include_strength=False)
    Cr = torch.as_tensor(np.ascontiguousarray(C.real), dtype=dtype, device=device)  # (H, N, N)
    Ci = torch.as_tensor(np.ascontiguousarray(C.imag), dtype=dtype, device=device)
    scale = Kb[:, None]

    def f(theta):
        ang = theta.unsqueeze(1) * n_h[None, :, None]  # (B, H, N)
        zr, zi = torch.cos(ang), torch.sin(ang)
        Fr = torch.einsum("hik,bhk->bhi", Cr, zr) - torch.einsum("hik,bhk->bhi", Ci, zi)
        Fi = torch.einsum("hik,bhk->bhi", Cr, zi) + torch.einsum("hik,bhk->bhi", Ci, zr)
        return omega + scale * (Fi * zr - Fr * zi).sum(1)

    return f
