"""The fused coupling force (``fsnlab.models.fused_force``) against the unfused attention path.

The unfused path computes Z0, Z1 with ``delay_attention`` and lets autograd differentiate the kernel
and the projection; the fused one recomputes everything in its backward pass from the phases. Both
must agree, values and every gradient, for every delay mask, with several query blocks.
"""

from __future__ import annotations

import pytest
import torch

from fsnlab.models import attention, fused_force
from fsnlab.models.attention import delay_attention
from fsnlab.models.fused_force import fused_delay_force
from fsnlab.models.kernel import harmonic_phasors, tangent_force

MASKS = ("shared_zero_diag", "shared_self", "separate_strict")


def unfused(theta, sender, q, k, c, d, N, mask):
    receiver = harmonic_phasors(theta, N)
    e = (receiver if sender is None else harmonic_phasors(sender, N)).flatten(3)
    z0, z1 = delay_attention(q, k, e, None, e, mask, separate=True)
    as_c = lambda z: torch.view_as_complex(z.unflatten(-1, (-1, N, 2)))  # noqa: E731
    return tangent_force(theta, receiver, c * as_c(z0) + d * as_c(z1))


def inputs(seed, dtype, sender=False, B=2, H=2, T=11, Dh=3, N=2):
    g = torch.Generator().manual_seed(seed)
    real = lambda *s: (torch.randn(*s, generator=g, dtype=dtype) * 1.5).requires_grad_()  # noqa: E731
    cplx = lambda *s: torch.randn(*s, generator=g, dtype=torch.complex128 if dtype == torch.float64  # noqa: E731
                                  else torch.complex64).requires_grad_()
    theta = real(B, H, T, Dh)
    return (theta, real(B, H, T, Dh) if sender else None, real(B, H, T, 2 * Dh), real(B, H, T, 2 * Dh),
            cplx(H, 1, Dh, N), cplx(H, 1, Dh, N), N)


@pytest.mark.parametrize("chunk_bytes", [8 << 20, 1], ids=["one-chunk", "row-chunks"])
@pytest.mark.parametrize("sender", [False, True], ids=["sender=theta", "sender=psi"])
@pytest.mark.parametrize("block", [256, 4])
@pytest.mark.parametrize("mask", MASKS)
def test_fused_matches_unfused_values_and_gradients(mask, block, sender, chunk_bytes, monkeypatch):
    """Also with the (batch x head) rows split into chunks of one (``CHUNK_BYTES``, the CPU path), where
    the kernel's gradient is summed over chunks and batch."""
    monkeypatch.setattr(attention, "QUERY_BLOCK", block)
    monkeypatch.setattr(fused_force, "CHUNK_BYTES", chunk_bytes)
    args = inputs(0, torch.float64, sender, B=3)
    a = fused_delay_force(*args, mask)
    b = unfused(*args, mask)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    leaves = [x for x in args if isinstance(x, torch.Tensor)]
    w = torch.randn(a.shape, generator=torch.Generator().manual_seed(1), dtype=a.dtype)
    ga = torch.autograd.grad((a * w).sum(), leaves)
    gb = torch.autograd.grad((b * w).sum(), leaves)
    for x, y in zip(ga, gb):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-10)


@pytest.mark.parametrize("mask", MASKS)
def test_gradcheck(mask, monkeypatch):
    monkeypatch.setattr(attention, "QUERY_BLOCK", 3)
    monkeypatch.setattr(fused_force, "CHUNK_BYTES", 1)
    theta, _, q, k, c, d, N = inputs(2, torch.float64, T=5, Dh=2)
    assert torch.autograd.gradcheck(lambda *x: fused_delay_force(*x[:1], None, *x[1:], N, mask), (theta, q, k, c, d))


def test_row_chunks_bound_the_bytes_of_a_chunk_on_cpu():
    chunks = fused_force._row_chunks(64, 512, 384, 4, torch.device("cpu"))
    rows = [c.stop - c.start for c in chunks]
    assert sum(rows) == 64 and max(rows) * 512 * 384 * 4 <= fused_force.CHUNK_BYTES
    assert [c.start for c in chunks] == [sum(rows[:i]) for i in range(len(rows))]
    assert fused_force._row_chunks(64, 512, 384, 4, torch.device("meta")) == [slice(0, 64)]
    assert len(fused_force._row_chunks(4, 1 << 16, 384, 4, torch.device("cpu"))) == 4  # at least one row each


@pytest.mark.parametrize("mask", MASKS)
def test_force_is_strictly_causal(mask, monkeypatch):
    """The force at t is bit-identical when every input after t changes, and its gradient reaches no later phase."""
    monkeypatch.setattr(attention, "QUERY_BLOCK", 4)
    theta, _, q, k, c, d, N = inputs(3, torch.float32, T=10)
    f = fused_delay_force(theta, None, q, k, c, d, N, mask)
    cut = 6
    later = [x.detach().clone() for x in (theta, q, k)]
    for x in later:
        x[:, :, cut:] += 5.0
    g = fused_delay_force(later[0], None, later[1], later[2], c, d, N, mask)
    assert torch.equal(f[:, :, :cut], g[:, :, :cut])
    (grad,) = torch.autograd.grad(f[:, :, 3].sum(), theta)
    assert torch.all(grad[:, :, 4:] == 0)


def test_bf16_autocast_stays_close():
    theta, _, q, k, c, d, N = inputs(4, torch.float32, T=12)
    ref = fused_delay_force(theta, None, q, k, c, d, N, "shared_zero_diag")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = fused_delay_force(theta, None, q, k, c, d, N, "shared_zero_diag")
        out.sum().backward()
    assert out.dtype == torch.float32 and not torch.equal(out, ref)
    assert (out - ref).abs().max() < 0.05 * ref.abs().max()
    assert all(torch.isfinite(x.grad).all() for x in (theta, q, k))
