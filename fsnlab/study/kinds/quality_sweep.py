"""The quality sweep (docs/quality.md): final val bpc per (variant, learning rate) with the gap to
the best transformer, learning curves, and the LR grid of the angle and scalar rates.

The numbers are computed from a sweep dataset, either assembled from the run pool
(:func:`fsnlab.study.dataset.assemble` of a :func:`fsnlab.study.quality.sweep_manifest`) or read
from the committed records (:func:`fsnlab.study.records.records_dataset`): runs tagged
``variant``, ``lr`` and ``seed``, with ``final_val_bpc`` and, where the run directory is at hand,
``val_bpc``/``eval_step`` per evaluation. The statistics are :func:`fsnlab.study.stats.describe`'s.
Renderers give the markdown tables of docs/quality.md and the plain-text tables of the script.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import xarray as xr

from fsnlab.study.formatting import fmt, fmt_ci
from fsnlab.study.page import Page
from fsnlab.study.quality import KIND, PROTOCOLS
from fsnlab.study.stats import describe
from fsnlab.study.variants import VARIANTS

REFERENCE = "transformer"
FINAL_HEADERS = ["variant", "what it changes", "lr", "seeds", "val bpc", "gap to best transformer"]


@dataclass(frozen=True)
class Row:
    """One (variant, lr) cell of a sweep: the seeds' final val bpc summarised, and the gap of its
    mean to the best transformer mean (NaN without transformer runs)."""

    variant: str
    lr: float
    stats: dict[str, float]
    gap: float

    @property
    def note(self) -> str:
        return VARIANTS[self.variant].note if self.variant in VARIANTS else ""


def _groups(ds: xr.Dataset) -> dict[tuple[str, float], np.ndarray]:
    """Run indices per (variant, lr), in the order the runs first appear."""
    keys = list(zip(ds["variant"].values.tolist(), ds["lr"].values.tolist()))
    groups: dict[tuple[str, float], list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault((str(key[0]), float(key[1])), []).append(i)
    return {k: np.array(v) for k, v in groups.items()}


def final_rows(ds: xr.Dataset, only: Sequence[str] | None = None) -> list[Row]:
    """Every (variant, lr) with a finished run, best mean first (ties: first recorded first);
    ``only``: just these variants, and the transformer's rows as the reference."""
    cells = []
    for (name, lr), idx in _groups(ds).items():
        if only and name not in only and name != REFERENCE:
            continue
        stats = describe(ds["final_val_bpc"].values[idx])
        if stats["n"]:
            cells.append((name, lr, stats))
    refs = [s["mean"] for name, _, s in cells if name == REFERENCE]
    best = min(refs) if refs else math.nan
    rows = [Row(name, lr, s, s["mean"] - best) for name, lr, s in cells]
    return sorted(rows, key=lambda r: r.stats["mean"])


def _mean_sd(stats: dict[str, float], digits: int = 3) -> str:
    """``mean ± sd`` (the mean alone for one seed)."""
    text = f"{stats['mean']:.{digits}f}"
    return text + (f" ± {stats['sd']:.{digits}f}" if stats["n"] > 1 else "")


def _gap(x: float) -> str:
    return f"{x:+.3f}" if math.isfinite(x) else "-"


def markdown_row(cells: Sequence[Any]) -> str:
    """One markdown table row; an empty cell is written ``| |``."""
    return "|" + "|".join(f" {c} " if str(c) else " " for c in cells) + "|"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    return "\n".join([markdown_row(headers), "|" + "---|" * len(headers)] + [markdown_row(r) for r in rows])


def final_markdown(ds: xr.Dataset, only: Sequence[str] | None = None) -> str:
    """The markdown table of :func:`final_rows` (docs/quality.md §3, §4, §7 and the appendix)."""
    rows = [[f"`{r.variant}`", r.note, f"{r.lr:g}", r.stats["n"], _mean_sd(r.stats), _gap(r.gap)]
            for r in final_rows(ds, only)]
    return markdown_table(FINAL_HEADERS, rows)


def final_text(ds: xr.Dataset, protocol: str, only: Sequence[str] | None = None) -> str:
    """The plain-text table of :func:`final_rows`, 4 decimals, headed by the protocol."""
    lines = [f"protocol {protocol}: {PROTOCOLS.get(protocol, '?')}",
             f"{'variant':<22} {'lr':>7} {'n':>2} {'val bpc mean':>13} {'sd':>7} {'gap to best transformer':>24}"]
    for r in final_rows(ds, only):
        sd = r.stats["sd"] if r.stats["n"] > 1 else float("nan")
        lines.append(f"{r.variant:<22} {r.lr:>7g} {r.stats['n']:>2} {r.stats['mean']:>13.4f} {sd:>7.4f} {_gap(r.gap):>24}")
    return "\n".join(lines)


# -- learning curves --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Curve:
    """The learning curves of one (variant, lr): per evaluation step, the values of its seeds."""

    variant: str
    lr: float
    runs: int
    values: dict[int, list[float]]  # step -> one value per run that evaluated there
    final_mean: float  # mean over runs of each run's last evaluation (the order of the table)


def curves(ds: xr.Dataset, only: Sequence[str] | None = None) -> tuple[list[int], list[Curve]]:
    """The evaluation steps of every run with a curve, and the curves per (variant, lr), lowest
    final mean first; ``only``: just these variants."""
    out: list[Curve] = []
    steps: set[int] = set()
    for (name, lr), idx in _groups(ds).items():
        if only and name not in only:
            continue
        per_run = []
        for i in idx:
            s, v = ds["eval_step"].values[i], ds["val_bpc"].values[i]
            keep = np.isfinite(s) & np.isfinite(v)
            if keep.any():
                per_run.append(dict(zip(s[keep].astype(int).tolist(), v[keep].tolist())))
        if not per_run:
            continue
        values: dict[int, list[float]] = {}
        for c in per_run:
            for step, value in c.items():
                values.setdefault(step, []).append(value)
        steps.update(values)
        out.append(Curve(name, lr, len(per_run), values, describe([c[max(c)] for c in per_run])["mean"]))
    return sorted(steps), sorted(out, key=lambda c: c.final_mean)


def curves_markdown(ds: xr.Dataset, only: Sequence[str] | None = None) -> str:
    """Mean val bpc over seeds at every evaluation (the last column bold, with its sd)."""
    steps, rows = curves(ds, only)
    lines = ["| variant | lr | seeds | " + " | ".join(f"step {s}" for s in steps) + " |",
             "|---|---|---|" + "---|" * len(steps)]
    for c in rows:
        cells = []
        for s in steps:
            values = c.values.get(s, [])
            d = describe(values)
            if not values:
                cells.append("-")
            elif s == steps[-1] and d["n"] > 1:
                cells.append(f"**{d['mean']:.3f}** ± {d['sd']:.3f}")
            else:
                cells.append(f"{d['mean']:.3f}")
        lines.append(f"| `{c.variant}` | {c.lr:g} | {c.runs} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def curves_text(ds: xr.Dataset, only: Sequence[str] | None = None) -> str:
    steps, rows = curves(ds, only)
    lines = [f"{'variant':<22} {'lr':>7} {'n':>2} " + " ".join(f"{s:>7}" for s in steps)]
    for c in rows:
        cells = [f"{describe(c.values[s])['mean']:.3f}" if c.values.get(s) else "-" for s in steps]
        lines.append(f"{c.variant:<22} {c.lr:>7g} {c.runs:>2} " + " ".join(f"{x:>7}" for x in cells))
    return "\n".join(lines)


# -- the LR grid (docs/quality.md §2) ----------------------------------------------------------------------

# rows of the grid: (label, variant); the bold cells: (variant, lr)
LR_GRID_ROWS: tuple[tuple[str, str], ...] = (
    ("plain", "fsn"),
    ("angle LR ×10", "fsn:angle-lr10"),
    ("angle LR ×30", "fsn:angle-lr30"),
    ("angle LR ×100", "fsn:angle-lr100"),
    ("scalar LR ×10", "fsn:scalar-lr10"),
    ("angle ×30 + scalar ×10", "fsn:angle30-scalar10"),
)
LR_GRID_BOLD: frozenset[tuple[str, float]] = frozenset({("fsn:angle-lr10", 3e-2)})
LR_GRID_LRS: tuple[float, ...] = (3e-3, 1e-2, 3e-2)


def _lr_label(lr: float) -> str:
    mantissa, _, exponent = f"{lr:.0e}".partition("e")
    return f"{mantissa}e{int(exponent)}"


def lr_grid_markdown(ds: xr.Dataset, protocol: str, rows: Sequence[tuple[str, str]] = LR_GRID_ROWS,
                     lrs: Sequence[float] = LR_GRID_LRS, bold: frozenset[tuple[str, float]] = LR_GRID_BOLD) -> str:
    """Final val bpc of the FSN's LR switches, one row per switch and one column per LR; a cell
    with another number of seeds than the protocol's says how many."""
    p = PROTOCOLS[protocol]
    seeds = len(p.seeds)
    heads = [f"FSN, {protocol} ({p.max_steps:,} steps), {seeds} seeds"] + [f"lr {_lr_label(lr)}" for lr in lrs]
    groups = _groups(ds)
    out = []
    for label, name in rows:
        cells: list[Any] = [label]
        for lr in lrs:
            idx = next((v for (n, x), v in groups.items() if n == name and math.isclose(x, lr)), None)
            stats = describe(ds["final_val_bpc"].values[idx]) if idx is not None else {"n": 0}
            if not stats["n"]:
                cells.append("")
                continue
            text = _mean_sd(stats)
            text = f"**{text}**" if (name, lr) in bold else text
            cells.append(text + (f" ({stats['n']} seeds)" if stats["n"] != seeds else ""))
        out.append(cells)
    return markdown_table(heads, out)


# -- the report section ------------------------------------------------------------------------------------


def section(page: Page, ds: xr.Dataset) -> None:
    from fsnlab.study.sections import curves as curve_figure
    from fsnlab.study.sections import header

    header(page, ds, "The quality sweep (docs/quality.md): each variant a config switch, at each learning rate, "
           "final validation bpc over seeds with the gap to the best transformer.")
    rows = [[r.variant, r.note, f"{r.lr:g}", r.stats["n"], fmt(r.stats["mean"]), fmt(r.stats["sd"]),
             fmt_ci(r.stats["ci_low"], r.stats["ci_high"]), _gap(r.gap)] for r in final_rows(ds)]
    page.h(2, "Final validation bpc per variant and learning rate")
    page.table(["variant", "what it changes", "lr", "n", "mean", "sd", "95% CI (t)", "gap to best transformer"], rows,
               left=2, caption="final validation bits per byte, best first")
    if "eval_step" in ds and np.isfinite(ds["eval_step"].values).any():
        page.figure(curve_figure(ds, "variant", "validation loss per evaluation", ()))


__all__ = ["FINAL_HEADERS", "KIND", "LR_GRID_ROWS", "Curve", "Row", "curves", "curves_markdown", "curves_text",
           "final_markdown", "final_rows", "final_text", "lr_grid_markdown", "markdown_table", "section"]
