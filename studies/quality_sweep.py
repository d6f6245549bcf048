"""Quality work (issue 9): why the FSN trails the matched transformer, and which switch closes the gap.

Every idea is a config switch (a model override or a training option, :mod:`fsnlab.study.variants`);
every number comes from a run this script made, with several seeds. Runs are independent and
resumable (the study run pool, :mod:`fsnlab.study.runner`): a finished run is read back, not retrained.

    python studies/quality_sweep.py lr        --protocol tiny   # LR sweep, both arms
    python studies/quality_sweep.py variants  --protocol tiny   # FSN switches at the FSN's best LR
    python studies/quality_sweep.py confirm   --protocol small  # the best switches vs both baselines
    python studies/quality_sweep.py table     --protocol tiny   # print the results table again
    python studies/quality_sweep.py curves    --protocol tiny-long  # learning curves (val bpc per eval)
    python -m fsnlab.study.docs                                 # docs/quality.md's tables from the records

Protocols (:mod:`fsnlab.study.quality`; CPU, embedded KJV corpus, validation bpc on the first
``eval_bytes`` of the val split): ``tiny`` (~45k parameters, T = 64, batch 32, 400 steps), ``small``
(~0.2M, T = 128, batch 16, 500 steps), ``tiny-long`` / ``small-long`` (3,000 / 2,000 steps, evaluated
every 500 / 250 steps for learning curves) and ``smoke`` (a few steps, for the tests).

Variants that change the parameter count (a tied readout, more layers, a vector embedding) get their
SwiGLU width re-solved (:func:`fsnlab.models.match_budget`) so every arm stays on the rung's budget.

Each protocol has its LR grid and seeds; ``--lrs`` and ``--arms`` restrict a sweep to part of it.

Results: ``studies/results/quality-<protocol>.jsonl`` (one line per run, committed), the sweep's
``study.nc`` and ``report.html`` (``--out``), and the table printed at the end.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

from fsnlab.errors import FsnlabError, one_line
from fsnlab.study.kinds import quality_sweep as tables
from fsnlab.study.quality import (
    PROTOCOLS,
    SweepProtocol,
    default_runs_dir,
    run_sweep,
    sweep_jobs,
)
from fsnlab.study.records import RecordStore, records_dataset
from fsnlab.study.stats import describe
from fsnlab.study.variants import (
    PINNED_MODEL,
    VARIANTS,
    Variant,
    budget_matched,
    unknown_variants,
)
from fsnlab.study.variants import resolve as _resolve

ROOT = Path(__file__).resolve().parent  # studies/: the records are in ROOT/results, run directories relative to ROOT.parent
Protocol = SweepProtocol

__all__ = [
    "PINNED_MODEL",
    "PROTOCOLS",
    "VARIANTS",
    "Protocol",
    "Variant",
    "budget_matched",
    "curves",
    "load",
    "main",
    "record",
    "resolve",
    "table",
]


def resolve(variant: Variant, protocol: SweepProtocol) -> Variant:
    """Fill per-rung values (the doubled temperature needs the head width)."""
    return _resolve(variant, protocol.rung)


def store() -> RecordStore:
    return RecordStore(ROOT / "results")


def record(protocol: str, rec: dict[str, Any]) -> None:
    store().record(protocol, rec)


def load(protocol: str) -> list[dict[str, Any]]:
    return store().load(protocol)


def table(protocol: str, markdown: bool = False, only: list[str] | None = None) -> str:
    ds = records_dataset(load(protocol), ROOT.parent, protocol)
    return tables.final_markdown(ds, only) if markdown else tables.final_text(ds, protocol, only)


def curves(protocol: str, markdown: bool = False, only: list[str] | None = None) -> str:
    """Learning curves: mean val bpc over seeds at every evaluation, per (variant, lr)."""
    ds = records_dataset(load(protocol), ROOT.parent, protocol)
    return tables.curves_markdown(ds, only) if markdown else tables.curves_text(ds, only)


def _best_lr(protocol: str, variant: str) -> float:
    by_lr: dict[float, list[float]] = {}
    for r in load(protocol):
        if r["variant"] == variant:
            by_lr.setdefault(r["lr"], []).append(r["val_bpc"])
    if not by_lr:
        sys.exit(f"no `{variant}` runs for protocol {protocol} yet: run the `lr` sweep first, or pass --lr")
    return min(by_lr, key=lambda lr: describe(by_lr[lr])["mean"])


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="studies/quality_sweep.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=("lr", "variants", "confirm", "table", "curves"))
    ap.add_argument("--protocol", choices=tuple(PROTOCOLS), default="tiny")
    ap.add_argument("--variants", help="comma-separated variant names (default: all for `variants`); "
                    "`table`/`curves`: show only these (`table` keeps the transformer's rows as the reference)")
    ap.add_argument("--lr", type=float, help="FSN learning rate for `variants`/`confirm` (default: best FSN LR so far)")
    ap.add_argument("--lrs", help="comma-separated learning rates for `lr` (default: the protocol's grid)")
    ap.add_argument("--arms", default="transformer,fsn", help="variants swept by `lr` (default: transformer,fsn)")
    ap.add_argument("--seeds", help="comma-separated seeds (default: the protocol's)")
    ap.add_argument("--markdown", action="store_true", help="`table`/`curves`: print a Markdown table")
    ap.add_argument("--jobs", type=int, default=1, help="runs at a time (default 1: in this process)")
    ap.add_argument("--threads", type=int, help="torch CPU threads per run (default: cores // jobs for jobs > 1)")
    ap.add_argument("--runs", metavar="DIR", help="run pool (default runs/studies/quality/runs)")
    ap.add_argument("--out", metavar="DIR", help="where study.nc and report.html go (default runs/studies/quality/PROTOCOL)")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    asked = (args.variants.split(",") if args.variants else []) + (args.arms.split(",") if args.what == "lr" else [])
    unknown = unknown_variants(asked)
    if unknown:
        sys.exit(f"unknown variant(s) {', '.join(unknown)}; choose from: {', '.join(VARIANTS)}")
    only = args.variants.split(",") if args.variants else None
    if args.what == "curves":
        print(curves(args.protocol, args.markdown, only))
        return 0
    if args.what == "table":
        print(table(args.protocol, args.markdown, only))
        return 0
    lrs = [float(x) for x in args.lrs.split(",")] if args.lrs else None
    seeds = [int(x) for x in args.seeds.split(",")] if args.seeds else None
    jobs = sweep_jobs(args.what, args.protocol, variants=only, arms=args.arms.split(","), lr=args.lr, lrs=lrs,
                      seeds=seeds, best_lr=lambda v: _best_lr(args.protocol, v))
    runs_dir = Path(args.runs) if args.runs else default_runs_dir(ROOT.parent)
    out = Path(args.out) if args.out else ROOT.parent / "runs" / "studies" / "quality" / args.protocol
    try:
        manifest, _, ds = run_sweep(args.protocol, jobs, store(), ROOT.parent, runs_dir, parallel=args.jobs,
                                    threads=args.threads)
        from fsnlab.study import write_dataset, write_report

        write_dataset(ds, out)
        write_report(ds, out / "report.html")
    except FsnlabError as exc:
        print(f"quality_sweep: error: {one_line(exc)}", file=sys.stderr)
        return 2
    for run, final in zip(manifest, ds["final_val_bpc"].values.tolist()):
        print(f"{run.tags['variant']:<22} lr {run.tags['lr']:<7g} seed {run.tags['seed']}: val bpc {final:.4f}", flush=True)
    print(table(args.protocol))
    return 0 if (ds["status"].values == "done").all() else 3


if __name__ == "__main__":
    raise SystemExit(main())
