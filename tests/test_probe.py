"""The probe's physics on in-memory models (spec §3, §4, §10): probed logits equal plain logits,
order parameters lie in [0, 1] and reach 1 for identical phases, angles read from the weights are
-arg of the kernel coefficients, the coupling function rebuilt from the stored harmonics is the
layer's own update, the delay identity holds to rounding on the very run while a zero-frustration
control does not, phases are wrapped, and windows, characters, top-k and attributes are right."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fsnlab.models import build_model, capture, config_from_json
from fsnlab.models.kernel import SIGN_CONVENTION, coupling_force, harmonic_features
from fsnlab.probe import ProbeError, probe
from fsnlab.probe.capture import CaptureSettings, forward_with_hooks, hook_names
from fsnlab.probe.schema import PI32, VARIABLES
from fsnlab.probe.text import char_labels, window_starts

TEXT = "In the beginning God created the heaven and the earth. And the earth was without form, and void."


def tiny(preset: str = "fsn-tiny", seed: int = 0, **overrides) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(preset, **overrides).eval()


def frustrate(model: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    """Random kernel coefficients of order 1 (both signs of Re c, all angles) in every layer."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for block in model.blocks:
            k = block.attn.kernel
            for name in ("c_re", "c_im", "d_re", "d_im"):
                p = getattr(k, name)
                if p is not None:
                    p.copy_(torch.randn(p.shape, generator=g))
    return model


def test_probed_logits_equal_plain_logits():
    for preset in ("fsn-tiny", "fsn-mf-tiny", "transformer-tiny"):
        model = tiny(preset)
        idx = torch.tensor([list(TEXT.encode()[:64])])
        settings = CaptureSettings(attention=True, top_k=8, mode_top_k=8, identity_positions=64)
        logits, cache = forward_with_hooks(model, idx, hook_names(model, settings))
        assert cache, preset
        with torch.no_grad():
            plain = model(idx)
        assert torch.equal(logits, plain), preset
    # the stored loss is the plain forward pass's cross-entropy, in bits
    model = tiny()
    ds = probe(model, TEXT[:64])
    idx = torch.tensor([list(TEXT.encode()[:64])])
    with torch.no_grad():
        nll = F.cross_entropy(model(idx)[0, :-1].double(), idx[0, 1:], reduction="none") / math.log(2)
    np.testing.assert_allclose(ds.loss_bits.values[0, :-1], nll.numpy(), rtol=1e-5)
    assert np.isnan(ds.loss_bits.values[0, -1])


def test_order_parameters_in_unit_interval_and_phases_wrapped():
    ds = probe(tiny("fsn-mf-tiny"), TEXT, stride=48, identity_positions=0)
    for name in ("R", "R_global"):
        values = ds[name].values
        assert values.min() >= 0 and values.max() <= 1, name
    assert ds.R.values.min() < 0.99  # varied text: the attended context is not in sync everywhere
    for name in ("theta", "psi", "psi_global", "transition", "mode_phase"):
        values = ds[name].values
        values = values[np.isfinite(values)].astype(np.float64)
        assert values.min() >= -math.pi and values.max() < math.pi, name
        assert ds[name].attrs["units"] == "radian"
        assert ds[name].attrs["valid_min"] >= -math.pi and ds[name].attrs["valid_max"] < math.pi
    # wrapped phases are the network's phases mod 2 pi
    model = tiny("fsn-mf-tiny")
    idx = torch.tensor([list(TEXT.encode()[:64])])
    with capture(model, ["blocks.1.attn.hook_theta_out"]) as cache, torch.no_grad():
        model(idx)
    raw = cache["blocks.1.attn.hook_theta_out"][0].double().numpy()
    stored = ds.theta.sel(stage="blocks.1.attn").values[0].astype(np.float64)
    np.testing.assert_allclose(np.sin(stored), np.sin(raw), atol=2e-6)
    np.testing.assert_allclose(np.cos(stored), np.cos(raw), atol=2e-6)


def test_R_is_one_for_identical_phases():
    """A text of one repeated byte enters layer 0 with identical phases: every attended context is in
    perfect synchrony (R = 1, all Daido |Z_n| = 1) and so is the whole window (global R = 1)."""
    ds = probe(tiny(), "a" * 64)
    np.testing.assert_allclose(ds.R.sel(layer=0).values, 1.0, atol=1e-6)
    z = np.hypot(ds.Z_real.sel(layer=0, delay=0).values, ds.Z_imag.sel(layer=0, delay=0).values)
    np.testing.assert_allclose(z, 1.0, atol=1e-5)
    np.testing.assert_allclose(ds.R_global.sel(stage="embed").values, 1.0, atol=1e-6)
    # the attended context's mean phase is the shared phase itself
    theta = ds.theta.sel(stage="embed").values
    np.testing.assert_allclose(np.cos(ds.psi.sel(layer=0).values - theta), 1.0, atol=1e-5)


def test_frustration_angles_are_minus_arg_of_kernel_coefficients():
    model = frustrate(tiny())
    ds = probe(model, TEXT[:40])
    for i, block in enumerate(model.blocks):
        c, d = block.attn.kernel.complex_coefficients()
        coef = torch.stack([c, d]).numpy()  # (delay, head, n)
        stored = ds.kernel_real.sel(layer=i).values + 1j * ds.kernel_imag.sel(layer=i).values
        np.testing.assert_array_equal(stored, coef)
        alpha = ds.sakaguchi_alpha.sel(layer=i).values.astype(np.float64)
        K = ds.daido_K.sel(layer=i).values.astype(np.float64)
        assert alpha.min() > -math.pi / 2 and alpha.max() <= math.pi / 2 + 1e-7
        # alpha = -arg c up to the fold by pi (which flips the sign of K)
        fold = np.angle(np.exp(1j * (alpha + np.angle(coef))))
        assert np.all(np.isclose(fold, 0, atol=1e-5) | np.isclose(np.abs(fold), math.pi, atol=1e-5))
        np.testing.assert_allclose(K * np.exp(-1j * alpha), coef, atol=1e-5)
        assert np.array_equal(K < 0, coef.real < 0)  # repulsive iff Re c < 0
        assert (K < 0).any() and (K > 0).any()


def test_coupling_function_rebuilt_from_harmonics_is_the_layers_update():
    model = frustrate(tiny())
    ds = probe(model, TEXT[:40], grid_size=64)
    cfg = model.config
    n = np.arange(1, cfg.n_harmonics + 1)

    def gamma(layer: int, delay: int, phi: np.ndarray) -> np.ndarray:
        """Gamma_h(phi) = sum_n a_n sin(n phi) + b_n cos(n phi) from the stored harmonics: (H, len(phi))."""
        a = ds.kernel_real.sel(layer=layer, delay=delay).values.astype(np.float64)
        b = ds.kernel_imag.sel(layer=layer, delay=delay).values.astype(np.float64)
        angle = n[None, :, None] * phi[None, None, :]
        return (a[..., None] * np.sin(angle) + b[..., None] * np.cos(angle)).sum(1)

    grid = ds.grid.values
    assert grid[0] == -math.pi and grid[-1] < math.pi and len(grid) == 64
    for delay in (0, 1):
        np.testing.assert_allclose(ds.coupling_function.sel(layer=0, delay=delay).values, gamma(0, delay, grid), atol=1e-6)

    # one partner: the kernel's coupling force on random phases is Gamma(theta_u - theta_t), per coordinate
    attn = model.blocks[0].attn
    (c_re, c_im), _ = attn.coordinate_coefficients()
    g = torch.Generator().manual_seed(3)
    theta_t = (torch.rand(100, cfg.d_phase, generator=g, dtype=torch.float64) * 2 - 1) * math.pi
    theta_u = (torch.rand(100, cfg.d_phase, generator=g, dtype=torch.float64) * 2 - 1) * math.pi
    cos_t, sin_t = harmonic_features(theta_t, cfg.n_harmonics)
    cos_u, sin_u = harmonic_features(theta_u, cfg.n_harmonics)
    force = coupling_force(cos_t, sin_t, (cos_u, sin_u), (c_re.detach().double(), c_im.detach().double())).numpy()
    head = ds.osc_head.values
    phi = (theta_u - theta_t).numpy()
    expected = np.stack([gamma(0, 0, phi[:, i])[head[i]] for i in range(cfg.d_phase)], axis=1)
    np.testing.assert_allclose(force, expected, atol=1e-10)

    # the real layer on two tokens: F_1 = A_10 Gamma(theta_0 - theta_1) + A_11 Gamma(0) + A_10 Gamma+(0)
    x = (torch.rand(1, 2, cfg.d_phase, generator=g) * 2 - 1) * math.pi
    with capture(attn, ["hook_attn", "hook_force"]) as cache, torch.no_grad():
        attn(x)
    A = cache["hook_attn"][0].double().numpy()  # (H, 2, 2)
    x64 = x[0].double().numpy()
    zero = np.zeros(1)
    for i in range(cfg.d_phase):
        h = head[i]
        want = (A[h, 1, 0] * gamma(0, 0, np.array([x64[0, i] - x64[1, i]]))[h, 0]
                + A[h, 1, 1] * gamma(0, 0, zero)[h, 0] + A[h, 1, 0] * gamma(0, 1, zero)[h, 0])
        assert abs(cache["hook_force"][0, 1, i].item() - want) < 1e-5


@pytest.mark.parametrize("delay_mask", ["shared_zero_diag", "separate_strict", "shared_self"])
def test_delay_identity_holds_to_rounding_on_the_run(delay_mask):
    model = frustrate(tiny(delay_mask=delay_mask))
    ds = probe(model, TEXT, stride=64, identity_positions=None)
    assert ds.attrs["identity_positions"] == 64
    residual = ds.delay_identity_residual.values
    control = ds.delay_identity_control.values
    assert residual.dtype == np.float64 and residual.shape == (2, 2, 4)
    assert residual.max() < 1e-10  # successor form == KS form with the data's frustration, edge by edge
    assert control.min() > 1e-2  # without the data's frustration it fails by O(|d|)
    assert ds.delay_coupling_max.values.min() > 1e-2
    # the network's own delay force (hook_Z1, float32) against the explicit per-edge sum
    assert ds.delay_force_check.values.max() < 1e-4


def test_identity_on_a_prefix_and_disabled():
    model = frustrate(tiny())
    part = probe(model, TEXT[:64], identity_positions=16)
    full = probe(model, TEXT[:64], identity_positions=None)
    assert part.attrs["identity_positions"] == 16
    assert part.delay_identity_residual.values.max() < 1e-10
    assert np.all(part.delay_coupling_max.values <= full.delay_coupling_max.values)
    assert "delay_identity_residual" not in probe(model, TEXT[:64], identity_positions=0)
    assert "delay_identity_residual" not in probe(tiny("ka-tiny"), TEXT[:64])  # no delay kernel


@pytest.mark.parametrize("switch", [{"value_offset": True}, {"attention": "dot_product"}, {"attention": "phase_scores"}, {"attention": "dot_scores"}])
def test_diagnostic_models_are_refused_in_one_line(switch):
    with pytest.raises(ProbeError, match="diagnostic"):
        probe(build_model("fsn-tiny", **switch), TEXT[:64])


def test_windows_bytes_chars_and_offsets():
    text = ("héllo wörld → " * 12).encode()  # multi-byte characters, 216 bytes
    with pytest.raises(ProbeError, match="stride"):
        probe(tiny(), text)
    with pytest.raises(ProbeError, match="empty"):
        probe(tiny(), b"")
    ds = probe(tiny(), text, stride=64, identity_positions=0)
    starts = window_starts(len(text), 64, 64)
    assert len(text) == 216 and starts == [0, 64, 128, 152]  # the last window is aligned to the end of the text
    np.testing.assert_array_equal(ds.window_start.values, starts)
    np.testing.assert_array_equal(ds.byte_offset.values, np.array(starts)[:, None] + np.arange(64))
    data = np.frombuffer(text, dtype=np.uint8)
    np.testing.assert_array_equal(ds.byte.values, data[ds.byte_offset.values])
    assert ds.byte.dtype == np.uint8 and ds.char.dtype == np.dtype("<U1")
    assert "".join(ds.char.values[:3].ravel()) == text[:192].decode("utf-8")  # windows 0..2 tile 192 bytes
    loss = ds.loss_bits.values
    assert np.isnan(loss[-1, -1]) and np.isfinite(loss[:-1]).all() and np.isfinite(loss[-1, :-1]).all()
    assert char_labels(b"a\xc3\xa9\xff").tolist() == ["a", "\u00e9", "", "\ufffd"]


def test_attention_top_k():
    model = tiny()
    ds = probe(model, TEXT[:64], attention=True, top_k=4, identity_positions=0)
    w = ds.attn_topk_weight.values  # (sample, layer, head, pos, k)
    idx = ds.attn_topk_index.values
    assert w.shape == (1, 2, 2, 64, 4) and idx.dtype == np.int32
    assert np.all(np.diff(w, axis=-1) <= 0) and np.all(w.sum(-1) <= 1 + 1e-6)
    assert np.all(idx <= np.arange(64)[:, None])  # never a future key
    assert np.all(idx[..., 0, :] == [0, -1, -1, -1]) and np.all(idx[..., 2, 3] == -1) and np.all(idx[..., 3, :] >= 0)
    assert np.all(w[..., 0, 0] == 1)
    with capture(model, ["blocks.1.attn.hook_attn"]) as cache, torch.no_grad():
        model(torch.tensor([list(TEXT.encode()[:64])]))
    dense = cache["blocks.1.attn.hook_attn"][0].numpy()
    np.testing.assert_allclose(np.take_along_axis(dense, np.maximum(idx[0, 1], 0), -1)[:, 10:], w[0, 1, :, 10:])
    assert "attn_topk_weight" not in probe(model, TEXT[:64], identity_positions=0)


def test_fsn_mf_modes():
    model = tiny("fsn-mf-tiny")
    ds = probe(model, TEXT[:64], top_k=5, identity_positions=0)
    M = model.config.n_modes
    assert ds.sizes["mode"] == M and ds.sizes["mode_k"] == 5
    w, idx = ds.mode_topk_weight.values, ds.mode_topk_index.values
    assert np.all(np.diff(w, axis=-1) <= 0) and np.all(w.sum(-1) <= 1 + 1e-6)
    assert idx.min() >= 0 and idx.max() < M
    assert list(ds.stage_kind.values) == ["embed", "attn", "modes", "attn", "modes"]
    np.testing.assert_allclose(np.cos(ds.mode_phase.values[0]), np.cos(model.blocks[0].ffn.mode_phases.detach().numpy()), atol=1e-6)
    assert {"mode_Z_real", "mode_Z_imag", "mode_step_size", "mode_kappa_real"} <= set(ds.data_vars)


def test_transformer_stores_what_applies():
    ds = probe(tiny("transformer-tiny"), TEXT[:64], attention=True)
    assert ds.attrs["phase_quantities"].startswith("not applicable")
    assert {"loss_bits", "resid_norm", "attn_topk_weight", "attn_topk_index"} == set(ds.data_vars)
    assert list(ds.stage.values) == ["embed", "blocks.0.attn", "blocks.0.ffn", "blocks.1.attn", "blocks.1.ffn"]
    assert np.all(ds.resid_norm.values > 0)


def test_attributes_and_schema():
    model = tiny()
    ds = probe(model, TEXT[:64])
    attrs = ds.attrs
    assert attrs["Conventions"] == "CF-1.10" and attrs["sign_convention"] == SIGN_CONVENTION
    assert config_from_json(attrs["model_config"]) == model.config
    for key in ("fsnlab_version", "git_commit", "checkpoint_sha256", "corpus", "split", "start", "length", "seed", "history"):
        assert key in attrs
    assert attrs["length"] == 64 and attrs["corpus"] == "inline"
    schema = json.loads(attrs["schema"])
    assert set(schema["variables"]) == set(map(str, ds.variables))
    assert set(schema["dims"]) == set(map(str, ds.dims))
    for name in ds.variables:
        assert str(name) in VARIABLES, name
        assert "long_name" in ds[name].attrs, name
    assert ds.theta.attrs["valid_max"] == np.float32(PI32)
    assert ds.R.attrs["valid_min"] == 0 and ds.R.attrs["valid_max"] == 1


def test_switch_parameters_reach_the_dataset():
    """A switch that adds a learned quantity to the layer (score offset, natural frequency) is probed too."""
    from fsnlab.probe.weights import fsn_weight_variables

    torch.manual_seed(0)
    model = build_model("fsn-tiny", score_offset=True, natural_frequency=True)
    with torch.no_grad():
        model.blocks[1].attn.score_offset.fill_(0.25)
    variables = fsn_weight_variables(model, grid_size=16)
    dims, values = variables["score_offset"]
    assert dims == ("layer", "osc") and values.shape == (2, 32)
    assert np.allclose(values[1], 0.25) and np.allclose(values[0], 0.0)
    assert "score_offset" in VARIABLES and "natural_frequency" in variables
    assert "score_offset" not in fsn_weight_variables(build_model("fsn-tiny", score_offset=False), grid_size=16)


# -- the network kernel (OQ-9) ---------------------------------------------------------------------


def _network(form: str = "network", delay_mask: str = "shared_zero_diag", seed: int = 3) -> torch.nn.Module:
    model = tiny(kernel_form=form, delay_mask=delay_mask, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    return model


@pytest.mark.parametrize("form,delay_mask", [("network", "shared_self"), ("network1", "separate_strict")])
def test_network_kernel_pair_variables_and_identity(form, delay_mask):
    """The coupling matrix per oscillator pair is stored as the layer gives it (coupling_matrices), with its
    strength |K_ij| and frustration -arg K_ij; the identity and the delay force include the cross-coupling."""
    model = _network(form, delay_mask)
    ds = probe(model, TEXT[:64], identity_positions=None)
    dims = ("layer", "delay", "head", "harmonic", "osc_i", "osc_j")
    for name in ("kernel_matrix_real", "kernel_matrix_imag", "kernel_matrix_strength", "kernel_matrix_alpha"):
        assert ds[name].dims == dims and ds[name].dtype == np.float32 and ds[name].shape == (2, 2, 2, 4, 16, 16)
    assert ds.kernel_matrix_alpha.attrs["units"] == "radian" and ds.kernel_matrix_strength.attrs["units"] == "1"
    assert list(ds.osc_i.values) == list(range(16)) and "osc_i" in json.loads(ds.attrs["schema"])["dims"]
    for i, block in enumerate(model.blocks):
        K = torch.stack(block.attn.coupling_matrices())  # (delay, H, N, D_h, D_h) complex64
        sel = ds.isel(layer=i)
        np.testing.assert_array_equal(sel.kernel_matrix_real.values, K.real.numpy())
        np.testing.assert_array_equal(sel.kernel_matrix_imag.values, K.imag.numpy())
        np.testing.assert_array_equal(sel.kernel_matrix_strength.values, K.abs().numpy())
        np.testing.assert_array_equal(sel.kernel_matrix_alpha.values, (-torch.angle(K)).numpy())
        off = ~np.eye(16, dtype=bool)
        cross = np.abs(sel.kernel_matrix_real.values[..., off]) + np.abs(sel.kernel_matrix_imag.values[..., off])
        assert cross[:, :, 0].min() > 0  # harmonic 1 has a cross-coupling in every form
        if form == "network1":
            assert cross[:, :, 1:].max() == 0
        diag = np.diagonal(sel.kernel_matrix_real.values, axis1=-2, axis2=-1)  # (delay, H, N, D_h) = the diagonal kernel
        np.testing.assert_array_equal(diag, np.broadcast_to(sel.kernel_real.values[..., None], diag.shape))
    assert ds.delay_identity_residual.values.max() < 1e-13
    assert ds.delay_identity_control.values.min() > 1e-2
    assert ds.delay_force_check.values.max() < 1e-4  # float32 hook_Z1 against the per-edge, per-pair sum


def test_network_delay_force_check_sees_the_cross_coupling(monkeypatch):
    """Without the cross part in side (a) the probe's delay_force_check is of order one: it reads W1."""
    from fsnlab.dynamics import identity

    model = _network()
    monkeypatch.setattr(identity, "cross_order_parameter_side", lambda th, z, w, n: torch.zeros_like(th))
    ds = probe(model, TEXT[:40], identity_positions=None)
    assert ds.delay_force_check.values.min() > 1e-2
    assert ds.delay_identity_residual.values.max() < 1e-13  # b - a' does not involve side (a)


def test_diagonal_probe_has_no_pair_variables():
    ds = probe(tiny(), TEXT[:40])
    assert not any(str(v).startswith("kernel_matrix") for v in ds.variables)
    assert "osc_i" not in ds.dims and "osc_j" not in ds.dims
