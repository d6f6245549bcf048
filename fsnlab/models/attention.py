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
(or both separately, by concatenating instead of adding the values), with no ``T x T`` tensor per
harmonic and strict causality by construction: query ``t`` only ever sees ``s_u`` with ``u + 1 <= t``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _self_or_past_mask(T: int, device: torch.device) -> torch.Tensor:
    """Bool mask ``(T, 2T)``: key ``2u`` is u's self key (visible iff u == t), key ``2u+1`` its past key (iff u < t)."""
    t = torch.arange(T, device=device)[:, None]
    j = torch.arange(2 * T, device=device)[None, :]
    u = j // 2
    return torch.where(j % 2 == 0, u == t, u < t)


def _strict_mask_with_null(T: int, device: torch.device) -> torch.Tensor:
    """Bool mask ``(T, T+1)``: key u visible iff u < t; the extra null key only to t = 0 (empty set)."""
    mask = torch.ones(T, T, dtype=torch.bool, device=device).tril(-1)
    null = torch.zeros(T, 1, dtype=torch.bool, device=device)
    null[0] = True
    return torch.cat([mask, null], dim=1)


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``softmax(q k^T + causal mask) v`` with unit scale (the temperature is folded into ``q``)."""
    return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=1.0)


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
    B, H, T, _ = q.shape
    if delay_mask == "separate_strict":
        z0 = causal_attention(q, k, v)
        null_k = torch.zeros_like(k[:, :, :1])
        null_v = torch.zeros_like(s[:, :, :1])
        mask = _strict_mask_with_null(T, q.device)
        z1 = F.scaled_dot_product_attention(
            q, torch.cat([k, null_k], 2), torch.cat([s, null_v], 2), attn_mask=mask, scale=1.0
        )
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
    out = F.scaled_dot_product_attention(q, keys, values, attn_mask=_self_or_past_mask(T, q.device), scale=1.0)
    if separate:
        W = v.shape[-1]
        return out[..., :W], out[..., W:]
    return out


def attention_weights(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Dense causal softmax weights ``A (B, H, T, T)``: for probes only, never on the training path."""
    T = q.shape[2]
    scores = q.float() @ k.float().transpose(-1, -2)
    mask = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    return scores.masked_fill(~mask, float("-inf")).softmax(-1)
