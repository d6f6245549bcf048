"""The fused Triton delay-attention kernel against the torch path, on CUDA: errors and timings (issue 14).

    python bench/gpu_kernel_check.py --out OUT/kernel.jsonl            # what bench/gpu_check.sh runs
    python bench/gpu_kernel_check.py --out - --quick                   # print only, the accuracy cases

``fsnlab.models.triton_attention.delay_attention_triton(q, k, v, s, w, mode) -> (z0, z1 | None)``
is compared, for every mode (``none``, ``shared_zero_diag``, ``shared_self``, ``separate_strict``) and
for float32 and bfloat16 inputs, against a float64 evaluation of the torch path
(``fsnlab.models.attention.delay_attention`` / ``causal_attention``, forced with
``FSNLAB_ATTENTION=torch``): the largest error of ``z0``, ``z1`` and of every input gradient (through
a fixed random linear function of the outputs), absolute and relative to the largest reference value.
Then forward and forward + backward are timed at the ``fsn-1m`` head shape (E = 96, W = 384:
4 heads of 48 phases, 4 harmonics times re/im) at T = 512 and 2048, Triton against the torch path,
with one SDPA call of the same head width (values as wide as the queries) for scale.

One JSON line per case (``"check": "kernel_accuracy"`` / ``"kernel_timing"``) plus an environment line.
Without triton, a CUDA device or the kernel module it writes a single ``"status": "skipped"`` line and
exits 0: the script never fails for want of hardware.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODES = ("none", "shared_zero_diag", "shared_self", "separate_strict")
# relative error (to the largest reference value) a case must stay under to pass
TOLERANCE = {"float32": 1e-4, "bfloat16": 3e-2}


class Writer:
    def __init__(self, out: str) -> None:
        self.out = out
        if out != "-":
            Path(out).parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, row: dict[str, Any]) -> None:
        line = json.dumps(row, default=str)
        print(line, flush=True)
        if self.out != "-":
            with open(self.out, "a") as f:
                f.write(line + "\n")


def _stamp() -> dict[str, Any]:
    from fsnlab.train.environment import git_commit

    return {"commit": git_commit(), "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def skip_reason() -> str | None:
    """Why the check cannot run here, or None."""
    try:
        import triton  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - ImportError, or a broken install
        return f"triton is not installed ({type(exc).__name__}: {exc})"
    import torch

    if not torch.cuda.is_available():
        return "no CUDA device"
    try:
        from fsnlab.models.triton_attention import delay_attention_triton  # noqa: F401
    except Exception as exc:  # noqa: BLE001
        return f"fsnlab.models.triton_attention.delay_attention_triton is not importable ({type(exc).__name__}: {exc})"
    return None


@contextlib.contextmanager
def torch_path():
    """Force ``fsnlab.models.attention`` onto its torch path (it reads ``FSNLAB_ATTENTION`` per call)."""
    old = os.environ.get("FSNLAB_ATTENTION")
    os.environ["FSNLAB_ATTENTION"] = "torch"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("FSNLAB_ATTENTION", None)
        else:
            os.environ["FSNLAB_ATTENTION"] = old


def torch_attention(q, k, v, s, w, mode: str):
    """``(z0, z1 | None)`` from the torch path, the same semantics as the Triton kernel."""
    from fsnlab.models.attention import causal_attention, delay_attention

    with torch_path():
        if mode == "none":
            return causal_attention(q, k, v), None
        return delay_attention(q, k, v, s, w if mode == "shared_self" else None, mode, separate=True)


def triton_attention(q, k, v, s, w, mode: str):
    from fsnlab.models.triton_attention import delay_attention_triton

    return delay_attention_triton(q, k, v, s if mode != "none" else None, w if mode == "shared_self" else None, mode)


def make_inputs(B: int, H: int, T: int, E: int, W: int, device, seed: int = 0) -> dict[str, Any]:
    """FSN-like float64 inputs: ``q = beta [cos; sin]``, ``k = [cos; sin]`` of random phases (beta 1/sqrt(E/2)),
    values are cos/sin of random phases times O(1) coefficients."""
    import torch

    g = torch.Generator(device="cpu").manual_seed(seed)

    def feats(*shape):
        th = torch.rand(*shape, generator=g, dtype=torch.float64) * 2 * torch.pi
        return torch.stack([th.cos(), th.sin()], -1).flatten(-2)

    half = E // 2
    q = feats(B, H, T, half) * (2.0 / half) ** 0.5 * 3.0  # sharper than init, so the softmax is not flat
    k = feats(B, H, T, half)
    v, s, w = (feats(B, H, T, W // 2) * torch.rand(W, generator=g, dtype=torch.float64) for _ in range(3))
    return {name: x.to(device) for name, x in dict(q=q, k=k, v=v, s=s, w=w).items()}


def _max_err(a, b) -> tuple[float, float]:
    if a is None and b is None:
        return 0.0, 0.0
    if a is None or b is None:
        return float("inf"), float("inf")
    err = (a.double() - b.double()).abs().max().item()
    scale = b.double().abs().max().item()
    return err, err / scale if scale else err


def accuracy_case(mode: str, dtype_name: str, shape: tuple[int, int, int, int, int], device) -> dict[str, Any]:
    """Errors of the kernel in ``dtype_name`` against the torch path in float64 on the same (rounded) inputs."""
    import torch

    dtype = getattr(torch, dtype_name)
    B, H, T, E, W = shape
    low = {n: x.to(dtype) for n, x in make_inputs(*shape, device=device).items()}
    names = ["q", "k", "v"] + (["s"] if mode != "none" else []) + (["w"] if mode == "shared_self" else [])
    g = torch.Generator(device="cpu").manual_seed(1)
    dz0 = torch.randn(B, H, T, W, generator=g, dtype=torch.float64).to(device)
    dz1 = torch.randn(B, H, T, W, generator=g, dtype=torch.float64).to(device)

    def run(fn: Callable, inputs: dict[str, Any]) -> tuple[Any, Any, dict[str, Any]]:
        leaves = {n: inputs[n].detach().clone().requires_grad_(True) for n in names}
        z0, z1 = fn(leaves["q"], leaves["k"], leaves["v"], leaves.get("s"), leaves.get("w"), mode)
        loss = (z0.double() * dz0).sum() + ((z1.double() * dz1).sum() if z1 is not None else 0.0)
        loss.backward()
        return z0.detach(), None if z1 is None else z1.detach(), {n: x.grad for n, x in leaves.items()}

    ref = run(torch_attention, {n: x.double() for n, x in low.items()})  # the very values the kernel sees
    got = run(triton_attention, low)
    row: dict[str, Any] = {"check": "kernel_accuracy", "mode": mode, "dtype": dtype_name,
                           **dict(zip(("B", "H", "T", "E", "W"), shape))}
    errors = {"z0": _max_err(got[0], ref[0]), "z1": _max_err(got[1], ref[1])}
    errors.update({f"grad_{n}": _max_err(got[2][n], ref[2][n]) for n in names})
    row["max_abs_err"] = {k: v[0] for k, v in errors.items()}
    row["max_rel_err"] = {k: v[1] for k, v in errors.items()}
    row["worst_rel_err"] = max(v[1] for v in errors.values())
    row["tolerance"] = TOLERANCE[dtype_name]
    row["pass"] = bool(row["worst_rel_err"] <= TOLERANCE[dtype_name])
    return row


def _time(fn: Callable[[], Any], repeat: int) -> float:
    import torch

    fn()
    fn()  # compile, autotune, allocator
    torch.cuda.synchronize()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


def timing_case(mode: str, T: int, tokens: int, dtype_name: str, repeat: int, device) -> dict[str, Any]:
    import torch
    import torch.nn.functional as F

    dtype = getattr(torch, dtype_name)
    B, H, E, W = max(1, tokens // T), 4, 96, 384
    x = {n: t.to(dtype) for n, t in make_inputs(B, H, T, E, W, device=device).items()}
    leaves = {n: t.detach().requires_grad_(True) for n, t in x.items()}
    row: dict[str, Any] = {"check": "kernel_timing", "mode": mode, "dtype": dtype_name, "B": B, "H": H, "T": T, "E": E, "W": W}

    def call(fn, grad: bool):
        def go():
            ins = leaves if grad else x
            z0, z1 = fn(ins["q"], ins["k"], ins["v"], ins["s"], ins["w"], mode)
            if grad:
                out = z0.float().sum() + (z1.float().sum() if z1 is not None else 0.0)
                out.backward()
        return go

    for name, fn in (("triton", triton_attention), ("torch", torch_attention)):
        for grad in (False, True):
            key = f"{name}_{'fwd_bwd' if grad else 'fwd'}_ms"
            try:
                with torch.no_grad() if not grad else contextlib.nullcontext():
                    row[key] = _time(call(fn, grad), repeat)
            except torch.OutOfMemoryError:
                row[key] = None
                row.setdefault("errors", []).append(f"{key}: out of memory")
                torch.cuda.empty_cache()
    qv = {n: torch.randn(B, H, T, E, device=device, dtype=dtype, requires_grad=True) for n in "qkv"}

    def sdpa():
        F.scaled_dot_product_attention(qv["q"], qv["k"], qv["v"], is_causal=True).float().sum().backward()

    row["sdpa_same_head_width_fwd_bwd_ms"] = _time(sdpa, repeat)
    if row.get("triton_fwd_bwd_ms") and row.get("torch_fwd_bwd_ms"):
        row["speedup_fwd_bwd"] = row["torch_fwd_bwd_ms"] / row["triton_fwd_bwd_ms"]
    if row.get("triton_fwd_ms") and row.get("torch_fwd_ms"):
        row["speedup_fwd"] = row["torch_fwd_ms"] / row["triton_fwd_ms"]
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="-", help="jsonl file to append to, or - for stdout only (default)")
    ap.add_argument("--quick", action="store_true", help="accuracy cases only, no timings")
    ap.add_argument("--contexts", type=int, nargs="+", default=[512, 2048], help="timed context lengths")
    ap.add_argument("--tokens", type=int, default=65536, help="tokens (B x T) per timed call (default: 65536)")
    ap.add_argument("--repeat", type=int, default=5, help="timed calls per case (median reported)")
    args = ap.parse_args(argv)
    write = Writer(args.out)

    reason = skip_reason()
    if reason is not None:
        write({"check": "kernel", "status": "skipped", "reason": reason, **_stamp()})
        return 0

    import torch

    import fsnlab.models.attention as attention
    import triton

    device = torch.device("cuda")
    env = {"check": "kernel", "status": "running", "device": torch.cuda.get_device_name(device), "torch": torch.__version__,
           "cuda": torch.version.cuda, "triton": getattr(triton, "__version__", None), **_stamp()}
    if hasattr(attention, "attention_backend"):
        env["model_attention_backend"] = attention.attention_backend(device)
    write(env)
    failures = 0
    # T = 300: several key/query blocks and a ragged last one; W = 384: several value-width tiles
    for shape in ((2, 2, 300, 96, 384),):
        for mode in MODES:
            for dtype_name in ("float32", "bfloat16"):
                try:
                    row = accuracy_case(mode, dtype_name, shape, device)
                except Exception as exc:  # noqa: BLE001 - record and go on
                    row = {"check": "kernel_accuracy", "mode": mode, "dtype": dtype_name, "shape": shape,
                           "pass": False, "error": f"{type(exc).__name__}: {exc}"[:500]}
                failures += not row["pass"]
                write(row)
    if not args.quick:
        for T in args.contexts:
            for mode in ("shared_zero_diag", "none"):  # the fsn and ka presets
                try:
                    write(timing_case(mode, T, args.tokens, "bfloat16", args.repeat, device))
                except Exception as exc:  # noqa: BLE001
                    write({"check": "kernel_timing", "mode": mode, "T": T, "error": f"{type(exc).__name__}: {exc}"[:500]})
                torch.cuda.empty_cache()
    write({"check": "kernel", "status": "done", "accuracy_failures": failures, **_stamp()})
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
