"""Every study end to end at ``--scale smoke`` (tiny presets, 30 steps, 2 seeds, CPU), sharing one
run pool so that runs asked for by several studies are trained once; then a rerun trains nothing
and ``fsnlab report`` rebuilds a report from the dataset alone."""

from __future__ import annotations

import importlib.util
import json
import re
import time
from pathlib import Path

import numpy as np
import pytest

from fsnlab.cli import main as fsnlab_main
from fsnlab.study import claims as C
from fsnlab.study import describe, open_study
from report_html import paper_rows

ROOT = Path(__file__).resolve().parents[1]
STUDIES = ("matched_budget", "baseline_tuning", "copy_depth", "ablation_ladder", "scale_ladder", "kernel_reading")

pytestmark = pytest.mark.slow


def load_study(name: str):
    spec = importlib.util.spec_from_file_location(f"fsnlab_study_script_{name}", ROOT / "studies" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def smoke_args(root: Path, name: str) -> list[str]:
    return ["--scale", "smoke", "--out", str(root / name), "--runs", str(root / "runs"), "--threads", "1", "--quiet"]


@pytest.fixture(scope="session")
def smoke(tmp_path_factory):
    """All six studies, in order, on one shared run pool. Returns {name: (StudyResult, seconds)}."""
    root = tmp_path_factory.mktemp("studies")
    results = {}
    for name in STUDIES:
        start = time.perf_counter()
        result = load_study(name).run(smoke_args(root, name))
        results[name] = (result, time.perf_counter() - start)
    results["_root"] = root
    return results


@pytest.mark.parametrize("name", STUDIES)
def test_study_writes_dataset_and_report(smoke, name):
    result, _ = smoke[name]
    assert result.exit_code == 0
    assert result.dataset_path.is_file() and result.report_path.is_file()
    ds = open_study(result.dataset_path.parent)
    assert ds.attrs["study"] == name and ds.attrs["scale"] == "smoke"
    assert set(ds["val_bpc"].dims) == {"run", "eval"} and ds.sizes["eval"] == 3  # steps 10, 20, 30
    assert (ds["status"].values == "done").all() and np.isfinite(ds["final_val_bpc"].values).all()
    assert json.loads(ds.attrs["manifest"])["study"] == name
    assert all(json.loads(str(c))["train"]["max_steps"] == 30 for c in ds["config"].values)
    html = result.report_path.read_text(encoding="utf-8")
    assert "not comparable (smoke scale)" in html or "no paper numbers" in html
    assert "Our numbers next to the paper" in html
    assert html.count("plotly.js v") == 1 and not re.search(r"<script[^>]*\ssrc=", html)  # inlined once: works offline
    assert "Plotly.newPlot" in html


def test_runs_are_shared_between_studies(smoke):
    mb, _ = smoke["matched_budget"]
    assert mb.count("trained") == 16  # 4 arms x 2 corpora x 2 seeds
    # copy depth and kernel reading need only matched-budget text runs; the others add what is new
    assert smoke["copy_depth"][0].count("trained") == 0 and smoke["copy_depth"][0].count("skipped") == 8
    assert smoke["kernel_reading"][0].count("trained") == 0
    assert smoke["baseline_tuning"][0].count("trained") == 4  # lr 3e-3 for both arms; lr 1e-2 is shared
    assert smoke["ablation_ladder"][0].count("trained") == 8  # the full kernel is the fsn preset itself
    assert smoke["scale_ladder"][0].count("trained") == 4  # the small rung


def test_rerun_trains_nothing(smoke):
    root = smoke["_root"]
    before = {p: p.stat().st_mtime_ns for p in (root / "runs").rglob("*.pt")}
    result = load_study("matched_budget").run(smoke_args(root, "matched_budget"))
    assert result.exit_code == 0
    assert [o.action for o in result.outcomes] == ["skipped"] * 16
    assert {p: p.stat().st_mtime_ns for p in (root / "runs").rglob("*.pt")} == before


def test_matched_budget_contents(smoke):
    ds = open_study(smoke["matched_budget"][0].dataset_path)
    assert sorted(set(ds["arm"].values.tolist())) == ["fsn", "fsn-mf", "ka", "transformer"]
    assert sorted(set(ds["corpus"].values.tolist())) == ["code", "text"]
    params = ds["parameters"].values
    assert params.min() > 0 and (params.max() - params.min()) / params.max() < 0.01  # matched budget
    html = smoke["matched_budget"][0].report_path.read_text(encoding="utf-8")
    for needle in ("paired t p", "Wilcoxon p", "95% CI", "Protocol check"):
        assert needle in html
    # the paper's values (fsnlab.study.claims) next to the numbers computed from this dataset
    rows = paper_rows(html)
    for claim in (C.TRANSFORMER_50, C.FSN_50, C.FSN_30_EVERY_SEED):
        assert rows[claim.statement][1] == claim.paper and claim.number in claim.paper
    text = ds.isel(run=np.flatnonzero(ds["corpus"].values == "text"))
    for claim, arm in ((C.TRANSFORMER_50, "transformer"), (C.FSN_50, "fsn")):
        s = describe(text["final_val_bpc"].values[text["arm"].values == arm])
        assert rows[claim.statement][2].startswith(f"{s['mean']:.4f} ± {s['sd']:.4f} (n={s['n']}), 95% CI [{s['ci_low']:.4f}, ")
        assert rows[claim.statement][4] == "not comparable (smoke scale)"
    fsn = text["final_val_bpc"].values[text["arm"].values == "fsn"]
    assert rows[C.FSN_30_EVERY_SEED.statement][2] == f"max over seeds {fsn.max():.4f}"


def test_copy_depth_contents(smoke):
    ds = open_study(smoke["copy_depth"][0].dataset_path)
    counts = ds["copy_count"].values  # run, depth, distance column
    assert counts.shape[1:] == (33, 5)
    assert (counts.sum(axis=(1, 2)) == 4095).all()  # every evaluated target, once
    assert (counts == counts[0]).all()  # depths come from the data alone: the same for every model
    np.testing.assert_allclose(ds["token_mean_bits"].values, ds["final_val_bpc"].values, atol=1e-5)
    html = smoke["copy_depth"][0].report_path.read_text(encoding="utf-8")
    for needle in ("0–1", "24–32", "257+", "Δ FSN − Transformer"):
        assert needle in html


def test_kernel_reading_contents(smoke):
    ds = open_study(smoke["kernel_reading"][0].dataset_path)
    assert set(ds["sakaguchi_alpha"].dims) == {"run", "layer", "delay", "head", "harmonic"}
    assert np.isfinite(ds["daido_K"].values).all()
    assert np.all(np.abs(ds["sakaguchi_alpha"].values) <= np.pi / 2 + 1e-6)


def test_ladders_contents(smoke):
    ab = open_study(smoke["ablation_ladder"][0].dataset_path)
    assert list(dict.fromkeys(ab["kernel"].values.tolist())) == ["base", "+harmonics", "+sakaguchi", "+delay", "full"]
    sc = open_study(smoke["scale_ladder"][0].dataset_path)
    assert sorted(set(sc["rung"].values.tolist())) == ["small", "tiny"]
    bt = open_study(smoke["baseline_tuning"][0].dataset_path)
    assert sorted(set(bt["lr"].values.tolist())) == [0.003, 0.01]


def _tables(html: str) -> str:
    html = re.sub(r"<script.*?</script>", "", html, flags=re.S)
    html = re.sub(r"<div id=\"[^\"]*\" class=\"plotly-graph-div\".*?</div>", "", html, flags=re.S)
    return html


@pytest.mark.parametrize("name", ("matched_budget", "copy_depth", "kernel_reading"))
def test_fsnlab_report_rebuilds_from_the_dataset(smoke, name, capsys):
    result, _ = smoke[name]
    original = result.report_path.read_text(encoding="utf-8")
    result.report_path.unlink()
    assert fsnlab_main(["report", str(result.dataset_path.parent)]) == 0
    rebuilt = result.report_path.read_text(encoding="utf-8")
    assert _tables(rebuilt) == _tables(original)  # same numbers; only plotly's div ids differ
    assert "report" in capsys.readouterr().out
    out = result.dataset_path.parent / "elsewhere.html"
    assert fsnlab_main(["report", str(result.dataset_path), "--out", str(out)]) == 0 and out.is_file()


def test_fsnlab_report_without_dataset_is_one_line(tmp_path, capsys):
    assert fsnlab_main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fsnlab report: error:") and "\n" not in err


def test_smoke_timings(smoke):
    """Record the time of each study (shown with -rA); all six fit the test-suite budget."""
    seconds = {name: round(smoke[name][1], 1) for name in STUDIES}
    print("study seconds:", seconds)
    assert sum(seconds.values()) < 600


def test_tuned_lrs_feed_the_other_studies(smoke, capsys):
    from fsnlab.study.driver import tuned_lrs

    tuning_dir = smoke["baseline_tuning"][0].dataset_path.parent
    assert tuned_lrs(tuning_dir) == {"fsn": 0.01, "transformer": 0.01}  # 30 steps: the higher LR wins
    root = smoke["_root"]
    result = load_study("matched_budget").run(smoke_args(root, "matched_budget") + ["--tuned", str(tuning_dir), "--dry-run"])
    assert result.exit_code == 0 and result.manifest.settings["lrs"]["transformer"] == 0.01
    assert "done" in capsys.readouterr().out  # the dry run lists the (already trained) runs
