"""Necessary FLOPs per token (fsnlab.models.flops, issue 14): the issue's numbers, the formulas per
kernel, and the non-attention matmuls against torch's FlopCounterMode on real forward passes."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from fsnlab.models import FlopCount, build_model, flops, get_preset, replace_config
from fsnlab.models.flops import family_label

M = 1e6


@pytest.fixture(autouse=True)
def one_thread():
    """Small forward passes on a shared 2-core machine run far faster on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def measured(model: nn.Module, T: int, backward: bool = False, batch: int = 1) -> tuple[float, float]:
    """(non-attention, attention) FLOPs per token that FlopCounterMode sees in one forward (and backward).

    Attention is whatever runs inside each block's attention sublayer except its linear layers; SDPA runs
    on its math backend, so that FlopCounterMode counts it (the fused CPU kernel is not counted).
    """
    x = torch.randint(0, 256, (batch, T), generator=torch.Generator().manual_seed(0))
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False, depth=None) as counter:
        out = model(x)
        if backward:
            out.float().sum().backward()
    counts = {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}
    root = type(model).__name__
    attention = 0
    for i, block in enumerate(model.blocks):
        prefix = f"{root}.blocks.{i}.attn"
        attention += counts.get(prefix, 0)
        for name, sub in block.attn.named_modules():
            if name and isinstance(sub, nn.Linear):
                attention -= counts.get(f"{prefix}.{name}", 0)
    total = counter.get_total_flops()
    tokens = batch * T
    return (total - attention) / tokens, attention / tokens


def test_the_issues_numbers():
    """Issue 14: training FLOPs/token (3 x forward) at T = 512 and 2048 for the 1M rung."""
    fsn, tr = flops("fsn-1m", 512), flops("transformer-1m", 512)
    assert fsn.training_non_attention / M == pytest.approx(5.66, abs=0.005)
    assert tr.training_non_attention / M == pytest.approx(5.99, abs=0.005)
    assert fsn.training / M == pytest.approx(26.9, abs=0.05)
    assert tr.training / M == pytest.approx(8.0, abs=0.06)
    assert fsn.training / tr.training == pytest.approx(3.4, abs=0.05)
    fsn, tr = flops("fsn-1m", 2048), flops("transformer-1m", 2048)
    assert fsn.training / M == pytest.approx(90.6, abs=0.05)
    assert tr.training / M == pytest.approx(13.9, abs=0.06)
    assert fsn.training / tr.training == pytest.approx(6.5, abs=0.05)


def test_attention_formulas():
    T = 512
    tr = get_preset("transformer-1m")
    assert flops(tr, T).attention == tr.n_layer * 2 * tr.d_model * T
    cfg = get_preset("fsn-1m")
    L, D, N = cfg.n_layer, cfg.d_phase, cfg.n_harmonics
    assert flops(cfg, T).attention == L * T * D * (2 + 4 * N)
    for kernel, expected in (("base", 4), ("+harmonics", 2 + 2 * N), ("+sakaguchi", 4), ("+delay", 6), ("full", 2 + 4 * N)):
        assert flops(replace_config(cfg, kernel=kernel), T).attention == L * T * D * expected, kernel
    for mask in ("separate_strict", "shared_self"):  # one shared score product whatever the normalisation
        assert flops(replace_config(cfg, delay_mask=mask), T).attention == flops(cfg, T).attention
    assert flops(replace_config(cfg, attn_steps=2), T).attention == 2 * flops(cfg, T).attention
    # attention is linear in T, the rest does not depend on it
    a, b = flops(cfg, 512), flops(cfg, 2048)
    assert b.attention == 4 * a.attention and b.non_attention == a.non_attention


def test_count_object():
    f = flops("fsn-mf-1m")
    assert isinstance(f, FlopCount) and f.context_length == 512 and f.family == "fsn-mf"
    assert f.forward == pytest.approx(sum(f.parts.values()))
    assert f.training == 3 * f.forward
    d = f.to_dict()
    assert d["training"] == f.training and d["parts"]["mode_coupling"] > 0
    assert [family_label(get_preset(f"{p}-1m")) for p in ("fsn", "ka", "fsn-mf", "transformer")] == [
        "fsn", "ka", "fsn-mf", "transformer"
    ]
    assert flops(get_preset("fsn-1m"), 64) == flops("fsn-1m", 64)
    assert "MFLOP/token" in str(f)
    with pytest.raises(Exception):
        flops("fsn-1m", 0)


def _variant(preset: str, **overrides):
    return replace_config(get_preset(preset), **overrides)


VARIANTS = {
    **{p: get_preset(p) for r in ("tiny", "1m") for p in (f"fsn-{r}", f"ka-{r}", f"fsn-mf-{r}", f"transformer-{r}")},
    "query gate, query offset, value offset": _variant("fsn-tiny", gate="query", query_offset=True, value_offset=True),
    "dot_product": _variant("fsn-tiny", attention="dot_product"),
    "phase_scores": _variant("fsn-tiny", attention="phase_scores"),
    "dot_scores": _variant("fsn-tiny", attention="dot_scores", value_offset=True),
    "attn_steps=2": _variant("fsn-tiny", attn_steps=2, gate="query"),
    "tied readout": _variant("fsn-tiny", readout="tied"),
    "+sakaguchi separate_strict": _variant("fsn-tiny", kernel="+sakaguchi", delay_mask="separate_strict"),
    "+delay separate_strict": _variant("fsn-tiny", kernel="+delay", delay_mask="separate_strict"),
    "network1": _variant("fsn-tiny", kernel_form="network1"),
    "low_rank": _variant("fsn-tiny", kernel_form="low_rank", kernel_rank=2),
    "mf N'=2": _variant("fsn-mf-tiny", mf_harmonics=2),
    "mf uniform": _variant("fsn-mf-tiny", mf_select="uniform"),
    "untied transformer": _variant("transformer-tiny", tie_embeddings=False),
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_non_attention_matches_flop_counter(name):
    """Every matmul outside attention is counted exactly; FlopCounterMode counts the transformer's causal
    SDPA at full T x T (twice the necessary T/2 keys), and any FSN attention path at least the necessary."""
    T = 16
    config = replace_config(VARIANTS[name], context_length=T)
    torch.manual_seed(0)
    model = build_model(config)
    non_attention, attention = measured(model, T)
    count = flops(config, T)
    assert non_attention == count.non_attention
    if config.family == "transformer" or config.attention == "dot_product":
        assert attention == 2 * count.attention  # SDPA counted over all T keys of every query
    else:
        assert attention >= count.attention > 0


@pytest.mark.parametrize("preset", ["fsn-tiny", "fsn-mf-tiny", "transformer-tiny"])
def test_training_is_three_forward_passes_outside_attention(preset):
    """Backward costs 2 x forward for every matmul: FlopCounterMode over forward + backward."""
    T = 16
    model = build_model(preset, context_length=T)
    non_attention, _ = measured(model, T, backward=True)
    assert non_attention == flops(model.config, T).training_non_attention
    assert math.isclose(non_attention, 3 * measured(model, T)[0])
