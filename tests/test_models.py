"""Behaviour of every model family: causality, gradients, finiteness, budgets, configs, copying."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fsnlab.errors import ConfigError
from fsnlab.models import (
    RUNG_TARGETS,
    build_model,
    config_from_dict,
    config_from_json,
    config_to_dict,
    config_to_json,
    get_preset,
    list_presets,
    param_groups,
    parameter_breakdown,
    parameter_components,
    preset_rung,
)
from fsnlab.models.config import KERNEL_SETTINGS

FAMILY_VARIANTS = [
    ("transformer-tiny", {}),
    ("fsn-mf-tiny", {}),
    ("fsn-mf-tiny", {"mf_select": "uniform"}),
    *[("fsn-tiny", {"kernel": k}) for k in KERNEL_SETTINGS],
    ("fsn-tiny", {"delay_mask": "separate_strict"}),
    ("fsn-tiny", {"delay_mask": "shared_self"}),
    ("fsn-tiny", {"gate": "query", "readout": "tied", "embedding": "tanh", "natural_frequency": True}),
    ("fsn-tiny", {"embedding": "vector", "readout": "tied", "score_offset": True}),
    ("fsn-tiny", {"query_offset": True}),
    ("fsn-tiny", {"attn_steps": 2}),
    ("fsn-tiny", {"value_offset": True}),
    ("fsn-tiny", {"attention": "dot_product"}),
    ("fsn-tiny", {"attention": "phase_scores", "score_offset": True}),
    ("fsn-tiny", {"attention": "dot_scores", "gate": "query"}),
    ("fsn-tiny", {"kernel_form": "network"}),
    ("fsn-tiny", {"kernel_form": "low_rank", "kernel_rank": 2, "delay_mask": "separate_strict"}),
]
IDS = [f"{p}{'-' + ','.join(f'{k}={v}' for k, v in o.items()) if o else ''}" for p, o in FAMILY_VARIANTS]


@pytest.mark.parametrize("preset,overrides", FAMILY_VARIANTS, ids=IDS)
def test_future_bytes_never_change_past_logits(preset, overrides):
    T = 24
    for seed in range(3):
        torch.manual_seed(seed)
        model = build_model(preset, **overrides).eval()
        gen = torch.Generator().manual_seed(100 + seed)
        idx = torch.randint(0, 256, (2, T), generator=gen)
        with torch.no_grad():
            base = model(idx)
            for t in (0, 5, T - 2):  # first position, middle, the last that has a future
                changed = idx.clone()
                changed[:, t + 1 :] = torch.randint(0, 256, (2, T - t - 1), generator=gen)
                out = model(changed)
                assert torch.equal(out[:, : t + 1], base[:, : t + 1]), f"position <= {t} saw the future"
                assert not torch.equal(out[:, t + 1 :], base[:, t + 1 :])  # the test can fail


@pytest.mark.parametrize("preset,overrides", FAMILY_VARIANTS, ids=IDS)
def test_gradients_reach_every_parameter(preset, overrides):
    torch.manual_seed(0)
    model = build_model(preset, **overrides)
    idx = torch.randint(0, 256, (2, 16), generator=torch.Generator().manual_seed(1))
    # one optimizer step first, so parameters initialised at exact zeros (c_n for n >= 2) move off
    # the symmetric point where some gradients vanish by construction
    loss = F.cross_entropy(model(idx[:, :-1]).flatten(0, 1), idx[:, 1:].flatten())
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{name} has an all-zero gradient"


@pytest.mark.parametrize("preset", ["fsn-tiny", "ka-tiny", "fsn-mf-tiny"])
def test_phases_stay_finite_for_long_sequences(preset):
    torch.manual_seed(0)
    model = build_model(preset, context_length=4096).eval()
    idx = torch.randint(0, 256, (1, 4096), generator=torch.Generator().manual_seed(0))
    from fsnlab.models import capture

    with torch.no_grad(), capture(model, lambda n: n.endswith("theta_out") or n == "hook_theta_final") as cache:
        logits = model(idx)
    assert torch.isfinite(logits).all()
    assert cache and all(torch.isfinite(v).all() for v in cache.values())


def test_every_preset_is_within_one_percent_of_its_rung():
    for name in list_presets():
        target = RUNG_TARGETS[preset_rung(name)]
        total = parameter_breakdown(name)["total"]
        assert abs(total - target) <= 0.01 * target, f"{name}: {total} vs {target}"


def test_each_rung_has_all_four_families():
    for rung in RUNG_TARGETS:
        for family in ("fsn", "ka", "fsn-mf", "transformer"):
            assert f"{family}-{rung}" in list_presets()


def test_breakdown_sums_to_the_real_parameter_count():
    for name in ("fsn-tiny", "ka-tiny", "fsn-mf-tiny", "transformer-tiny", "fsn-1m", "transformer-1m"):
        model = build_model(name)
        unique = {id(p): p.numel() for p in model.parameters()}
        breakdown = parameter_breakdown(model)
        assert breakdown["total"] == sum(unique.values())
        assert breakdown == parameter_breakdown(name)


def test_counts_follow_the_spec_formulas():
    """Spec §7.3: P_F = VD + L(5Dh + 2D + H + 4HN) + 2DV + V, plus LD for the presets' score offset (OQ-4),
    and P_T = Vd + L(4d^2 + 3dh + 2d) + d (tied)."""
    c = get_preset("fsn-1m")
    V, D, h, H, N, L = 256, c.d_phase, c.ffn_hidden, c.n_head, c.n_harmonics, c.n_layer
    assert c.score_offset
    assert parameter_breakdown(c)["total"] == V * D + L * (5 * D * h + 2 * D + H + 4 * H * N) + 2 * D * V + V + L * D
    t = get_preset("transformer-1m")
    d, h, L = t.d_model, t.ffn_hidden, t.n_layer
    assert parameter_breakdown(t)["total"] == V * d + L * (4 * d * d + 3 * d * h + 2 * d) + d


def test_mean_field_variant_has_no_mlp():
    model = build_model("fsn-mf-1m")
    linears = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    assert linears == ["readout.proj"]  # the readout is a linear map of [cos; sin], not an MLP
    assert parameter_breakdown(model)["feed_forward"] == 0


def test_param_groups_cover_every_parameter_once():
    for name in ("fsn-tiny", "fsn-mf-tiny", "transformer-tiny"):
        model = build_model(name)
        groups = param_groups(model)
        flat = [id(p) for ps in groups.values() for p in ps]
        assert len(flat) == len(set(flat)) == len({id(p) for p in model.parameters()})
    fsn = build_model("fsn-mf-tiny")
    angle = {id(p) for p in param_groups(fsn)["angle"]}
    assert id(fsn.embed.weight) in angle and id(fsn.blocks[0].ffn.mode_phases) in angle
    no_decay = {id(p) for p in param_groups(fsn)["no_decay"]}
    assert id(fsn.blocks[0].attn.kernel.c_re) in no_decay


@pytest.mark.parametrize("preset,overrides", FAMILY_VARIANTS, ids=IDS)
def test_every_parameter_has_a_declared_budget_component(preset, overrides):
    """``fsnlab params`` reads what each module declares: every parameter is covered, and the split of
    every variant puts each map where it works (the value pathway of a diagnostic is the kernel's)."""
    model = build_model(preset, **overrides)
    components = parameter_components(model)
    assert set(components) == {n for n, _ in model.named_parameters(remove_duplicate=False)}
    counts = parameter_breakdown(model)
    numel = lambda *names: sum(p.numel() for n, p in model.named_parameters() if any(s in n for s in names))  # noqa: E731
    attention = overrides.get("attention", "kuramoto")
    if preset.startswith("fsn-tiny") and attention == "kuramoto":
        assert counts["kernel"] == numel(".kernel.", "eta_raw", "natural_frequency", "value_proj", ".network.")
        assert counts["score_map"] == numel("gate_", "log_beta", "score_offset", "offset_proj")
    if attention == "phase_scores":  # the FSN's weights A, a transformer's W_v, W_o: those are the value pathway
        assert counts["kernel"] == numel("value_map", "output_map") > 0
        assert counts["score_map"] == numel("gate_", "log_beta", "score_offset")
    if attention == "dot_scores":
        assert counts["score_map"] == numel("query_proj", "key_proj") > 0
        assert counts["kernel"] == numel(".kernel.", "eta_raw")
    if attention == "dot_product":  # W_in feeds q, k and v: counted as the transformer's W_qkv is
        w_in = [p.numel() for n, p in model.named_parameters() if "w_in" in n]
        assert counts["kernel"] == numel("attn.attn.wo") + numel("attn.attn.wqkv") // 3 + sum(n - round(2 * n / 3) for n in w_in)


def test_a_module_without_a_declaration_is_refused():
    model = build_model("fsn-tiny")
    model.blocks[0].extra = nn.Linear(2, 2)
    with pytest.raises(ConfigError, match="blocks.0.extra.weight"):
        parameter_breakdown(model)


def test_the_spec_layer_is_built_for_every_faithful_config_and_a_diagnostic_class_otherwise():
    from fsnlab.models.diagnostics import (
        DotProductPhaseAttention, DotScoreAttention, DotScoreValueOffsetAttention, PhaseScoreAttention,
        ValueOffsetAttention,
    )
    from fsnlab.models.fsn import FSNAttention

    for preset, overrides in FAMILY_VARIANTS:
        model = build_model(preset, **overrides)
        if model.config.family == "transformer":
            continue
        attn = type(model.blocks[0].attn)
        expected = {
            ("kuramoto", False): FSNAttention, ("kuramoto", True): ValueOffsetAttention,
            ("dot_scores", False): DotScoreAttention, ("phase_scores", False): PhaseScoreAttention,
            ("dot_product", False): DotProductPhaseAttention,
        }[model.config.attention, model.config.value_offset]
        assert attn is expected
    assert type(build_model("fsn-tiny", attention="dot_scores", value_offset=True).blocks[0].attn) is DotScoreValueOffsetAttention
    with pytest.raises(ConfigError, match="value_offset"):
        build_model("fsn-tiny", attention="phase_scores", value_offset=True)


def test_parameter_order_of_the_optimizer_groups_is_that_of_the_checkpoints():
    """The optimizer's state in a checkpoint is indexed by position within each group: the order of the
    layer's parameters is part of the checkpoint format (a resumed run must find its moments)."""
    model = build_model("fsn-tiny")
    names = {id(p): n for n, p in model.named_parameters()}
    groups = {g: [names[id(p)] for p in ps] for g, ps in param_groups(model).items()}
    block = lambda i, *ns: [f"blocks.{i}.{n}" for n in ns]  # noqa: E731
    mlp = ("ffn.mlp.w1.weight", "ffn.mlp.w3.weight", "ffn.mlp.w2.weight")
    kernel = ("attn.gate_raw", "attn.log_beta", "attn.eta_raw", "attn.kernel.c_re", "attn.kernel.c_im",
              "attn.kernel.d_re", "attn.kernel.d_im")
    assert groups == {
        "decay": [*block(0, *mlp), *block(1, *mlp), "readout.proj.weight"],
        "no_decay": [*block(0, *kernel), *block(1, *kernel), "readout.proj.bias"],
        "angle": ["embed.weight", "blocks.0.attn.score_offset", "blocks.1.attn.score_offset"],
    }


def test_config_round_trips_through_json():
    for name in list_presets():
        cfg = get_preset(name)
        assert config_from_json(config_to_json(cfg)) == cfg
        assert config_from_dict(json.loads(json.dumps(config_to_dict(cfg)))) == cfg


@pytest.mark.parametrize(
    "bad",
    [
        {"family": "rnn"},
        {"family": "fsn", "kernel": "frustrated"},
        {"family": "fsn", "d_phase": 10, "n_head": 3},
        {"family": "fsn", "not_a_field": 1},
        {"family": "fsn", "delay_mask": "diagonal"},
        {"family": "fsn", "attn_steps": 0},
        {"family": "fsn", "attention": "softmax"},
        {"family": "fsn", "schema_version": 99},
    ],
)
def test_bad_configs_raise_config_error(bad):
    with pytest.raises(ConfigError):
        config_from_dict(bad)


def test_unknown_preset_and_override_are_config_errors():
    with pytest.raises(ConfigError, match="fsn-1m"):
        build_model("fsn-3m")
    with pytest.raises(ConfigError):
        build_model("fsn-tiny", d_model=3)


# Every spec guess that could change results (an open question, OQ-n) is a config field; each must
# really change the model. (preset, overrides) per OQ; OQ-1 (phase wrapping) has no switch by design,
# OQ-20/22 (context length, vocabulary) change shapes, not the function.
OPEN_QUESTION_SWITCHES = {
    "OQ-2 depth": ("fsn-tiny", dict(n_layer=3)),
    "OQ-3 embedding": ("fsn-tiny", dict(embedding="vector")),
    "OQ-4 query gate": ("fsn-tiny", dict(gate="query")),
    "OQ-4 score offset": ("fsn-tiny", dict(score_offset=False)),
    "OQ-4 query offset": ("fsn-tiny", dict(query_offset=True)),
    "OQ-5 rotary base": ("fsn-tiny", dict(rope_base=100.0)),
    "OQ-6 temperature": ("fsn-tiny", dict(temperature_init=0.5)),
    "OQ-8 delay mask": ("fsn-tiny", dict(delay_mask="separate_strict")),
    "OQ-9 harmonics": ("fsn-tiny", dict(n_harmonics=2)),
    "OQ-9 sharing": ("fsn-tiny", dict(kernel_sharing="coord")),
    "OQ-9 network kernel": ("fsn-tiny", dict(kernel_form="network1")),
    "OQ-9 low-rank network kernel": ("fsn-tiny", dict(kernel_form="low_rank", kernel_rank=1)),
    "OQ-10 delay init": ("fsn-tiny", dict(delay_init_scale=0.5)),
    "OQ-11 step size": ("fsn-tiny", dict(step_size_init=0.5)),
    "OQ-12 natural frequency": ("fsn-tiny", dict(natural_frequency=True)),
    "OQ-13 ffn norm": ("fsn-tiny", dict(ffn_norm=True)),
    "OQ-14 mean field": ("fsn-tiny", dict(ffn="mean_field", n_modes=64)),
    "OQ-15 coupling steps": ("fsn-tiny", dict(attn_steps=2)),
    "OQ-16 readout": ("fsn-tiny", dict(readout="tied")),
    "OQ-17 mode selection": ("fsn-mf-tiny", dict(mf_select="uniform")),
    "OQ-17 mode harmonics": ("fsn-mf-tiny", dict(mf_harmonics=2)),
    "OQ-18 modes": ("fsn-mf-tiny", dict(n_modes=100)),
    "OQ-32 kernel": ("fsn-tiny", dict(kernel="base")),
}


def _generic_logits(preset: str, **overrides) -> torch.Tensor:
    """Logits of the model with every parameter moved off its init by noise seeded by its name (so that
    switches whose new parameters start at zero still act), on one fixed batch."""
    import zlib

    torch.manual_seed(0)
    model = build_model(preset, **overrides)
    with torch.no_grad():
        for name, p in model.named_parameters():
            g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    idx = torch.randint(0, 256, (2, 24), generator=torch.Generator().manual_seed(7))
    return model(idx)


@pytest.mark.parametrize("oq", list(OPEN_QUESTION_SWITCHES))
def test_every_open_question_switch_changes_the_model(oq):
    preset, overrides = OPEN_QUESTION_SWITCHES[oq]
    default = _generic_logits(preset)
    switched = _generic_logits(preset, **overrides)
    assert default.shape == switched.shape
    assert (default - switched).abs().max() > 1e-3, f"{oq}: {overrides} does not change the model"


def _copy_batch(gen: torch.Generator, batch: int, alphabet: int = 32, seg: int = 16, gap: int = 8) -> torch.Tensor:
    """Random symbols with a repeated segment: noise(gap) + S + noise(gap) + S."""
    s = torch.randint(0, alphabet, (batch, seg), generator=gen)
    n1 = torch.randint(0, alphabet, (batch, gap), generator=gen)
    n2 = torch.randint(0, alphabet, (batch, gap), generator=gen)
    return torch.cat([n1, s, n2, s], 1)


def _copy_loss(kernel: str, steps: int, seed: int) -> float:
    torch.manual_seed(seed)
    model = build_model("fsn-tiny", kernel=kernel, n_layer=1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = _copy_batch(gen, 32)
        loss = F.cross_entropy(model(x[:, :-1]).flatten(0, 1), x[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    x = _copy_batch(torch.Generator().manual_seed(1234), 256)
    with torch.no_grad():
        per_token = F.cross_entropy(model(x[:, :-1]).transpose(1, 2), x[:, 1:], reduction="none")
    return per_token[:, 32:].mean().item()  # targets 2..16 of the repeated segment


@pytest.mark.slow
def test_delay_term_learns_to_copy_a_repeated_segment():
    """One layer with the successor (delay) term can retrieve a context and continue it (§3.4, "why
    the successor"); the unfrustrated base layer cannot, within the same CPU budget."""
    steps = 500
    delay = _copy_loss("full", steps, seed=0)
    base = _copy_loss("base", steps, seed=0)
    chance = torch.log(torch.tensor(32.0)).item()
    assert base > 0.9 * chance, f"base layer unexpectedly copies: {base:.3f}"
    assert delay < 0.5 * base, f"delay kernel {delay:.3f} nats vs base {base:.3f}"


def test_vector_embedding_is_the_angle_of_its_vectors():
    torch.manual_seed(0)
    model = build_model("fsn-tiny", embedding="vector")
    w = model.embed.weight
    assert w.shape == (256, 32, 2)
    assert torch.allclose(w.norm(dim=-1), torch.ones(256, 32))  # initialised on the unit circle
    with torch.no_grad():
        w.mul_(torch.rand(256, 32, 1) * 3 + 0.1)  # the radius must not matter
    idx = torch.tensor([[3, 200, 3]])
    theta = model.embed(idx)
    expected = torch.atan2(w[idx, :, 1], w[idx, :, 0])
    assert torch.allclose(theta, expected)
    assert torch.allclose(model.embed.phases()[idx], theta)
    assert theta.abs().max() <= math.pi


def test_attn_steps_integrate_the_same_coupling_again():
    """attn_steps=2 is the attention step applied twice with the same weights, then the feed-forward."""
    torch.manual_seed(0)
    model = build_model("fsn-tiny", attn_steps=2).eval()
    block = model.blocks[0]
    theta = torch.randn(2, 9, model.config.d_phase)
    with torch.no_grad():
        expected = block.ffn(block.attn(block.attn(theta)))
        once = block.ffn(block.attn(theta))
        torch.testing.assert_close(block(theta), expected)
    assert (expected - once).abs().max() > 1e-3
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(model) == count(build_model("fsn-tiny"))


@pytest.mark.parametrize("preset", ["fsn-tiny", "ka-tiny", "fsn-mf-tiny", "transformer-tiny"])
def test_bf16_autocast_trains_every_family(preset):
    """The CUDA training path's dtype logic (products in the autocast dtype, phases and softmax in fp32),
    exercised on CPU: finite gradients everywhere, and the loss close to fp32's."""
    torch.manual_seed(0)
    model = build_model(preset)
    idx = torch.randint(0, 256, (2, 33), generator=torch.Generator().manual_seed(1))
    loss = lambda logits: torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), idx[:, 1:].flatten())  # noqa: E731
    reference = loss(model(idx[:, :-1])).item()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = loss(model(idx[:, :-1]))
    value.backward()
    assert abs(value.item() - reference) < 0.05
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
