"""FLOPs per token that a model *needs*, from its config alone (issue 14): one place for the arithmetic.

``flops(config, context_length)`` counts the multiply-adds the model cannot avoid (2 FLOPs each),
not what an implementation happens to spend, so that achieved GFLOP/s compare across families and
kernels: a faster attention path raises the efficiency, never the count.

Conventions:

* Embedding lookups are free; elementwise work (trig, norms, softmax, the tangent projection) is not
  counted. A linear layer ``in -> out`` costs ``2 in out`` per token (biases free), as in
  ``torch.utils.flop_counter.FlopCounterMode``.
* Attention is causal, so a query sees ``T/2`` keys on average (``T/2``, not ``(T+1)/2``: the usual
  convention, and the issue's numbers). A score product of width ``w`` per token then costs
  ``2 w T/2 = w T`` per token, and values of width ``w`` the same.
* **Transformer**, per layer and token: ``2 d T`` (``Q K^T`` and ``P V``, width ``d`` each); the
  projections ``W_qkv``, ``W_o`` and the SwiGLU are non-attention matmuls, the readout ``2 d V``.
* **FSN** (``attention="kuramoto"``), per layer and token: one score product of width ``2D``
  (``[cos; sin]`` features per phase) plus values of ``2N`` channels per coordinate (``N`` harmonics
  times real and imaginary parts) for the attended tokens and, with a delay kernel, again for their
  successors: ``T D (2 + 4N)``, or ``T D (2 + 2N)`` without delay (``base``: ``N = 1``, ``4 T D``).
  The delay masks share the score product (``separate_strict`` only renormalises), so they cost the same.
* **FSN-MF** mode coupling (a non-attention cost: it does not grow with ``T``), per layer and token:
  the score product against the ``M`` modes (width ``2D``) and the mode values (``2N'`` channels per
  coordinate), ``4 D M (1 + N')`` for ``mf_select="softmax"``; the ``uniform`` mean field is one
  field for all tokens (0 per token).
* The diagnostic attention forms (``dot_product``, ``phase_scores``, ``dot_scores``) and the optional
  projections (query gate, query offset, value offset) are counted the same way; ``attn_steps``
  multiplies the attention sublayer.
* Training costs ``3 x`` the forward pass (backward = 2 x forward for matmuls).

Probe-only paths (dense hooks) are never counted.

Note: :mod:`fsnlab.models` exports the *function* ``flops``, which shadows this submodule's name on the
package; import from ``fsnlab.models.flops`` (``from fsnlab.models.flops import flops, FlopCount``) or
from ``fsnlab.models`` (``from fsnlab.models import flops``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from fsnlab.errors import ConfigError
from fsnlab.models.config import FSNConfig, ModelConfig, TransformerConfig
from fsnlab.models.presets import get_preset

TRAINING_MULTIPLIER = 3.0  # forward + backward (2 x forward for every matmul)


@dataclass(frozen=True)
class FlopCount:
    """Necessary FLOPs **per token** of one model at one context length.

    ``non_attention`` and ``attention`` are forward-pass FLOPs per token; ``parts`` splits them by
    component (forward, per token, summed over layers; they add up to ``forward``).
    """

    family: str  # "transformer", "fsn", "ka" (base kernel), "fsn-mf" (mean field), or "fsn(<kernel>)"
    context_length: int
    non_attention: float
    attention: float
    parts: dict[str, float] = field(default_factory=dict, compare=False)

    @property
    def forward(self) -> float:
        """Forward FLOPs per token."""
        return self.non_attention + self.attention

    @property
    def training(self) -> float:
        """Training-step FLOPs per token: ``3 x`` forward."""
        return TRAINING_MULTIPLIER * self.forward

    @property
    def training_non_attention(self) -> float:
        return TRAINING_MULTIPLIER * self.non_attention

    @property
    def training_attention(self) -> float:
        return TRAINING_MULTIPLIER * self.attention

    @property
    def attention_fraction(self) -> float:
        """The share of attention in the total."""
        return self.attention / self.forward if self.forward else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with the derived totals (what ``bench/throughput.py`` records)."""
        out = asdict(self)
        out.update(forward=self.forward, training=self.training)
        return out

    def __str__(self) -> str:
        return (
            f"{self.family} T={self.context_length}: {self.training / 1e6:.2f} MFLOP/token training "
            f"({self.training_non_attention / 1e6:.2f} non-attention + {self.training_attention / 1e6:.2f} attention)"
        )


def family_label(config: ModelConfig) -> str:
    """The family a config belongs to, as the presets name it: ``transformer``, ``fsn``, ``ka``, ``fsn-mf``."""
    if isinstance(config, TransformerConfig):
        return "transformer"
    if config.ffn == "mean_field":
        return "fsn-mf"
    if config.kernel == "base":
        return "ka"
    if config.kernel == "full":
        return "fsn"
    return f"fsn({config.kernel})"


def flops(config: ModelConfig | str, context_length: int | None = None) -> FlopCount:
    """Necessary FLOPs per token of ``config`` (or a preset name) at ``context_length`` (default: the config's)."""
    if isinstance(config, str):
        config = get_preset(config)
    T = config.context_length if context_length is None else int(context_length)
    if T <= 0:
        raise ConfigError(f"context_length must be positive, got {T!r}")
    if isinstance(config, TransformerConfig):
        parts = _transformer_parts(config, T)
    elif isinstance(config, FSNConfig):
        parts = _fsn_parts(config, T)
    else:
        raise ConfigError(f"not a model config: {type(config).__name__}")
    parts = {k: float(v) for k, v in parts.items() if v}
    attention = parts.get("attention", 0.0)
    return FlopCount(family_label(config), T, sum(parts.values()) - attention, attention, parts)


def _linear(d_in: int, d_out: int) -> int:
    return 2 * d_in * d_out


def _transformer_parts(c: TransformerConfig, T: int) -> dict[str, float]:
    d, h, L = c.d_model, c.ffn_hidden, c.n_layer
    return {
        "attention_projections": L * (_linear(d, 3 * d) + _linear(d, d)),
        "ffn": L * 3 * _linear(d, h),
        "readout": _linear(d, c.vocab_size),
        "attention": L * 2 * d * T,
    }


def _fsn_parts(c: FSNConfig, T: int) -> dict[str, float]:
    D, L, S = c.d_phase, c.n_layer, c.attn_steps
    spec = c.kernel_spec
    value_width = 2 * spec.n_harmonics * D * (2 if spec.delay else 1)  # re/im x N harmonics (x2: successors)
    projections = 0
    if c.attention == "dot_product":  # W_in, then a transformer's W_qkv, W_o and causal attention at d = D
        projections = _linear(2 * D, D) + _linear(D, 3 * D) + _linear(D, D)
        attention = 2 * D * T
    elif c.attention == "phase_scores":  # phase-coherence scores (width 2D), W_v values of width D, W_o
        projections = _linear(2 * D, D) + _linear(D, D)
        attention = (2 * D + D) * T
    else:
        if c.attention == "dot_scores":  # W_q, W_k on [cos; sin] theta: scores of width D
            projections += 2 * _linear(2 * D, D)
            score_width = D
        else:
            score_width = 2 * D
            if c.gate == "query":
                projections += _linear(2 * D, D)
            if c.query_offset:
                projections += _linear(2 * D, D)
        if c.value_offset:
            projections += _linear(2 * D, D)
        attention = (score_width + value_width) * T  # 2 w T/2 for each of the scores and the values
        if c.kernel_form != "diagonal":  # the network kernel's cross-coupling (OQ-9): per head, harmonic
            # covered and delay, one real (2 D_h x 2 D_h) product on the order parameters of every token
            n_cover = 1 if c.kernel_form == "network1" else spec.n_harmonics
            attention += 2 * (2 * c.head_dim) ** 2 * c.n_head * n_cover * (2 if spec.delay else 1)
    if c.ffn == "swiglu":
        ffn, modes = 2 * _linear(2 * D, c.ffn_hidden) + _linear(c.ffn_hidden, D), 0  # W1, W3 on [cos; sin]; W2
    else:
        ffn = 0
        # scores of width 2D and values of 2N' channels per coordinate against all M modes
        modes = (2 * D + 2 * c.mf_harmonics * D) * 2 * c.n_modes if c.mf_select == "softmax" else 0
    return {
        "attention_projections": L * S * projections,
        "ffn": L * ffn,
        "mode_coupling": L * modes,
        "readout": _linear(2 * D, c.vocab_size),  # linear on [cos; sin], or the tied coherence: the same matmul
        "attention": L * S * attention,
    }
