"""Study reports from synthetic datasets (no training): the numbers in the tables are the ones
computed from the dataset, seeds pair by label whatever the order of the runs, and the paper's
values come from fsnlab.study.claims."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import xarray as xr

pytest.importorskip("plotly")
pytest.importorskip("jinja2")

from fsnlab.study import claims as C  # noqa: E402
from fsnlab.study.kinds.kernel_reading import axial_mean, axial_sd  # noqa: E402
from fsnlab.study.report import build_html  # noqa: E402
from report_html import paper_rows, table, tables  # noqa: E402

# final val bpc per (arm, seed); the transformer's runs come in the opposite seed order
FINALS = {("fsn", 0): 1.50, ("fsn", 1): 1.60, ("fsn", 2): 1.58,
          ("transformer", 2): 1.61, ("transformer", 1): 1.90, ("transformer", 0): 1.70}


def synthetic(finals: dict[tuple[str, int], float] = FINALS, scale: str = "smoke") -> xr.Dataset:
    """A matched-budget dataset on one corpus, shaped like fsnlab.study.assemble's."""
    keys = list(finals)
    n, n_eval = len(keys), 3
    final = np.array([finals[k] for k in keys])
    curves = final[:, None] + np.array([0.4, 0.1, 0.0])[None, :]
    config = [json.dumps({"train": {"data": "embedded", "seed": s, "batch_size": 8, "lr": 0.01, "max_steps": 30}}) for _, s in keys]
    ds = xr.Dataset(
        {"val_bpc": (("run", "eval"), curves), "eval_step": (("run", "eval"), np.tile([10.0, 20.0, 30.0], (n, 1))),
         "eval_tokens": (("run", "eval"), np.tile([1e3, 2e3, 3e3], (n, 1))), "eval_epoch": (("run", "eval"), np.full((n, n_eval), 0.01)),
         "final_val_bpc": ("run", final), "last_val_bpc": ("run", final), "best_val_bpc": ("run", final),
         "config": ("run", np.array(config))},
        coords={"run": [f"{a}.s{s}" for a, s in keys], "eval": np.arange(n_eval),
                "arm": ("run", [a for a, _ in keys]), "seed": ("run", np.array([s for _, s in keys], dtype=np.int64)),
                "corpus": ("run", ["text"] * n), "preset": ("run", [f"{a}-1m" for a, _ in keys]),
                "data": ("run", ["embedded"] * n), "status": ("run", ["done"] * n),
                "parameters": ("run", np.full(n, 1000, dtype=np.int64)), "total_steps": ("run", np.full(n, 30, dtype=np.int64)),
                "steps_done": ("run", np.full(n, 30, dtype=np.int64)), "error": ("run", [""] * n)})
    ds.attrs.update(study="matched_budget", title="synthetic matched budget", scale=scale, tags=json.dumps(["arm", "seed", "corpus"]),
                    settings=json.dumps({"protocol": {"max_steps": 30, "batch_size": 8}}), manifest="{}", references="the paper")
    return ds


def _sd(values: list[float]) -> float:
    return float(np.std(values, ddof=1))


def test_tables_hold_the_numbers_computed_from_the_dataset():
    html = build_html(synthetic())
    summary = {row[0]: row for row in table(html, "arm", "final validation bits per byte over seeds")[1:]}
    fsn = [FINALS[("fsn", s)] for s in range(3)]
    assert summary["FSN"][1:5] == ["3", f"{np.mean(fsn):.4f}", f"{_sd(fsn):.4f}", f"{np.median(fsn):.4f}"]
    assert summary["FSN"][6] == "1.5000, 1.6000, 1.5800"
    # paired by seed label: the transformer's runs are stored in the opposite order
    deltas = [FINALS[("fsn", s)] - FINALS[("transformer", s)] for s in range(3)]
    paired = {row[0]: row for row in table(html, "arm − reference")[1:]}
    row = paired["FSN − Transformer"]
    assert row[1] == "3" and row[2] == f"{np.mean(deltas):.4f}" and row[3] == f"{_sd(deltas):.4f}"
    assert row[7] == "3/3 seeds"
    # every evaluation, per seed: 3 seeds x 3 evaluations, all below
    every = next({r[0]: r for r in t["rows"][1:]} for t in tables(html)
                 if t["rows"][0] == ["arm", "below the transformer at every evaluation", "count"])
    assert every["FSN"][2] == "mean below at 3/3 evaluations; per seed 9/9"


def test_the_claims_reach_the_paper_table(monkeypatch):
    rows = paper_rows(build_html(synthetic()))
    for claim in (C.TRANSFORMER_50, C.FSN_50, C.FSN_30_EVERY_SEED, C.KA_BEHIND_TRANSFORMER):
        assert rows[claim.statement][1] == claim.paper
    assert rows[C.FSN_50.statement][1] == f"{C.FSN_50.value:.4f} ± {C.FSN_50.sd:.4f}"
    fsn = [FINALS[("fsn", s)] for s in range(3)]
    assert rows[C.FSN_50.statement][2].startswith(f"{np.mean(fsn):.4f} ± {_sd(fsn):.4f} (n=3), 95% CI [")
    assert rows[C.FSN_30_EVERY_SEED.statement][2] == f"max over seeds {max(fsn):.4f}"
    assert rows[C.FSN_50.statement][4] == "not comparable (smoke scale)"
    # a changed claim changes the report
    changed = dataclasses.replace(C.FSN_30_EVERY_SEED, value=1.55, statement="every seed below 1.55", paper="every seed < 1.55")
    monkeypatch.setattr(C, "FSN_30_EVERY_SEED", changed)
    rows = paper_rows(build_html(synthetic()))
    assert rows["every seed below 1.55"][1] == "every seed < 1.55"


def test_claims_are_data_with_sources():
    assert C.CLAIMS["fsn_50ep"] is C.FSN_50 and C.FSN_50.units == C.BPB
    assert (C.TRANSFORMER_50.value, C.FSN_50.value, C.FSN_50.sd) == (1.611, 1.5953, 0.0014)
    for claim in C.CLAIMS.values():
        assert claim.statement and claim.paper and claim.source and claim.quote, claim.key
        if claim.value is not None:
            assert claim.number in claim.quote, claim.key  # the number is the one the spec gives


def test_report_page_is_one_offline_document():
    html = build_html(synthetic())
    assert html.startswith("<!DOCTYPE html>") and html.count("plotly.js v") == 1 and "Plotly.newPlot" in html
    assert 'class="warn"' in html and "Smoke scale." in html  # the template's notice for smoke datasets
    assert "&lt;" not in html.split("<body>")[0]


def test_axial_statistics():
    assert axial_mean(np.array([0.1, 0.3])) == pytest.approx(0.2)
    # α and α + π are the same coupling: angles on either side of ±π/2 average to ±π/2, not 0
    assert abs(float(axial_mean(np.array([math.pi / 2 - 0.05, -math.pi / 2 + 0.05])))) == pytest.approx(math.pi / 2)
    assert float(axial_mean(np.array([0.1, 1.0]), weights=np.array([1.0, 0.0]))) == pytest.approx(0.1)
    assert axial_sd(np.array([0.2, 0.2, 0.2])) == pytest.approx(0.0, abs=1e-6) and math.isnan(axial_sd(np.array([0.2])))
