"""The delay identity (spec §4): the algebra (sympy), and its check on real layers (fsnlab.dynamics.identity)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
import torch

from fsnlab.dynamics.identity import (
    COMPARISONS,
    IdentityError,
    capture_layers,
    delay_weights,
    identity_summary,
    layer_sides,
    shuffled_positions,
    verify_identity,
)
from fsnlab.models import build_model


# -- the algebra -------------------------------------------------------------------------------


def test_sympy_trigonometric_step():
    """Im(d e^{i n (a + Delta)}) = |d| sin(n a + n Delta + arg d), for d = r e^{i phi} (spec §4 step 5)."""
    a, delta, phi = sp.symbols("a Delta phi", real=True)
    r = sp.symbols("r", positive=True)
    n = sp.symbols("n", integer=True, positive=True)
    d = r * sp.exp(sp.I * phi)  # polar form: |d| = r, arg d = phi (mod 2 pi; sin is 2 pi-periodic)
    assert sp.simplify(sp.Abs(d) - r) == 0
    lhs = sp.im(sp.expand_complex(d * sp.exp(sp.I * n * (a + delta))))
    rhs = sp.Abs(d) * sp.sin(n * a + n * delta + phi)
    assert sp.simplify(sp.expand_trig(lhs - rhs)) == 0
    # and the numbers agree with the principal argument for a concrete d
    val = {a: 0.3, delta: -1.2, phi: 2.9, r: 0.7, n: 3}
    dd = complex(d.subs(val))
    assert float(lhs.subs(val)) == pytest.approx(abs(dd) * math.sin(3 * 0.3 + 3 * -1.2 + np.angle(dd)), abs=1e-12)


def test_sympy_full_identity_with_frustration_angle():
    """Im(d e^{i n (theta_{u+1} - theta_t)}) = |d| sin(n (theta_u - theta_t) - alpha), alpha = -(n Delta + arg d)."""
    th_u, th_t, delta, phi = sp.symbols("theta_u theta_t Delta phi", real=True)
    r = sp.symbols("r", positive=True)
    n = sp.symbols("n", integer=True, positive=True)
    d = r * sp.exp(sp.I * phi)
    th_next = th_u + delta  # step 2: theta_{u+1} = theta_u + Delta_u
    successor = sp.im(sp.expand_complex(d * sp.exp(sp.I * n * (th_next - th_t))))
    alpha = -(n * delta + phi)  # step 6
    sakaguchi = r * sp.sin(n * (th_u - th_t) - alpha)
    assert sp.simplify(sp.expand_trig(successor - sakaguchi)) == 0


def test_sympy_order_parameter_form_is_the_edge_sum():
    """sum_u W_u Im(e^{-i n theta_t} d e^{i n theta_{u+1}}) = Im(e^{-i n theta_t} d Z1), Z1 = sum_u W_u e^{i n theta_{u+1}} (step 1)."""
    th_t, phi = sp.symbols("theta_t phi", real=True)
    r = sp.symbols("r", positive=True)
    th = sp.symbols("s0:3", real=True)
    w = sp.symbols("w0:3", real=True)
    n = sp.Integer(3)
    d = r * sp.exp(sp.I * phi)
    z1 = sum(wu * sp.exp(sp.I * n * su) for wu, su in zip(w, th))
    lhs = sum(wu * sp.im(sp.expand_complex(sp.exp(-sp.I * n * th_t) * d * sp.exp(sp.I * n * su))) for wu, su in zip(w, th))
    rhs = sp.im(sp.expand_complex(sp.exp(-sp.I * n * th_t) * d * z1))
    assert sp.simplify(sp.expand(lhs - rhs)) == 0


# -- pieces ------------------------------------------------------------------------------------


def test_delay_weights_by_mask():
    torch.manual_seed(0)
    A = torch.softmax(torch.randn(2, 3, 6, 6).masked_fill(~torch.ones(6, 6, dtype=torch.bool).tril(), -math.inf), -1).double()
    W, diag = delay_weights(A, "shared_zero_diag")
    assert diag is None and torch.equal(W, torch.tril(A, -1))
    W, diag = delay_weights(A, "shared_self")
    assert torch.equal(diag, torch.diagonal(A, dim1=-2, dim2=-1))
    W, _ = delay_weights(A, "separate_strict")
    assert torch.all(W[..., 0, :] == 0)
    torch.testing.assert_close(W[..., 1:, :].sum(-1), torch.ones(2, 3, 5, dtype=torch.float64))
    assert torch.all(torch.triu(W) == 0)


def test_shuffled_positions_has_no_fixed_points():
    for T in (3, 4, 5, 17, 64):
        for seed in range(20):
            p = shuffled_positions(T, torch.Generator().manual_seed(seed))
            assert sorted(p.tolist()) == list(range(T)) and p[-1] == T - 1
            assert not torch.any(p[:-1] == torch.arange(T - 1))


# -- on real layers --------------------------------------------------------------------------------


def _ids(B: int = 2, T: int = 24, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (B, T), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("delay_mask", ["shared_zero_diag", "separate_strict", "shared_self"])
@pytest.mark.parametrize("kernel", ["+delay", "full"])
def test_identity_holds_on_every_layer_and_harmonic(kernel, delay_mask):
    torch.manual_seed(1)
    model = build_model("fsn-tiny", kernel=kernel, delay_mask=delay_mask)
    ds = verify_identity(model, _ids())
    summary = identity_summary(ds)
    assert summary["passed"], summary["failures"]
    assert summary["max_float64_identity_residual"] < 1e-14
    assert summary["min_float64_control_residual"] > 1e-3
    f32 = ds.sel(precision="float32", comparison="sakaguchi-order_parameter")
    assert float(f32.max_rel.max()) < 1e-4  # model dtype: float32 rounding only
    assert ds.attrs["source_float32_Z1"] == "hook_Z1" and ds.attrs["source_float32_attn"] == "hook_attn"
    n_harm = 1 if kernel == "+delay" else 4
    assert ds.max_abs.shape == (2, 2, n_harm, len(COMPARISONS))


def test_identity_with_per_coordinate_kernels_query_gate_and_natural_frequencies():
    torch.manual_seed(2)
    model = build_model("fsn-tiny", kernel_sharing="coord", gate="query", natural_frequency=True)
    with torch.no_grad():
        for block in model.blocks:  # spread the delay coefficients far from their init
            block.attn.kernel.d_re.normal_()
            block.attn.kernel.d_im.normal_()
    assert identity_summary(verify_identity(model, _ids()))["passed"]


def test_each_side_is_really_compared():
    """Break one ingredient at a time: the residual must jump (the comparison is not vacuous)."""
    torch.manual_seed(3)
    model = build_model("fsn-tiny", delay_mask="separate_strict")
    layers, _ = capture_layers(model, _ids(), torch.float64)
    lay = layers[1]
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    good = layer_sides(lay["theta"], lay["attn"], lay["z1"][..., 0], lay["d"][:, 0], 1, "separate_strict", 2, gen())
    assert (good["sakaguchi"] - good["order_parameter"]).abs().max() < 1e-14
    # wrong weights (the shared normalisation instead of the separate softmax)
    wrong_w = layer_sides(lay["theta"], lay["attn"], lay["z1"][..., 0], lay["d"][:, 0], 1, "shared_zero_diag", 2, gen())
    assert (wrong_w["sakaguchi"] - good["order_parameter"]).abs().max() > 1e-3
    # wrong order parameter (another harmonic's Z1)
    wrong_z = layer_sides(lay["theta"], lay["attn"], lay["z1"][..., 1], lay["d"][:, 0], 1, "separate_strict", 2, gen())
    assert (wrong_z["sakaguchi"] - wrong_z["order_parameter"]).abs().max() > 1e-3
    # wrong coefficient
    wrong_d = layer_sides(lay["theta"], lay["attn"], lay["z1"][..., 0], lay["d"][:, 0] * 1j, 1, "separate_strict", 2, gen())
    assert (wrong_d["sakaguchi"] - good["order_parameter"]).abs().max() > 1e-3


def test_transported_order_parameter():
    """Step 7: Z1 = sum_u W e^{i n theta_u} e^{i n Delta_u}: the network's Z1 is the attended mean field
    with every member rotated by its own transition."""
    from fsnlab.models.kernel import transitions

    torch.manual_seed(6)
    model = build_model("fsn-tiny")
    layers, _ = capture_layers(model, _ids(1, 24), torch.float64)
    for lay in layers:
        theta, (W, _) = lay["theta"], delay_weights(lay["attn"], "shared_zero_diag")
        delta = torch.nan_to_num(transitions(theta))  # the last position is never weighted
        H, Dh = W.shape[1], theta.shape[-1] // W.shape[1]
        for n in (1, 2, 4):
            rotated = torch.exp(1j * n * (theta + delta))  # e^{i n theta_u} e^{i n Delta_u}
            z1 = torch.cat([torch.einsum("btu,bud->btd", W[:, h].to(rotated.dtype), rotated[..., h * Dh:(h + 1) * Dh]) for h in range(H)], -1)
            torch.testing.assert_close(z1, lay["z1"][..., n - 1], atol=1e-13, rtol=0)


def test_controls_flag_a_vacuous_input():
    """Constant text gives zero transitions at the embedding: the wrong angles cannot be told apart there."""
    torch.manual_seed(4)
    model = build_model("fsn-tiny")
    ds = verify_identity(model, torch.full((1, 20), ord("a")))
    assert ds.attrs["passed"] == 1 and ds.attrs["controls_discriminate"] == 0
    assert "layer 0" in ds.attrs["failures"] and "vacuous" in ds.attrs["failures"]


def test_chunked_windows_give_the_same_statistics():
    torch.manual_seed(7)
    model = build_model("fsn-tiny")
    ids = _ids(3, 16)
    whole = verify_identity(model, ids)
    chunked = verify_identity(model, ids, window_budget=1)  # one window per chunk
    # rounding-level residuals depend on the batching; everything else agrees
    controls = list(COMPARISONS[3:])
    for k in ("max_abs", "rms_abs", "max_rel", "rms_rel"):
        np.testing.assert_allclose(whole[k].sel(comparison=controls), chunked[k].sel(comparison=controls), rtol=1e-9)
    np.testing.assert_allclose(whole.term_rms, chunked.term_rms, rtol=1e-9)
    assert float(chunked.max_abs.sel(precision="float64", comparison=list(COMPARISONS[:3])).max()) < 1e-14
    assert chunked.attrs["passed"] == 1 and chunked.attrs["controls_discriminate"] == 1


def test_tolerance_failure_is_reported():
    torch.manual_seed(5)
    ds = verify_identity(build_model("fsn-tiny"), _ids(1, 16), tolerance=1e-30)
    s = identity_summary(ds)
    assert not s["identity_passed"] and not s["passed"] and s["failures"][0].startswith("identity:")


@pytest.mark.parametrize("preset,kernel", [("fsn-tiny", "base"), ("fsn-tiny", "+harmonics"), ("fsn-tiny", "+sakaguchi"), ("transformer-tiny", None)])
def test_models_without_delay_are_refused(preset, kernel):
    model = build_model(preset, **({"kernel": kernel} if kernel else {}))
    with pytest.raises(IdentityError, match="delay"):
        verify_identity(model, _ids(1, 10))


@pytest.mark.parametrize("switch", [{"value_offset": True}, {"attention": "dot_product"}, {"attention": "phase_scores"}, {"attention": "dot_scores"}])
def test_diagnostic_switches_are_refused(switch):
    """They leave the spec's layer, so the identity in theta does not apply."""
    with pytest.raises(IdentityError, match=next(iter(switch))):
        verify_identity(build_model("fsn-tiny", **switch), _ids(1, 10))


def test_too_few_tokens():
    with pytest.raises(IdentityError, match="at least 3"):
        verify_identity(build_model("fsn-tiny"), torch.tensor([[1, 2]]))


def test_dataset_round_trips_to_netcdf(tmp_path):
    ds = verify_identity(build_model("fsn-tiny"), _ids(1, 12))
    path = tmp_path / "identity.nc"
    ds.to_netcdf(path)
    import xarray as xr

    back = xr.load_dataset(path)
    np.testing.assert_allclose(back.max_abs.values, ds.max_abs.values)


# -- one check, three consumers ------------------------------------------------------------------

TEXT = b"In the beginning God created the heaven and the earth. And the earth was without form, and void; and darkness"


@pytest.mark.parametrize("delay_mask", ["shared_zero_diag", "separate_strict", "shared_self"])
def test_probe_and_verify_report_the_same_numbers(delay_mask):
    """On a float64 model both run the check on the same captured layers, so the probe's residual
    (max over windows) is verify's b - a' residual to the last bit, rounding included. ``shared_self``:
    the probe leaves the diagonal (the same term in both forms) out, so only rounding may differ."""
    from fsnlab.probe import probe

    torch.manual_seed(8)
    model = build_model("fsn-tiny", delay_mask=delay_mask).double()
    ds = probe(model, TEXT[:96], stride=48, batch_size=2, identity_positions=None)
    ds_verify = verify_identity(model, torch.as_tensor(ds.byte.values.astype(np.int64)))
    assert list(ds_verify.precision.values) == ["float64"]
    probe_residual = ds.delay_identity_residual.max("sample").values
    verify_residual = ds_verify.max_abs.sel(precision="float64", comparison="sakaguchi-successor").values
    if delay_mask == "shared_self":
        np.testing.assert_allclose(probe_residual, verify_residual, rtol=0, atol=1e-15)
    else:
        np.testing.assert_array_equal(probe_residual, verify_residual)
    assert probe_residual.max() < 1e-14


def test_probe_verify_and_explorer_read_one_check(monkeypatch):
    """Break the Sakaguchi side in the one place it is computed: the probe, ``fsnlab verify`` and the
    explorer's per-token terms all see it, since they reduce the same check."""
    from fsnlab import viz
    from fsnlab.dynamics import identity
    from fsnlab.probe import probe

    torch.manual_seed(9)
    model = build_model("fsn-tiny")
    original = identity.edge_sides

    def broken(*args, **kwargs):
        out = original(*args, **kwargs)
        out["sakaguchi"] = out["sakaguchi"] + 1e-3
        return out

    monkeypatch.setattr(identity, "edge_sides", broken)
    ds = probe(model, TEXT[:64], attention=True, identity_positions=None)
    assert ds.delay_identity_residual.values.min() == pytest.approx(1e-3, rel=1e-6)
    ds_verify = verify_identity(model, torch.as_tensor(ds.byte.values.astype(np.int64)))
    assert ds_verify.attrs["passed"] == 0
    assert float(ds_verify.max_abs.sel(precision="float64", comparison="sakaguchi-successor").min()) == pytest.approx(1e-3, rel=1e-6)
    ti = viz.token_identity(ds, 0, 1, 20, 1, 0)
    assert ti.max_term_residual == pytest.approx(1e-3, rel=1e-6)
    monkeypatch.setattr(identity, "edge_sides", original)
    assert viz.token_identity(ds, 0, 1, 20, 1, 0).max_term_residual < 1e-15


def test_layer_identity_holds_every_side_and_control():
    """:func:`layer_identity` gives every harmonic's sides once; the complete sides add shared_self's
    diagonal to each form that has a transition, and alpha = 0 gives nothing there."""
    from fsnlab.dynamics.identity import HarmonicSides, layer_identity

    torch.manual_seed(10)
    model = build_model("fsn-tiny", delay_mask="shared_self")
    lay = capture_layers(model, _ids(1, 20), torch.float64)[0][1]
    sides = layer_identity(lay["theta"], lay["attn"], lay["z1"], lay["d"], "shared_self", seed=1000)
    assert [s.n for s in sides] == [1, 2, 3, 4] and all(isinstance(s, HarmonicSides) for s in sides)
    s = sides[1]
    full = s.full()
    torch.testing.assert_close(full["successor"], s.successor + s.self_successor, rtol=0, atol=0)
    torch.testing.assert_close(full["shuffled"], s.shuffled + s.self_sakaguchi, rtol=0, atol=0)
    torch.testing.assert_close(full["zero_angle"], s.zero_angle, rtol=0, atol=0)
    torch.testing.assert_close(s.self_successor, s.self_sakaguchi, rtol=0, atol=1e-16)
    assert set(s.comparisons()) == set(COMPARISONS)
    # layer_sides is the same check, harmonic by harmonic
    again = layer_sides(lay["theta"], lay["attn"], lay["z1"][..., 1], lay["d"][:, 1], 2, "shared_self", 2,
                        torch.Generator().manual_seed(1002))
    for key, val in full.items():
        torch.testing.assert_close(again[key], val, rtol=0, atol=0)


# -- the network kernel (spec §3.4 "Alternative reading", OQ-9): the identity entry by entry --------


def _network_model(form: str = "network", delay_mask: str = "shared_zero_diag", seed: int = 11, **overrides) -> torch.nn.Module:
    """fsn-tiny with the network kernel and every parameter moved to a generic value (cross-coupling of order 1)."""
    torch.manual_seed(seed)
    model = build_model("fsn-tiny", kernel_form=form, delay_mask=delay_mask, **overrides)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    return model


@pytest.mark.parametrize("form,delay_mask", [("network", "shared_zero_diag"), ("network", "separate_strict"),
                                             ("network", "shared_self"), ("network1", "shared_self"),
                                             ("low_rank", "separate_strict")])
def test_identity_holds_for_the_network_kernel(form, delay_mask):
    """Every side with the cross-coupling: b - a, b - a' and a' - a at float64 rounding, every control large."""
    model = _network_model(form, delay_mask, kernel_rank=2) if form == "low_rank" else _network_model(form, delay_mask)
    ds = verify_identity(model, _ids(2, 20))
    summary = identity_summary(ds)
    assert summary["passed"], summary["failures"]
    assert summary["max_float64_identity_residual"] < 1e-13
    assert summary["min_float64_control_residual"] > 1e-3
    f32 = ds.sel(precision="float32", comparison="sakaguchi-order_parameter")
    assert float(f32.max_rel.max()) < 1e-4
    assert ds.attrs["kernel_form"] == form and "K1_{n,ij}" in ds.attrs["frustration"]


def test_the_cross_coupling_is_part_of_every_side():
    """The check reads W1: the cross part of each side is of order one, and it is what hook_force holds."""
    from fsnlab.dynamics.identity import delay_cross_coupling, layer_identity

    model = _network_model("network", "shared_self").double()
    layers, _ = capture_layers(model, _ids(1, 16), torch.float64)
    lay = layers[1]
    assert lay["cross"].shape == (2, 4, 16, 16) and lay["cross"].dtype == torch.complex128
    assert torch.all(torch.diagonal(lay["cross"], dim1=-2, dim2=-1) == 0)
    with_cross = layer_identity(lay["theta"], lay["attn"], lay["z1"], lay["d"], "shared_self", cross=lay["cross"])
    diagonal = layer_identity(lay["theta"], lay["attn"], lay["z1"], lay["d"], "shared_self")
    for w, d in zip(with_cross, diagonal):
        for key in ("order_parameter", "successor", "sakaguchi"):
            assert (w.full()[key] - d.full()[key]).abs().max() > 1e-2  # the cross part is not negligible
        assert (w.full()["sakaguchi"] - w.full()["order_parameter"]).abs().max() < 1e-13
    # receiver i, sender j as the layer itself uses them: K0 Z0 + (side a) summed over n is hook_force
    from fsnlab.models import capture

    ids = _ids(1, 16)
    names = [f"blocks.1.attn.{h}" for h in ("hook_theta_in", "hook_Z0", "hook_force")]
    with torch.no_grad(), capture(model, names) as cache:
        model(ids)
    K0, _ = model.blocks[1].attn.coupling_matrices()
    theta, z0 = cache[names[0]], cache[names[1]]
    B, T, D, N = z0.shape
    pull0 = torch.einsum("hnij,bthjn->bthin", K0.to(torch.complex128), z0.reshape(B, T, 2, D // 2, N)).reshape(B, T, D, N)
    n = torch.arange(1, N + 1, dtype=torch.float64)
    f0 = (torch.exp(-1j * n * theta.unsqueeze(-1)) * pull0).imag.sum(-1)
    delay = sum(s.order_parameter for s in layer_identity(theta, lay["attn"], lay["z1"], lay["d"], "shared_self", cross=delay_cross_coupling(model.blocks[1].attn, torch.float64)))
    torch.testing.assert_close(f0 + delay, cache[names[2]], rtol=0, atol=1e-5)  # K0 read in complex64


@pytest.mark.parametrize("side", ["sakaguchi", "successor", "order_parameter"])
def test_breaking_the_cross_coupling_in_one_side_is_caught(side, monkeypatch):
    """Conjugate W1 in one side only (receiver and sender swapped, in effect): verify fails."""
    from fsnlab.dynamics import identity

    model = _network_model("network", "separate_strict", seed=12)
    if side == "order_parameter":
        original = identity.cross_order_parameter_side
        monkeypatch.setattr(identity, "cross_order_parameter_side", lambda th, z, w, n: original(th, z, w.conj(), n))
    else:
        original = identity.cross_edge_sides

        def broken(receiver, sender, W, cross, n, perm):
            out = original(receiver, sender, W, cross, n, perm)
            out[side] = original(receiver, sender, W, cross.conj(), n, perm)[side]
            return out

        monkeypatch.setattr(identity, "cross_edge_sides", broken)
    ds = verify_identity(model, _ids(1, 16))
    summary = identity_summary(ds)
    assert not summary["identity_passed"]
    f64 = ds.max_abs.sel(precision="float64")
    unbroken = {"sakaguchi": "successor-order_parameter", "successor": "sakaguchi-order_parameter",
                "order_parameter": "sakaguchi-successor"}[side]
    assert float(f64.sel(comparison=unbroken).max()) < 1e-13  # the two intact sides still agree
    assert float(f64.sel(comparison=[c for c in COMPARISONS[:3] if c != unbroken]).min()) > 1e-3


def test_network_chunks_give_the_same_sides():
    """Blocks of receivers and senders (a tiny element budget) sum to the same sides, to rounding."""
    from fsnlab.dynamics.identity import layer_identity

    model = _network_model("network", "shared_zero_diag", seed=13)
    lay = capture_layers(model, _ids(1, 12), torch.float64)[0][0]
    whole = layer_identity(lay["theta"], lay["attn"], lay["z1"], lay["d"], "shared_zero_diag", cross=lay["cross"])
    small = layer_identity(lay["theta"], lay["attn"], lay["z1"], lay["d"], "shared_zero_diag", cross=lay["cross"], max_elements=300)
    for a, b in zip(whole, small):
        for key, val in a.full().items():
            torch.testing.assert_close(val, b.full()[key], rtol=0, atol=1e-13)
