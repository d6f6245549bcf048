"""Run a trained kernel as a population of oscillators (spec §10: reading the kernel as a coupling function).

A trained FSN layer's value pathway is one coupling function per head,
``Gamma_h(phi) = sum_n Im(c_{h,n} e^{i n phi})`` (:func:`fsnlab.models.kernel.coupling_function`),
applied with attention weights ``A`` and a step size ``eta``. Here we take that function out of the
network and let it drive a large all-to-all population with a spread of natural frequencies::

    dtheta_i/dt = omega_i + K sum_n Im( c_{h,n} Z_n e^{-i n theta_i} )   [+ K sum_n Im(d_{h,n} Z+_n e^{-i n theta_i})]

``A`` becomes uniform (``1/N``: maximally diffuse attention), ``K`` plays the part of ``eta`` (swept),
and ``omega ~`` Lorentzian or Gaussian (width = the disorder the coupling must overcome). The
result says what collective state the learned function produces: incoherence, partial or full
locking, or Daido cluster states (large ``R_n`` for n >= 2 with small ``R_1``).

The delay coefficients ``d`` are optional: in a uniform population the successors of everyone
are the whole population but one (``Z+_n = Z_n - e^{i n theta_0}/N``), so ``d`` acts like an extra
``c`` (``c + d``) up to O(1/N). Their data-dependent frustration (spec §4) needs the data's
transitions, which a population does not have.

For a Lorentzian of half-width Delta the incoherent state loses stability through harmonic n at
``K_n = 2 Delta / Re c_n`` (linearising the continuity equation: the mode-n perturbation couples
only to ``c_n`` and grows at ``lambda = n (K c_n / 2 - Delta)``); the first harmonic's threshold is
Kuramoto's ``K_c = 2 Delta`` for ``c_1 = 1``.

The network kernel (spec §3.4, "Alternative reading [G, OQ-9]": a coupling matrix ``K_ij`` between the
``D_h`` oscillators of a head) is refused by :func:`layer_kernel` in one line: each member of these
populations has one phase, so the matrix would need members with ``D_h`` phases each, which is not
implemented. Its coupling matrices are in the probe (``kernel_matrix_*``).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from fsnlab.dynamics.analytic import gaussian_critical_coupling, lorentzian_critical_coupling
from fsnlab.dynamics.simulate import simulate, simulate_torch
from fsnlab.dynamics.systems import OscillatorSystem, natural_frequencies
from fsnlab.models.kernel import SIGN_CONVENTION


def layer_kernel(model: Any, layer: int) -> tuple[np.ndarray, np.ndarray | None, str]:
    """The trained kernel of block ``layer``: ``c (G, N)``, ``d (G, N)`` or None (complex), and the
    group kind (``"head"`` or ``"coord"``, OQ-9), from ``attn.kernel.complex_coefficients()``."""
    diagnostics = getattr(model.config, "diagnostic_switches", list)()
    if diagnostics:
        raise ValueError(f"the model uses the diagnostic {', '.join(diagnostics)}: it has no coupling kernel to integrate")
    if getattr(model.config, "kernel_form", "diagonal") != "diagonal":
        raise ValueError(f"the model has the network kernel (kernel_form={model.config.kernel_form!r}, OQ-9): a population here is "
                         "one phase per member under one coupling function per kernel group, while K_ij couples the D_h oscillators "
                         "of a head, which needs members with D_h phases each (not implemented)")
    attn = model.blocks[layer].attn
    c, d = attn.kernel.complex_coefficients()
    kind = "head" if attn.config.kernel_sharing == "head" else "coord"
    return c.numpy().astype(np.complex128), None if d is None else d.numpy().astype(np.complex128), kind


def onset_couplings(c: np.ndarray, width: float, distribution: str = "lorentzian") -> np.ndarray:
    """Coupling at which incoherence loses stability through each harmonic: ``2 Delta / Re c_n`` for a
    Lorentzian (exact for complex c), ``2 / (pi g(0) Re c_n)`` for a Gaussian (exact only for real c_n;
    NaN otherwise). ``inf`` where ``Re c_n <= 0`` (that harmonic never destabilises incoherence)."""
    c = np.atleast_1d(np.asarray(c, dtype=np.complex128))
    if distribution == "lorentzian":
        scale = lorentzian_critical_coupling(width)
    elif distribution == "gaussian":
        scale = gaussian_critical_coupling(width)
    else:
        raise ValueError(f"onset couplings need a lorentzian or gaussian distribution, got {distribution!r}")
    with np.errstate(divide="ignore"):
        k = np.where(c.real > 0, scale / np.where(c.real > 0, c.real, 1.0), np.inf)
    if distribution == "gaussian":
        k = np.where(np.abs(c.imag) > 1e-12 * np.abs(c), np.nan, k)
    return k


def _population(c, d, n_osc, distribution, width, include_delay, K=1.0) -> OscillatorSystem:
    omega = natural_frequencies(n_osc, distribution, width, method="quantile")
    return OscillatorSystem(omega, np.asarray(c, dtype=np.complex128), K=K, d=np.asarray(d) if (include_delay and d is not None) else None)


def _attrs(c, d, include_delay, n_osc, distribution, width, dt, method, seed) -> dict[str, Any]:
    c = np.atleast_1d(np.asarray(c, dtype=np.complex128))
    attrs = {
        "title": "population of phase oscillators driven by an FSN coupling function (mean field)",
        "sign_convention": SIGN_CONVENTION,
        "equation": "dtheta_i/dt = omega_i + K sum_n Im(c_n Z_n e^{-i n theta_i})" + (" + K sum_n Im(d_n Z+_n e^{-i n theta_i})" if include_delay and d is not None else ""),
        "c_real": c.real.tolist(), "c_imag": c.imag.tolist(),
        "include_delay": int(bool(include_delay and d is not None)),
        "n_osc": int(n_osc), "frequency_distribution": distribution, "frequency_width": float(width),
        "frequency_sampling": "quantiles (k + 1/2)/N", "dt": float(dt), "method": method, "seed": int(seed),
    }
    if include_delay and d is not None:
        dd = np.atleast_1d(np.asarray(d, dtype=np.complex128))
        attrs.update({"d_real": dd.real.tolist(), "d_imag": dd.imag.tolist()})
    if distribution in ("lorentzian", "gaussian"):
        c_eff = c + (np.asarray(d) if include_delay and d is not None else 0)
        attrs["onset_coupling"] = [float(x) for x in onset_couplings(c_eff, width, distribution)]
    return attrs


def run_population(
    c: Sequence[complex] | np.ndarray,
    d: Sequence[complex] | np.ndarray | None = None,
    K: float = 1.0,
    n_osc: int = 2000,
    distribution: str = "lorentzian",
    width: float = 0.1,
    t_max: float = 200.0,
    dt: float = 0.05,
    method: str = "rk4",
    include_delay: bool = False,
    record_every: int = 10,
    seed: int = 0,
    backend: str = "numba",
) -> Any:
    """Simulate one population under the kernel ``c`` (and ``d``) at coupling ``K``.

    Returns an ``xarray.Dataset`` with ``R``/``psi`` over ``(time, harmonic)`` and attrs (units,
    long names, sign convention, the kernel, onset couplings). Initial phases are uniform (``seed``).
    """
    system = _population(c, d, n_osc, distribution, width, include_delay, K)
    theta0 = np.random.default_rng(seed).uniform(-math.pi, math.pi, n_osc)
    n_steps = int(round(t_max / dt))
    traj = simulate(system, theta0, dt, n_steps, method=method, backend=backend, record_every=record_every, seed=seed)
    ds = traj.to_dataset()
    ds.attrs.update(_attrs(c, d, include_delay, n_osc, distribution, width, dt, method, seed))
    ds.attrs["coupling"] = float(K)
    return ds


def bifurcation_sweep(
    c: Sequence[complex] | np.ndarray,
    K_values: Sequence[float] | np.ndarray,
    d: Sequence[complex] | np.ndarray | None = None,
    n_osc: int = 1000,
    distribution: str = "lorentzian",
    width: float = 0.1,
    t_max: float = 200.0,
    dt: float = 0.05,
    method: str = "rk4",
    include_delay: bool = False,
    fraction: float = 0.5,
    record_every: int = 10,
    seed: int = 0,
    backend: str = "numba",
    device: Any = None,
) -> Any:
    """Stationary order parameters versus coupling strength: ``R_n(K)`` averaged over the last
    ``fraction`` of each run (every K starts from the same uniform random phases).

    ``backend="numba"`` runs the K values one after another on the CPU; ``"torch"`` integrates them
    all at once as a batch (on ``device``, e.g. a GPU). Returns an ``xarray.Dataset`` with ``R``
    (mean) and ``R_std`` (temporal standard deviation) over ``(coupling, harmonic)``.
    """
    import xarray as xr

    K_values = np.asarray(K_values, dtype=np.float64)
    system = _population(c, d, n_osc, distribution, width, include_delay)
    theta0 = np.random.default_rng(seed).uniform(-math.pi, math.pi, n_osc)
    n_steps = int(round(t_max / dt))
    if backend == "torch":
        traj = simulate_torch(system, np.tile(theta0, (K_values.size, 1)), dt, n_steps, method=method, K=K_values,
                              record_every=record_every, seed=seed, device=device)
        R = np.abs(traj.Z)  # (K, S, H)
    elif backend in ("numba", "numpy"):
        runs = []
        for k in K_values:
            system.K = float(k)
            runs.append(simulate(system, theta0, dt, n_steps, method=method, backend=backend, record_every=record_every, seed=seed).Z)
        R = np.abs(np.stack(runs))
    else:
        raise ValueError(f"unknown backend {backend!r}")
    start = int(round(R.shape[1] * (1 - fraction)))
    tail = R[:, start:]
    ds = xr.Dataset(
        {
            "R": (("coupling", "harmonic"), tail.mean(1), {"units": "1", "long_name": "stationary order parameter |Z_n| (time mean)", "valid_min": 0.0, "valid_max": 1.0}),
            "R_std": (("coupling", "harmonic"), tail.std(1), {"units": "1", "long_name": "temporal standard deviation of |Z_n|"}),
        },
        coords={
            "coupling": ("coupling", K_values, {"units": "1 (rad per unit time)", "long_name": "coupling strength K"}),
            "harmonic": ("harmonic", np.arange(1, R.shape[-1] + 1), {"long_name": "harmonic order n"}),
        },
    )
    ds.attrs.update(_attrs(c, d, include_delay, n_osc, distribution, width, dt, method, seed))
    ds.attrs.update({"t_max": float(t_max), "averaged_fraction": float(fraction), "backend": backend})
    return ds


def kernel_bifurcation(
    model: Any,
    K_values: Sequence[float] | np.ndarray,
    layers: Sequence[int] | None = None,
    **kwargs: Any,
) -> Any:
    """:func:`bifurcation_sweep` for every head (or coordinate group) of every layer of a trained model.

    Returns ``R``/``R_std`` over ``(layer, group, coupling, harmonic)`` plus ``step_size`` over
    ``(layer, group)``: the trained ``eta`` (mean over the group's coordinates), i.e. where the
    network itself sits on the K axis. ``kwargs`` go to :func:`bifurcation_sweep`.
    """
    import xarray as xr

    layers = list(range(len(model.blocks))) if layers is None else list(layers)
    per_layer, eta, kind = [], [], "head"
    for i in layers:
        c, d, kind = layer_kernel(model, i)
        sweeps = [bifurcation_sweep(c[g], K_values, d=None if d is None else d[g], **kwargs) for g in range(c.shape[0])]
        per_layer.append(xr.concat(sweeps, dim="group"))
        step = model.blocks[i].attn.step_size().detach().double().numpy()
        eta.append(step.reshape(c.shape[0], -1).mean(1))
    ds = xr.concat(per_layer, dim="layer")
    ds = ds.assign_coords(layer=("layer", np.asarray(layers)), group=("group", np.arange(ds.sizes["group"]), {"long_name": f"kernel group ({kind})"}))
    ds["step_size"] = (("layer", "group"), np.stack(eta), {"units": "1", "long_name": "trained step size eta (the network's coupling strength)"})
    for key in ("c_real", "c_imag", "d_real", "d_imag", "onset_coupling"):
        ds.attrs.pop(key, None)  # per-group values differ; read them with layer_kernel
    ds.attrs["kernel_groups"] = kind
    return ds
