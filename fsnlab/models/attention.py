"""Causal attention with a one-step successor term: one score product per head (spec §3.4).

The FSN value pathway needs, for every query ``t``, two attention-weighted sums sharing one
softmax (``delay_mask="shared_zero_diag"``, the default)::

    Z0_t = sum_{u <= t}   A_{t,u} v_u            (the attended tokens)
    Z1_t = sum_{u <= t-1} A_{t,u} s_u            (their successors, s_u = f(theta_{u+1}))

Every harmonic, the real and imaginary parts and both delay terms share **one** score product
``S = q k^T`` per head and query block. The successor weights are masked *before* they multiply
(``Z1 = (A ⊙ [u < t]) s``, never ``A s - A_tt s_t``, which would leak the future through rounding and
gradients): query ``t`` only ever reads ``s_u`` with ``u + 1 <= t``, exactly.

The torch path (:class:`_BlockedDelayAttention`) is a flash-attention-style autograd function:

* queries are processed in blocks of ``QUERY_BLOCK`` rows; block ``[t0, t1)`` only multiplies keys
  ``< t1`` (causal block skipping);
* the forward pass keeps only the outputs and one log-sum-exp per row (two with
  ``separate_strict``); the backward pass recomputes each block's weights from them, so memory is
  linear in T (no ``T x T`` tensor is kept, per harmonic or at all);
* under autocast the products run in the autocast dtype (bf16 on CUDA) and the softmax in fp32.

On CUDA the fused Triton kernel of :mod:`fsnlab.models.triton_attention` (same semantics, one
online softmax shared by both accumulators) is chosen automatically when triton is installed;
``FSNLAB_ATTENTION=torch`` forces this module's path (the reference and the CPU fallback),
``FSNLAB_ATTENTION=triton`` requires the kernel. The naive float64 loop in ``tests/reference_fsn.py``
checks this path for every kernel setting and delay mask.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F

# Queries are processed in blocks of this many rows: the score block is QUERY_BLOCK x t1 at a time
# (peak memory linear in T), and block [t0, t1) skips the keys >= t1.
QUERY_BLOCK = 128

DELAY_MASKS = ("shared_zero_diag", "shared_self", "separate_strict")
_MODES = ("none", *DELAY_MASKS)


# -- the torch path ------------------------------------------------------------------------------

def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype products run in: the autocast dtype when autocast is on for ``x``'s device."""
    device = x.device.type
    if device in ("cuda", "cpu") and torch.is_autocast_enabled(device) and x.dtype == torch.float32:
        return torch.get_autocast_dtype(device)
    return x.dtype


def _scores(q_blk: torch.Tensor, k_keys: torch.Tensor, t0: int) -> torch.Tensor:
    """Causal scores ``S[t, u] = q_t . k_u`` for queries ``t0 .. t0+bq-1`` and keys ``0 .. t1-1``, in the
    softmax's precision (float32 at least), with ``-inf`` where ``u > t``."""
    S = (q_blk @ k_keys.transpose(-1, -2)).to(_softmax_dtype(q_blk))
    bq, t1 = S.shape[-2], S.shape[-1]
    if t1 > t0 + 1:  # only the diagonal block has future keys
        t = torch.arange(t0, t0 + bq, device=S.device)[:, None]
        u = torch.arange(t1, device=S.device)[None, :]
        S = S.masked_fill(u > t, float("-inf"))
    return S


def _softmax_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _diagonal(P: torch.Tensor, t0: int) -> torch.Tensor:
    """The entries ``P[t, t]`` of a block of rows ``t0 ..`` (a view)."""
    return P.diagonal(offset=t0, dim1=-2, dim2=-1)


def _strict_softmax_lse(S: torch.Tensor, t0: int) -> torch.Tensor:
    """Log-sum-exp over ``u < t`` (``separate_strict``); 0 for the empty row ``t = 0`` so its weights are 0."""
    S1 = S.clone()
    _diagonal(S1, t0).fill_(float("-inf"))
    lse1 = torch.logsumexp(S1, -1)
    return torch.where(torch.isinf(lse1), torch.zeros_like(lse1), lse1), S1


def _successor_weights(S: torch.Tensor, P: torch.Tensor, t0: int, mode: str, lse1: torch.Tensor | None, rows: slice):
    """The block's successor weights and ``P``'s diagonal (for ``shared_self``).

    ``separate_strict``: their own softmax over ``u < t`` of the same scores (its log-sum-exp stored in
    ``lse1[:, rows]``); the shared masks: ``P`` itself, its diagonal zeroed in place: the mask applied
    before the weights multiply, never subtracted afterwards.
    """
    if mode == "separate_strict":
        l1, S1 = _strict_softmax_lse(S, t0)
        lse1[:, rows] = l1
        return torch.exp(S1 - l1[..., None]), None
    diag = _diagonal(P, t0).clone()
    _diagonal(P, t0).zero_()
    return P, diag


def _matmul_into(out: torch.Tensor, a: torch.Tensor, b: torch.Tensor, accumulate: bool = False) -> torch.Tensor:
    """``out (+)= a @ b`` for 3-D operands, in place: BLAS writes (or accumulates) straight into a
    strided view such as the rows ``[:t1]`` of a gradient, so no product is followed by an add pass."""
    if a.dtype == out.dtype and b.dtype == out.dtype:  # the out= form: FlopCounterMode counts it
        return torch.baddbmm(out, a, b, beta=1.0 if accumulate else 0.0, out=out)
    if accumulate:
        return out.add_(torch.bmm(a, b).to(out.dtype))
    return out.copy_(torch.bmm(a, b))


class _BlockedDelayAttention(torch.autograd.Function):
    """``(z0, z1)`` of :func:`fused_delay_attention`, with a recomputing backward pass (see module doc).

    ``s=None`` in a delay mode means ``s_u = v_{u+1}``: the successors' values are read from ``v``
    shifted by one position (a view, no copy). In every mode the last key of a block, ``t1 - 1``, has
    no successor any query of the block may see, so the successor products use keys ``< t1 - 1``.
    Internally the batch and head dimensions are one (``BH``), so every product is one ``bmm``.
    """

    @staticmethod
    def forward(ctx, q, k, v, s, w, mode: str, block: int):
        B, H, T, _ = q.shape
        BH, W = B * H, v.shape[-1]
        cdt, sdt = _compute_dtype(q), _softmax_dtype(q)
        # contiguous (BH, T, .) operands once, so that every block's product is one strided bmm
        qc, kc, vc = (x.to(cdt).reshape(BH, T, -1).contiguous() for x in (q, k, v))
        has_z1 = mode != "none"
        succ = (vc[:, 1:] if s is None else s.to(cdt).reshape(BH, T, W).contiguous()) if has_z1 else None
        w3 = w.reshape(BH, T, W) if w is not None else None
        z0 = torch.empty(BH, T, W, dtype=sdt, device=v.device)
        z1 = torch.empty(BH, T, W, dtype=sdt, device=v.device) if has_z1 else None
        lse0 = torch.empty(BH, T, dtype=sdt, device=q.device)
        lse1 = torch.empty_like(lse0) if mode == "separate_strict" else None
        for t0 in range(0, T, block):
            t1 = min(T, t0 + block)
            S = _scores(qc[:, t0:t1], kc[:, :t1], t0)
            lse = torch.logsumexp(S, -1)
            lse0[:, t0:t1] = lse
            P = torch.exp(S - lse[..., None])
            _matmul_into(z0[:, t0:t1], P.to(cdt), vc[:, :t1])
            if not has_z1:
                continue
            P, diag = _successor_weights(S, P, t0, mode, lse1, slice(t0, t1))
            _matmul_into(z1[:, t0:t1], P[..., : t1 - 1].to(cdt), succ[:, : t1 - 1])
            if mode == "shared_self":
                z1[:, t0:t1] += diag[..., None] * w3[:, t0:t1].to(sdt)
        ctx.mode, ctx.block, ctx.shifted = mode, block, s is None
        ctx.save_for_backward(q, k, v, s, w, z0, z1, lse0, lse1)
        shape = (B, H, T, W)
        return z0.view(shape).to(v.dtype), (z1.view(shape).to(v.dtype) if z1 is not None else None)

    @staticmethod
    def backward(ctx, dz0, dz1):
        q, k, v, s, w, z0, z1, lse0, lse1 = ctx.saved_tensors
        mode, block, shifted = ctx.mode, ctx.block, ctx.shifted
        B, H, T, _ = q.shape
        BH, W = B * H, v.shape[-1]
        cdt, sdt = _compute_dtype(q), z0.dtype
        has_z1 = mode != "none"
        qc, kc, vc = (x.to(cdt).reshape(BH, T, -1).contiguous() for x in (q, k, v))
        succ = (vc[:, 1:] if shifted else s.to(cdt).reshape(BH, T, W).contiguous()) if has_z1 else None
        dz0 = torch.zeros_like(z0) if dz0 is None else dz0.to(sdt).reshape(BH, T, W).contiguous()
        if has_z1:
            dz1 = torch.zeros_like(z1) if dz1 is None else dz1.to(sdt).reshape(BH, T, W).contiguous()
        if mode == "separate_strict":
            delta0, delta1 = (dz0 * z0).sum(-1), (dz1 * z1).sum(-1)
        else:  # one softmax feeds both sums: one Delta
            delta0 = (dz0 * z0).sum(-1) + ((dz1 * z1).sum(-1) if has_z1 else 0)
        dq = torch.empty(BH, T, qc.shape[-1], dtype=sdt, device=q.device)
        dk = torch.empty(BH, T, kc.shape[-1], dtype=sdt, device=q.device)
        dv = torch.empty(BH, T, W, dtype=sdt, device=q.device)
        ds = torch.zeros(BH, T, W, dtype=sdt, device=q.device) if has_z1 and not shifted else None
        dw = torch.empty(BH, T, W, dtype=sdt, device=q.device) if mode == "shared_self" else None
        w3 = w.reshape(BH, T, W) if w is not None else None
        # Key-side gradients accumulate over query blocks, last block first: it covers every key, so
        # its products initialise dk and dv, and earlier blocks add into a prefix (in the product).
        for t0 in reversed(range(0, T, block)):
            t1 = min(T, t0 + block)
            first = t1 == T
            n = t1 - 1  # keys with a successor visible to this block
            q_blk = qc[:, t0:t1]
            S = _scores(q_blk, kc[:, :t1], t0)
            P = torch.exp(S - lse0[:, t0:t1, None])
            g0 = dz0[:, t0:t1].to(cdt)
            _matmul_into(dv[:, :t1], P.transpose(-1, -2).to(cdt), g0, accumulate=not first)
            dP = torch.bmm(g0, vc[:, :t1].transpose(-1, -2)).to(sdt)
            if has_z1:
                g1 = dz1[:, t0:t1].to(cdt)
                G = torch.bmm(g1, succ[:, :n].transpose(-1, -2)).to(sdt)  # dZ1_t . s_u, (bq, t1 - 1)
            if mode == "separate_strict":
                dS = P * (dP - delta0[:, t0:t1, None])
                _, S1 = _strict_softmax_lse(S, t0)
                P = torch.exp(S1 - lse1[:, t0:t1, None])[..., :n]  # zero on and above the diagonal
                dS[..., :n] += P * (G - delta1[:, t0:t1, None])
            elif has_z1:
                _diagonal(G, t0).zero_()  # u = t has no visible successor
                dP[..., :n] += G
                if mode == "shared_self":  # ... but its own value w_t stands in for it
                    _diagonal(dP, t0).add_((dz1[:, t0:t1] * w3[:, t0:t1].to(sdt)).sum(-1))
                    dw[:, t0:t1] = _diagonal(P, t0)[..., None] * dz1[:, t0:t1]
                dS = P * (dP - delta0[:, t0:t1, None])
                _diagonal(P, t0).zero_()  # successor weights, masked before they multiply
                P = P[..., :n]
            else:
                dS = P * (dP - delta0[:, t0:t1, None])
            if has_z1 and n > 0:  # the successor of key u is s_u (= v_{u+1} when shifted)
                target = dv[:, 1:t1] if shifted else ds[:, :n]
                _matmul_into(target, P.transpose(-1, -2).to(cdt), g1, accumulate=True)
            dSc = dS.to(cdt)
            _matmul_into(dq[:, t0:t1], dSc, kc[:, :t1])
            _matmul_into(dk[:, :t1], dSc.transpose(-1, -2), q_blk, accumulate=not first)
        cast = lambda g, x: g.view(x.shape).to(x.dtype) if g is not None and x is not None else None  # noqa: E731
        return cast(dq, q), cast(dk, k), cast(dv, v), cast(ds, s), cast(dw, w), None, None


def _torch_delay_attention(q, k, v, s, w, mode: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    return _BlockedDelayAttention.apply(q, k, v, s, w, mode, QUERY_BLOCK)


def _triton_delay_attention(q, k, v, s, w, mode: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The fused kernel, fed as autocast would feed a matmul: in the autocast dtype (bf16 on CUDA)
    when autocast is on, else in the inputs' dtype; outputs in the values' dtype (fp32 phases)."""
    from fsnlab.models.triton_attention import delay_attention_triton

    cdt = _compute_dtype(q)
    cast = lambda x: x.to(cdt).contiguous() if x is not None else None  # noqa: E731
    with torch.autocast(q.device.type, enabled=False):
        z0, z1 = delay_attention_triton(cast(q), cast(k), cast(v), cast(s), cast(w), mode)
    return z0.to(v.dtype), (z1.to(v.dtype) if z1 is not None else None)


# -- dispatch ------------------------------------------------------------------------------------

def attention_backend(device: torch.device) -> str:
    """``"triton"`` or ``"torch"``: the path :func:`fused_delay_attention` takes on ``device``.

    ``FSNLAB_ATTENTION`` = ``auto`` (default: the Triton kernel on CUDA when triton is installed),
    ``torch`` or ``triton`` (an error where the kernel cannot run).
    """
    choice = os.environ.get("FSNLAB_ATTENTION", "auto").lower()
    if choice not in ("auto", "torch", "triton"):
        raise ValueError(f"FSNLAB_ATTENTION must be auto, torch or triton, not {choice!r}")
    if choice == "torch" or (choice == "auto" and device.type != "cuda"):
        return "torch"
    from fsnlab.models.triton_attention import runs_on, triton_available

    if triton_available() and runs_on(device):
        return "triton"
    if choice == "triton":
        raise RuntimeError("FSNLAB_ATTENTION=triton needs the triton package and a CUDA device "
                           "(or TRITON_INTERPRET=1 for CPU tensors)")
    return "torch"


def fused_delay_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    s: torch.Tensor | None = None,
    w: torch.Tensor | None = None,
    mode: str = "none",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One score product per head, two weighted sums: ``(Z0, Z1)`` (spec §3.4).

    Shapes ``q, k (B, H, T, E)`` (the temperature is folded into ``q``: unit scale), ``v, s, w
    (B, H, T, W)``; ``s[..., u, :]`` is the value of ``u``'s successor (``s[..., T-1, :]`` is never read).
    ``s=None`` in a delay mode means the successors' own values, ``s_u = v_{u+1}`` (read from ``v``
    shifted, without a copy on the torch path).
    With ``P0 = softmax_{u <= t}(q_t . k_u)`` and the strict mask ``M1 = [u < t]``:

    * ``none``: ``Z0 = P0 v``, ``Z1 = None``;
    * ``shared_zero_diag``: ``Z1 = (P0 ⊙ M1) s``;
    * ``shared_self``: ``Z1 = (P0 ⊙ M1) s + P0_tt w_t`` (the diagonal's successor is the token itself);
    * ``separate_strict``: ``Z1 = P1 s``, ``P1 = softmax_{u < t}(q_t . k_u)`` from the same scores; ``Z1_0 = 0``.
    """
    if mode not in _MODES:
        raise ValueError(f"unknown delay mode {mode!r}; choose one of {', '.join(_MODES)}")
    if mode == "shared_self" and w is None:
        raise ValueError("delay mode 'shared_self' needs the diagonal values w")
    s = s if mode != "none" else None
    w = w if mode == "shared_self" else None
    if q.dtype != torch.float64 and attention_backend(q.device) == "triton":
        if mode != "none" and s is None:
            s = torch.cat([v[:, :, 1:], torch.zeros_like(v[:, :, :1])], 2)
        return _triton_delay_attention(q, k, v, s, w, mode)
    return _torch_delay_attention(q, k, v, s, w, mode)


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    is_causal: bool = False,
) -> torch.Tensor:
    """``softmax(q k^T + mask) v`` with unit scale (the temperature is folded into ``q``).

    Values as wide as the queries go to ``scaled_dot_product_attention`` (a fused kernel on CPU and
    CUDA). Wider values (harmonics, real and imaginary parts) share one explicit score product: with
    ``is_causal`` through :func:`fused_delay_attention` (blocked, memory linear in T), otherwise (the
    mode selection of FSN-MF, a fixed set of keys) as two matmuls and a softmax.
    """
    if v.shape[-1] == q.shape[-1]:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal, scale=1.0)
    if is_causal and attn_mask is None:
        return fused_delay_attention(q, k, v)[0]
    scores = q @ k.transpose(-1, -2)
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool else scores + attn_mask
    if is_causal:
        T, S = scores.shape[-2:]
        scores = scores.masked_fill(torch.ones(T, S, dtype=torch.bool, device=q.device).tril().logical_not(), float("-inf"))
    return scores.softmax(-1) @ v


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Causal attention (``u <= t``) of :func:`attend`."""
    return attend(q, k, v, is_causal=True)


def delay_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    s: torch.Tensor | None,
    diag: torch.Tensor | None,
    delay_mask: str,
    separate: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Attend to tokens (values ``v``) and to their successors (values ``s``), strictly causally.

    Shapes: ``q, k (B, H, T, E)``; ``v, s (B, H, T, W)`` where ``s[..., u, :]`` is the value of
    ``u``'s successor (``s[..., T-1, :]`` is never read; ``None``: ``s_u = v_{u+1}``). ``diag`` is the
    successor value used at ``u = t`` for ``delay_mask="shared_self"`` (the token itself), None otherwise.

    ``delay_mask`` (spec §3.4, OQ-8):

    * ``shared_zero_diag``: ``Z1`` uses ``A`` restricted to ``u <= t-1``; the diagonal contributes 0.
    * ``shared_self``: as above, but the diagonal contributes ``A_tt * diag_t``.
    * ``separate_strict``: ``Z1`` uses its own softmax over ``u <= t-1``; ``Z1_0 = 0``.

    Returns ``Z0 + Z1`` (``(B, H, T, W)``), or the pair ``(Z0, Z1)`` when ``separate``.
    """
    if delay_mask not in DELAY_MASKS:
        raise ValueError(f"unknown delay_mask {delay_mask!r}")
    z0, z1 = fused_delay_attention(q, k, v, s, diag, delay_mask)
    return (z0, z1) if separate else z0 + z1


def attention_weights(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Dense causal softmax weights ``A (B, H, T, T)``: for probes only, never on the training path."""
    T = q.shape[2]
    scores = full_precision(q) @ full_precision(k).transpose(-1, -2)
    mask = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    return scores.masked_fill(~mask, float("-inf")).softmax(-1)


def full_precision(x: torch.Tensor) -> torch.Tensor:
    """float32 for half-precision tensors; float32/float64 tensors unchanged."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


__all__ = [
    "QUERY_BLOCK",
    "attend",
    "attention_backend",
    "attention_weights",
    "causal_attention",
    "delay_attention",
    "full_precision",
    "fused_delay_attention",
]
