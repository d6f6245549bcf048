"""The matched baseline: a RoPE-SwiGLU transformer with pre-RMSNorm and tied embeddings.

Shaped like llama2.c's ``model.py``: token embedding, ``n_layer`` blocks of
``x + Attn(RMSNorm(x))`` and ``x + SwiGLU(RMSNorm(x))``, a final RMSNorm and a readout tied to the
embedding. No biases, no dropout (OQ-26). Attention is ``scaled_dot_product_attention`` with
``is_causal=True`` (FlashAttention / memory-efficient kernels on CUDA). Parameter count (spec §7.3):
``V d [x2 if untied] + L (4 d^2 + 3 d h + 2 d) + d``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from fsnlab.models.config import TransformerConfig
from fsnlab.models.attention import attention_weights
from fsnlab.models.hooks import HookPoint


def rope_frequencies(head_dim: int, base: float) -> torch.Tensor:
    """RoPE angular frequencies ``base^(-2j/head_dim)`` for j = 0..head_dim/2-1 (Su et al.)."""
    return base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)


def rope_cos_sin(T: int, freqs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``cos, sin (T, len(freqs))`` of the rotation angles ``t * freqs`` for positions ``t = 0..T-1``."""
    angles = torch.arange(T, device=freqs.device, dtype=torch.float32)[:, None] * freqs
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate consecutive pairs ``(x[2j], x[2j+1])`` of ``x (B, H, T, hd)`` by position-dependent angles."""
    x1, x2 = x.float().unflatten(-1, (-1, 2)).unbind(-1)
    out = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)
    return out.type_as(x)


class SwiGLU(nn.Module):
    """``W2 (SiLU(W1 x) * W3 x)`` (Shazeer 2020); ``W1, W3: h x d_in``, ``W2: d_out x h``."""

    def __init__(self, d_in: int, hidden: int, d_out: int, norm_hidden: bool = False):
        super().__init__()
        self.w1 = nn.Linear(d_in, hidden, bias=False)
        self.w3 = nn.Linear(d_in, hidden, bias=False)
        self.w2 = nn.Linear(hidden, d_out, bias=False)
        self.norm = nn.RMSNorm(hidden, eps=1e-5) if norm_hidden else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.w1(x)) * self.w3(x)
        if self.norm is not None:
            h = self.norm(h)
        return self.w2(h)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with RoPE; ``W_q, W_k`` are the score map, ``W_v, W_o`` the value pathway."""

    param_components = {"wqkv": {"score_map": 2 / 3, "kernel": 1 / 3}, "wo": "kernel"}

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.n_head = config.n_head
        self.wqkv = nn.Linear(config.d_model, 3 * config.d_model, bias=False)
        self.wo = nn.Linear(config.d_model, config.d_model, bias=False)
        self.hook_attn = HookPoint()  # (B, H, T, T) attention weights, only built when hooked

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.wqkv(x).view(B, T, 3, self.n_head, C // self.n_head).permute(2, 0, 3, 1, 4)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        if self.hook_attn.active:
            self.hook_attn(attention_weights(q / math.sqrt(q.shape[-1]), k))
        return self.wo(y.transpose(1, 2).reshape(B, T, C))


class TransformerBlock(nn.Module):
    """Pre-norm block: ``x + Attn(norm x)``, then ``x + SwiGLU(norm x)``."""

    param_components = {"attn_norm": "norms", "ffn_norm": "norms", "ffn": "feed_forward"}

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.attn_norm = nn.RMSNorm(config.d_model, eps=config.norm_eps)
        self.attn = CausalSelfAttention(config)
        self.ffn_norm = nn.RMSNorm(config.d_model, eps=config.norm_eps)
        self.ffn = SwiGLU(config.d_model, config.ffn_hidden, config.d_model)
        self.hook_resid_mid = HookPoint()  # (B, T, d_model)
        self.hook_resid_out = HookPoint()  # (B, T, d_model)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = self.hook_resid_mid(x + self.attn(self.attn_norm(x), cos, sin))
        return self.hook_resid_out(x + self.ffn(self.ffn_norm(x)))


class Transformer(nn.Module):
    """Byte ids ``(B, T)`` -> logits ``(B, T, vocab_size)``."""

    param_components = {"embed": "embedding", "norm": "readout", "readout": "readout"}

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = config.validate()
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.blocks = nn.ModuleList(TransformerBlock(config) for _ in range(config.n_layer))
        self.norm = nn.RMSNorm(config.d_model, eps=config.norm_eps)
        self.readout = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.readout.weight = self.embed.weight
        self.register_buffer("rope_freqs", rope_frequencies(config.head_dim, config.rope_base), persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        std = self.config.init_std
        for name, p in self.named_parameters():
            if p.ndim == 2:
                # GPT-2 style: residual output projections scaled by depth
                scale = 1 / math.sqrt(2 * self.config.n_layer) if name.endswith(("wo.weight", "w2.weight")) else 1.0
                nn.init.normal_(p, mean=0.0, std=std * scale)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        T = idx.shape[1]
        cos, sin = rope_cos_sin(T, self.rope_freqs)
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x, cos, sin)
        return self.readout(self.norm(x))
