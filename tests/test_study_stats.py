"""Seed statistics of the studies: CI, paired t-test and Wilcoxon against scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from fsnlab.study.stats import describe, paired, t_interval


def test_describe_matches_scipy():
    x = [1.61, 1.60, 1.63, 1.59, 1.62]
    d = describe(x)
    assert d["n"] == 5 and d["mean"] == pytest.approx(np.mean(x)) and d["sd"] == pytest.approx(np.std(x, ddof=1))
    lo, hi = stats.t.interval(0.95, 4, loc=np.mean(x), scale=stats.sem(x))
    assert (d["ci_low"], d["ci_high"]) == pytest.approx((lo, hi))
    assert d["median"] == pytest.approx(1.61)


def test_nan_dropped_and_small_samples():
    d = describe([1.0, math.nan, 3.0])
    assert d["n"] == 2 and d["mean"] == 2.0
    one = describe([2.5])
    assert one["n"] == 1 and one["mean"] == 2.5 and math.isnan(one["sd"]) and math.isnan(one["ci_low"])
    assert describe([])["n"] == 0 and math.isnan(describe([])["mean"])
    assert all(math.isnan(v) for v in t_interval([1.0]))


def test_paired_matches_scipy():
    a = [1.595, 1.597, 1.594, 1.596, 1.598]
    b = [1.611, 1.609, 1.612, 1.610, 1.613]
    r = paired(a, b)
    t = stats.ttest_rel(a, b)
    w = stats.wilcoxon(np.subtract(a, b))
    assert r["n"] == 5 and r["wins"] == 5
    assert r["mean_diff"] == pytest.approx(np.mean(np.subtract(a, b)))
    assert r["t_p"] == pytest.approx(t.pvalue) and r["t_stat"] == pytest.approx(t.statistic)
    assert r["wilcoxon_p"] == pytest.approx(w.pvalue)
    assert r["ci_high"] < 0


def test_paired_edge_cases():
    r = paired([1.0, math.nan, 2.0], [1.5, 1.0, 2.5])  # the NaN pair is dropped
    assert r["n"] == 2 and r["mean_diff"] == pytest.approx(-0.5)
    same = paired([1.0, 2.0], [1.0, 2.0])  # no difference at all: no test, no crash
    assert same["mean_diff"] == 0 and math.isnan(same["wilcoxon_p"])
    single = paired([1.0], [2.0])
    assert single["n"] == 1 and math.isnan(single["t_p"])
    with pytest.raises(ValueError):
        paired([1.0], [1.0, 2.0])
