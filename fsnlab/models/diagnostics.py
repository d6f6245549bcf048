"""Diagnostic attention forms: NOT the spec's layer (docs/quality.md, "what closes the gap").

Each replaces one part of :class:`fsnlab.models.fsn.FSNAttention` with a transformer's counterpart, at a
parameter count :func:`fsnlab.models.build.match_budget` can equalise, so that a comparison at the same
budget says which part of the layer costs the quality gap. They are built from the spec layer's own
parts (:class:`~fsnlab.models.fsn.PhaseScoreMap`, :class:`~fsnlab.models.fsn.KuramotoCoupling`), so
everything they share is the same code:

========================  ===================================  ===================================
config switch             score map                            value pathway
========================  ===================================  ===================================
``attention="kuramoto"``  phase coherence (§3.3)               Kuramoto kernel (§3.4): the spec
``value_offset=True``     phase coherence                      Kuramoto kernel on ``theta + psi(theta)``
``attention="dot_scores"``  ``W_q, W_k`` on ``[cos; sin]`` + RoPE  Kuramoto kernel
``attention="phase_scores"``  phase coherence                  ``W_v``, ``W_o`` (a transformer's values)
``attention="dot_product"``   a transformer's attention sublayer on ``W_in [cos; sin] theta``
========================  ===================================  ===================================

The probe, ``fsnlab verify`` and the population dynamics refuse these models
(:meth:`fsnlab.models.config.FSNConfig.diagnostic_switches`): the identity in ``theta`` does not apply.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from fsnlab.errors import ConfigError
from fsnlab.models.attention import causal_attention
from fsnlab.models.config import FSNConfig, TransformerConfig
from fsnlab.models.fsn import (
    FSNAttention, PhaseScoreMap, merge_heads, phase_features, split_heads,
)
from fsnlab.models.hooks import HookPoint
from fsnlab.models.transformer import CausalSelfAttention, apply_rope, rope_cos_sin, rope_frequencies

#: a map whose output feeds queries, keys and values alike counts like the transformer's ``W_qkv``
QKV_SPLIT = {"score_map": 2 / 3, "kernel": 1 / 3}


class SenderOffset:
    """``value_offset=True`` (a mixin of a Kuramoto attention step): each sender broadcasts
    ``theta_u + psi_u``, ``psi_u = W_psi [cos; sin] theta_u + b_psi``.

    The diagnostic gives each sender a content-dependent Sakaguchi lag, so coordinate ``i`` of a receiver
    can be pulled toward a function of *all* coordinates of the sender: the routing a transformer's value
    map has and the spec's coupling lacks (docs/quality.md). The delay identity then holds for the
    broadcast phases, not for ``theta``, so ``fsnlab verify`` refuses such a model.
    """

    param_components = {"value_proj": "kernel"}

    def _build_value_pathway(self, config: FSNConfig) -> None:
        self.value_proj = nn.Linear(2 * config.d_phase, config.d_phase)
        super()._build_value_pathway(config)  # type: ignore[misc]

    def sender_phases(self, theta: torch.Tensor) -> torch.Tensor:
        return theta + self.value_proj(phase_features(theta)).to(theta.dtype)


class ValueOffsetAttention(SenderOffset, FSNAttention):
    """``value_offset=True``: the spec's score map, the Kuramoto kernel on the broadcast phases."""


class DotScoreMap:
    """A transformer's score map on the phases (a mixin): ``q = W_q [cos; sin] theta`` and
    ``k = W_k [cos; sin] theta`` with RoPE, scaled by ``1/sqrt(D_h)``; ``(B, H, T, D_h)`` each."""

    param_components = {"query_proj": "score_map", "key_proj": "score_map"}

    def _build_score_map(self, config: FSNConfig) -> None:
        D = config.d_phase
        self.query_proj = nn.Linear(2 * D, D, bias=False)
        self.key_proj = nn.Linear(2 * D, D, bias=False)
        self.register_buffer("rope_freq", rope_frequencies(config.head_dim, config.rope_base), persistent=False)

    def queries_keys(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        H, T = self.config.n_head, theta.shape[1]
        phi = phase_features(theta)
        cos, sin = rope_cos_sin(T, self.rope_freq)
        q = apply_rope(split_heads(self.query_proj(phi).to(theta.dtype), H), cos, sin)
        k = apply_rope(split_heads(self.key_proj(phi).to(theta.dtype), H), cos, sin)
        return q / math.sqrt(q.shape[-1]), k


class DotScoreAttention(DotScoreMap, FSNAttention):
    """``attention="dot_scores"``: learned ``W_q, W_k`` scores with the Kuramoto kernel as the value pathway."""


class DotScoreValueOffsetAttention(SenderOffset, DotScoreMap, FSNAttention):
    """``attention="dot_scores"`` with ``value_offset=True``: both diagnostics of the Kuramoto layer at once."""


class PhaseScoreAttention(PhaseScoreMap, nn.Module):
    """``attention="phase_scores"``: the FSN's weights ``A`` with a transformer's values,
    ``theta + W_o sum_u A_{t,u} W_v [cos; sin] theta_u``; ``W_v, W_o`` replace the kernel and ``eta``."""

    param_components = {"value_map": "kernel", "output_map": "kernel"}

    def __init__(self, config: FSNConfig):
        super().__init__()
        D = config.d_phase
        self.config = config
        self._build_score_map(config)
        self.value_map = nn.Linear(2 * D, D, bias=False)
        self.output_map = nn.Linear(D, D, bias=False)
        self.hook_theta_in = HookPoint()
        self.hook_theta_out = HookPoint()

    def forward(self, theta: torch.Tensor) -> torch.Tensor:
        theta = self.hook_theta_in(theta)
        q, k = self.queries_keys(theta)
        values = split_heads(self.value_map(phase_features(theta)).to(theta.dtype), self.config.n_head)
        mixed = merge_heads(causal_attention(q, k, values), self.config.d_phase).squeeze(-1)
        return self.hook_theta_out(theta + self.output_map(mixed).to(theta.dtype))


class DotProductPhaseAttention(nn.Module):
    """``attention="dot_product"``: the transformer's attention sublayer reading the phase state.

    ``theta <- theta + W_o Attn(W_in [cos; sin] theta)`` with RoPE, learned ``W_q, W_k, W_v`` and a softmax
    over ``u <= t``: what the phase representation can do with a transformer's routing. Comparing it with the
    Kuramoto coupling at the same parameter count separates the coupling from the torus state as the
    cause of the quality gap (docs/quality.md).
    """

    param_components = {"w_in": QKV_SPLIT}

    def __init__(self, config: FSNConfig):
        super().__init__()
        D = config.d_phase
        self.w_in = nn.Linear(2 * D, D, bias=False)
        inner = TransformerConfig(vocab_size=config.vocab_size, context_length=config.context_length,
                                  n_layer=config.n_layer, d_model=D, n_head=config.n_head)
        self.attn = CausalSelfAttention(inner)
        self.register_buffer("rope_freq", rope_frequencies(config.head_dim, config.rope_base), persistent=False)
        self.hook_theta_in = HookPoint()
        self.hook_theta_out = HookPoint()

    def forward(self, theta: torch.Tensor) -> torch.Tensor:
        theta = self.hook_theta_in(theta)
        cos, sin = rope_cos_sin(theta.shape[1], self.rope_freq)
        x = self.w_in(phase_features(theta))
        return self.hook_theta_out(theta + self.attn(x, cos, sin).to(theta.dtype))


def diagnostic_attention(config: FSNConfig) -> nn.Module:
    """The attention step for a config with a diagnostic switch on. ``value_offset`` changes what the
    Kuramoto kernel's senders broadcast, so it combines with the forms that keep the kernel (``kuramoto``,
    ``dot_scores``) and is refused with those that replace it (it would add parameters that do nothing)."""
    if config.value_offset and config.attention in ("phase_scores", "dot_product"):
        raise ConfigError(f"value_offset=True needs the Kuramoto kernel, which attention={config.attention!r} replaces")
    forms = {
        ("kuramoto", True): ValueOffsetAttention,
        ("dot_scores", False): DotScoreAttention,
        ("dot_scores", True): DotScoreValueOffsetAttention,
        ("phase_scores", False): PhaseScoreAttention,
        ("dot_product", False): DotProductPhaseAttention,
    }
    return forms[config.attention, config.value_offset](config)


__all__ = ["DotProductPhaseAttention", "DotScoreAttention", "DotScoreMap", "DotScoreValueOffsetAttention",
           "PhaseScoreAttention", "SenderOffset", "ValueOffsetAttention", "diagnostic_attention"]
