"""The FSN coupling force in one autograd function: scores, both order parameters, kernel and projection.

Spec §3.4-§3.5, for the layer's training path with a delay term::

    Z0_{t,n} = sum_{u <= t}   A_{t,u} e^{i n theta_u},   Z1_{t,n} = sum_{u <= t-1} A_{t,u} e^{i n theta_{u+1}},
    F_t      = sum_n Im( e^{-i n theta_t} [ c_n Z0_{t,n} + d_n Z1_{t,n} ] ).

:mod:`fsnlab.models.attention` computes ``Z0, Z1`` and autograd does the rest; that keeps the order
parameters (2·D·N channels per token, twice) and the values alive until the backward pass, about three
times a transformer's activations at the 1M rung. This function keeps only the phases, the scores'
features ``q, k``, one log-sum-exp per row and two ``(B, H, T, D_h)`` tensors, and recomputes the rest
block by block in the backward pass, with no extra matrix product:

* the phasors ``e^{i n theta}`` are recomputed from the phases (one trig pass);
* the softmax's ``Delta_t = sum_j dZ_tj Z_tj`` needs no ``Z``: with ``dZ = conj(c) i g e^{i n theta_t}``,
  ``Delta_t = sum_i g_{t,i} F_{t,i}`` (the force itself; per softmax, the force of its own term);
* the kernel's gradient ``dL/dc = sum_t conj(Z0_t) gP_t = sum_u conj(e_u) (A^T gP)_u`` reuses the
  product ``A^T gP`` that the values' gradient needs anyway (``dL/de_u = conj(c) (A^T gP)_u``);
* the receiver's gradient ``dF/dtheta = -sum_n n Re(e^{-i n theta} P_n)`` is computed in the forward pass.

The successor weights are masked before they multiply, as in the attention path, so strict causality
is exact. ``tests/test_fused_force.py`` checks values and gradients against the unfused path and by
``gradcheck``; the float64 reference test runs through it for every delay kernel.
"""

from __future__ import annotations

import torch

from fsnlab.models import attention
from fsnlab.models.attention import (
    _compute_dtype, _diagonal, _matmul_into, _scores, _softmax_dtype, _strict_softmax_lse, _successor_weights,
)
from fsnlab.models.kernel import harmonic_orders


def _phasors(theta: torch.Tensor, n_harmonics: int) -> torch.Tensor:
    """``e^{i n theta}`` as real pairs ``(..., D_h, N, 2)``."""
    angles = theta.unsqueeze(-1) * harmonic_orders(n_harmonics, theta.device).to(theta.dtype)
    return torch.stack([torch.cos(angles), torch.sin(angles)], -1)


def _complex(x: torch.Tensor, head_dim: int, n: int) -> torch.Tensor:
    """``(..., D_h N 2)`` real -> ``(..., D_h, N)`` complex view."""
    return torch.view_as_complex(x.unflatten(-1, (head_dim, n, 2)))


def _real(z: torch.Tensor) -> torch.Tensor:
    """``(..., D_h, N)`` complex -> ``(..., D_h N 2)`` real view."""
    return torch.view_as_real(z).flatten(-3)


# Rows of (batch x head) computed together. Every per-chunk tensor of ``T x W`` values (the phasors, the
# value gradients) stays under CHUNK_BYTES, so on CPU none crosses glibc's mmap threshold (at most 32 MB):
# a larger block is mapped afresh and page-faulted on every allocation. At the 1M rung (B 16, H 4, T 512,
# W 384) the full-width tensors were 50 MB each and their faults took about a fifth of a training step
# (427k minor faults per step, 1,780 tok/s; 2,258 with mmap disabled). Chunks are also cache-sized.
# CUDA's caching allocator has no such cost: one chunk there.
CHUNK_BYTES = 8 << 20


def _row_chunks(BH: int, T: int, W: int, itemsize: int, device: torch.device) -> list[slice]:
    if device.type != "cpu":
        return [slice(0, BH)]
    rows = max(1, CHUNK_BYTES // max(1, T * W * itemsize))
    return [slice(i, min(BH, i + rows)) for i in range(0, BH, rows)]


def _forward_rows(theta_r, theta_s, q, k, c3, d3, N: int, mode: str, block: int, out) -> None:
    """The forward pass for one chunk of ``bh`` rows: ``theta (bh, T, D_h)``, ``q, k (bh, T, 2 D_h)``,
    ``c3, d3 (bh, 1, D_h, N)``; writes ``force0, force1, radial (bh, T, D_h)``, ``lse0, lse1 (bh, T)``."""
    force0, force1, radial, lse0, lse1 = out
    BH, T, Dh = theta_r.shape
    cdt, sdt = _compute_dtype(q), _softmax_dtype(q)
    R = _phasors(theta_r, N)  # receivers' phasors (bh, T, D_h, N, 2)
    e = R if theta_s is None else _phasors(theta_s, N)
    ev = e.to(cdt).reshape(BH, T, -1)  # values (bh, T, W)
    W = ev.shape[-1]
    qc, kc = (x.to(cdt).contiguous() for x in (q, k))
    n_order = harmonic_orders(N, q.device).to(sdt)
    z0 = torch.empty(BH, block, W, dtype=sdt, device=q.device)  # per-block buffers
    z1 = torch.empty_like(z0)
    for t0 in range(0, T, block):
        t1 = min(T, t0 + block)
        bq = t1 - t0
        S = _scores(qc[:, t0:t1], kc[:, :t1], t0)
        lse = torch.logsumexp(S, -1)
        lse0[:, t0:t1] = lse
        P = torch.exp(S - lse[..., None])
        _matmul_into(z0[:, :bq], P.to(cdt), ev[:, :t1])
        P, diag = _successor_weights(S, P, t0, mode, lse1, slice(t0, t1))
        _matmul_into(z1[:, :bq], P[..., : t1 - 1].to(cdt), ev[:, 1:t1])
        if mode == "shared_self":  # the diagonal's successor is the token itself
            z1[:, :bq] += diag[..., None] * ev[:, t0:t1].to(sdt)
        p0 = c3 * _complex(z0[:, :bq], Dh, N)  # c Z0
        p1 = d3 * _complex(z1[:, :bq], Dh, N)  # d Z1
        cos, sin = R[:, t0:t1].to(sdt).unbind(-1)
        for force, pull in ((force0, p0), (force1, p1)):
            pr, pi = torch.view_as_real(pull).unbind(-1)
            force[:, t0:t1] = (cos * pi - sin * pr).sum(-1)
        pr, pi = torch.view_as_real(p0 + p1).unbind(-1)
        radial[:, t0:t1] = ((cos * pr + sin * pi) * n_order).sum(-1)


def _backward_rows(g, theta_r, theta_s, q, k, c3, d3, saved, N: int, mode: str, block: int, out) -> None:
    """The backward pass for one chunk of rows (shapes as :func:`_forward_rows`, ``g (bh, T, D_h)`` the
    force's gradient); writes ``d_theta_r, d_theta_s (bh, T, D_h)``, ``dq, dk (bh, T, 2 D_h)`` and the
    per-row kernel gradients ``dc, dd (bh, D_h, N)`` (complex), summed over batch by the caller."""
    lse0, lse1, force0, force1, radial = saved
    d_theta_r, d_theta_s, dq, dk, dc, dd = out
    BH, T, Dh = theta_r.shape
    cdt, sdt = _compute_dtype(q), force0.dtype
    R = _phasors(theta_r, N).to(sdt)  # (bh, T, D_h, N, 2)
    e = R if theta_s is None else _phasors(theta_s, N).to(sdt)
    ev = e.to(cdt).reshape(BH, T, -1)
    W = ev.shape[-1]
    qc, kc = (x.to(cdt).contiguous() for x in (q, k))
    if mode == "separate_strict":  # one Delta per softmax: the force of its own term
        delta0, delta1 = (g * force0).sum(-1), (g * force1).sum(-1)
    else:
        delta0 = (g * (force0 + force1)).sum(-1)
    # dL/dpull = i g e^{i n theta_t} (complex gradient convention dRe + i dIm), real-interleaved
    gn = g[..., None]
    gP = torch.stack((-gn * R[..., 1], gn * R[..., 0]), -1).reshape(BH, T, W)
    c_conj, d_conj = c3.conj(), d3.conj()
    y0 = torch.empty(BH, T, W, dtype=sdt, device=q.device)  # sum_t A_{t,u} gP_t
    y1 = torch.zeros(BH, T, W, dtype=sdt, device=q.device)  # sum_t W1_{t,u} gP_t, W1 the weights on e_u via d
    for t0 in reversed(range(0, T, block)):
        t1 = min(T, t0 + block)
        first = t1 == T
        n = t1 - 1
        q_blk = qc[:, t0:t1]
        S = _scores(q_blk, kc[:, :t1], t0)
        P = torch.exp(S - lse0[:, t0:t1, None])
        gP_sdt = gP[:, t0:t1]
        gP_b = gP_sdt.to(cdt)
        # dL/dZ0 = conj(c) gP and dL/dZ1 = conj(d) gP, for this block's rows only (bounded memory)
        gz0 = _real(c_conj * _complex(gP_sdt, Dh, N)).to(cdt)
        gz1 = _real(d_conj * _complex(gP_sdt, Dh, N)).to(cdt)
        _matmul_into(y0[:, :t1], P.transpose(-1, -2).to(cdt), gP_b, accumulate=not first)
        dP = torch.bmm(gz0, ev[:, :t1].transpose(-1, -2)).to(sdt)
        G = torch.bmm(gz1, ev[:, 1:t1].transpose(-1, -2)).to(sdt)  # dZ1_t . e_{u+1}
        if mode == "separate_strict":
            dS = P * (dP - delta0[:, t0:t1, None])
            _, S1 = _strict_softmax_lse(S, t0)
            W1 = torch.exp(S1 - lse1[:, t0:t1, None])[..., :n]
            dS[..., :n] += W1 * (G - delta1[:, t0:t1, None])
        else:
            _diagonal(G, t0).zero_()  # u = t has no visible successor
            dP[..., :n] += G
            if mode == "shared_self":
                own = _diagonal(P, t0).clone()
                _diagonal(dP, t0).add_((gz1.to(sdt) * ev[:, t0:t1].to(sdt)).sum(-1))
                y1[:, t0:t1] += own[..., None] * gP_sdt
            dS = P * (dP - delta0[:, t0:t1, None])
            _diagonal(P, t0).zero_()
            W1 = P[..., :n]
        if n > 0:  # weight on e_{u+1}
            _matmul_into(y1[:, 1:t1], W1.transpose(-1, -2).to(cdt), gP_b, accumulate=True)
        dSc = dS.to(cdt)
        _matmul_into(dq[:, t0:t1], dSc, kc[:, :t1])
        _matmul_into(dk[:, :t1], dSc.transpose(-1, -2), q_blk, accumulate=not first)
    del gP, S, P, dS, dSc, dP, G
    # X = conj(e_u) y_u per channel, in real arithmetic (complex products of conj views copy):
    # dL/dc = sum_u X0_u, dL/dd = sum_u X1_u, and with dL/de = conj(c) y0 + conj(d) y1,
    # dL/dtheta_s = sum_n n Im(conj(e) dL/de) = sum_n n Im(conj(c) X0 + conj(d) X1).
    er, ei = e.unbind(-1)  # (bh, T, D_h, N)
    n_order = harmonic_orders(N, q.device).to(sdt)
    d_send = None
    for y, coef, grad_coef in ((y0, c3, dc), (y1, d3, dd)):
        yr, yi = y.view(BH, T, Dh, N, 2).unbind(-1)
        xr = torch.addcmul(er * yr, ei, yi)
        xi = torch.addcmul(er * yi, ei, yr, value=-1)
        grad_coef.copy_(torch.complex(xr.sum(1), xi.sum(1)))
        w_i, w_r = coef.real * n_order, coef.imag * -n_order  # Im(conj(k) x) = k_r x_i - k_i x_r
        term = xi.mul_(w_i).addcmul_(xr, w_r)
        d_send = term if d_send is None else d_send.add_(term)
    torch.sum(d_send, -1, out=d_theta_s)
    torch.mul(g, radial, out=d_theta_r).neg_()


def _as_rows(theta_r, theta_s, q, k, c, d, n_harm: int) -> tuple:
    """The force's inputs as ``B x H`` rows: ``(BH, T, .)`` views, kernels ``(BH, 1, D_h, N)``."""
    B, H, T, Dh = theta_r.shape
    flat = lambda x: None if x is None else x.reshape(B * H, T, -1)  # noqa: E731
    c3, d3 = (x.expand(B, H, 1, Dh, n_harm).reshape(B * H, 1, Dh, n_harm) for x in (c, d))
    return flat(theta_r), flat(theta_s), flat(q), flat(k), c3, d3


def _take(tensors: tuple, r: slice) -> tuple:
    """Rows ``r`` of each tensor (None stays None)."""
    return tuple(None if x is None else x[r] for x in tensors)


class _FusedForce(torch.autograd.Function):
    @staticmethod
    def forward(ctx, theta_r, theta_s, q, k, c, d, n_harm: int, mode: str, block: int):
        B, H, T, Dh = theta_r.shape
        N, BH = n_harm, B * H
        sdt = _softmax_dtype(q)
        rows = _as_rows(theta_r, theta_s, q, k, c, d, N)
        new = lambda *shape: torch.empty(*shape, dtype=sdt, device=q.device)  # noqa: E731
        force0, force1, radial = new(BH, T, Dh), new(BH, T, Dh), new(BH, T, Dh)
        lse0 = new(BH, T)
        lse1 = new(BH, T) if mode == "separate_strict" else None
        W = 2 * Dh * N
        for r in _row_chunks(BH, T, W, torch.finfo(sdt).bits // 8, q.device):
            _forward_rows(*_take(rows, r), N, mode, block, _take((force0, force1, radial, lse0, lse1), r))
        ctx.mode, ctx.block, ctx.n_harm = mode, block, N
        ctx.save_for_backward(theta_r, theta_s, q, k, c, d, lse0, lse1, force0, force1, radial)
        return (force0 + force1).view(B, H, T, Dh).to(theta_r.dtype)

    @staticmethod
    def backward(ctx, grad):
        theta_r, theta_s, q, k, c, d, lse0, lse1, force0, force1, radial = ctx.saved_tensors
        mode, block, N = ctx.mode, ctx.block, ctx.n_harm
        B, H, T, Dh = theta_r.shape
        BH = B * H
        sdt = force0.dtype
        g = grad.to(sdt).reshape(BH, T, Dh)
        rows = _as_rows(theta_r, theta_s, q, k, c, d, N)
        new = lambda *shape, dtype=sdt: torch.empty(*shape, dtype=dtype, device=q.device)  # noqa: E731
        d_theta_r, d_theta_s = new(BH, T, Dh), new(BH, T, Dh)
        dq, dk = new(BH, T, q.shape[-1]), new(BH, T, k.shape[-1])
        cplx = torch.complex128 if sdt == torch.float64 else torch.complex64
        dc_rows, dd_rows = new(BH, Dh, N, dtype=cplx), new(BH, Dh, N, dtype=cplx)
        W = 2 * Dh * N
        for r in _row_chunks(BH, T, W, torch.finfo(sdt).bits // 8, q.device):
            saved = _take((lse0, lse1, force0, force1, radial), r)
            _backward_rows(g[r], *_take(rows, r), saved, N, mode, block,
                           _take((d_theta_r, d_theta_s, dq, dk, dc_rows, dd_rows), r))
        if theta_s is None:
            d_theta_r, d_theta_s = d_theta_r + d_theta_s, None
        kernel_grad = lambda x, ref: x.view(B, H, Dh, N).sum(0).reshape(ref.shape).to(ref.dtype)  # noqa: E731
        cast = lambda x, ref: x.reshape(ref.shape).to(ref.dtype) if x is not None else None  # noqa: E731
        return (cast(d_theta_r, theta_r), cast(d_theta_s, theta_s), cast(dq, q), cast(dk, k),
                kernel_grad(dc_rows, c), kernel_grad(dd_rows, d), None, None, None)


def fused_delay_force(
    theta: torch.Tensor,
    sender: torch.Tensor | None,
    q: torch.Tensor,
    k: torch.Tensor,
    c: torch.Tensor,
    d: torch.Tensor,
    n_harmonics: int,
    delay_mask: str,
) -> torch.Tensor:
    """The force ``F (B, H, T, D_h)`` of spec §3.4 for a kernel with a delay term, memory-lean (module doc).

    ``theta (B, H, T, D_h)`` the receivers' phases; ``sender`` the phases each token broadcasts (None:
    ``theta`` itself); ``q, k (B, H, T, 2 D_h)`` the score features (temperature folded into ``q``);
    ``c, d`` complex kernel coefficients broadcasting against ``(B, H, T, D_h, N)`` (shape ``(H, 1, D_h, N)``).
    """
    if delay_mask not in attention.DELAY_MASKS:
        raise ValueError(f"unknown delay_mask {delay_mask!r}")
    return _FusedForce.apply(theta, sender, q, k, c, d, n_harmonics, delay_mask, attention.QUERY_BLOCK)
