"""The quality sweep's variants (docs/quality.md): each a named arm, a family plus model overrides
and training options, so that every idea tried on the gap is a config switch.

A variant that changes the parameter count has its SwiGLU width re-solved
(:func:`fsnlab.models.match_budget`) so it stays on the rung's budget (:func:`budget_matched`),
unless it is a diagnostic off the budget (``matched=False``), whose overrides are used as given.
The FSN family's layer is pinned to the one the sweeps began with (:data:`PINNED_MODEL`), so every
recorded run keeps its meaning after the presets' defaults moved on.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

# The FSN family's layer as the sweeps began: the presets have since turned the score offset on (it won
# here), so the protocol pins it off and a variant that wants it says so; every recorded run keeps its meaning.
PINNED_MODEL: dict[str, Any] = {"score_offset": False}


@dataclass(frozen=True)
class Variant:
    """A named arm: a family plus model overrides and training options."""

    family: str  # fsn | ka | fsn-mf | transformer
    model: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    matched: bool = True  # False: a diagnostic off the rung's budget, its overrides used as given


VARIANTS: dict[str, Variant] = {
    "transformer": Variant("transformer", note="RoPE-SwiGLU baseline"),
    "transformer:scalar-lr10": Variant("transformer", train={"scalar_lr_scale": 10.0},
                                       note="10x LR on the norm gains (the same switch the FSN gets)"),
    "fsn": Variant("fsn", note="full kernel, spec defaults"),
    "ka": Variant("ka", note="unfrustrated base layer"),
    "fsn:coord": Variant("fsn", {"kernel_sharing": "coord"}, note="one kernel per coordinate (OQ-9)"),
    "fsn:natfreq": Variant("fsn", {"natural_frequency": True}, note="learned natural frequencies (OQ-12)"),
    "fsn:angle-lr10": Variant("fsn", train={"angle_lr_scale": 10.0}, note="10x LR on phase tables (OQ-25)"),
    "fsn:query-gate": Variant("fsn", {"gate": "query"}, note="query-conditioned gate (OQ-4)"),
    "fsn:beta2x": Variant("fsn", {"temperature_init": None}, note="temperature init 2/sqrt(D_h) (OQ-6)"),
    "fsn:eta0.5": Variant("fsn", {"step_size_init": 0.5}, note="coupling strength init 0.5 (OQ-11)"),
    "fsn:eta2": Variant("fsn", {"step_size_init": 2.0}, note="coupling strength init 2 (OQ-11)"),
    "fsn:N2": Variant("fsn", {"n_harmonics": 2}, note="2 harmonics (OQ-9)"),
    "fsn:N8": Variant("fsn", {"n_harmonics": 8}, note="8 harmonics (OQ-9)"),
    "fsn:tied": Variant("fsn", {"readout": "tied"}, note="readout tied to the embedding phases (OQ-16)"),
    "fsn:tanh-embed": Variant("fsn", {"embedding": "tanh"}, note="pi tanh(W) embedding (OQ-3)"),
    "fsn:ffn-norm": Variant("fsn", {"ffn_norm": True}, note="RMSNorm on the SwiGLU hidden layer (OQ-13)"),
    "fsn:separate-strict": Variant("fsn", {"delay_mask": "separate_strict"}, note="own softmax for the delay (OQ-8)"),
    # learning-rate structure: angles are O(1) quantities while matrices start at std 0.02, so one
    # Adam LR moves them at relative rates ~100x apart (meant to be run at the transformer's LR)
    "fsn:angle-lr30": Variant("fsn", train={"angle_lr_scale": 30.0}, note="30x LR on phase tables"),
    "fsn:angle-lr100": Variant("fsn", train={"angle_lr_scale": 100.0}, note="100x LR on phase tables"),
    "fsn:scalar-lr10": Variant("fsn", train={"scalar_lr_scale": 10.0}, note="10x LR on gates, kernels, eta, beta"),
    "fsn:angle30-scalar10": Variant("fsn", train={"angle_lr_scale": 30.0, "scalar_lr_scale": 10.0},
                                    note="30x LR on phase tables, 10x on scalars"),
    "fsn:vector-embed": Variant("fsn", {"embedding": "vector"}, note="embedding = atan2 of learned 2-D vectors (OQ-3)"),
    "fsn:vector-r0.03": Variant("fsn", {"embedding": "vector", "vector_init_radius": 0.03},
                                note="vector embedding of radius 0.03: angular LR about 30x at first, self-annealing"),
    # combinations of the switches that helped one at a time
    "fsn:qgate-angle10": Variant("fsn", {"gate": "query"}, {"angle_lr_scale": 10.0}, note="query gate + 10x angle LR"),
    "fsn:qgate-beta2x-angle10": Variant("fsn", {"gate": "query", "temperature_init": None}, {"angle_lr_scale": 10.0},
                                        note="query gate + temperature 2/sqrt(D_h) + 10x angle LR"),
    "fsn:tied-angle10": Variant("fsn", {"readout": "tied"}, {"angle_lr_scale": 10.0}, note="tied readout + 10x angle LR"),
    "fsn:tied-qgate-angle10": Variant("fsn", {"readout": "tied", "gate": "query"}, {"angle_lr_scale": 10.0},
                                      note="tied readout + query gate + 10x angle LR"),
    "fsn:score-offset": Variant("fsn", {"score_offset": True}, note="learned score offset phi (OQ-4)"),
    "fsn:offset-angle10": Variant("fsn", {"score_offset": True}, {"angle_lr_scale": 10.0},
                                  note="learned score offset phi (OQ-4) + 10x angle LR"),
    "fsn:qgate-offset-angle10": Variant("fsn", {"gate": "query", "score_offset": True}, {"angle_lr_scale": 10.0},
                                        note="query gate + score offset + 10x angle LR"),
    "fsn:qoffset-angle10": Variant("fsn", {"query_offset": True}, {"angle_lr_scale": 10.0},
                                   note="query-conditioned score offset phi_t = W [cos; sin] theta_t + b (OQ-4) + 10x angle LR"),
    "fsn:qgate-qoffset-angle10": Variant("fsn", {"gate": "query", "query_offset": True}, {"angle_lr_scale": 10.0},
                                         note="query gate + query-conditioned score offset + 10x angle LR"),
    "fsn:H4-offset-angle10": Variant("fsn", {"n_head": 4, "score_offset": True}, {"angle_lr_scale": 10.0},
                                     note="4 heads of half the width (more coupling patterns, same parameters) + offset + 10x angle LR"),
    "fsn:L3-offset-angle10": Variant("fsn", {"n_layer": 3, "score_offset": True}, {"angle_lr_scale": 10.0},
                                     note="3 layers, FFN width re-solved (OQ-2) + offset + 10x angle LR"),
    "fsn:steps2-offset-angle10": Variant("fsn", {"attn_steps": 2, "score_offset": True}, {"angle_lr_scale": 10.0},
                                         note="2 weight-tied coupling steps per block (AKOrN, OQ-15) + offset + 10x angle LR"),
    # a DIAGNOSTIC, not a candidate default: it lets a sender's broadcast phase depend on all its coordinates
    "fsn:value-offset-angle10": Variant("fsn", {"value_offset": True, "score_offset": True}, {"angle_lr_scale": 10.0},
                                        note="DIAGNOSTIC: senders broadcast theta + W[cos; sin]theta (value routing) + offset + 10x angle LR"),
    # DIAGNOSTICS off the budget: how many parameters is the FSN's gap worth?
    "fsn:h128-offset-angle10": Variant("fsn", {"score_offset": True, "ffn_hidden": 128}, {"angle_lr_scale": 10.0}, matched=False,
                                       note="OFF BUDGET (1.45x parameters): FFN width 128 + offset + 10x angle LR"),
    "fsn:h256-offset-angle10": Variant("fsn", {"score_offset": True, "ffn_hidden": 256}, {"angle_lr_scale": 10.0}, matched=False,
                                       note="OFF BUDGET (2.3x parameters): FFN width 256 + offset + 10x angle LR"),
    "transformer:h76": Variant("transformer", {"ffn_hidden": 76}, matched=False,
                               note="OFF BUDGET (0.68x parameters): transformer with half the FFN width"),
    "transformer:h38": Variant("transformer", {"ffn_hidden": 38}, matched=False,
                               note="OFF BUDGET (0.52x parameters): transformer with a quarter of the FFN width"),
    # DIAGNOSTIC: the transformer's attention sublayer on the phase state, against the Kuramoto coupling
    "fsn:dotattn-angle10": Variant("fsn", {"attention": "dot_product"}, {"angle_lr_scale": 10.0},
                                   note="DIAGNOSTIC: transformer attention (W_q, W_k, W_v, W_o, RoPE) on [cos; sin] theta, FFN re-solved"),
    "fsn:dotattn-h64-angle10": Variant("fsn", {"attention": "dot_product"}, {"angle_lr_scale": 10.0}, matched=False,
                                       note="DIAGNOSTIC, OFF BUDGET (57.6k): transformer attention on the phase state, FFN width 64"),
    "fsn:h102-offset-angle10": Variant("fsn", {"score_offset": True, "ffn_hidden": 102}, {"angle_lr_scale": 10.0}, matched=False,
                                       note="OFF BUDGET (57.7k): Kuramoto coupling with FFN width 102, the hybrid's parameter count"),
    "fsn:phase-scores-angle10": Variant("fsn", {"attention": "phase_scores", "score_offset": True}, {"angle_lr_scale": 10.0},
                                        note="DIAGNOSTIC: the FSN's score map (with offset), a transformer's W_v, W_o values; FFN re-solved"),
    "fsn:dot-scores-angle10": Variant("fsn", {"attention": "dot_scores"}, {"angle_lr_scale": 10.0},
                                      note="DIAGNOSTIC: a transformer's W_q, W_k scores (RoPE), the Kuramoto kernel values; FFN re-solved"),
    "fsn:coord-offset-angle10": Variant("fsn", {"kernel_sharing": "coord", "score_offset": True}, {"angle_lr_scale": 10.0},
                                        note="one kernel per coordinate (OQ-9) + offset + 10x angle LR"),
    "fsn:eta2-offset-angle10": Variant("fsn", {"step_size_init": 2.0, "score_offset": True}, {"angle_lr_scale": 10.0},
                                       note="coupling strength eta = 2 at init (the force's bound doubled, OQ-11) + offset + 10x angle LR"),
    "fsn:N8-offset-angle10": Variant("fsn", {"n_harmonics": 8, "score_offset": True}, {"angle_lr_scale": 10.0},
                                     note="8 harmonics (a richer coupling function, OQ-9) + offset + 10x angle LR"),
    # the network reading of the kernel (OQ-9, issue 16 item 5): K = diag(c) + W within each head
    "fsn:network1-offset-angle10": Variant("fsn", {"kernel_form": "network1", "score_offset": True}, {"angle_lr_scale": 10.0},
                                           note="network kernel: a full cross-coupling W at harmonic 1, both delays (OQ-9); FFN re-solved"),
    "fsn:network-offset-angle10": Variant("fsn", {"kernel_form": "network", "score_offset": True}, {"angle_lr_scale": 10.0},
                                          note="network kernel: a full W at every harmonic and delay (OQ-9); FFN re-solved"),
    "fsn:lowrank2-offset-angle10": Variant("fsn", {"kernel_form": "low_rank", "kernel_rank": 2, "score_offset": True},
                                           {"angle_lr_scale": 10.0},
                                           note="network kernel: W = U V^H of rank 2 at every harmonic and delay (OQ-9); FFN re-solved"),
    "fsn:lowrank1-offset-angle10": Variant("fsn", {"kernel_form": "low_rank", "kernel_rank": 1, "score_offset": True},
                                           {"angle_lr_scale": 10.0},
                                           note="network kernel: W = U V^H of rank 1 at every harmonic and delay (OQ-9); FFN re-solved"),
    "fsn-mf": Variant("fsn-mf", note="mean-field variant, no MLP (spec 5)"),
    "fsn-mf:angle10": Variant("fsn-mf", train={"angle_lr_scale": 10.0}, note="mean-field variant + 10x angle LR (mode phases too)"),
    "ka:angle10": Variant("ka", train={"angle_lr_scale": 10.0}, note="base layer + 10x angle LR"),
    "fsn:L3": Variant("fsn", {"n_layer": 3}, note="3 layers, FFN width re-solved (OQ-2)"),
    "fsn:L4": Variant("fsn", {"n_layer": 4}, note="4 layers, FFN width re-solved (OQ-2)"),
}


def unknown_variants(names: list[str]) -> list[str]:
    """The names among ``names`` that are not variants."""
    return [name for name in names if name not in VARIANTS]


def resolve(variant: Variant, rung: str) -> Variant:
    """Fill per-rung values (the doubled temperature needs the rung's head width)."""
    if variant.model.get("temperature_init", 0) is None:
        from fsnlab.models import get_preset

        head_dim = get_preset(f"fsn-{rung}").head_dim
        return dataclasses.replace(variant, model={**variant.model, "temperature_init": 2 / head_dim**0.5})
    return variant


def budget_matched(variant: Variant, rung: str) -> dict[str, Any]:
    """The variant's model overrides plus the re-solved FFN width that keeps it on the rung's budget
    (the FSN family on :data:`PINNED_MODEL`; the transformer's overrides as given)."""
    from fsnlab.models import RUNG_TARGETS, get_preset, match_budget, replace_config

    if variant.family == "transformer":
        return dict(variant.model)
    preset = get_preset(f"{variant.family}-{rung}")
    model = {**PINNED_MODEL, **variant.model}
    if not variant.model or not variant.matched:
        return model
    matched = match_budget(replace_config(preset, **model), RUNG_TARGETS[rung])
    width = "n_modes" if matched.ffn == "mean_field" else "ffn_hidden"
    extra = {width: getattr(matched, width)} if getattr(matched, width) != getattr(preset, width) else {}
    return {**model, **extra}


__all__ = ["PINNED_MODEL", "VARIANTS", "Variant", "budget_matched", "resolve", "unknown_variants"]
