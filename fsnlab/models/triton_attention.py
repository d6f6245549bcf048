"""Fused Triton kernels (forward and backward) for the FSN's causal *delay attention*.

The force of spec §3.4 in order-parameter form needs, for every query ``t`` and harmonic ``n``, two
attention-weighted sums with one attention matrix ``A``::

    Z0_{t,n} = sum_{u <= t}     A_{t,u} e^{i n theta_u}          (the attended tokens)
    Z1_{t,n} = sum_{u <= t - 1} A_{t,u} e^{i n theta_{u+1}}      (their successors)

With the harmonics, real and imaginary parts (and the kernel coefficients) folded into the value
channels, this module computes, for ``q, k (B, H, T, E)`` (the temperature already folded into
``q``: scores are ``S = q k^T``, no ``1/sqrt(E)``) and ``v, s, w (B, H, T, W)``, with the causal
mask ``M0[t, u] = u <= t`` and the strict mask ``M1[t, u] = u < t``:

* ``P0 = softmax_u(S)`` over ``M0`` (row ``t``); always ``z0 = P0 @ v``.
* ``mode="none"``: ``z1`` is None (``s`` and ``w`` are not given).
* ``mode="shared_zero_diag"``: ``z1 = (P0 * M1) @ s``: the diagonal contributes 0.
* ``mode="shared_self"``: ``z1 = (P0 * M1) @ s + P0[t, t] * w[t]``.
* ``mode="separate_strict"``: ``P1 = softmax_u(S)`` over ``M1`` (its own normalisation of the same
  scores) and ``z1 = P1 @ s``; ``z1[t = 0] = 0`` (the empty set).

The successor weights are masked *before* they multiply ``s``: ``(P0 @ s) - P0[t, t] s[t]`` is never
formed, so strict causality holds exactly (``z1[t]`` has an exactly zero gradient w.r.t. ``s[u]``
for ``u >= t``, and nothing at ``t`` reads ``q, k, v, s, w`` at positions ``> t``).

Kernels (FlashAttention-2 style; memory linear in ``T``):

* forward, grid (query blocks, B*H, value-width blocks): one online softmax per query block feeding
  two accumulators ``z0`` and ``z1`` (shared modes), or a second running max/sum for
  ``separate_strict``; a query block ``[t0, t1)`` only visits key blocks below ``t1``. Only the
  outputs and the log-sum-exp per row (``lse0``, and ``lse1`` for ``separate_strict``) are saved.
* backward: a row pre-pass (``Delta = rowsum(dz0*z0 + dz1*z1)``, or ``Delta0``/``Delta1``, and
  ``g = rowsum(dz1*w)`` for ``shared_self``); one kernel over key blocks for ``dv``/``ds`` (grid
  also over value-width blocks), one over key blocks for ``dk`` and one over query blocks for
  ``dq`` (and ``dw``). ``P`` is recomputed from the saved log-sum-exp; no atomics. With upstream
  ``dz0, dz1``::

      dv = P0^T dz0;  ds = (P0*M1)^T dz1 (shared) or P1^T dz1 (separate);  dw[t] = P0[t,t] dz1[t]
      shared:   dP = dz0 v^T + (dz1 s^T)*M1 [+ I*(dz1.w)],  dS = P0 * (dP - Delta)
      separate: dS = P0 * (dz0 v^T - Delta0) + P1 * (dz1 s^T - Delta1)
      dq = dS k;  dk = dS^T q

Accumulation is in float32; inputs may be float32, bfloat16 or float16 (outputs and gradients in
the input dtype). Float32 inputs use ``tl.dot(..., input_precision="ieee")`` so that results agree
with a float64 evaluation to ~1e-5 on the GPU as under the interpreter. ``E`` and the value-width
block are padded to powers of two (at least 16, ``tl.dot``'s minimum) with masks. (The
interpreter's ``tl.dot`` cannot multiply bfloat16, so there, and only there, bfloat16 operands are
widened to float32 first: the same exact products, accumulated in float32.)

The module imports without triton (and without CUDA): :func:`triton_available` says whether the
kernels exist. Triton reads ``TRITON_INTERPRET`` when it is imported, so to run the kernels on CPU
tensors under the interpreter, set ``TRITON_INTERPRET=1`` before anything imports triton (the test,
``tests/test_triton_attention.py``, does this in a subprocess). The torch reference path with the
same semantics is :func:`fsnlab.models.attention.delay_attention`.
"""

from __future__ import annotations

import torch

try:  # never fail on import: the kernels are optional
    import triton
    import triton.language as tl
except Exception:  # pragma: no cover - exercised only where triton is missing or broken
    triton = None
    tl = None


MODES = {"none": 0, "shared_zero_diag": 1, "shared_self": 2, "separate_strict": 3}
_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def triton_available() -> bool:
    """True when triton imported and the kernels are defined (says nothing about a GPU)."""
    return triton is not None


if triton is not None:

    @triton.jit
    def _mm(a, b, PREC: tl.constexpr, EMU: tl.constexpr):
        """``a @ b`` accumulated in float32. ``EMU``: the operands are widened to float32 first (exact
        for bf16 products), for the interpreter, whose ``tl.dot`` cannot multiply bfloat16."""
        if EMU:
            return tl.dot(a.to(tl.float32), b.to(tl.float32), input_precision="ieee")
        else:
            return tl.dot(a, b, input_precision=PREC)

    @triton.jit
    def _fwd_kernel(
        Q, K, V, S, Wd, Z0, Z1, LSE0, LSE1,
        T, E, W,
        MODE: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
        BLOCK_E: tl.constexpr, BLOCK_W: tl.constexpr, PREC: tl.constexpr, EMU: tl.constexpr,
    ):
        pid_m = tl.program_id(0)
        bh = tl.program_id(1).to(tl.int64)
        pid_w = tl.program_id(2)
        offs_t = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_e = tl.arange(0, BLOCK_E)
        offs_c = pid_w * BLOCK_W + tl.arange(0, BLOCK_W)
        row_ok = offs_t < T
        e_ok = offs_e < E
        c_ok = offs_c < W
        qk_base = bh * T * E
        vw_base = bh * T * W

        q = tl.load(Q + qk_base + offs_t[:, None] * E + offs_e[None, :],
                    mask=row_ok[:, None] & e_ok[None, :], other=0.0)
        m0 = tl.full((BLOCK_M,), float("-inf"), tl.float32)
        l0 = tl.zeros((BLOCK_M,), tl.float32)
        m1 = tl.full((BLOCK_M,), float("-inf"), tl.float32)
        l1 = tl.zeros((BLOCK_M,), tl.float32)
        sdiag = tl.zeros((BLOCK_M,), tl.float32)
        acc0 = tl.zeros((BLOCK_M, BLOCK_W), tl.float32)
        acc1 = tl.zeros((BLOCK_M, BLOCK_W), tl.float32)

        hi = tl.minimum((pid_m + 1) * BLOCK_M, T)  # causal block skipping
        for u0 in tl.range(0, hi, BLOCK_N):
            offs_u = u0 + tl.arange(0, BLOCK_N)
            col_ok = offs_u < T
            k = tl.load(K + qk_base + offs_u[:, None] * E + offs_e[None, :],
                        mask=col_ok[:, None] & e_ok[None, :], other=0.0)
            sc = _mm(q, tl.trans(k), PREC, EMU)
            causal = (offs_u[None, :] <= offs_t[:, None]) & col_ok[None, :]
            strict = (offs_u[None, :] < offs_t[:, None]) & col_ok[None, :]
            vw_mask = col_ok[:, None] & c_ok[None, :]

            # u = 0 is in the first key block and visible to every row, so m0_new is finite.
            sc0 = tl.where(causal, sc, float("-inf"))
            m0_new = tl.maximum(m0, tl.max(sc0, 1))
            alpha0 = tl.exp(m0 - m0_new)
            p0 = tl.exp(sc0 - m0_new[:, None])
            l0 = l0 * alpha0 + tl.sum(p0, 1)
            v = tl.load(V + vw_base + offs_u[:, None] * W + offs_c[None, :], mask=vw_mask, other=0.0)
            acc0 = acc0 * alpha0[:, None] + _mm(p0.to(v.dtype), v, PREC, EMU)
            if MODE == 1 or MODE == 2:
                sv = tl.load(S + vw_base + offs_u[:, None] * W + offs_c[None, :], mask=vw_mask, other=0.0)
                p0s = tl.where(strict, p0, 0.0)  # masked before it multiplies s
                acc1 = acc1 * alpha0[:, None] + _mm(p0s.to(sv.dtype), sv, PREC, EMU)
            if MODE == 2:
                sdiag += tl.sum(tl.where(offs_u[None, :] == offs_t[:, None], sc, 0.0), 1)
            if MODE == 3:
                sv = tl.load(S + vw_base + offs_u[:, None] * W + offs_c[None, :], mask=vw_mask, other=0.0)
                sc1 = tl.where(strict, sc, float("-inf"))
                m1_new = tl.maximum(m1, tl.max(sc1, 1))
                m1_safe = tl.where(m1_new == float("-inf"), 0.0, m1_new)  # row 0: empty set so far
                alpha1 = tl.exp(m1 - m1_safe)
                p1 = tl.exp(sc1 - m1_safe[:, None])
                l1 = l1 * alpha1 + tl.sum(p1, 1)
                acc1 = acc1 * alpha1[:, None] + _mm(p1.to(sv.dtype), sv, PREC, EMU)
                m1 = m1_new
            m0 = m0_new

        out_mask = row_ok[:, None] & c_ok[None, :]
        out_offs = vw_base + offs_t[:, None] * W + offs_c[None, :]
        z0 = acc0 / l0[:, None]
        tl.store(Z0 + out_offs, z0.to(Z0.dtype.element_ty), mask=out_mask)
        lse_mask = row_ok & ((offs_t * 0 + pid_w) == 0)  # one value-width block writes the row stats
        tl.store(LSE0 + bh * T + offs_t, m0 + tl.log(l0), mask=lse_mask)
        if MODE == 1:
            z1 = acc1 / l0[:, None]
            tl.store(Z1 + out_offs, z1.to(Z1.dtype.element_ty), mask=out_mask)
        if MODE == 2:
            pdiag = tl.exp(sdiag - m0)  # P0[t, t] * l0
            wv = tl.load(Wd + out_offs, mask=out_mask, other=0.0).to(tl.float32)
            z1 = (acc1 + pdiag[:, None] * wv) / l0[:, None]
            tl.store(Z1 + out_offs, z1.to(Z1.dtype.element_ty), mask=out_mask)
        if MODE == 3:
            l1_safe = tl.where(l1 > 0.0, l1, 1.0)
            z1 = acc1 / l1_safe[:, None]
            tl.store(Z1 + out_offs, z1.to(Z1.dtype.element_ty), mask=out_mask)
            lse1 = tl.where(l1 > 0.0, m1 + tl.log(l1_safe), 0.0)
            tl.store(LSE1 + bh * T + offs_t, lse1, mask=lse_mask)

    @triton.jit
    def _bwd_pre_kernel(
        Z0, Z1, DZ0, DZ1, Wd, D0, D1, G,
        T, W,
        MODE: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_W: tl.constexpr,
    ):
        pid_m = tl.program_id(0)
        bh = tl.program_id(1).to(tl.int64)
        offs_t = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        row_ok = offs_t < T
        vw_base = bh * T * W
        d0 = tl.zeros((BLOCK_M,), tl.float32)
        d1 = tl.zeros((BLOCK_M,), tl.float32)
        g = tl.zeros((BLOCK_M,), tl.float32)
        for c0 in tl.range(0, W, BLOCK_W):
            offs_c = c0 + tl.arange(0, BLOCK_W)
            msk = row_ok[:, None] & (offs_c < W)[None, :]
            offs = vw_base + offs_t[:, None] * W + offs_c[None, :]
            z0 = tl.load(Z0 + offs, mask=msk, other=0.0).to(tl.float32)
            dz0 = tl.load(DZ0 + offs, mask=msk, other=0.0).to(tl.float32)
            d0 += tl.sum(z0 * dz0, 1)
            if MODE != 0:
                z1 = tl.load(Z1 + offs, mask=msk, other=0.0).to(tl.float32)
                dz1 = tl.load(DZ1 + offs, mask=msk, other=0.0).to(tl.float32)
                d1 += tl.sum(z1 * dz1, 1)
                if MODE == 2:
                    wv = tl.load(Wd + offs, mask=msk, other=0.0).to(tl.float32)
                    g += tl.sum(dz1 * wv, 1)
        if MODE == 1 or MODE == 2:
            d0 = d0 + d1  # one Delta for the shared softmax
        tl.store(D0 + bh * T + offs_t, d0, mask=row_ok)
        if MODE == 3:
            tl.store(D1 + bh * T + offs_t, d1, mask=row_ok)
        if MODE == 2:
            tl.store(G + bh * T + offs_t, g, mask=row_ok)

    @triton.jit
    def _dscores(
        q, k, offs_t, offs_u, lse0, lse1, d0, d1, g,
        DZ0, DZ1, V, S, vw_base, T, W,
        MODE: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
        BLOCK_W: tl.constexpr, PREC: tl.constexpr, EMU: tl.constexpr,
    ):
        """dS (float32) and P0 for one (query block, key block) tile; dP is reduced over all of W."""
        row_ok = offs_t < T
        col_ok = offs_u < T
        sc = _mm(q, tl.trans(k), PREC, EMU)
        causal = (offs_u[None, :] <= offs_t[:, None]) & row_ok[:, None]
        strict = (offs_u[None, :] < offs_t[:, None]) & row_ok[:, None]
        p0 = tl.exp(tl.where(causal, sc - lse0[:, None], float("-inf")))  # masked first: no inf
        dp0 = tl.zeros((BLOCK_M, BLOCK_N), tl.float32)
        dp1 = tl.zeros((BLOCK_M, BLOCK_N), tl.float32)
        for c0 in tl.range(0, W, BLOCK_W):
            offs_c = c0 + tl.arange(0, BLOCK_W)
            c_ok = offs_c < W
            rmask = row_ok[:, None] & c_ok[None, :]
            cmask = col_ok[:, None] & c_ok[None, :]
            roffs = vw_base + offs_t[:, None] * W + offs_c[None, :]
            coffs = vw_base + offs_u[:, None] * W + offs_c[None, :]
            dz0 = tl.load(DZ0 + roffs, mask=rmask, other=0.0)
            v = tl.load(V + coffs, mask=cmask, other=0.0)
            dp0 += _mm(dz0, tl.trans(v), PREC, EMU)
            if MODE != 0:
                dz1 = tl.load(DZ1 + roffs, mask=rmask, other=0.0)
                sv = tl.load(S + coffs, mask=cmask, other=0.0)
                dp1 += _mm(dz1, tl.trans(sv), PREC, EMU)
        if MODE == 0:
            ds = p0 * (dp0 - d0[:, None])
        elif MODE == 1:
            ds = p0 * (dp0 + tl.where(strict, dp1, 0.0) - d0[:, None])
        elif MODE == 2:
            dg = tl.where(offs_u[None, :] == offs_t[:, None], g[:, None], 0.0)
            ds = p0 * (dp0 + tl.where(strict, dp1, 0.0) + dg - d0[:, None])
        else:
            p1 = tl.exp(tl.where(strict, sc - lse1[:, None], float("-inf")))
            ds = p0 * (dp0 - d0[:, None]) + p1 * (dp1 - d1[:, None])
        return ds, p0

    @triton.jit
    def _bwd_dq_kernel(
        Q, K, V, S, DZ0, DZ1, LSE0, LSE1, D0, D1, G, DQ, DW,
        T, E, W,
        MODE: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
        BLOCK_E: tl.constexpr, BLOCK_W: tl.constexpr, PREC: tl.constexpr, EMU: tl.constexpr,
    ):
        pid_m = tl.program_id(0)
        bh = tl.program_id(1).to(tl.int64)
        offs_t = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_e = tl.arange(0, BLOCK_E)
        row_ok = offs_t < T
        e_ok = offs_e < E
        qk_base = bh * T * E
        vw_base = bh * T * W
        q = tl.load(Q + qk_base + offs_t[:, None] * E + offs_e[None, :],
                    mask=row_ok[:, None] & e_ok[None, :], other=0.0)
        lse0 = tl.load(LSE0 + bh * T + offs_t, mask=row_ok, other=0.0)
        d0 = tl.load(D0 + bh * T + offs_t, mask=row_ok, other=0.0)
        lse1 = lse0
        d1 = d0
        g = d0
        if MODE == 3:
            lse1 = tl.load(LSE1 + bh * T + offs_t, mask=row_ok, other=0.0)
            d1 = tl.load(D1 + bh * T + offs_t, mask=row_ok, other=0.0)
        if MODE == 2:
            g = tl.load(G + bh * T + offs_t, mask=row_ok, other=0.0)
        dq = tl.zeros((BLOCK_M, BLOCK_E), tl.float32)
        pdiag = tl.zeros((BLOCK_M,), tl.float32)
        hi = tl.minimum((pid_m + 1) * BLOCK_M, T)
        for u0 in tl.range(0, hi, BLOCK_N):
            offs_u = u0 + tl.arange(0, BLOCK_N)
            k = tl.load(K + qk_base + offs_u[:, None] * E + offs_e[None, :],
                        mask=(offs_u < T)[:, None] & e_ok[None, :], other=0.0)
            ds, p0 = _dscores(q, k, offs_t, offs_u, lse0, lse1, d0, d1, g, DZ0, DZ1, V, S, vw_base, T, W,
                              MODE, BLOCK_M, BLOCK_N, BLOCK_W, PREC, EMU)
            dq += _mm(ds.to(k.dtype), k, PREC, EMU)
            if MODE == 2:
                pdiag += tl.sum(tl.where(offs_u[None, :] == offs_t[:, None], p0, 0.0), 1)
        tl.store(DQ + qk_base + offs_t[:, None] * E + offs_e[None, :], dq.to(DQ.dtype.element_ty),
                 mask=row_ok[:, None] & e_ok[None, :])
        if MODE == 2:  # dw[t] = P0[t, t] * dz1[t]
            for c0 in tl.range(0, W, BLOCK_W):
                offs_c = c0 + tl.arange(0, BLOCK_W)
                msk = row_ok[:, None] & (offs_c < W)[None, :]
                offs = vw_base + offs_t[:, None] * W + offs_c[None, :]
                dz1 = tl.load(DZ1 + offs, mask=msk, other=0.0).to(tl.float32)
                tl.store(DW + offs, (pdiag[:, None] * dz1).to(DW.dtype.element_ty), mask=msk)

    @triton.jit
    def _bwd_dk_kernel(
        Q, K, V, S, DZ0, DZ1, LSE0, LSE1, D0, D1, G, DK,
        T, E, W,
        MODE: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
        BLOCK_E: tl.constexpr, BLOCK_W: tl.constexpr, PREC: tl.constexpr, EMU: tl.constexpr,
    ):
        pid_n = tl.program_id(0)
        bh = tl.program_id(1).to(tl.int64)
        offs_u = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        offs_e = tl.arange(0, BLOCK_E)
        col_ok = offs_u < T
        e_ok = offs_e < E
        qk_base = bh * T * E
        vw_base = bh * T * W
        k = tl.load(K + qk_base + offs_u[:, None] * E + offs_e[None, :],
                    mask=col_ok[:, None] & e_ok[None, :], other=0.0)
        dk = tl.zeros((BLOCK_N, BLOCK_E), tl.float32)
        lo = ((pid_n * BLOCK_N) // BLOCK_M) * BLOCK_M  # first query block with some t >= u
        for t0 in tl.range(lo, T, BLOCK_M):
            offs_t = t0 + tl.arange(0, BLOCK_M)
            row_ok = offs_t < T
            q = tl.load(Q + qk_base + offs_t[:, None] * E + offs_e[None, :],
                        mask=row_ok[:, None] & e_ok[None, :], other=0.0)
            lse0 = tl.load(LSE0 + bh * T + offs_t, mask=row_ok, other=0.0)
            d0 = tl.load(D0 + bh * T + offs_t, mask=row_ok, other=0.0)
            lse1 = lse0
            d1 = d0
            g = d0
            if MODE == 3:
                lse1 = tl.load(LSE1 + bh * T + offs_t, mask=row_ok, other=0.0)
                d1 = tl.load(D1 + bh * T + offs_t, mask=row_ok, other=0.0)
            if MODE == 2:
                g = tl.load(G + bh * T + offs_t, mask=row_ok, other=0.0)
            ds, p0 = _dscores(q, k, offs_t, offs_u, lse0, lse1, d0, d1, g, DZ0, DZ1, V, S, vw_base, T, W,
                              MODE, BLOCK_M, BLOCK_N, BLOCK_W, PREC, EMU)
            dk += _mm(tl.trans(ds.to(q.dtype)), q, PREC, EMU)
        tl.store(DK + qk_base + offs_u[:, None] * E + offs_e[None, :], dk.to(DK.dtype.element_ty),
                 mask=col_ok[:, None] & e_ok[None, :])

    @triton.jit
    def _bwd_dvds_kernel(
        Q, K, DZ0, DZ1, LSE0, LSE1, DV, DS,
        T, E, W,
        MODE: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
        BLOCK_E: tl.constexpr, BLOCK_W: tl.constexpr, PREC: tl.constexpr, EMU: tl.constexpr,
    ):
        pid_n = tl.program_id(0)
        bh = tl.program_id(1).to(tl.int64)
        pid_w = tl.program_id(2)
        offs_u = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        offs_e = tl.arange(0, BLOCK_E)
        offs_c = pid_w * BLOCK_W + tl.arange(0, BLOCK_W)
        col_ok = offs_u < T
        e_ok = offs_e < E
        c_ok = offs_c < W
        qk_base = bh * T * E
        vw_base = bh * T * W
        k = tl.load(K + qk_base + offs_u[:, None] * E + offs_e[None, :],
                    mask=col_ok[:, None] & e_ok[None, :], other=0.0)
        dv = tl.zeros((BLOCK_N, BLOCK_W), tl.float32)
        dsv = tl.zeros((BLOCK_N, BLOCK_W), tl.float32)
        lo = ((pid_n * BLOCK_N) // BLOCK_M) * BLOCK_M
        for t0 in tl.range(lo, T, BLOCK_M):
            # Transposed tiles (keys x queries): P^T multiplies dz directly.
            offs_t = t0 + tl.arange(0, BLOCK_M)
            row_ok = offs_t < T
            qT = tl.load(Q + qk_base + offs_t[None, :] * E + offs_e[:, None],
                         mask=row_ok[None, :] & e_ok[:, None], other=0.0)
            lse0 = tl.load(LSE0 + bh * T + offs_t, mask=row_ok, other=0.0)
            scT = _mm(k, qT, PREC, EMU)
            causal = (offs_u[:, None] <= offs_t[None, :]) & row_ok[None, :]
            strict = (offs_u[:, None] < offs_t[None, :]) & row_ok[None, :]
            p0T = tl.exp(tl.where(causal, scT - lse0[None, :], float("-inf")))
            rmask = row_ok[:, None] & c_ok[None, :]
            roffs = vw_base + offs_t[:, None] * W + offs_c[None, :]
            dz0 = tl.load(DZ0 + roffs, mask=rmask, other=0.0)
            dv += _mm(p0T.to(dz0.dtype), dz0, PREC, EMU)
            if MODE == 1 or MODE == 2:
                dz1 = tl.load(DZ1 + roffs, mask=rmask, other=0.0)
                p0sT = tl.where(strict, p0T, 0.0)
                dsv += _mm(p0sT.to(dz1.dtype), dz1, PREC, EMU)
            if MODE == 3:
                dz1 = tl.load(DZ1 + roffs, mask=rmask, other=0.0)
                lse1 = tl.load(LSE1 + bh * T + offs_t, mask=row_ok, other=0.0)
                p1T = tl.exp(tl.where(strict, scT - lse1[None, :], float("-inf")))
                dsv += _mm(p1T.to(dz1.dtype), dz1, PREC, EMU)
        out_mask = col_ok[:, None] & c_ok[None, :]
        out_offs = vw_base + offs_u[:, None] * W + offs_c[None, :]
        tl.store(DV + out_offs, dv.to(DV.dtype.element_ty), mask=out_mask)
        if MODE != 0:
            tl.store(DS + out_offs, dsv.to(DS.dtype.element_ty), mask=out_mask)


def _interpreted() -> bool:
    """Whether the kernels were decorated under ``TRITON_INTERPRET=1`` (they then run on CPU)."""
    return not isinstance(_fwd_kernel, triton.runtime.JITFunction)


def runs_on(device: torch.device) -> bool:
    """Whether the kernels can take tensors on ``device``: CUDA, or any device under the interpreter."""
    return triton is not None and (device.type == "cuda" or _interpreted())


def _emulate(dtype: torch.dtype) -> bool:
    """bfloat16 dots are widened to float32 under the interpreter (see ``_mm``); compiled: never."""
    return dtype == torch.bfloat16 and _interpreted()


def _pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def _check_block(name: str, b: int) -> int:
    if b < 16 or b & (b - 1):
        raise ValueError(f"{name} must be a power of two >= 16, got {b}")
    return b


class _DelayAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, s, w, mode, cfg):
        B, H, T, E = q.shape
        W = v.shape[-1]
        m = MODES[mode]
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        s = s.contiguous() if s is not None else v
        w = w.contiguous() if w is not None else v
        z0 = torch.empty_like(v)
        z1 = torch.empty_like(v) if m != 0 else z0
        lse0 = torch.empty(B, H, T, device=q.device, dtype=torch.float32)
        lse1 = torch.empty_like(lse0) if m == 3 else lse0
        bm, bn, be, bw, bwr, prec, nw = cfg
        grid = (triton.cdiv(T, bm), B * H, triton.cdiv(W, bw))
        _fwd_kernel[grid](q, k, v, s, w, z0, z1, lse0, lse1, T, E, W, MODE=m, BLOCK_M=bm, BLOCK_N=bn,
                          BLOCK_E=be, BLOCK_W=bw, PREC=prec, EMU=_emulate(q.dtype), num_warps=nw)
        ctx.save_for_backward(q, k, v, s, w, z0, z1, lse0, lse1)
        ctx.mode, ctx.cfg = m, cfg
        if m == 0:
            return z0, None
        return z0, z1

    @staticmethod
    def backward(ctx, dz0, dz1):
        q, k, v, s, w, z0, z1, lse0, lse1 = ctx.saved_tensors
        m = ctx.mode
        bm, bn, be, bw, bwr, prec, nw = ctx.cfg
        B, H, T, E = q.shape
        W = v.shape[-1]
        dz0 = torch.zeros_like(z0) if dz0 is None else dz0.to(z0.dtype).contiguous()
        if m != 0:
            dz1 = torch.zeros_like(z1) if dz1 is None else dz1.to(z1.dtype).contiguous()
        else:
            dz1 = dz0
        d0 = torch.empty_like(lse0)
        d1 = torch.empty_like(lse0) if m == 3 else d0
        g = torch.empty_like(lse0) if m == 2 else d0
        nq, nk = triton.cdiv(T, bm), triton.cdiv(T, bn)
        _bwd_pre_kernel[(nq, B * H)](z0, z1, dz0, dz1, w, d0, d1, g, T, W,
                                     MODE=m, BLOCK_M=bm, BLOCK_W=bwr, num_warps=nw)
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        ds = torch.empty_like(v) if m != 0 else dv
        dw = torch.empty_like(v) if m == 2 else dv
        meta = dict(MODE=m, BLOCK_M=bm, BLOCK_N=bn, BLOCK_E=be, PREC=prec, EMU=_emulate(q.dtype), num_warps=nw)
        _bwd_dvds_kernel[(nk, B * H, triton.cdiv(W, bw))](q, k, dz0, dz1, lse0, lse1, dv, ds, T, E, W,
                                                          BLOCK_W=bw, **meta)
        meta["BLOCK_W"] = bwr  # dq and dk reduce dP over W inside the kernel: a narrower tile
        _bwd_dk_kernel[(nk, B * H)](q, k, v, s, dz0, dz1, lse0, lse1, d0, d1, g, dk, T, E, W, **meta)
        _bwd_dq_kernel[(nq, B * H)](q, k, v, s, dz0, dz1, lse0, lse1, d0, d1, g, dq, dw, T, E, W, **meta)
        return (dq, dk, dv, ds if m != 0 else None, dw if m == 2 else None, None, None)


def delay_attention_triton(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    s: torch.Tensor | None = None,
    w: torch.Tensor | None = None,
    mode: str = "none",
    *,
    block_m: int | None = None,
    block_n: int | None = None,
    block_w: int | None = None,
    num_warps: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(z0, z1)`` of the module docstring (spec §3.4) on fused Triton kernels, differentiable.

    Shapes: ``q, k (B, H, T, E)``, ``v, s, w (B, H, T, W)``; ``s`` is needed by every mode but
    ``"none"`` and ``w`` only by ``"shared_self"`` (pass None otherwise). ``z1`` is None for
    ``mode="none"``. Inputs: float32, bfloat16 or float16, all of one dtype, on one device (CUDA;
    CPU tensors only under ``TRITON_INTERPRET=1``). ``block_m``/``block_n`` (query/key rows per
    tile) and ``block_w`` (value channels per tile of the forward and dv/ds kernels; dq and dk use
    at most 32) are powers of two >= 16. The defaults compile for sm_90 with no or few register
    spills (checked offline, not benchmarked); tests pass small blocks to exercise multi-block
    paths.
    """
    if triton is None:
        raise RuntimeError("delay_attention_triton needs triton (pip install triton)")
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {sorted(MODES)}")
    if q.dim() != 4 or k.shape != q.shape or v.dim() != 4 or v.shape[:3] != q.shape[:3]:
        raise ValueError(f"expected q, k (B, H, T, E) and v (B, H, T, W); got {q.shape}, {k.shape}, {v.shape}")
    needs_s, needs_w = mode != "none", mode == "shared_self"
    for name, x, needed in (("s", s, needs_s), ("w", w, needs_w)):
        if needed and x is None:
            raise ValueError(f"mode {mode!r} needs {name}")
        if not needed and x is not None:
            raise ValueError(f"mode {mode!r} takes no {name}")
        if x is not None and x.shape != v.shape:
            raise ValueError(f"{name} must have v's shape {tuple(v.shape)}, got {tuple(x.shape)}")
    tensors = [x for x in (q, k, v, s, w) if x is not None]
    if q.dtype not in _DTYPES or any(x.dtype != q.dtype for x in tensors):
        raise TypeError(f"inputs must share one dtype among {_DTYPES}; got {[x.dtype for x in tensors]}")
    if any(x.device != q.device for x in tensors):
        raise ValueError("inputs must be on one device")
    if q.device.type != "cuda" and not _interpreted():
        raise ValueError(f"delay_attention_triton needs CUDA tensors, got {q.device} (CPU: TRITON_INTERPRET=1)")
    E, W = q.shape[-1], v.shape[-1]
    wide = q.dtype == torch.float32  # ieee float32 dots run on FMA units: small tiles
    bm = _check_block("block_m", block_m if block_m is not None else (16 if wide else 64))
    bn = _check_block("block_n", block_n if block_n is not None else (16 if wide else 64))
    bw = _check_block("block_w", block_w if block_w is not None else min(32 if wide else 64, max(16, _pow2(W))))
    be = max(16, _pow2(E))
    nw = num_warps if num_warps is not None else (4 if wide else 8)
    prec = "ieee" if wide else "tf32"  # read only for float32 operands
    cfg = (bm, bn, be, bw, min(bw, 32), prec, nw)
    return _DelayAttention.apply(q, k, v, s, w, mode, cfg)
