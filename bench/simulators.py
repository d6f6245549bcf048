"""Oscillator-simulator throughput: oscillator-steps per second, numba vs numpy vs torch.

Mean-field Kuramoto(-Daido) populations (O(N H) per right-hand side), RK4, float64, for N = 1e3 and
1e5 oscillators and H = 1 and 4 harmonics. The first call of each configuration (numba JIT, torch
warm-up) is not timed. Prints a table and appends one JSON line (device, versions, commit, date,
rows) to ``bench/results/simulators.jsonl``.

    .venv/bin/python bench/simulators.py                  # CPU
    .venv/bin/python bench/simulators.py --device cuda    # adds torch rows on the GPU
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from fsnlab.train.environment import cpu_name, git_commit
from fsnlab.dynamics import OscillatorSystem, natural_frequencies, simulate, simulate_torch

RESULTS = Path(__file__).resolve().parent / "results" / "simulators.jsonl"


def time_run(fn, min_seconds: float) -> tuple[float, int]:
    """Seconds per call of ``fn`` (repeated until ``min_seconds`` have passed) and the repeat count."""
    fn()  # warm-up: JIT compilation, allocator, thread pools
    reps, start = 0, time.perf_counter()
    while True:
        fn()
        reps += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return elapsed / reps, reps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 100_000])
    parser.add_argument("--harmonics", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--osc-steps", type=float, default=2e7, help="oscillator-steps per timed call (default 2e7)")
    parser.add_argument("--min-seconds", type=float, default=1.0)
    parser.add_argument("--device", default=None, help="also time torch on this device (e.g. cuda)")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()

    default_threads = torch.get_num_threads()
    rows = []
    for N in args.sizes:
        omega = natural_frequencies(N, "lorentzian", 0.5)
        theta0 = np.random.default_rng(0).uniform(-np.pi, np.pi, N)
        for H in args.harmonics:
            system = OscillatorSystem(omega, np.r_[1.0, np.full(H - 1, 0.1)], K=1.5)
            steps = max(int(args.osc_steps / N), 10)
            slow = max(steps // 10, 5)  # numpy and torch-cpu take 10x fewer steps per timed call
            runs = {
                "numba": (steps, lambda: simulate(system, theta0, 0.01, steps, backend="numba", record_every=steps)),
                "numpy": (slow, lambda: simulate(system, theta0, 0.01, slow, backend="numpy", record_every=slow)),
                f"torch-cpu ({default_threads} threads)": (slow, lambda: simulate_torch(system, theta0[None], 0.01, slow, record_every=slow)),
                "torch-cpu (1 thread)": (slow, lambda: _one_thread(lambda: simulate_torch(system, theta0[None], 0.01, slow, record_every=slow))),
            }
            if args.device:
                runs[f"torch-{args.device}"] = (steps, lambda: simulate_torch(system, theta0[None], 0.01, steps, record_every=steps, device=args.device))
            for backend, (n_steps, fn) in runs.items():
                seconds, reps = time_run(fn, args.min_seconds)
                rows.append({"backend": backend, "N": N, "harmonics": H, "method": "rk4", "dtype": "float64",
                             "steps": n_steps, "seconds_per_call": seconds, "repeats": reps,
                             "osc_steps_per_s": N * n_steps / seconds})
    torch.set_num_threads(default_threads)

    print(f"mean-field RK4, float64 | {cpu_name()} | torch {torch.__version__} | {default_threads} torch threads")
    print(f"{'backend':<26} {'N':>8} {'H':>2} {'osc-steps/s':>13} {'vs numba':>9}")
    for r in rows:
        ref = next(x for x in rows if x["backend"] == "numba" and x["N"] == r["N"] and x["harmonics"] == r["harmonics"])
        print(f"{r['backend']:<26} {r['N']:>8,} {r['harmonics']:>2} {r['osc_steps_per_s']:>13.3e} {r['osc_steps_per_s'] / ref['osc_steps_per_s']:>8.2f}x")

    if not args.no_save:
        import numba

        record = {
            "bench": "simulators", "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "commit": git_commit() or "unknown", "device": cpu_name(), "cpu_count": os.cpu_count(),
            "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
            "torch": torch.__version__, "numba": numba.__version__, "numpy": np.__version__,
            "torch_threads": default_threads, "cuda_device": torch.cuda.get_device_name() if args.device and "cuda" in args.device else None,
            "rows": rows,
        }
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        with open(RESULTS, "a") as f:
            f.write(json.dumps(record) + "\n")
        print(f"appended to {RESULTS}")


def _one_thread(fn):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn()
    finally:
        torch.set_num_threads(n)


if __name__ == "__main__":
    main()
