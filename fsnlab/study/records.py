"""The quality sweep's committed record: one JSON line per finished run in
``studies/results/quality-<protocol>.jsonl``, read back as a study dataset.

A record holds the run's variant, protocol, learning rate, seed, final validation bpc, its model
overrides and training options and its run directory (relative to the repository root). The
records are the sweep's results under version control; the run directories (``runs/``, not
committed) hold the learning curves, and :func:`records_dataset` reads them where they exist.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import xarray as xr

from fsnlab.study.quality import KIND
from fsnlab.train import read_metrics

RECORD_KEYS = ("variant", "protocol", "lr", "seed", "val_bpc", "model", "train", "run_dir")


class RecordStore:
    """The records of every protocol, one ``quality-<protocol>.jsonl`` each, under ``results_dir``."""

    def __init__(self, results_dir: str | os.PathLike[str]) -> None:
        self.results_dir = Path(results_dir)

    def path(self, protocol: str) -> Path:
        return self.results_dir / f"quality-{protocol}.jsonl"

    def load(self, protocol: str) -> list[dict[str, Any]]:
        """Every record of ``protocol``, in file order (none if it has no file yet)."""
        path = self.path(protocol)
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def record(self, protocol: str, rec: dict[str, Any]) -> bool:
        """Append ``rec`` unless a record of the same (variant, lr, seed) is there; True if written."""
        key = (rec["variant"], rec["lr"], rec["seed"])
        if any((r["variant"], r["lr"], r["seed"]) == key for r in self.load(protocol)):
            return False
        path = self.path(protocol)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")
        return True


def _curve(path: Path) -> dict[int, float]:
    """Step → val bpc of every evaluation in a run's ``metrics.jsonl`` (the last one of a step wins)."""
    return {int(m["step"]): float(m["val_bpc"]) for m in read_metrics(path) if m.get("event") == "eval"}


def records_dataset(records: Iterable[dict[str, Any]], root: str | os.PathLike[str], protocol: str = "") -> xr.Dataset:
    """The records as a study dataset of the sweep: one ``run`` per record (named by its run
    directory), tagged ``variant``, ``lr``, ``seed`` and ``protocol``, with ``final_val_bpc``
    (the recorded value) and the learning curve ``val_bpc``/``eval_step`` (run, eval) read from
    ``root/<run_dir>/metrics.jsonl`` where that file exists (NaN elsewhere)."""
    records = list(records)
    root = Path(root)
    curves = []
    for r in records:
        path = root / r.get("run_dir", "") / "metrics.jsonl" if r.get("run_dir") else None
        curves.append(_curve(path) if path is not None and path.is_file() else None)
    n_eval = max([len(c) for c in curves if c] + [1])
    steps = np.full((len(records), n_eval), np.nan)
    bpc = np.full((len(records), n_eval), np.nan)
    for i, c in enumerate(curves):
        for j, (step, value) in enumerate(sorted((c or {}).items())):
            steps[i, j], bpc[i, j] = step, value
    final = np.array([float(r["val_bpc"]) if r.get("val_bpc") is not None else math.nan for r in records])
    ds = xr.Dataset(
        {
            "final_val_bpc": ("run", final),
            "val_bpc": (("run", "eval"), bpc),
            "eval_step": (("run", "eval"), steps),
        },
        coords={
            "run": np.array([str(r.get("run_dir", i)) for i, r in enumerate(records)], dtype=str),
            "eval": np.arange(n_eval),
            "variant": ("run", np.array([str(r["variant"]) for r in records], dtype=str)),
            "lr": ("run", np.array([float(r["lr"]) for r in records], dtype=np.float64)),
            "seed": ("run", np.array([int(r["seed"]) for r in records], dtype=np.int64)),
            "protocol": ("run", np.array([str(r.get("protocol", protocol)) for r in records], dtype=str)),
            "status": ("run", np.array(["done"] * len(records), dtype=str)),
        },
    )
    ds.attrs.update({"study": KIND, "title": f"Quality sweep, protocol {protocol}", "source": "records",
                     "settings": json.dumps({"protocol_name": protocol}), "tags": json.dumps(["variant", "lr", "seed"])})
    return ds


__all__ = ["RECORD_KEYS", "RecordStore", "records_dataset"]
