"""The fused Triton delay-attention kernels (``fsnlab.models.triton_attention``) against a dense
float64 formula, forward and backward, in every mode.

CPU (CI): triton reads ``TRITON_INTERPRET`` once, when it is imported (``triton.jit`` and
triton.language's own helpers are decorated then), so setting it inside this process could come too
late and would leak into every other test. The interpreter checks therefore run in one subprocess
(this file run as a script, with ``TRITON_INTERPRET=1``) that writes its measurements to a JSON
file; the tests below assert on them. This process never imports triton for them.

GPU (``-m gpu``, skipped without CUDA): the compiled kernels in this process at realistic sizes.

Run: ``.venv/bin/python -m pytest -q tests/test_triton_attention.py``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

if importlib.util.find_spec("triton") is None:  # not importorskip: importing triton here is what we avoid
    pytest.skip("triton is not installed", allow_module_level=True)

MODES = ("none", "shared_zero_diag", "shared_self", "separate_strict")
REPO = Path(__file__).resolve().parents[1]

# (name, B, H, T, E, W, dtype, blocks (block_m, block_n, block_w) or None for the defaults)
SHAPES = [
    ("T7_one_block", 1, 2, 7, 8, 24, "float32", (16, 16, 16)),
    ("T37_W20", 2, 1, 37, 8, 20, "float32", (16, 16, 16)),  # W not a multiple of E nor of BLOCK_W
    ("T130_bm32_bn16", 1, 1, 130, 8, 24, "float32", (32, 16, 16)),
    ("T37_E12_bm16_bn32", 1, 1, 37, 12, 40, "float32", (16, 32, 32)),  # E padded, key blocks > query blocks
    ("T37_defaults", 1, 2, 37, 8, 24, "float32", None),
    ("T37_bf16", 1, 1, 37, 8, 24, "bfloat16", (16, 16, 16)),
    ("T37_fp16", 1, 1, 37, 8, 24, "float16", (16, 16, 16)),
]
TOL = {"float32": 1e-5, "bfloat16": 3e-2, "float16": 4e-3}  # max |err| / max |reference|
CAUSAL_T, CAUSAL_CUTS, GRAD_ROWS = 37, (0, 15, 16, 31), (0, 16, 20)


# ----------------------------------------------------------------------------- dense reference

def dense_delay_attention(q, k, v, s, w, mode):
    """The semantics of ``delay_attention_triton`` as dense T x T matrices (any float dtype)."""
    S = q @ k.transpose(-1, -2)
    T = S.shape[-1]
    i = torch.arange(T, device=S.device)
    M0 = i[None, :] <= i[:, None]
    M1 = i[None, :] < i[:, None]
    P0 = S.masked_fill(~M0, float("-inf")).softmax(-1)
    z0 = P0 @ v
    if mode == "none":
        return z0, None
    if mode in ("shared_zero_diag", "shared_self"):
        z1 = (P0 * M1) @ s  # masked before it multiplies
        if mode == "shared_self":
            z1 = z1 + torch.diagonal(P0, dim1=-2, dim2=-1)[..., None] * w
        return z0, z1
    # separate_strict: own softmax over u < t; row 0 is empty (a dummy score, then zeroed weights)
    S1 = torch.where(M1, S, float("-inf"))
    S1 = torch.where((i[:, None] == 0) & (i[None, :] == 0), torch.zeros_like(S), S1)
    P1 = S1.softmax(-1) * M1
    return z0, P1 @ s


def make_inputs(B, H, T, E, W, mode, dtype, device="cpu", q_scale=0.5, seed=0):
    g = torch.Generator(device="cpu").manual_seed(seed)

    def r(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g) * scale).to(device=device, dtype=dtype)

    q, k = r(B, H, T, E, scale=q_scale), r(B, H, T, E)
    v = r(B, H, T, W)
    s = r(B, H, T, W) if mode != "none" else None
    w = r(B, H, T, W) if mode == "shared_self" else None
    dz0, dz1 = r(B, H, T, W), r(B, H, T, W)
    return [q, k, v, s, w], dz0, dz1


def compare(fn, inputs, dz0, dz1, mode, **kw):
    """Max |err| / max |ref| of z0, z1 and of every input gradient: ``fn`` vs the float64 formula
    evaluated on the same (rounded) inputs."""
    names = ["q", "k", "v", "s", "w"]
    xs = [x.detach().clone().requires_grad_() if x is not None else None for x in inputs]
    ys = [x.detach().double().requires_grad_() if x is not None else None for x in inputs]
    z0, z1 = fn(*xs, mode=mode, **kw)
    r0, r1 = dense_delay_attention(*ys, mode)
    assert (z1 is None) == (r1 is None)
    assert z0.dtype == inputs[0].dtype and z0.shape == r0.shape

    def loss(a, b, d0, d1):
        return (a * d0).sum() + ((b * d1).sum() if b is not None else 0.0)

    live = [j for j, x in enumerate(xs) if x is not None]
    g = torch.autograd.grad(loss(z0, z1, dz0, dz1), [xs[j] for j in live])
    gr = torch.autograd.grad(loss(r0, r1, dz0.double(), dz1.double()), [ys[j] for j in live])

    def err(a, b):
        return ((a.double() - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()

    out = {"z0": err(z0, r0)}
    if z1 is not None:
        out["z1"] = err(z1, r1)
    for j, a, b in zip(live, g, gr):
        assert a.dtype == inputs[j].dtype
        out["d" + names[j]] = err(a, b)
    return out


# ----------------------------------------------------------------------------- interpreter worker

def _worker(out_path: str) -> None:
    assert os.environ.get("TRITON_INTERPRET") == "1", "the worker must run under the interpreter"
    from fsnlab.models.triton_attention import delay_attention_triton, triton_available

    assert triton_available()
    res = {"values": {}, "causal": {}, "validation": {}}
    start = time.process_time()
    for name, B, H, T, E, W, dt, blocks in SHAPES:
        kw = {} if blocks is None else dict(block_m=blocks[0], block_n=blocks[1], block_w=blocks[2])
        for mode in MODES:
            inputs, dz0, dz1 = make_inputs(B, H, T, E, W, mode, getattr(torch, dt))
            res["values"][f"{name}-{mode}"] = compare(delay_attention_triton, inputs, dz0, dz1, mode, **kw)

    kw = dict(block_m=16, block_n=16, block_w=16)
    for mode in MODES:
        inputs, _, _ = make_inputs(1, 1, CAUSAL_T, 8, 20, mode, torch.float32, seed=1)
        base = delay_attention_triton(*inputs, mode=mode, **kw)
        fwd = {}
        for cut in CAUSAL_CUTS:  # change every input at positions > cut: rows <= cut bit-identical
            g = torch.Generator().manual_seed(cut)
            pert = []
            for x in inputs:
                if x is not None:
                    x = x.clone()
                    x[:, :, cut + 1:] = torch.randn(x[:, :, cut + 1:].shape, generator=g) * 3
                pert.append(x)
            new = delay_attention_triton(*pert, mode=mode, **kw)
            fwd[cut] = all(torch.equal(a[:, :, :cut + 1], b[:, :, :cut + 1])
                           for a, b in zip(base, new) if a is not None)
        grads = {}
        for t in GRAD_ROWS:  # the gradients of the outputs at row t
            xs = [x.clone().requires_grad_() if x is not None else None for x in inputs]
            z0, z1 = delay_attention_triton(*xs, mode=mode, **kw)
            g = {}
            if z1 is not None:
                (ds,) = torch.autograd.grad(z1[:, :, t].sum(), [xs[3]], retain_graph=True)
                g["ds_at_and_after_t_zero"] = bool((ds[:, :, t:] == 0).all())
                g["ds_before_t_nonzero"] = bool((ds[:, :, :t] != 0).any()) if t > 0 else True
            loss = z0[:, :, t].sum() + (z1[:, :, t].sum() if z1 is not None else 0.0)
            live = [x for x in xs if x is not None]
            gs = torch.autograd.grad(loss, live)
            g["all_grads_after_t_zero"] = all(bool((d[:, :, t + 1:] == 0).all()) for d in gs)
            if mode == "shared_self":
                dw = gs[4]
                g["dw_only_at_t"] = bool((dw[:, :, :t] == 0).all() and (dw[:, :, t] != 0).any())
            grads[t] = g
        res["causal"][mode] = {"forward": fwd, "grads": grads}

    q, k, v, s, w = make_inputs(1, 1, 5, 8, 16, "shared_self", torch.float32)[0]
    for label, call in {
        "unknown_mode": lambda: delay_attention_triton(q, k, v, s, mode="bogus"),
        "none_with_s": lambda: delay_attention_triton(q, k, v, s, mode="none"),
        "shared_self_without_w": lambda: delay_attention_triton(q, k, v, s, mode="shared_self"),
        "zero_diag_with_w": lambda: delay_attention_triton(q, k, v, s, w, mode="shared_zero_diag"),
        "float64": lambda: delay_attention_triton(q.double(), k.double(), v.double()),
        "block_not_pow2": lambda: delay_attention_triton(q, k, v, block_m=24),
    }.items():
        try:
            call()
            res["validation"][label] = "no error"
        except (ValueError, TypeError) as e:
            res["validation"][label] = type(e).__name__
    res["cpu_seconds"] = time.process_time() - start
    Path(out_path).write_text(json.dumps(res))


@pytest.fixture(scope="module")
def interp(tmp_path_factory):
    out = tmp_path_factory.mktemp("triton_interp") / "results.json"
    env = dict(os.environ, TRITON_INTERPRET="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, __file__, str(out)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        pytest.fail(f"interpreter worker failed (rc {proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    return json.loads(out.read_text())


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", SHAPES, ids=[s[0] for s in SHAPES])
def test_interpreter_matches_dense_float64(interp, shape, mode):
    errs = interp["values"][f"{shape[0]}-{mode}"]
    expected = {"z0", "dq", "dk", "dv"} | ({"z1", "ds"} if mode != "none" else set()) | (
        {"dw"} if mode == "shared_self" else set())
    assert set(errs) == expected
    tol = TOL[shape[6]]
    bad = {k: v for k, v in errs.items() if not v <= tol}
    assert not bad, f"relative errors above {tol}: {bad}"


@pytest.mark.parametrize("mode", MODES)
def test_interpreter_strict_causality(interp, mode):
    res = interp["causal"][mode]
    assert all(res["forward"].values()), f"rows <= cut changed when positions > cut did: {res['forward']}"
    bad = {t: g for t, g in res["grads"].items() if not all(g.values())}
    assert not bad, bad


def test_interpreter_validation(interp):
    assert interp["validation"] == {
        "unknown_mode": "ValueError", "none_with_s": "ValueError", "shared_self_without_w": "ValueError",
        "zero_diag_with_w": "ValueError", "float64": "TypeError", "block_not_pow2": "ValueError",
    }


def test_imports_without_triton(monkeypatch):
    """The module imports (and says so) where triton is missing."""
    monkeypatch.setitem(sys.modules, "triton", None)  # `import triton` now raises ImportError
    monkeypatch.setitem(sys.modules, "triton.language", None)
    spec = importlib.util.spec_from_file_location(
        "_triton_attention_without_triton", REPO / "fsnlab" / "models" / "triton_attention.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert not mod.triton_available()
    q = torch.zeros(1, 1, 4, 8)
    with pytest.raises(RuntimeError, match="triton"):
        mod.delay_attention_triton(q, q, q)


# ----------------------------------------------------------------------------- compiled, on CUDA

GPU_TOL = {"float32": {"out": 1e-4, "grad": 1e-4}, "bfloat16": {"out": 2e-2, "grad": 5e-2}}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") == "1", reason="compiled kernels: TRITON_INTERPRET is set")
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("T", [512, 2048])
@pytest.mark.parametrize("mode", MODES)
def test_cuda_matches_dense_float64(mode, T, dtype):
    from fsnlab.models.triton_attention import delay_attention_triton

    B, H, E, W = 4, 4, 96, 384
    inputs, dz0, dz1 = make_inputs(B, H, T, E, W, mode, getattr(torch, dtype), device="cuda",
                                   q_scale=E ** -0.5, seed=T)
    errs = compare(delay_attention_triton, inputs, dz0, dz1, mode)
    torch.cuda.synchronize()
    tol = GPU_TOL[dtype]
    bad = {k: v for k, v in errs.items() if not v <= tol["out" if k.startswith("z") else "grad"]}
    assert not bad, f"{dtype} T={T} {mode}: {bad} (all: {errs})"


if __name__ == "__main__":  # the interpreter worker (see the fixture `interp`)
    torch.set_num_threads(1)
    _worker(sys.argv[1])
