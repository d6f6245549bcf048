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


class _FusedForce(torch.autograd.Function):
    @staticmethod
    def forward(ctx, theta_r, theta_s, q, k, c, d, n_harm: int, mode: str, block: int):
        B, H, T, Dh = theta_r.shape
        N, BH = n_harm, B * H
        cdt, sdt = _compute_dtype(q), _softmax_dtype(q)
        R = _phasors(theta_r, N)  # receivers' phasors (B, H, T, D_h, N, 2)
        e = R if theta_s is None else _phasors(theta_s, N)
        ev = e.to(cdt).reshape(BH, T, -1)  # values (BH, T, W)
        W = ev.shape[-1]
        qc, kc = (x.to(cdt).reshape(BH, T, -1).contiguous() for x in (q, k))
        c3, d3 = (x.expand(B, H, 1, Dh, N).reshape(BH, 1, Dh, N) for x in (c, d))
        n_order = harmonic_orders(N, q.device).to(sdt)
        force0 = torch.empty(BH, T, Dh, dtype=sdt, device=q.device)
        force1 = torch.empty_like(force0)
        radial = torch.empty_like(force0)
        lse0 = torch.empty(BH, T, dtype=sdt, device=q.device)
        lse1 = torch.empty_like(lse0) if mode == "separate_strict" else None
        z0 = torch.empty(BH, block, W, dtype=sdt, device=q.device)  # per-block buffers
        z1 = torch.empty_like(z0)
        R3 = R.reshape(BH, T, Dh, N, 2)
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
            cos, sin = R3[:, t0:t1].to(sdt).unbind(-1)
            for out, pull in ((force0, p0), (force1, p1)):
                pr, pi = torch.view_as_real(pull).unbind(-1)
                out[:, t0:t1] = (cos * pi - sin * pr).sum(-1)
            pr, pi = torch.view_as_real(p0 + p1).unbind(-1)
            radial[:, t0:t1] = ((cos * pr + sin * pi) * n_order).sum(-1)
        ctx.mode, ctx.block, ctx.n_harm = mode, block, N
        ctx.save_for_backward(theta_r, theta_s, q, k, c, d, lse0, lse1, force0, force1, radial)
        return (force0 + force1).view(B, H, T, Dh).to(theta_r.dtype)

    @staticmethod
    def backward(ctx, grad):
        theta_r, theta_s, q, k, c, d, lse0, lse1, force0, force1, radial = ctx.saved_tensors
        mode, block, N = ctx.mode, ctx.block, ctx.n_harm
        B, H, T, Dh = theta_r.shape
        BH = B * H
        cdt, sdt = _compute_dtype(q), force0.dtype
        g = grad.to(sdt).reshape(BH, T, Dh)
        R = _phasors(theta_r, N).to(sdt).reshape(BH, T, Dh, N, 2)
        e = R if theta_s is None else _phasors(theta_s, N).to(sdt).reshape(BH, T, Dh, N, 2)
        ev = e.to(cdt).reshape(BH, T, -1)
        W = ev.shape[-1]
        qc, kc = (x.to(cdt).reshape(BH, T, -1).contiguous() for x in (q, k))
        c3, d3 = (x.expand(B, H, 1, Dh, N).reshape(BH, 1, Dh, N) for x in (c, d))
        if mode == "separate_strict":  # one Delta per softmax: the force of its own term
            delta0, delta1 = (g * force0).sum(-1), (g * force1).sum(-1)
        else:
            delta0 = (g * (force0 + force1)).sum(-1)
        # dL/dpull = i g e^{i n theta_t} (complex gradient convention dRe + i dIm), real-interleaved
        gP = _real(torch.complex(-g[..., None] * R[..., 1], g[..., None] * R[..., 0]))  # (BH, T, W)
        c_conj, d_conj = c3.conj(), d3.conj()
        dq = torch.empty(BH, T, qc.shape[-1], dtype=sdt, device=q.device)
        dk = torch.empty(BH, T, kc.shape[-1], dtype=sdt, device=q.device)
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
        del gP, qc, kc, S, P, dS, dSc, dP, G
        y0c, y1c = _complex(y0, Dh, N), _complex(y1, Dh, N)
        ec = torch.view_as_complex(e)
        dc = (ec.conj() * y0c).reshape(B, H, T, Dh, N).sum((0, 2)).reshape(c.shape)
        dd = (ec.conj() * y1c).reshape(B, H, T, Dh, N).sum((0, 2)).reshape(d.shape)
        de = c_conj * y0c  # dL/d e^{i n theta_u}, built in place to bound the peak
        del y0, y0c
        de.add_(d_conj * y1c)
        del y1, y1c
        de = torch.view_as_real(de)
        n_order = harmonic_orders(N, q.device).to(sdt)
        d_theta_s = ((e[..., 0] * de[..., 1] - e[..., 1] * de[..., 0]) * n_order).sum(-1)
        d_theta_r = -g * radial
        if theta_s is None:
            d_theta_r, d_theta_s = d_theta_r + d_theta_s, None
        cast = lambda x, ref: x.reshape(ref.shape).to(ref.dtype) if x is not None else None  # noqa: E731
        return (cast(d_theta_r, theta_r), cast(d_theta_s, theta_s), cast(dq, q), cast(dk, k),
                dc.to(c.dtype), dd.to(d.dtype), None, None, None)


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
