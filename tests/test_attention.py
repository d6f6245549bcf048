"""The blocked one-score-product attention (``fsnlab.models.attention``): values, gradients, causality.

Every mode is compared, values and gradients, with a dense float64 formula written out here; the
recomputing backward pass is also checked by ``torch.autograd.gradcheck``. Block sizes of 3 and 4
exercise the multi-block path (causal block skipping, a short last block).
"""

from __future__ import annotations

import pytest
import torch

from fsnlab.models import attention
from fsnlab.models.attention import fused_delay_attention

MODES = ("none", "shared_zero_diag", "shared_self", "separate_strict")


def dense(q, k, v, s, w, mode):
    """``(Z0, Z1)`` from full ``T x T`` softmax matrices (the definitions, no blocking, no tricks)."""
    T = q.shape[2]
    S = q @ k.transpose(-1, -2)
    t = torch.arange(T)[:, None]
    u = torch.arange(T)[None, :]
    P0 = S.masked_fill(u > t, float("-inf")).softmax(-1)
    z0 = P0 @ v
    if mode == "none":
        return z0, None
    if mode == "separate_strict":
        P1 = S.masked_fill(u >= t, float("-inf")).softmax(-1).nan_to_num(0.0)  # row 0: empty set, Z1 = 0
        return z0, P1 @ s
    z1 = P0.masked_fill(u >= t, 0.0) @ s
    if mode == "shared_self":
        z1 = z1 + torch.diagonal(P0, dim1=-2, dim2=-1)[..., None] * w
    return z0, z1


def inputs(T=9, E=4, W=10, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    make = lambda *shape: (torch.randn(*shape, generator=g, dtype=dtype) * 1.5).requires_grad_()  # noqa: E731
    return make(2, 3, T, E), make(2, 3, T, E), make(2, 3, T, W), make(2, 3, T, W), make(2, 3, T, W)


@pytest.mark.parametrize("block", [256, 4, 3])
@pytest.mark.parametrize("mode", MODES)
def test_values_and_gradients_match_the_dense_definition(mode, block, monkeypatch):
    monkeypatch.setattr(attention, "QUERY_BLOCK", block)
    q, k, v, s, w = inputs()
    fast = fused_delay_attention(q, k, v, s, w, mode)
    ref = dense(q, k, v, s, w, mode)
    gen = torch.Generator().manual_seed(1)
    loss_fast = sum((x * torch.randn(x.shape, generator=gen, dtype=x.dtype)).sum() for x in fast if x is not None)
    gen = torch.Generator().manual_seed(1)
    loss_ref = sum((x * torch.randn(x.shape, generator=gen, dtype=x.dtype)).sum() for x in ref if x is not None)
    for a, b in zip(fast, ref):
        if b is None:
            assert a is None
        else:
            torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    leaves = (q, k, v, s, w)
    g_fast = torch.autograd.grad(loss_fast, leaves, allow_unused=True)
    g_ref = torch.autograd.grad(loss_ref, leaves, allow_unused=True)
    for name, a, b in zip("qkvsw", g_fast, g_ref):
        if b is None:
            assert a is None or not a.abs().any(), name
        else:
            torch.testing.assert_close(a, b, rtol=0, atol=1e-11, msg=f"d{name}")


@pytest.mark.parametrize("mode", MODES)
def test_gradcheck_of_the_recomputing_backward(mode, monkeypatch):
    monkeypatch.setattr(attention, "QUERY_BLOCK", 3)
    q, k, v, s, w = inputs(T=5, E=2, W=3, seed=2)
    args = (q, k, v) if mode == "none" else (q, k, v, s) if mode != "shared_self" else (q, k, v, s, w)

    def f(*a):
        z0, z1 = _call(a, mode)
        return z0 if z1 is None else (z0, z1)

    assert torch.autograd.gradcheck(f, args)


def _call(a, mode):
    q, k, v = a[:3]
    s = a[3] if len(a) > 3 else None
    w = a[4] if len(a) > 4 else None
    return fused_delay_attention(q, k, v, s, w, mode)


@pytest.mark.parametrize("mode", MODES[1:])
def test_successor_term_is_strictly_causal(mode, monkeypatch):
    """Z1_t never depends on s_u for u >= t, exactly (the weights are masked before they multiply),
    and no output at t depends on any input at a position > t."""
    monkeypatch.setattr(attention, "QUERY_BLOCK", 4)
    q, k, v, s, w = inputs(T=10, seed=3, dtype=torch.float32)
    z0, z1 = fused_delay_attention(q, k, v, s, w, mode)
    for t in (0, 3, 4, 9):
        (gs,) = torch.autograd.grad(z1[:, :, t].sum(), s, retain_graph=True)
        assert torch.all(gs[:, :, t:] == 0), f"Z1_{t} reads s_u with u >= t"
        assert gs[:, :, :t].abs().sum() > 0 or t == 0
    cut = 5
    later = [x.detach().clone() for x in (q, k, v, s, w)]
    for x in later:
        x[:, :, cut:] += 10.0
    y0, y1 = fused_delay_attention(*later, mode)
    assert torch.equal(y0[:, :, :cut], z0[:, :, :cut].detach())
    assert torch.equal(y1[:, :, :cut], z1[:, :, :cut].detach())


def test_bf16_autocast_runs_the_products_in_bf16_and_stays_close():
    q, k, v, s, w = inputs(T=12, E=8, W=16, seed=4, dtype=torch.float32)
    ref = fused_delay_attention(q, k, v, s, w, "shared_zero_diag")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = fused_delay_attention(q, k, v, s, w, "shared_zero_diag")
        (out[0].sum() + out[1].sum()).backward()
    assert out[0].dtype == torch.float32
    for a, b in zip(out, ref):
        assert (a - b).abs().max() < 0.1 * b.abs().max()
        assert not torch.equal(a, b)  # the products really ran in bf16
    assert all(torch.isfinite(x.grad).all() for x in (q, k, v, s))


def test_backend_is_torch_on_cpu_and_the_env_switch_is_validated(monkeypatch):
    assert attention.attention_backend(torch.device("cpu")) == "torch"
    monkeypatch.setenv("FSNLAB_ATTENTION", "bogus")
    with pytest.raises(ValueError, match="FSNLAB_ATTENTION"):
        attention.attention_backend(torch.device("cpu"))


def test_unknown_mode_and_missing_values_are_errors():
    q, k, v, s, w = inputs()
    with pytest.raises(ValueError, match="unknown delay mode"):
        fused_delay_attention(q, k, v, s, w, "bogus")
    with pytest.raises(ValueError, match="needs the diagonal values"):
        fused_delay_attention(q, k, v, s, None, "shared_self")


@pytest.mark.parametrize("block", [256, 3])
@pytest.mark.parametrize("mode", MODES[1:])
def test_successors_read_from_the_shifted_values(mode, block, monkeypatch):
    """``s=None``: the successor of key u is v_{u+1} itself, values and gradients as with s given."""
    monkeypatch.setattr(attention, "QUERY_BLOCK", block)
    q, k, v, _, _ = inputs(T=8, seed=5)
    s = torch.cat([v[:, :, 1:], torch.zeros_like(v[:, :, :1])], 2)
    w = v if mode == "shared_self" else None
    implicit = fused_delay_attention(q, k, v, None, w, mode)
    explicit = fused_delay_attention(q, k, v, s, w, mode)
    ref = dense(q, k, v, s, w, mode)
    for a, b, c in zip(implicit, explicit, ref):
        torch.testing.assert_close(a, c, rtol=0, atol=1e-12)
        torch.testing.assert_close(b, c, rtol=0, atol=1e-12)
    grads = [torch.autograd.grad(sum(z.square().sum() for z in out), (q, k, v)) for out in (implicit, ref)]
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-11)


LAYER_THROUGH_TRITON = r"""
import os, sys, json, torch
os.environ["FSNLAB_ATTENTION"] = "triton"
from fsnlab.models import FSNConfig
from fsnlab.models import attention
from fsnlab.models.fsn import FSNAttention
mask = sys.argv[1]
assert attention.attention_backend(torch.device("cpu")) == "triton"
torch.manual_seed(0)
layer = FSNAttention(FSNConfig(d_phase=8, n_head=2, n_harmonics=2, kernel="full", delay_mask=mask, score_offset=True).validate())
with torch.no_grad():
    for p in layer.parameters():
        p.add_(0.3 * torch.randn_like(p))
theta = (torch.randn(2, 20, 8) * 2).requires_grad_()
out = {}
for backend in ("triton", "torch"):
    os.environ["FSNLAB_ATTENTION"] = backend
    y = layer(theta)
    grads = torch.autograd.grad(y.square().sum(), [theta, *layer.parameters()])
    out[backend] = (y.detach(), grads)
err = max((out["triton"][0] - out["torch"][0]).abs().max().item(),
          *[(a - b).abs().max().item() for a, b in zip(out["triton"][1], out["torch"][1])])
print(json.dumps({"max_err": err}))
"""


@pytest.mark.parametrize("mask", ["shared_zero_diag", "shared_self", "separate_strict"])
def test_the_layer_through_the_triton_kernel_matches_the_torch_path(mask):
    """The whole FSN attention step (values and every gradient) through the fused kernel, dispatched
    the way CUDA dispatches it, under the Triton interpreter on CPU (a fresh process: triton reads
    TRITON_INTERPRET when it is imported)."""
    import importlib.util
    import json
    import os
    import subprocess
    import sys

    if importlib.util.find_spec("triton") is None:
        pytest.skip("triton is not installed")
    env = {**os.environ, "TRITON_INTERPRET": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", LAYER_THROUGH_TRITON, mask], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["max_err"] < 1e-4
