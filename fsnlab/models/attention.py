"""Causal attention with a one-step successor term, on fused ``scaled_dot_product_attention`` kernels.

The FSN value pathway needs, for every query ``t``, two attention-weighted sums with one softmax
(spec §3.4, ``delay_mask=shared_zero_diag``)::

    Z0_t = sum_{u <= t}   A_{t,u} v_u            (the attended tokens)
    Z1_t = sum_{u <= t-1} A_{t,u} s_u            (their successors, s_u = f(theta_{u+1}))

``Z1`` uses the *same* normalisation as ``Z0`` but skips the diagonal, whose successor is in the
future. Writing ``Z1 = A @ s - A_tt s_t`` would be exact in real arithmetic but would leak the
future through rounding and gradients, so instead the keys are **interleaved**: every position
``u`` contributes a *self* key (visible only to ``t = u``, value ``v_u + diag_u``) and a *past* key
(visible to ``t > u``, value ``v_u + s_u``). Both carry the same key vector, so one softmax over
the visible set is exactly ``A``. One fused SDPA call over ``2T`` keys then yields ``Z0 + Z1``
(or both separately), with no ``T x T`` tensor per harmonic and strict causality by construction:
query ``t`` only ever sees ``s_u`` with ``u + 1 <= t``. Long windows are processed in blocks of
queries, so the boolean mask never exceeds ``QUERY_BLOCK x 2T``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint


# Queries are processed in blocks of this many rows when a mask is needed, so that the boolean mask
# (and any fallback score matrix) is at most QUERY_BLOCK x 2T at a time: peak memory stays linear in T.
QUERY_BLOCK = 512


def _self_or_past_mask(t0: int, t1: int, device: torch.device) -> torch.Tensor:
    """Bool mask for queries ``t0..t1-1`` over the interleaved keys ``0..2*t1-1``: key ``2u`` is u's
    self key (visible iff u == t), key ``2u+1`` its past key (visible iff u < t)."""
    t = torch.arange(t0, t1, device=device)[:, None]
    j = torch.arange(2 * t1, device=device)[None, :]
    u = j // 2
    return torch.where(j % 2 == 0, u == t, u < t)


def _strict_mask_with_null(t0: int, t1: int, device: torch.device) -> torch.Tensor:
    """Bool mask for queries ``t0..t1-1`` over keys ``0..t1-1`` plus a final null key: key u visible
    iff u < t; the null key only to t = 0, whose set is otherwise empty."""
    t = torch.arange(t0, t1, device=device)[:, None]
    u = torch.arange(t1, device=device)[None, :]
    return torch.cat([u < t, t == 0], dim=1)


def _blocked_masked_attend(q, keys, values, mask_fn, keys_needed, null=None) -> torch.Tensor:
    """:func:`attend` over query blocks: block ``[t0, t1)`` sees ``keys[:, :, :keys_needed(t1)]`` (plus
    an optional trailing null key/value pair) under ``mask_fn(t0, t1)``."""
    T = q.shape[2]

    def block(t0: int, t1: int, q_blk: torch.Tensor, k_blk: torch.Tensor, v_blk: torch.Tensor) -> torch.Tensor:
        if null is not None:
            k_blk = torch.cat([k_blk, null[0]], 2)
            v_blk = torch.cat([v_blk, null[1]], 2)
        return attend(q_blk, k_blk, v_blk, attn_mask=mask_fn(t0, t1, q_blk.device))

    if T <= QUERY_BLOCK:
        return block(0, T, q, keys, values)
    # Several blocks: the fused kernels keep their (float) mask for the backward pass, which summed
    # over blocks would be O(T^2). Recomputing each block in the backward pass (activation
    # checkpointing) keeps only the block's inputs, which are views of tensors that exist anyway.
    recompute = torch.is_grad_enabled()
    outs = []
    for t0 in range(0, T, QUERY_BLOCK):
        t1 = min(T, t0 + QUERY_BLOCK)
        n = keys_needed(t1)
        args = (t0, t1, q[:, :, t0:t1], keys[:, :, :n], values[:, :, :n])
        outs.append(checkpoint(block, *args, use_reentrant=False) if recompute else block(*args))
    return torch.cat(outs, 2)


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    is_causal: bool = False,
) -> torch.Tensor:
    """``softmax(q k^T + mask) v`` with unit scale (the temperature is folded into ``q``), for values
    wider than the queries.

    Fused kernels (FlashAttention on CUDA, the flash kernel on CPU) need values as wide as queries
    and keys. The FSN's values are ``k`` times wider (harmonics, real and imaginary parts), and
    attention acts on each value channel independently, so the channels are cut into chunks of the
    query width and folded into the batch dimension. Memory stays linear in T: no score matrix is
    materialised, on CPU or GPU.
    """
    B, H, T, E = q.shape
    W = v.shape[-1]
    if W == E:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal, scale=1.0)
    chunks = -(-W // E)
    if chunks * E != W:
        v = F.pad(v, (0, chunks * E - W))
    S = v.shape[2]
    v = v.reshape(B, H, S, chunks, E).permute(3, 0, 1, 2, 4).reshape(chunks * B, H, S, E)
    q = q.repeat(chunks, 1, 1, 1)
    k = k.repeat(chunks, 1, 1, 1)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal, scale=1.0)
    out = out.reshape(chunks, B, H, T, E).permute(1, 2, 3, 0, 4).reshape(B, H, T, chunks * E)
    return out[..., :W]


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Causal attention (``u <= t``) of :func:`attend`."""
    return attend(q, k, v, is_causal=True)


def delay_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    s: torch.Tensor,
    diag: torch.Tensor | None,
    delay_mask: str,
    separate: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Attend to tokens (values ``v``) and to their successors (values ``s``), strictly causally.

    Shapes: ``q, k (B, H, T, E)``; ``v, s (B, H, T, W)`` where ``s[..., u, :]`` is the value of
    ``u``'s successor (``s[..., T-1, :]`` is never read). ``diag`` is the successor value used at
    ``u = t`` for ``delay_mask="shared_self"`` (the token itself), None otherwise.

    ``delay_mask`` (spec §3.4, OQ-8):

    * ``shared_zero_diag``: ``Z1`` uses ``A`` restricted to ``u <= t-1``; the diagonal contributes 0.
    * ``shared_self``: as above, but the diagonal contributes ``A_tt * diag_t``.
    * ``separate_strict``: ``Z1`` uses its own softmax over ``u <= t-1``; ``Z1_0 = 0``.

    Returns ``Z0 + Z1`` (``(B, H, T, W)``), or the pair ``(Z0, Z1)`` when ``separate``.
    """
    if delay_mask == "separate_strict":
        z0 = causal_attention(q, k, v)
        null = (torch.zeros_like(k[:, :, :1]), torch.zeros_like(s[:, :, :1]))
        z1 = _blocked_masked_attend(q, k, s, _strict_mask_with_null, lambda t1: t1, null)
        return (z0, z1) if separate else z0 + z1
    if delay_mask not in ("shared_zero_diag", "shared_self"):
        raise ValueError(f"unknown delay_mask {delay_mask!r}")
    own_diag = diag if delay_mask == "shared_self" else torch.zeros_like(v)
    if separate:
        self_val = torch.cat([v, own_diag], -1)
        past_val = torch.cat([v, s], -1)
    else:
        self_val = v + own_diag
        past_val = v + s
    keys = torch.stack([k, k], dim=3).flatten(2, 3)  # (B, H, 2T, E): self, past, self, past, ...
    values = torch.stack([self_val, past_val], dim=3).flatten(2, 3)
    out = _blocked_masked_attend(q, keys, values, _self_or_past_mask, lambda t1: 2 * t1)
    if separate:
        W = v.shape[-1]
        return out[..., :W], out[..., W:]
    return out


def attention_weights(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Dense causal softmax weights ``A (B, H, T, T)``: for probes only, never on the training path."""
    T = q.shape[2]
    scores = full_precision(q) @ full_precision(k).transpose(-1, -2)
    mask = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    return scores.masked_fill(~mask, float("-inf")).softmax(-1)


def full_precision(x: torch.Tensor) -> torch.Tensor:
    """float32 for half-precision tensors; float32/float64 tensors unchanged."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
