"""Training-step throughput and peak memory of every family, side by side (issue 8).

    python bench/throughput.py                       # CPU (and CUDA when present), the default grid
    python bench/throughput.py --rungs 1m --contexts 512 --device cpu --steps 3

For each preset and context length it times full training steps (forward + backward + AdamW) at a
fixed number of tokens per step, and reports tokens/s, the ratio to the transformer of the same rung
measured in the same run, and peak memory (CUDA: ``max_memory_allocated``; CPU: growth of the peak
resident set, from a fresh process per configuration). On CUDA it runs with bf16 autocast, with and
without ``torch.compile``. A layer-level micro-benchmark compares one FSN attention step with the
``scaled_dot_product_attention`` call a transformer of the same head width makes.

Results are appended to ``bench/results/throughput.jsonl`` with device, torch version, commit and date.
This is a benchmark, not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import datetime
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fsnlab.models import FSNConfig, build_model, parameter_breakdown  # noqa: E402
from fsnlab.models.fsn import FSNAttention  # noqa: E402
from fsnlab.train.environment import cpu_name, git_commit  # noqa: E402

FAMILIES = ("fsn", "fsn-mf", "ka", "transformer")


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_name()} ({torch.get_num_threads()} threads)"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_training_step(preset: str, T: int, tokens_per_step: int, device: torch.device, steps: int, compile_: bool) -> dict:
    """Median seconds per step, tokens/s and peak memory for one preset at context ``T``."""
    torch.manual_seed(0)
    model = build_model(preset, context_length=T).to(device)
    batch = max(1, tokens_per_step // T)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=device.type == "cuda")
    step_model = torch.compile(model) if compile_ else model
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (batch, T + 1), generator=gen).to(device)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for i in range(steps + 1):  # the first step warms up (and compiles)
        _sync(device)
        t = time.perf_counter()
        with amp:
            logits = step_model(x[:, :-1])
        loss = F.cross_entropy(logits.float().flatten(0, 1), x[:, 1:].flatten())
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        _sync(device)
        if i:
            times.append(time.perf_counter() - t)
    sec = sorted(times)[len(times) // 2]
    if device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    return {
        "preset": preset,
        "context_length": T,
        "batch": batch,
        "tokens_per_step": batch * T,
        "params": parameter_breakdown(model)["total"],
        "compile": compile_,
        "sec_per_step": sec,
        "tokens_per_s": batch * T / sec,
        "peak_mem_mb": peak_mb,
        "loss": float(loss),
    }


def time_layer(T: int, device: torch.device, steps: int) -> dict:
    """One FSN attention step (fsn-1m width, full kernel) vs one SDPA call of the same head width."""
    cfg = FSNConfig(d_phase=192, n_head=4, kernel="full").validate()
    layer = FSNAttention(cfg).to(device)
    B = max(1, 8192 // T)
    theta = torch.randn(B, T, cfg.d_phase, device=device, requires_grad=True)
    q = torch.randn(B, cfg.n_head, T, 2 * cfg.head_dim, device=device, requires_grad=True)
    k, v = torch.randn_like(q), torch.randn_like(q)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32

    def fsn() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=device.type == "cuda"):
            layer(theta).sum().backward()

    def sdpa() -> None:
        F.scaled_dot_product_attention(q.to(dtype), k.to(dtype), v.to(dtype), is_causal=True).float().sum().backward()

    out = {"context_length": T, "batch": B, "head_width": 2 * cfg.head_dim}
    for name, fn in (("fsn_layer", fsn), ("sdpa", sdpa)):
        fn()
        times = []
        for _ in range(steps):
            _sync(device)
            t = time.perf_counter()
            fn()
            _sync(device)
            times.append(time.perf_counter() - t)
        out[f"{name}_ms"] = 1e3 * sorted(times)[len(times) // 2]
    out["ratio"] = out["fsn_layer_ms"] / out["sdpa_ms"]
    return out


def run_one_in_subprocess(args: list[str]) -> dict:
    """CPU peak memory needs a fresh process per configuration."""
    cmd = [sys.executable, __file__, "--one", *args]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        return {"error": res.stderr.strip().splitlines()[-1] if res.stderr.strip() else f"exit {res.returncode}"}
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rungs", default="1m,4m", help="comma-separated rungs (default: 1m,4m)")
    ap.add_argument("--contexts", default="512,2048,8192", help="comma-separated context lengths")
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="auto: CPU, and CUDA when present")
    ap.add_argument("--tokens-per-step", type=int, default=None, help="default: 8192 on CPU, 65536 on CUDA")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per configuration (median reported)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "throughput.jsonl"))
    ap.add_argument("--one", nargs=5, metavar=("PRESET", "T", "TOKENS", "STEPS", "COMPILE"), help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.one:
        preset, T, tokens, steps, comp = args.one
        print(json.dumps(time_training_step(preset, int(T), int(tokens), torch.device("cpu"), int(steps), comp == "1")))
        return 0

    devices = []
    if args.device in ("auto", "cpu"):
        devices.append(torch.device("cpu"))
    if args.device in ("auto", "cuda") and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    meta = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "commit": git_commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    rows = []
    for device in devices:
        tokens = args.tokens_per_step or (8192 if device.type == "cpu" else 65536)
        compiles = (False, True) if device.type == "cuda" else (False,)
        for rung in args.rungs.split(","):
            for T in map(int, args.contexts.split(",")):
                for comp in compiles:
                    results = {}
                    for family in FAMILIES:
                        preset = f"{family}-{rung}"
                        if device.type == "cpu":
                            r = run_one_in_subprocess([preset, str(T), str(tokens), str(args.steps), str(int(comp))])
                        else:
                            try:
                                r = time_training_step(preset, T, tokens, device, args.steps, comp)
                            except torch.OutOfMemoryError:
                                r = {"error": "out of memory"}
                                torch.cuda.empty_cache()
                        results[family] = {**r, "preset": preset, "context_length": T, "compile": comp}
                    ref = results["transformer"].get("tokens_per_s")
                    for family, r in results.items():
                        if ref and "tokens_per_s" in r:
                            r["ratio_to_transformer"] = r["tokens_per_s"] / ref
                        row = {"kind": "train_step", "device": device_name(device), **meta, **r}
                        rows.append(row)
                        print(_fmt(row), flush=True)
        for T in map(int, args.contexts.split(",")):
            row = {"kind": "layer", "device": device_name(device), **meta, **time_layer(T, device, args.steps)}
            rows.append(row)
            print(f"layer T={T:<5} fsn {row['fsn_layer_ms']:9.2f} ms  sdpa {row['sdpa_ms']:9.2f} ms  ratio {row['ratio']:6.1f}x", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    print(f"appended {len(rows)} rows to {args.out}")
    return 0


def _fmt(r: dict) -> str:
    if "error" in r:
        return f"{r['preset']:<16} T={r['context_length']:<5} compile={int(r['compile'])}  ERROR {r['error']}"
    ratio = r.get("ratio_to_transformer")
    return (
        f"{r['preset']:<16} T={r['context_length']:<5} compile={int(r['compile'])}  {r['tokens_per_s']:>10,.0f} tok/s  "
        f"{'' if ratio is None else f'{ratio:5.2f}x':>6}  peak {r['peak_mem_mb']:8.0f} MB  ({r['device']})"
    )


if __name__ == "__main__":
    raise SystemExit(main())
