"""Seed statistics: mean ± sd, median, a t-distribution 95% CI, and paired tests across seeds.

Every function takes plain sequences (NaN entries, e.g. failed runs, are dropped first) and
returns a dict of floats, so tables and the report can print them directly.
"""

from __future__ import annotations

import math
import warnings
from typing import Iterable

import numpy as np
from scipy import stats as _stats

CONFIDENCE = 0.95


def _clean(values: Iterable[float]) -> np.ndarray:
    arr = np.asarray(list(values), dtype=np.float64)
    return arr[np.isfinite(arr)]


def t_interval(values: Iterable[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Two-sided t-distribution CI of the mean (NaN, NaN with fewer than 2 values)."""
    arr = _clean(values)
    n = arr.size
    if n < 2:
        return math.nan, math.nan
    mean, sem = float(arr.mean()), float(arr.std(ddof=1)) / math.sqrt(n)
    half = float(_stats.t.ppf(0.5 + confidence / 2, n - 1)) * sem
    return mean - half, mean + half


def describe(values: Iterable[float], confidence: float = CONFIDENCE) -> dict[str, float]:
    """n, mean, sd (ddof 1), median, min, max and the CI of the mean."""
    arr = _clean(values)
    n = int(arr.size)
    lo, hi = t_interval(arr, confidence)
    return {
        "n": n,
        "mean": float(arr.mean()) if n else math.nan,
        "sd": float(arr.std(ddof=1)) if n > 1 else math.nan,
        "median": float(np.median(arr)) if n else math.nan,
        "min": float(arr.min()) if n else math.nan,
        "max": float(arr.max()) if n else math.nan,
        "ci_low": lo,
        "ci_high": hi,
    }


def paired(a: Iterable[float], b: Iterable[float], confidence: float = CONFIDENCE) -> dict[str, float]:
    """Paired comparison of ``a`` against ``b`` (same seeds, same order): the difference a − b
    (mean, sd, CI), the paired t-test and the Wilcoxon signed-rank test (two-sided p-values).
    Pairs with a NaN on either side are dropped. With fewer than 2 pairs the tests are NaN."""
    a_arr = np.asarray(list(a), dtype=np.float64)
    b_arr = np.asarray(list(b), dtype=np.float64)
    if a_arr.shape != b_arr.shape:
        raise ValueError(f"paired samples differ in length: {a_arr.size} vs {b_arr.size}")
    keep = np.isfinite(a_arr) & np.isfinite(b_arr)
    diff = a_arr[keep] - b_arr[keep]
    out = describe(diff, confidence)
    result = {
        "n": out["n"],
        "mean_diff": out["mean"],
        "sd_diff": out["sd"],
        "ci_low": out["ci_low"],
        "ci_high": out["ci_high"],
        "wins": int((diff < 0).sum()),  # pairs where a is lower (better, for a loss)
        "t_stat": math.nan,
        "t_p": math.nan,
        "wilcoxon_stat": math.nan,
        "wilcoxon_p": math.nan,
    }
    if diff.size >= 2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if np.any(diff != diff[0]) or diff[0] != 0:
                t = _stats.ttest_rel(a_arr[keep], b_arr[keep])
                result["t_stat"], result["t_p"] = float(t.statistic), float(t.pvalue)
            if np.any(diff != 0):
                try:
                    w = _stats.wilcoxon(diff)
                    result["wilcoxon_stat"], result["wilcoxon_p"] = float(w.statistic), float(w.pvalue)
                except ValueError:
                    pass
    return result
