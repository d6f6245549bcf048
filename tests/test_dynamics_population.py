"""Running a trained kernel as a population (fsnlab.dynamics.population): datasets, thresholds, sweeps."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fsnlab.dynamics.analytic import ott_antonsen_R
from fsnlab.dynamics.population import bifurcation_sweep, kernel_bifurcation, layer_kernel, onset_couplings, run_population
from fsnlab.models import build_model
from fsnlab.models.kernel import SIGN_CONVENTION


def test_onset_couplings():
    c = np.array([0.5 * np.exp(-0.3j), -0.2, 0.8])
    k = onset_couplings(c, 0.1)
    assert k[0] == pytest.approx(0.2 / (0.5 * math.cos(0.3))) and k[1] == math.inf and k[2] == pytest.approx(0.25)
    g = onset_couplings(np.array([1.0, 0.5j + 0.5]), 0.1, "gaussian")
    assert g[0] == pytest.approx(math.sqrt(8 / math.pi) * 0.1) and math.isnan(g[1])


def test_sweep_matches_ott_antonsen_for_a_sakaguchi_kernel():
    """R(K) of the kernel c_1 = e^{-i alpha} follows sqrt(1 - 2 Delta / (K cos alpha))."""
    alpha, width = 0.5, 0.1
    K = np.array([0.1, 0.35, 0.5])
    ds = bifurcation_sweep([np.exp(-1j * alpha)], K, n_osc=3000, width=width, t_max=300, dt=0.1)
    np.testing.assert_allclose(ds.R.sel(harmonic=1), ott_antonsen_R(K, width, alpha) + [0.02, 0, 0], atol=0.025)
    assert ds.attrs["sign_convention"] == SIGN_CONVENTION and ds.coupling.attrs["long_name"] == "coupling strength K"
    assert ds.attrs["onset_coupling"][0] == pytest.approx(2 * width / math.cos(alpha))


def test_second_harmonic_onset_at_two_delta_over_re_c2():
    """Linear stability: harmonic n destabilises incoherence at K = 2 Delta / Re c_n (Lorentzian)."""
    c = [0.0, 0.8 * np.exp(-0.3j)]
    width = 0.1
    Kc = onset_couplings(c, width)[1]
    ds = bifurcation_sweep(c, np.array([0.7, 1.5]) * Kc, n_osc=3000, width=width, t_max=300, dt=0.1)
    r2 = ds.R.sel(harmonic=2).values
    assert r2[0] < 0.06 and r2[1] == pytest.approx(math.sqrt(1 - 1 / 1.5), abs=0.03)
    assert np.all(ds.R.sel(harmonic=1).values < 0.06)


def test_run_population_dataset():
    ds = run_population([1.0, 0.2 - 0.1j], d=[0.1, 0.05j], include_delay=True, K=0.5, n_osc=400, t_max=20, dt=0.1)
    assert ds.R.dims == ("time", "harmonic") and ds.sizes["harmonic"] == 2
    assert ds.time.attrs["units"] and ds.psi.attrs["units"] == "rad" and ds.attrs["include_delay"] == 1
    assert 0 <= float(ds.R.min()) and float(ds.R.max()) <= 1


def test_kernel_bifurcation_of_a_model():
    torch.manual_seed(0)
    model = build_model("fsn-tiny")
    c, d, kind = layer_kernel(model, 0)
    assert c.shape == (2, 4) and d.shape == (2, 4) and kind == "head"
    ds = kernel_bifurcation(model, [0.0, 2.0], n_osc=200, t_max=30, dt=0.1)
    assert ds.R.dims == ("layer", "group", "coupling", "harmonic")
    assert ds.sizes["layer"] == 2 and ds.sizes["group"] == 2
    assert ds.step_size.values == pytest.approx(np.ones((2, 2)), rel=1e-5)  # softplus init = 1
    # the init kernel is c_1 = 1: strong coupling locks the population, none leaves it incoherent
    assert float(ds.R.sel(coupling=2.0, harmonic=1).min()) > 0.9 > 0.2 > float(ds.R.sel(coupling=0.0, harmonic=1).max())


def test_a_diagnostic_model_without_a_kernel_is_refused():
    with pytest.raises(ValueError, match="diagnostic attention='dot_product'"):
        layer_kernel(build_model("fsn-tiny", attention="dot_product"), 0)


def test_the_network_kernel_is_refused_in_one_line_naming_what_is_missing():
    """A population member has one phase; the network kernel (OQ-9) couples D_h of them: refused, not misread."""
    with pytest.raises(ValueError, match="network kernel.*D_h phases") as err:
        layer_kernel(build_model("fsn-tiny", kernel_form="network"), 0)
    assert "\n" not in str(err.value)
