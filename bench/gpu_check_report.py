"""Small helpers of ``bench/gpu_check.sh``: environment, junit -> jsonl, training steps and run summaries.

    python bench/gpu_check_report.py env OUT.jsonl
    python bench/gpu_check_report.py junit PYTEST.xml OUT.jsonl
    python bench/gpu_check_report.py steps THROUGHPUT.jsonl PRESET SECONDS TOKENS_PER_STEP DEFAULT
    python bench/gpu_check_report.py train RUN_DIR OUT.jsonl --preset P --planned-steps N --rc RC --wall S

Standard library only, except ``env`` (which reports torch, CUDA and triton when they import).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _append(path: str | Path, row: dict[str, Any]) -> None:
    line = json.dumps(row, default=str)
    print(line)
    with open(path, "a") as f:
        f.write(line + "\n")


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit + ("+dirty" if dirty.stdout.strip() else "") if commit else None


def cmd_env(args: argparse.Namespace) -> int:
    row: dict[str, Any] = {"stage": "env", "date": _now(), "commit": _commit(), "python": sys.version.split()[0],
                           "platform": platform.platform()}
    try:
        import torch

        row.update(torch=torch.__version__, cuda=torch.version.cuda, cuda_available=torch.cuda.is_available())
        if torch.cuda.is_available():
            row.update(device=torch.cuda.get_device_name(0), device_count=torch.cuda.device_count(),
                       memory_gib=round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1),
                       bf16=torch.cuda.is_bf16_supported())
    except Exception as exc:  # noqa: BLE001
        row["torch_error"] = f"{type(exc).__name__}: {exc}"
    try:
        import triton

        row["triton"] = triton.__version__
    except Exception as exc:  # noqa: BLE001
        row["triton"] = None
        row["triton_error"] = f"{type(exc).__name__}: {exc}"[:200]
    _append(args.out, row)
    return 0


def cmd_junit(args: argparse.Namespace) -> int:
    """One line per test case (outcome passed/failed/error/skipped, seconds, message) and a totals line."""
    path = Path(args.xml)
    if not path.exists():
        _append(args.out, {"stage": "pytest_gpu", "status": "no junit xml", "xml": str(path)})
        return 1
    root = ET.parse(path).getroot()
    totals = {"passed": 0, "failed": 0, "error": 0, "skipped": 0}
    for case in root.iter("testcase"):
        outcome, message = "passed", None
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                outcome = "failed" if tag == "failure" else tag
                message = (node.get("message") or node.text or "").strip()[:500]
                break
        totals[outcome] += 1
        _append(args.out, {"stage": "pytest_gpu", "test": f"{case.get('classname')}::{case.get('name')}",
                           "outcome": outcome, "seconds": float(case.get("time") or 0), "message": message})
    _append(args.out, {"stage": "pytest_gpu", "summary": totals, "date": _now()})
    return 0


def planned_steps(throughput: Path, preset: str, seconds: float, tokens_per_step: int, default: int,
                  safety: float = 0.75) -> tuple[int, str]:
    """Steps that fill ``seconds`` at the tokens/s ``throughput`` recorded for ``preset`` (eager rows at
    T = 512 preferred), times a safety factor for what the trainer adds; ``default`` without a row."""
    best = None
    if throughput.exists():
        for line in throughput.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if row.get("kind") != "train_step" or row.get("preset") != preset or "tokens_per_s" not in row:
                continue
            score = (row.get("context_length") == 512, not row.get("compile", False), row.get("date", ""))
            if best is None or score > best[0]:
                best = (score, row)
    if best is None:
        return default, f"no throughput row for {preset}: default {default}"
    tps = best[1]["tokens_per_s"]
    steps = max(10, int(seconds * tps * safety / tokens_per_step))
    return steps, (f"{preset}: {tps:,.0f} tokens/s measured (T={best[1]['context_length']}, compile="
                   f"{best[1].get('compile')}) x {seconds:.0f} s x {safety} / {tokens_per_step} tokens per step")


def cmd_steps(args: argparse.Namespace) -> int:
    steps, why = planned_steps(Path(args.throughput), args.preset, args.seconds, args.tokens_per_step, args.default)
    print(why, file=sys.stderr)
    print(steps)
    return 0


def summarize_run(run_dir: Path) -> dict[str, Any]:
    """Steps, tokens, tokens/s (median over the logged windows after the first) and val bpc of a run."""
    metrics = run_dir / "metrics.jsonl"
    out: dict[str, Any] = {"run_dir": str(run_dir)}
    if not metrics.exists():
        out["status"] = "no metrics.jsonl"
        return out
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    train = [r for r in rows if r.get("event") == "train"]
    evals = [r for r in rows if r.get("event") == "eval"]
    rates = [r["tokens_per_s"] for r in train if "tokens_per_s" in r]
    steady = rates[1:] or rates  # the first window holds the warm-up (cuDNN/Triton autotuning, allocator)
    out.update(
        steps=max((r["step"] for r in rows), default=0),
        tokens=max((r.get("tokens", 0) for r in rows), default=0),
        train_seconds=max((r.get("time", 0.0) for r in rows), default=0.0),
        tokens_per_s=statistics.median(steady) if steady else None,
        tokens_per_s_windows=len(steady),
        last_train_bpc=train[-1]["bpc"] if train else None,
        val_bpc=evals[-1]["val_bpc"] if evals else None,
        val_step=evals[-1]["step"] if evals else None,
        best_val_bpc=min((r["val_bpc"] for r in evals), default=None),
        evals=[(r["step"], r["val_bpc"]) for r in evals],
    )
    config = run_dir / "config.json"
    if config.exists():
        cfg = json.loads(config.read_text())
        out.update(total_steps=cfg.get("run", {}).get("total_steps"), tokens_per_step=cfg.get("run", {}).get("tokens_per_step"),
                   corpus_md5=cfg.get("data", {}).get("description", {}).get("md5"))
    return out


def cmd_train(args: argparse.Namespace) -> int:
    row = {"stage": "train", "preset": args.preset, "planned_steps": args.planned_steps, "rc": args.rc,
           "wall_s": args.wall, "date": _now(), **summarize_run(Path(args.run_dir))}
    row["finished"] = bool(row.get("total_steps") and row.get("steps") == row.get("total_steps"))
    _append(args.out, row)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("env")
    p.add_argument("out")
    p.set_defaults(fn=cmd_env)
    p = sub.add_parser("junit")
    p.add_argument("xml")
    p.add_argument("out")
    p.set_defaults(fn=cmd_junit)
    p = sub.add_parser("steps")
    p.add_argument("throughput")
    p.add_argument("preset")
    p.add_argument("seconds", type=float)
    p.add_argument("tokens_per_step", type=int)
    p.add_argument("default", type=int)
    p.set_defaults(fn=cmd_steps)
    p = sub.add_parser("train")
    p.add_argument("run_dir")
    p.add_argument("out")
    p.add_argument("--preset", required=True)
    p.add_argument("--planned-steps", type=int)
    p.add_argument("--rc", type=int)
    p.add_argument("--wall", type=float)
    p.set_defaults(fn=cmd_train)
    args = ap.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    raise SystemExit(main())
