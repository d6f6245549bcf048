"""fsnlab.viz: figure builders over a real (small) probe dataset, and the per-token delay identity."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("plotly")

import fsnlab  # noqa: E402
from fsnlab import viz  # noqa: E402
from fsnlab.probe import open_probe, probe  # noqa: E402
from fsnlab.viz.common import VizError  # noqa: E402

TEXT = "In the beginning God created the heaven and the earth. And the earth was without form, and void."


@pytest.fixture(scope="module")
def ds():
    """fsn-tiny (random init, full kernel) on two overlapping windows, with attention and the identity everywhere."""
    model = fsnlab.build_model("fsn-tiny")
    return probe(model, TEXT, attention=True, stride=48, identity_positions=None)


@pytest.fixture(scope="module")
def files(ds, tmp_path_factory):
    """The same probe written as zarr and netCDF (through the probe's own writers) and reopened lazily."""
    from fsnlab.probe.core import write_probe
    from fsnlab.probe.options import ProbeOptions

    root = tmp_path_factory.mktemp("viz")
    torch_model = fsnlab.build_model("fsn-tiny")
    opts = ProbeOptions(attention=True, stride=48, identity_positions=None)
    z = write_probe(torch_model, TEXT, root / "p.zarr", opts)
    n = write_probe(torch_model, TEXT, root / "p.nc", opts)
    return {"zarr": open_probe(z), "nc": open_probe(n)}


def names(fig) -> list[str]:
    return [t.name for t in fig.data if t.name]


def types(fig) -> list[str]:
    return [type(t).__name__ for t in fig.data]


# -- import hygiene ------------------------------------------------------------------------------


def test_fsnlab_core_imports_without_plotly():
    code = (
        "import sys; sys.modules['plotly'] = None; sys.modules['dash'] = None\n"
        "import fsnlab, fsnlab.viz, fsnlab.cli\n"
        "fsnlab.cli.build_parser()\n"
        "assert 'plotly.graph_objects' not in sys.modules\n"
        "try:\n    fsnlab.viz.loss_figure\nexcept fsnlab.errors.FsnlabError as e:\n    print('ERR', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "pip install 'fsnlab[app]'" in out.stdout


# -- builders --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["memory", "zarr", "nc"])
def test_phase_figure(ds, files, fmt):
    d = ds if fmt == "memory" else files[fmt]
    fig = viz.phase_figure(d, sample=0, osc=3, stage="blocks.1.attn", selected=20, trail=2)
    T = d.sizes["pos"]
    tokens = [t for t in fig.data if t.name == "tokens"]
    assert len(tokens) == 1 and len(tokens[0].x) == T
    assert list(tokens[0].customdata) == list(range(T))
    # selected token: ring, coupling lines to the top-k keys, dashed successor arrows, Z0/Z1 vectors
    assert "t=20" in names(fig) and {"Z0", "Z1"} <= set(names(fig))
    k = int((d.attn_topk_index.isel(sample=0, layer=1, head=0, pos=20).values >= 0).sum())
    couplings = [t for t in fig.data if t.hovertext and str(t.hovertext).startswith("A[20,")]
    successors = [t for t in fig.data if t.hovertext and str(t.hovertext).startswith("successor")]
    assert len(couplings) == k
    assert 0 < len(successors) <= k and all(t.line.dash == "dash" for t in successors)
    np.testing.assert_allclose(np.hypot(tokens[0].x, tokens[0].y), 1.0, atol=1e-6)


def test_phase_figure_modes_and_animation(ds):
    fig = viz.phase_figure(ds, 0, 0, 0, color_by="class", radius="position")
    classes = set(names(fig))
    assert {"letter", "space", "punctuation"} <= classes
    anim = viz.phase_animation_figure(ds, 1, 2)
    assert [f.name for f in anim.frames] == [str(s) for s in ds.stage.values]
    assert anim.layout.sliders and anim.layout.updatemenus
    with pytest.raises(VizError):
        viz.phase_figure(ds, 0, 0, 0, color_by="rainbow")


def test_attention_layer_of_each_stage(ds):
    from fsnlab.viz.phases import attention_layer

    # embed -> layer 0; blocks.0.attn -> 0; blocks.0.ffn -> 1; blocks.1.attn -> 1; blocks.1.ffn -> none
    assert [attention_layer(ds, i) for i in range(ds.sizes["stage"])] == [0, 0, 1, 1, None]
    assert viz.input_stage(ds, 0) == 0 and viz.input_stage(ds, 1) == 2


def test_order_figures(ds):
    g = viz.global_order_figure(ds, 0, osc=5)
    assert "mean over osc" in names(g) and "osc 5" in names(g)
    mean_trace = [t for t in g.data if t.name == "mean over osc"][0]
    np.testing.assert_allclose(mean_trace.y, ds.R_global.isel(sample=0).mean("osc").values, rtol=1e-6)
    h = viz.local_order_heatmap(ds, 0, "mean", selected=7)
    assert types(h) == ["Heatmap"] and np.asarray(h.data[0].z).shape == (ds.sizes["layer"], ds.sizes["pos"])
    d = viz.daido_figure(ds, 0, 1)
    assert len(d.data) == ds.sizes["delay"] * ds.sizes["harmonic"]
    assert "|Z0_1|" in names(d) and "|Z1_4|" in names(d)
    d_tok = viz.daido_figure(ds, 0, 1, pos=10)
    z = ds.Z_real.isel(sample=0, layer=1, delay=0, pos=10, osc=1, harmonic=0) + 1j * ds.Z_imag.isel(sample=0, layer=1, delay=0, pos=10, osc=1, harmonic=0)
    assert d_tok.data[0].y[1] == pytest.approx(abs(complex(z.values)), rel=1e-5)


def test_kernel_figures_and_table(ds):
    g = viz.coupling_function_figure(ds, layer=1, group=1)
    assert "Γ(φ)  attended (c_n)" in names(g) and "Γ⁺(φ)  successors (d_n)" in names(g)
    curve = [t for t in g.data if t.name == "Γ(φ)  attended (c_n)"][0]
    np.testing.assert_allclose(curve.y, ds.coupling_function.isel(layer=1, delay=0, head=1).values)
    # at init c_1 = 1: Γ = sin φ, stable locking at φ* = 0 (in phase), unstable at ±π
    stable = [t for t in g.data if t.name == "stable φ* (Γ)"][0]
    assert min(abs(x) for x in stable.x) < 1e-9
    p = viz.kernel_polar_figure(ds, 0, 0)
    assert types(p) == ["Scatterpolar"] * (2 * ds.sizes["harmonic"])
    rows = viz.kernel_table(ds, 0, 0)
    assert [r["term"] for r in rows][:2] == ["c_1", "c_2"] and rows[0]["reading"] == "attractive Kuramoto"
    assert rows[-1]["term"] == "d_4" and "data frustration" in rows[-1]["reading"]
    for r in rows:
        assert r["abs"] == pytest.approx(math.hypot(r["re"], r["im"]), abs=1e-6)


def test_locking_offsets():
    phi = np.linspace(-math.pi, math.pi, 512, endpoint=False)
    st, un = viz.locking_offsets(phi, np.sin(phi - 0.5))  # stable where Γ' > 0: φ* = 0.5
    assert len(st) == 1 and st[0] == pytest.approx(0.5, abs=1e-4)
    assert len(un) == 1 and abs(abs(un[0]) - (math.pi - 0.5)) < 1e-4


def test_frustration_histogram(ds):
    f = viz.frustration_histogram(ds, 0, 1, None, bins=24, highlight=[0.1, -0.2])
    assert types(f)[0] == "Barpolar" and len(f.data[0].r) == 24
    assert sum(f.data[0].r) == pytest.approx(1.0)
    assert any("mean" in (t.name or "") for t in f.data) and "attended keys' Δ" in names(f)


def test_loss_figure(ds):
    f = viz.loss_figure(ds, 1, selected=3)
    assert types(f) == ["Bar"]
    np.testing.assert_array_equal(np.asarray(f.data[0].y, dtype=float), ds.loss_bits.isel(sample=1).values.astype(float))


def test_figure_html_is_self_contained(ds):
    page = viz.figure_html(viz.loss_figure(ds, 0))
    assert page.lstrip().lower().startswith("<!doctype html>") and "Plotly.newPlot" in page
    assert '<script src="http' not in page and "cdn.plot.ly/plotly" not in page


# -- the delay identity, per token ------------------------------------------------------------


@pytest.mark.parametrize("layer,pos,n,osc", [(0, 5, 1, 0), (1, 20, 2, 17), (1, 47, 4, 31), (0, 30, 3, 9)])
def test_token_identity_two_forms_agree(ds, layer, pos, n, osc):
    ti = viz.token_identity(ds, 0, layer, pos, n, osc)
    assert ti.head == int(ds.osc_head.values[osc])
    assert ti.terms, "every query with pos > 0 attends to some u < t"
    assert all(x.u < pos for x in ti.terms)
    # both forms, term by term and summed (float64 on the probe's float32 phases)
    assert ti.max_term_residual < 1e-15
    assert ti.residual < 1e-15
    # the wrong angle (alpha = 0) does not agree
    assert ti.control_residual > 1e3 * max(ti.residual, 1e-18)
    # the probe's whole-run residual for this (window, layer, harmonic)
    assert ti.probe_residual < 1e-12
    rows = ti.rows()
    assert rows[-1]["Σ successor"] == pytest.approx(ti.successor_sum)
    assert rows[-1]["Σ sakaguchi"] == pytest.approx(ti.sakaguchi_sum)


def test_token_identity_complete_topk_equals_the_network(ds):
    """For t < k every key is among the top-k: the partial sum is the full delay term, which must
    equal the network's own Im(e^{-inθ} d_n Z¹) from hook_Z1 (float32 storage)."""
    k = ds.sizes["k"]
    for pos in range(1, k - 1):
        for n in (1, 3):
            ti = viz.token_identity(ds, 1, 1, pos, n, 4)
            assert ti.complete
            assert ti.successor_sum == pytest.approx(ti.network, abs=2e-6)


def test_token_identity_uses_the_data_transition(ds):
    ti = viz.token_identity(ds, 0, 1, 30, 2, 3)
    theta = ds.theta.isel(sample=0, stage=viz.input_stage(ds, 1), osc=3).values.astype(np.float64)
    d = complex(ds.kernel_real.isel(layer=1, delay=1, head=0, harmonic=1).values, ds.kernel_imag.isel(layer=1, delay=1, head=0, harmonic=1).values)
    for x in ti.terms:
        delta = theta[x.u + 1] - theta[x.u]
        assert x.delta == pytest.approx(math.remainder(delta, 2 * math.pi), abs=1e-9)
        assert math.remainder(x.alpha + (2 * delta + np.angle(d)), 2 * math.pi) == pytest.approx(0, abs=1e-9)
    fig = viz.identity_terms_figure(ti)
    assert {"Σ successor", "Σ KS"} <= set(names(fig))
    circle = viz.identity_circle_figure(ti)
    assert {"attended θ_u", "successor θ_u+1", "lock target θ_u − α_u/n"} <= set(names(circle))


@pytest.mark.parametrize("mask", ["separate_strict", "shared_self"])
def test_token_identity_other_delay_masks(mask):
    d = probe(fsnlab.build_model("fsn-tiny", delay_mask=mask), TEXT[:60], attention=True, identity_positions=None)
    for pos in (3, 30, 59):
        ti = viz.token_identity(d, 0, 1, pos, 1, 2)
        assert ti.residual < 1e-15
        if mask == "shared_self":
            assert any(x.u == pos and x.succ == pos for x in ti.terms)  # the token is its own successor
        if ti.complete:
            assert ti.successor_sum == pytest.approx(ti.network, abs=2e-6)


def test_identity_residual_table(ds):
    rows = viz.identity_residual_table(ds, 0)
    assert len(rows) == ds.sizes["layer"] * ds.sizes["harmonic"]
    assert max(r["residual"] for r in rows) < 1e-12 and min(r["control"] for r in rows) > 1e-6
    assert len(viz.identity_residual_table(ds, None)) == len(rows)


def test_no_delay_kernel_and_transformer():
    base = probe(fsnlab.build_model("ka-tiny"), TEXT[:40], attention=True)
    with pytest.raises(VizError, match="delay"):
        viz.token_identity(base, 0, 0, 10, 1, 0)
    assert viz.identity_residual_table(base) == []
    g = viz.coupling_function_figure(base, 0, 0)
    assert names(g)[0].startswith("Γ(φ)") and not any("Γ⁺" in n for n in names(g))
    tr = probe(fsnlab.build_model("transformer-tiny"), TEXT[:40], attention=True)
    assert not viz.has_phases(tr)
    with pytest.raises(VizError, match="phases"):
        viz.phase_figure(tr, 0, 0, 0)
    assert types(viz.loss_figure(tr, 0)) == ["Bar"]


def test_fsn_mf_probe():
    """FSN-MF: the feed-forward stages are mode steps ('modes'); phases, identity and kernel still draw."""
    mf = probe(fsnlab.build_model("fsn-mf-tiny"), TEXT[:50], attention=True, identity_positions=None)
    assert "modes" in [str(k) for k in mf.stage_kind.values]
    fig = viz.phase_figure(mf, 0, 1, "blocks.0.modes" if "blocks.0.modes" in mf.stage.values else 2, selected=30)
    assert "tokens" in names(fig)
    ti = viz.token_identity(mf, 0, 1, 30, 1, 1)
    assert ti.residual < 1e-15
    assert viz.coupling_function_figure(mf, 1, 0).data


# -- the network kernel (OQ-9) -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def ds_net():
    """fsn-tiny with the network kernel (randomised: cross-coupling of order one), attention and the identity everywhere."""
    import torch

    torch.manual_seed(5)
    model = fsnlab.build_model("fsn-tiny", kernel_form="network", delay_mask="shared_self")
    g = torch.Generator().manual_seed(6)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    return probe(model, TEXT[:64], attention=True, identity_positions=None)


def test_kernel_matrix_figure(ds_net, ds):
    from fsnlab.viz.kernel import has_kernel_matrix, kernel_matrix_figure

    assert has_kernel_matrix(ds_net) and not has_kernel_matrix(ds)
    fig = kernel_matrix_figure(ds_net, 1, 2)
    assert types(fig) == ["Heatmap"] * 8  # (|K|, -arg K) x 2 delays x 2 heads
    z = np.asarray(fig.data[0].z, dtype=np.float64)
    want = ds_net.kernel_matrix_strength.isel(layer=1, delay=0, head=0, harmonic=1).values.astype(np.float64)
    off = ~np.eye(16, dtype=bool)
    np.testing.assert_array_equal(z[off], want[off])
    assert np.isnan(np.diag(z)).all()  # the diagonal (c_n, d_n) is the table's
    alpha = np.asarray(fig.data[2].z, dtype=np.float64)  # row 2: -arg K0, head 0
    np.testing.assert_array_equal(alpha[off], ds_net.kernel_matrix_alpha.isel(layer=1, delay=0, head=0, harmonic=1).values[off])
    assert "n = 2" in fig.layout.title.text and fig.layout.coloraxis2.cmax == pytest.approx(math.pi)
    full = kernel_matrix_figure(ds_net, 0, 1, diagonal=True)
    assert np.isfinite(np.asarray(full.data[0].z, dtype=np.float64)).all()
    with pytest.raises(VizError, match="diagonal"):
        kernel_matrix_figure(ds, 0, 1)
    with pytest.raises(VizError, match="harmonic"):
        kernel_matrix_figure(ds_net, 0, 9)


@pytest.mark.parametrize("layer,pos,n,osc", [(0, 5, 1, 0), (1, 20, 2, 17), (1, 63, 4, 31)])
def test_token_identity_reads_the_network_kernel(ds_net, layer, pos, n, osc):
    """Each term sums over the head's senders j with K1_ij; both forms agree, and the complete top-k is the
    network's own Im(e^{-in theta_i} sum_j K1_ij Z1_j) from the stored Z1."""
    ti = viz.token_identity(ds_net, 0, layer, pos, n, osc)
    assert ti.cross and ti.summary()["cross_coupling"] is True
    assert ti.terms and ti.residual < 1e-14 and ti.max_term_residual < 1e-14
    assert ti.control_residual > 1e3 * max(ti.residual, 1e-18)
    assert ti.probe_residual < 1e-12


def test_token_identity_network_complete_topk_equals_the_network(ds_net):
    k = ds_net.sizes["k"]
    for pos in range(1, k - 1):
        for n in (1, 3):
            ti = viz.token_identity(ds_net, 0, 1, pos, n, 20)
            assert ti.complete
            assert ti.successor_sum == pytest.approx(ti.network, abs=2e-5)
    # without the cross-coupling the terms would miss it: the diagonal alone is far from the network's term
    ti = viz.token_identity(ds_net, 0, 1, k - 2, 1, 20)
    diagonal_only = ds_net.drop_vars([v for v in ds_net.variables if str(v).startswith("kernel_matrix")])
    assert abs(viz.token_identity(diagonal_only, 0, 1, k - 2, 1, 20).successor_sum - ti.network) > 1e-3


def test_network_probe_files_round_trip(ds_net, tmp_path):
    """The pair variables and their dims go through zarr and netCDF."""
    import torch

    from fsnlab.probe.core import write_probe
    from fsnlab.probe.options import ProbeOptions

    torch.manual_seed(5)
    model = fsnlab.build_model("fsn-tiny", kernel_form="low_rank", kernel_rank=2)
    for suffix in ("zarr", "nc"):
        path = write_probe(model, TEXT[:40], tmp_path / f"p.{suffix}", ProbeOptions(attention=True))
        back = open_probe(path)
        assert back.kernel_matrix_alpha.dims == ("layer", "delay", "head", "harmonic", "osc_i", "osc_j")
        assert back.kernel_matrix_alpha.attrs["units"] == "radian"
        K = torch.stack(model.blocks[1].attn.coupling_matrices())
        np.testing.assert_array_equal(back.kernel_matrix_imag.isel(layer=1).values, K.imag.numpy())
