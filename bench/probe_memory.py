"""Peak memory of a long probe: 100k characters through fsn-1m on CPU, streamed to zarr.

    .venv/bin/python bench/probe_memory.py                     # random-init fsn-1m, 100k val bytes
    .venv/bin/python bench/probe_memory.py --checkpoint RUN    # a trained checkpoint instead

Windows of the model's context with stride = context (non-overlapping), every default probe output
(phases, order parameters for every harmonic and delay, forces, transitions, the delay identity on
the default number of queries), written batch by batch. The claim under test: streaming keeps the
peak resident set size (``ru_maxrss``, the whole process: Python, torch, model, one batch) under
2 GB however long the text is. One JSON line goes to ``bench/results/probe_memory.jsonl``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from fsnlab import __version__, build_model
from fsnlab.data import load_corpus
from fsnlab.train.environment import cpu_name, git_commit
from fsnlab.probe import DEFAULT_IDENTITY_POSITIONS, ProbeOptions, ProbeText, load_probe_model, write_probe

LIMIT_MB = 2048
RESULTS = Path(__file__).resolve().parent / "results" / "probe_memory.jsonl"


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / 2**20


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="fsn-1m", help="random-init preset when no --checkpoint (default: fsn-1m)")
    parser.add_argument("--checkpoint", help="probe this checkpoint instead of a random-init preset")
    parser.add_argument("--chars", type=int, default=100_000, help="bytes of embedded val text to probe (default: 100000)")
    parser.add_argument("--batch-size", type=int, default=ProbeOptions().batch_size, help="windows per batch")
    parser.add_argument("--identity-positions", type=int, default=DEFAULT_IDENTITY_POSITIONS)
    parser.add_argument("--format", choices=("zarr", "nc"), default="zarr")
    parser.add_argument("--out-dir", help="where to write the probe (default: a temporary directory, removed after)")
    parser.add_argument("--no-record", action="store_true", help="do not append to bench/results/probe_memory.jsonl")
    args = parser.parse_args()

    torch.manual_seed(0)
    if args.checkpoint:
        model, provenance = load_probe_model(args.checkpoint)
        source = f"checkpoint {args.checkpoint} (sha256 {provenance['checkpoint_sha256'][:12]})"
    else:
        model, provenance = build_model(args.preset).eval(), {}
        source = f"{args.preset}, random init (seed 0): no trained checkpoint of this size was available"
    context = model.config.context_length
    val = load_corpus("embedded").val
    text = ProbeText(bytes(val[: args.chars]), corpus="embedded", split="val", start=0)
    options = ProbeOptions(stride=context, batch_size=args.batch_size, identity_positions=args.identity_positions)
    rss_before = peak_rss_mb()

    out_root = Path(args.out_dir) if args.out_dir else Path(tempfile.mkdtemp(prefix="probe-bench-"))
    out = out_root / f"probe-memory.{args.format}"
    start = time.perf_counter()
    try:
        write_probe(model, text, out, options, overwrite=True, progress=True, provenance=provenance, history="bench/probe_memory.py")
        wall = time.perf_counter() - start
        size = dir_size(out)
    finally:
        if not args.out_dir:
            shutil.rmtree(out_root, ignore_errors=True)
    peak = peak_rss_mb()
    n_windows = len(range(0, args.chars - context + 1, context)) + (1 if args.chars % context else 0)
    record = {
        "bench": "probe_memory",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "fsnlab_version": __version__,
        "device": "cpu",
        "device_name": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "model": source,
        "context_length": context,
        "chars": args.chars,
        "windows": n_windows,
        "batch_size": args.batch_size,
        "identity_positions": args.identity_positions,
        "format": args.format,
        "output_bytes": size,
        "rss_before_probe_mb": round(rss_before, 1),
        "peak_rss_mb": round(peak, 1),
        "limit_mb": LIMIT_MB,
        "under_limit": peak < LIMIT_MB,
        "wall_s": round(wall, 1),
        "windows_per_s": round(n_windows / wall, 2),
    }
    print(json.dumps(record, indent=2))
    if not args.no_record:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        with open(RESULTS, "a") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
    return 0 if peak < LIMIT_MB else 1


if __name__ == "__main__":
    raise SystemExit(main())
