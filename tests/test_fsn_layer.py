"""The fast FSN layer (fused attention, order-parameter form) against the naive float64 reference."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from fsnlab.models import FSNConfig, build_model, capture
from fsnlab.models.config import KERNEL_SETTINGS
from fsnlab.models.fsn import FSNAttention, build_attention
from fsnlab.models.kernel import coupling_force, coupling_function, harmonic_features
from reference_fsn import reference_attention_step

SMALL = dict(d_phase=8, n_head=2, n_harmonics=3, context_length=16)


def _randomise(layer: torch.nn.Module, seed: int) -> None:
    """Give every parameter a generic value so no term hides behind its init (e.g. c_im = 0)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=g, dtype=p.dtype))


def _layer(seed: int, **overrides) -> FSNAttention:
    """The attention step a block of this config builds (the spec's layer, or a diagnostic form of it)."""
    torch.manual_seed(seed)
    return build_attention(FSNConfig(**{**SMALL, **overrides}).validate())


CASES = [
    *[dict(kernel=k) for k in KERNEL_SETTINGS],
    *[dict(kernel="full", delay_mask=m) for m in ("separate_strict", "shared_self")],
    dict(kernel="+delay", delay_mask="separate_strict"),
    dict(kernel="full", kernel_sharing="coord"),
    dict(kernel="full", gate="query"),
    dict(kernel="+sakaguchi", natural_frequency=True),
    dict(kernel="full", score_offset=True),
    dict(kernel="full", query_offset=True, gate="query"),
    dict(kernel="full", query_offset=True, score_offset=True),
    dict(kernel="full", value_offset=True),
    dict(kernel="full", value_offset=True, delay_mask="shared_self"),
    # the network reading of OQ-9: a cross-coupling matrix within each head
    dict(kernel="full", kernel_form="network1"),
    dict(kernel="full", kernel_form="network", delay_mask="shared_self"),
    dict(kernel="full", kernel_form="network", delay_mask="separate_strict", kernel_sharing="coord"),
    dict(kernel="full", kernel_form="low_rank", kernel_rank=2),
    dict(kernel="+delay", kernel_form="network"),
    dict(kernel="+sakaguchi", kernel_form="low_rank", kernel_rank=1),
    dict(kernel="full", kernel_form="network", value_offset=True),
]


@pytest.mark.parametrize("query_block", [512, 3], ids=["one-block", "blocked"])
@pytest.mark.parametrize("overrides", CASES, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_fast_layer_matches_naive_reference(overrides, query_block, monkeypatch):
    monkeypatch.setattr("fsnlab.models.attention.QUERY_BLOCK", query_block)
    for seed in (0, 1):
        layer = _layer(seed, **overrides)
        _randomise(layer, seed)
        theta = torch.randn(2, 7, SMALL["d_phase"], generator=torch.Generator().manual_seed(seed + 10)) * 3
        # float64 fast path vs float64 reference: agreement to rounding
        layer64 = layer.double()
        fast = layer64(theta.double()).detach().numpy()
        for b in range(theta.shape[0]):
            ref = reference_attention_step(layer64, theta[b].double().numpy())
            np.testing.assert_allclose(fast[b], ref, rtol=0, atol=1e-10)
        # float32 fast path: float tolerance
        fast32 = layer.float()(theta).detach().numpy()
        np.testing.assert_allclose(fast32, fast, rtol=0, atol=2e-5)


def test_rotary_frequencies_follow_the_spec():
    layer = _layer(0)
    Dh = SMALL["d_phase"] // SMALL["n_head"]
    expected = [10000.0 ** (-(i % Dh) / Dh) for i in range(SMALL["d_phase"])]
    np.testing.assert_allclose(layer.rope_omega.numpy(), expected, rtol=1e-6)


def test_reference_is_sensitive_to_the_delay_term():
    """Guard against a vacuous comparison: zeroing d must change the reference output."""
    layer = _layer(3, kernel="full").double()
    _randomise(layer, 3)
    theta = np.random.default_rng(0).normal(size=(6, SMALL["d_phase"])) * 3
    with_delay = reference_attention_step(layer, theta)
    with torch.no_grad():
        layer.kernel.d_re.zero_()
        layer.kernel.d_im.zero_()
    without = reference_attention_step(layer, theta)
    assert np.abs(with_delay - without).max() > 1e-3


def test_hooked_order_parameters_rebuild_the_force():
    """Z0, Z1 from the hooks with the kernel coefficients give the layer's own force (§3.4)."""
    layer = _layer(5, kernel="full")
    _randomise(layer, 5)
    theta = torch.randn(2, 9, SMALL["d_phase"]) * 2
    with capture(layer) as cache:
        out = layer(theta)
    cos_n, sin_n = harmonic_features(theta, 3)
    c, d = layer.coordinate_coefficients()
    z0, z1 = cache["hook_Z0"], cache["hook_Z1"]
    force = coupling_force(cos_n, sin_n, (z0.real, z0.imag), c, (z1.real, z1.imag), d)
    torch.testing.assert_close(force, cache["hook_force"], rtol=0, atol=1e-5)
    torch.testing.assert_close(out, theta + layer.step_size() * force, rtol=0, atol=1e-5)
    # Kuramoto order parameter magnitude R = |Z0_1| lies in [0, 1]
    R = z0[..., 0].abs()
    assert (R <= 1 + 1e-6).all() and (R >= 0).all()


def test_order_parameter_is_one_for_identical_phases():
    layer = _layer(6, kernel="base")
    theta = torch.full((1, 5, SMALL["d_phase"]), 0.7)
    with capture(layer, ["hook_Z0"]) as cache:
        layer(theta)
    torch.testing.assert_close(cache["hook_Z0"][..., 0].abs(), torch.ones(1, 5, SMALL["d_phase"]))


def test_attention_hook_rows_are_causal_distributions():
    layer = _layer(7, kernel="full")
    theta = torch.randn(1, 6, SMALL["d_phase"])
    with capture(layer, ["hook_attn"]) as cache:
        layer(theta)
    A = cache["hook_attn"]
    torch.testing.assert_close(A.sum(-1), torch.ones(1, 2, 6))
    assert (A.triu(1) == 0).all()


def test_coupling_function_matches_the_layer_for_a_single_partner():
    """A token whose attention sits wholly on one partner at phase difference phi feels the force
    Gamma(phi) = sum_n Im(c_n e^{i n phi}): the kernel read as a coupling function (§10)."""
    layer = _layer(8, kernel="+harmonics", gate="static")
    _randomise(layer, 8)
    c = torch.complex(*[x.detach() for x in layer.kernel.coefficients()])  # (H, N)
    phi = torch.linspace(-3.1, 3.1, 25)
    gamma = coupling_function(c, phi)  # (H, G)
    # Direct: F for a token whose whole attention sits on a partner at phase difference phi.
    cos_n, sin_n = harmonic_features(torch.zeros(1), 3)
    for h in range(2):
        for j, p in enumerate(phi):
            partner = harmonic_features(p.reshape(1), 3)
            f = coupling_force(cos_n, sin_n, partner, tuple(x[h] for x in layer.kernel.coefficients()))
            assert abs(f.item() - gamma[h, j].item()) < 1e-5


@pytest.mark.parametrize("kernel", KERNEL_SETTINGS)
def test_hooks_do_not_change_the_output(kernel):
    model = build_model("fsn-tiny", kernel=kernel)
    idx = torch.randint(0, 256, (2, 20), generator=torch.Generator().manual_seed(0))
    plain = model(idx)
    with capture(model) as cache:
        hooked = model(idx)
    assert len(cache) > 0
    assert torch.equal(plain, hooked)


def test_every_combination_of_switches_builds_and_runs():
    for kernel, mask, sharing in itertools.product(KERNEL_SETTINGS, ("shared_zero_diag", "separate_strict"), ("head", "coord")):
        model = build_model("fsn-tiny", kernel=kernel, delay_mask=mask, kernel_sharing=sharing)
        assert model(torch.zeros(1, 4, dtype=torch.long)).shape == (1, 4, 256)


@pytest.mark.parametrize("preset", ["fsn-tiny", "fsn-mf-tiny", "transformer-tiny"])
def test_model_runs_in_float64_with_float64_hooks(preset):
    model = build_model(preset).double()
    idx = torch.randint(0, 256, (1, 12), generator=torch.Generator().manual_seed(0))
    with capture(model) as cache:
        logits = model(idx)
    assert logits.dtype == torch.float64
    for name, value in cache.items():
        assert value.dtype in (torch.float64, torch.complex128), f"{name} is {value.dtype}"


@pytest.mark.parametrize("overrides", [dict(kernel="full"), dict(kernel="base"), dict(kernel="+harmonics"),
                                       dict(kernel="full", delay_mask="shared_self"),
                                       dict(kernel="full", delay_mask="separate_strict", gate="query", score_offset=True),
                                       dict(kernel="full", value_offset=True),
                                       dict(kernel="full", kernel_form="network"),
                                       dict(kernel="full", kernel_form="low_rank", kernel_rank=2)],
                         ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_layer_gradients_are_exact(overrides, monkeypatch):
    """The hand-written backward passes (blocked attention, phasors, tangent force) against finite
    differences, in float64, for the phases and every parameter."""
    from fsnlab.models import attention

    monkeypatch.setattr(attention, "QUERY_BLOCK", 3)
    layer = _layer(11, **overrides).double()
    _randomise(layer, 11)
    theta = (torch.randn(1, 5, SMALL["d_phase"], generator=torch.Generator().manual_seed(12), dtype=torch.float64) * 2)
    params = [p for p in layer.parameters()]
    names = [n for n, _ in layer.named_parameters()]

    def f(th, *ps):
        with torch.nn.utils.stateless._reparametrize_module(layer, dict(zip(names, ps))):
            return layer(th)

    assert torch.autograd.gradcheck(f, (theta.requires_grad_(), *[p.detach().requires_grad_() for p in params]))


def test_phasor_and_tangent_force_gradients():
    from fsnlab.models.kernel import harmonic_phasors, tangent_force

    g = torch.Generator().manual_seed(3)
    theta = torch.randn(2, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    pull = torch.randn(2, 3, 4, 3, generator=g, dtype=torch.complex128, requires_grad=True)
    assert torch.autograd.gradcheck(lambda th: harmonic_phasors(th, 3), (theta,))
    assert torch.autograd.gradcheck(lambda th, p: tangent_force(th, harmonic_phasors(th, 3), p), (theta, pull))
    cos_n, sin_n = harmonic_features(theta, 3)
    torch.testing.assert_close(tangent_force(theta, harmonic_phasors(theta, 3), pull),
                               (cos_n * pull.imag - sin_n * pull.real).sum(-1))


def test_network_kernel_with_zero_cross_coupling_is_the_diagonal_kernel():
    """K = diag(c) + W: with W = 0 the network form computes the diagonal kernel's step (OQ-9), and the
    float64 reference sees W (zeroing it changes the reference's output: the comparison is not vacuous)."""
    diagonal = _layer(3, kernel="full")
    network = _layer(3, kernel="full", kernel_form="network")
    _randomise(network, 3)
    theta = torch.randn(1, 6, SMALL["d_phase"], generator=torch.Generator().manual_seed(4), dtype=torch.float64) * 2
    network = network.double()
    with_cross = reference_attention_step(network, theta[0].numpy())
    with torch.no_grad():
        for p in network.network.parameters():
            p.zero_()
    state = {k: v for k, v in network.state_dict().items() if not k.startswith("network.")}
    diagonal.double().load_state_dict(state)
    np.testing.assert_allclose(network(theta).detach().numpy(), diagonal(theta).detach().numpy(), rtol=0, atol=1e-12)
    assert np.abs(with_cross - reference_attention_step(network, theta[0].numpy())).max() > 1e-3
    K0, K1 = network.coupling_matrices()
    c, d = network.head_coefficients()
    np.testing.assert_allclose(torch.diagonal(K1, dim1=-2, dim2=-1).numpy(), d[:, 0].transpose(-1, -2).detach().numpy(), rtol=1e-6)
    assert torch.count_nonzero(K0 - torch.diag_embed(torch.diagonal(K0, dim1=-2, dim2=-1))) == 0


def test_instruments_read_the_network_kernel():
    """verify, the probe and the explorer's identity read the network kernel (OQ-9) entry by entry (their own
    tests: test_dynamics_identity, test_probe, test_viz, test_explore); the population dynamics refuse it in
    one line naming what is missing."""
    from fsnlab.dynamics.identity import identity_summary, verify_identity
    from fsnlab.dynamics.population import layer_kernel
    from fsnlab.models import build_model
    from fsnlab.probe import probe

    torch.manual_seed(0)
    model = build_model("fsn-tiny", kernel_form="network1")
    _randomise(model, 0)
    summary = identity_summary(verify_identity(model, torch.randint(0, 256, (1, 10), generator=torch.Generator().manual_seed(1))))
    assert summary["passed"] and summary["max_float64_identity_residual"] < 1e-13, summary["failures"]
    ds = probe(model, b"some text to probe with " * 2, identity_positions=None)
    K0, K1 = model.blocks[0].attn.coupling_matrices()
    np.testing.assert_array_equal(ds.kernel_matrix_real.isel(layer=0).values, torch.stack([K0, K1]).real.numpy())
    assert ds.delay_identity_residual.values.max() < 1e-13
    with pytest.raises(ValueError, match="network kernel"):
        layer_kernel(model, 0)
