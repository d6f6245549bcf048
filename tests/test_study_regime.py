"""The regime ladder (issue 16) at ``--scale smoke``: its manifest (budgets, arms, seeds, the LR
check and the long runs that wait for it), reports from an empty and a partly trained pool, the
full ladder in two passes (the second trains the long runs at the LR the check chose), copy depth
on the 15- and 50-budget runs, a rerun that trains nothing and ``fsnlab report``. The paper
scale's manifest is checked by a dry run (nothing trained)."""

from __future__ import annotations

import importlib.util
import json
import math
import re
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from fsnlab.cli import main as fsnlab_main
from fsnlab.study import Manifest, execute, open_study
from fsnlab.study.regime import LADDER, LR_CHECK, sign_changes

ROOT = Path(__file__).resolve().parents[1]
LOCKS = importlib.util.find_spec("fsnlab.train.lock") is not None  # the run-directory lock (issue 15)

pytestmark = pytest.mark.slow


def load_script():
    spec = importlib.util.spec_from_file_location("fsnlab_study_script_regime_ladder", ROOT / "studies" / "regime_ladder.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def args_for(root: Path, *extra: str) -> list[str]:
    return ["--scale", "smoke", "--out", str(root / "study"), "--runs", str(root / "runs"), "--threads", "1", "--quiet", *extra]


def text_of(html: str) -> str:
    html = re.sub(r"<script.*?</script>", "", html, flags=re.S)
    html = re.sub(r"<div id=\"[^\"]*\" class=\"plotly-graph-div\".*?</div>", "", html, flags=re.S)
    return html


@pytest.fixture(scope="module")
def ladder(tmp_path_factory):
    """Empty pool -> report only; the 1-budget runs trained -> report only; the whole ladder; a rerun."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("regime")
    script = load_script()
    out = {"root": root, "script": script, "seconds": {}}
    start = time.perf_counter()
    out["dry"] = script.run(args_for(root, "--dry-run"))
    out["empty"] = script.run(args_for(root, "--report-only"))
    out["empty_html"] = out["empty"].report_path.read_text(encoding="utf-8")
    out["empty_summary"] = (root / "study" / "summary.md").read_text(encoding="utf-8")
    first = Manifest("regime_ladder", "part", "smoke", [r for r in out["dry"].manifest if r.tags["budget"] == 1])
    execute(first, root / "runs", threads=1, log=None)
    out["partial"] = script.run(args_for(root, "--report-only"))
    out["partial_html"] = out["partial"].report_path.read_text(encoding="utf-8")
    out["seconds"]["before"] = time.perf_counter() - start
    start = time.perf_counter()
    if LOCKS:  # another process holds one run of the transformer's LR check: it is skipped, the rest goes on
        held = next(r for r in out["dry"].manifest if r.tags["arm"] == "transformer" and r.tags["role"] == LR_CHECK)
        holder = subprocess.Popen(["sleep", "300"])
        try:
            (root / "runs" / held.name).mkdir(parents=True)
            (root / "runs" / held.name / "fsnlab.lock").write_text(json.dumps(
                {"pid": holder.pid, "host": socket.gethostname(), "since": "now", "command": "another study"}) + "\n")
            out["held"] = held.name
            out["locked"] = script.run(args_for(root, "--poll-s", "0"))
        finally:
            holder.kill()
            holder.wait()  # reaped: its lock is stale now and the next pass takes it over
    out["full"] = script.run(args_for(root))
    out["seconds"]["full"] = time.perf_counter() - start
    start = time.perf_counter()
    out["rerun"] = script.run(args_for(root))
    out["seconds"]["rerun"] = time.perf_counter() - start
    torch.set_num_threads(threads)
    return out


def cells(manifest) -> dict[tuple[float, str, str], list]:
    out: dict[tuple[float, str, str], list] = {}
    for r in manifest:
        out.setdefault((r.tags["budget"], r.tags["arm"], r.tags["role"]), []).append(r)
    return out


def test_manifest_before_the_lr_check(ladder):
    m = ladder["dry"].manifest
    c = cells(m)
    assert {k: len(v) for k, v in c.items()} == {
        (1.0, "fsn", LADDER): 2, (1.0, "transformer", LADDER): 2,
        (5.0, "fsn", LADDER): 2, (5.0, "transformer", LADDER): 2,
        (15.0, "fsn", LADDER): 2, (15.0, "transformer", LADDER): 2, (15.0, "ka", LADDER): 2, (15.0, "fsn-mf", LADDER): 2,
        (15.0, "fsn-net", LADDER): 2,  # the network kernel's screen (3 seeds, and so the FSN's, at paper scale)
        (15.0, "fsn", LR_CHECK): 2, (15.0, "transformer", LR_CHECK): 2, (15.0, "ka", LR_CHECK): 2,
    }  # no 50-budget run yet: they wait for the check
    budgets = [r.tags["budget"] for r in m]
    assert budgets == sorted(budgets)  # cheapest first
    roles = [r.tags["role"] for r in m]
    assert roles.index(LR_CHECK) > max(i for i, r in enumerate(m) if r.tags["budget"] == 15 and r.tags["role"] == LADDER)
    assert m.settings["long_lr_waiting"] == ["fsn", "transformer", "ka"]
    assert {c["status"] for c in m.settings["plan"] if c["budget"] == 50} == {"waiting"}
    check = {(r.tags["arm"], r.config.lr) for r in m if r.tags["budget"] == 15 and r.tags["seed"] == 0
             and r.tags["arm"] not in ("fsn-mf", "fsn-net")}
    assert check == {(a, lr) for a in ("fsn", "transformer", "ka") for lr in (5e-3, 1e-2, 2e-2)}
    assert [r.config.max_steps for r in m if r.tags["arm"] == "fsn" and r.tags["seed"] == 0 and r.config.lr == 1e-2] == [2, 5, 8]


def test_paper_scale_manifest(tmp_path, capsys):
    """The CPU protocol of the issue: tiny rung, embedded corpus, T 64, batch 32, epochs, whole val split."""
    result = load_script().run(["--scale", "paper", "--out", str(tmp_path / "s"), "--runs", str(tmp_path / "runs"), "--dry-run"])
    assert result.exit_code == 0
    m = result.manifest
    assert len(m) == 29  # 4 + 4 + 12 ladder runs (FSN and its network kernel: 3 seeds) and 9 LR-check runs; 50 epochs wait
    check = {(r.tags["arm"], r.config.lr) for r in m if r.tags["role"] == LR_CHECK}
    assert check == {(a, lr) for a in ("fsn", "transformer", "ka") for lr in (2.5e-3, 5e-3, 2e-2)}  # 1e-2: the ladder's own
    net = [r for r in m if r.tags["arm"] == "fsn-net"]
    assert [r.tags["seed"] for r in net] == [0, 1, 2] and {r.tags["budget"] for r in net} == {15.0}
    assert all(r.config.preset == "fsn-tiny" and r.config.model_overrides == {"kernel_form": "network1", "ffn_hidden": 51}
               for r in net)  # harmonic-1 cross-coupling, the FFN width re-solved to the tiny budget
    for r in m:
        c = r.config
        assert (c.batch_size, c.context_length, c.max_steps, c.eval_bytes, c.eval_interval, c.data) == (32, 64, None, None, 0, "embedded")
        assert c.epochs == r.tags["budget"] and c.preset.endswith("-tiny") and c.angle_lr_scale == 10.0
    assert {r.tags["arm"] for r in m if r.tags["budget"] < 15} == {"fsn", "transformer"}
    plan = {(c["budget"], c["arm"]): c for c in m.settings["plan"]}
    assert plan[(50.0, "fsn")]["seeds"] == 3 and plan[(50.0, "fsn")]["status"] == "waiting"
    assert plan[(15.0, "fsn-mf")]["seeds"] == 2 and (50.0, "fsn-mf") not in plan
    assert plan[(15.0, "fsn-net")]["seeds"] == 3 and abs(plan[(15.0, "fsn-net")]["parameters"] - 45_500) < 455
    tpp = {b: plan[(b, "fsn")]["tokens_per_parameter"] for b in (1.0, 5.0, 15.0, 50.0)}
    assert 84 < tpp[1.0] < 86 and 4200 < tpp[50.0] < 4300  # one epoch = 1,889 steps of 2,048 tokens
    assert plan[(50.0, "fsn")]["tokens"] == math.ceil(50 * 3_868_415 / 2048) * 2048
    out = capsys.readouterr().out
    assert "waits for its LR check at 15 epochs (0/4 runs finished: lr 0.0025: pending" in out
    lines = out.strip().splitlines()
    assert lines[-1].startswith("29 runs: 29 new;")  # the dry run's summary line
    assert sum(line.startswith("new ") and line.split()[1] == "-" for line in lines) == 29  # no steps yet


def test_report_of_an_empty_pool(ladder):
    r = ladder["empty"]
    assert r.exit_code == 3 and r.dataset_path.is_file()
    ds = r.dataset  # the file itself is rewritten by the later passes
    assert (ds["status"].values == "new").all()
    html = text_of(ladder["empty_html"])
    assert "waiting for the LR check" in html and "pending (0/2 done)" in html
    assert "No copy-depth results yet" in html or "pending (no finished run yet)" in html
    assert "waits for the LR check" in ladder["empty_summary"]


def test_report_of_a_partial_pool(ladder):
    r = ladder["partial"]
    assert r.exit_code == 3
    ds = r.dataset
    assert int((ds["status"].values == "done").sum()) == 4
    html = text_of(ladder["partial_html"])
    assert "FSN − Transformer is" in html and "at 1 epoch" in html
    assert "Pending: 5 epochs, 15 epochs, 50 epochs" in html


@pytest.mark.skipif(not LOCKS, reason="no run-directory lock (fsnlab.train.lock)")
def test_a_run_locked_by_another_process_is_skipped(ladder):
    r = ladder["locked"]
    assert r.exit_code == 3  # not finished: one run is another process's, the transformer's long runs wait
    actions = {o.name: o.action for o in r.outcomes}
    assert actions[ladder["held"]] == "locked"
    assert r.manifest.settings["long_lr_waiting"] == ["transformer"]
    long = [x for x in r.manifest if x.tags["budget"] == 50]
    assert sorted({x.tags["arm"] for x in long}) == ["fsn", "ka"]  # their checks finished: trained in the second pass
    assert all(actions[x.name] == "trained" for x in long)
    assert sum(a == "trained" for a in actions.values()) == 19 + 4  # 20 - the locked one, then 2 x 2 long runs


def test_the_full_ladder(ladder):
    r = ladder["full"]
    assert r.exit_code == 0
    m = r.manifest
    assert len(m) == 30 and not m.settings["long_lr_waiting"]
    # the 4 runs of budget 1 were trained before (and, with locks, all but the held run and the transformer's long runs)
    assert sum(o.action == "trained" for o in r.outcomes) == (3 if LOCKS else 26)
    ds = open_study(r.dataset_path)
    assert (ds["status"].values == "done").all()
    # the long runs use each arm's best LR of its check (seed 0 at budget 15)
    for arm in ("fsn", "transformer", "ka"):
        check = {float(lr): v for lr, v in m.settings["long_lr"][arm]["check"].items()}
        best = min(check, key=check.get)
        assert m.settings["long_lr"][arm]["status"] == "chosen" and m.settings["long_lr"][arm]["lr"] == best
        long = [x for x in m if x.tags["arm"] == arm and x.tags["budget"] == 50]
        assert len(long) == 2 and all(x.config.lr == best for x in long)
    # copy depth on the ladder runs of budgets 15 and 50 only
    counts = ds["copy_count"].values.sum(axis=(1, 2))
    analysed = (ds["role"].values == LADDER) & np.isin(ds["budget"].values, [15, 50])
    assert (counts[analysed] == 1023).all() and (counts[~analysed] == 0).all()
    np.testing.assert_allclose(ds["token_mean_bits"].values[analysed], ds["final_val_bpc"].values[analysed], atol=1e-5)
    tpp = ds["tokens_per_parameter"].values
    assert np.nanmax(tpp) > 0 and set(ds["tokens_per_parameter"].dims) == {"run", "eval"}
    html = r.report_path.read_text(encoding="utf-8")
    assert html.count("plotly.js v") == 1 and "Plotly.newPlot" in html
    text = text_of(html)
    for needle in ("Our numbers next to the paper", "The gap against tokens per parameter", "Copy depth on the final checkpoints",
                   "15 epochs: bits per target by copy depth", "50 epochs: bits per target by copy depth", "0–1", "24–32",
                   "Δ FSN − Transformer", "Δ KA (base) − Transformer", "LR check at 15 epochs", "not comparable (smoke scale)"):
        assert needle in text, needle
    assert "pending (" not in text and "waiting for the LR check" not in text and "Pending:" not in text
    summary = (r.report_path.parent / "summary.md").read_text(encoding="utf-8")
    assert "| FSN − Transformer | 50 epochs |" in summary and "Copy depth, 50 epochs" in summary and "| 24–32 |" in summary
    # the kernel's own effect, FSN − KA paired by seed, in the gap table and by copy depth
    def final(arm):
        at = (ds["arm"].values == arm) & (ds["budget"].values == 50) & (ds["role"].values == LADDER)
        return dict(zip(ds["seed"].values[at].tolist(), ds["final_val_bpc"].values[at].tolist()))
    fsn, ka = final("fsn"), final("ka")
    kernel_effect = np.mean([fsn[s] - ka[s] for s in sorted(fsn.keys() & ka.keys())])
    row = next(line for line in summary.splitlines() if line.startswith("| FSN − KA (base) | 50 epochs |"))
    assert float(row.split("|")[6]) == pytest.approx(kernel_effect, abs=6e-4)
    assert "Δ FSN − KA (base) [95% CI]" in summary


def test_rerun_trains_nothing(ladder):
    r = ladder["rerun"]
    assert r.exit_code == 0 and [o.action for o in r.outcomes] == ["skipped"] * 30


def test_fsnlab_report_rebuilds_it(ladder):
    r = ladder["rerun"]
    original = r.report_path.read_text(encoding="utf-8")
    r.report_path.unlink()
    assert fsnlab_main(["report", str(r.dataset_path.parent)]) == 0
    assert text_of(r.report_path.read_text(encoding="utf-8")) == text_of(original)


def test_sign_changes():
    assert sign_changes([(85, -0.05), (425, 0.02), (1275, 0.15), (4250, -0.01)]) == [
        {"x1": 85, "d1": -0.05, "x2": 425, "d2": 0.02, "x": pytest.approx(math.exp(math.log(85) + 0.05 / 0.07 * math.log(5)))},
        {"x1": 1275, "d1": 0.15, "x2": 4250, "d2": -0.01, "x": pytest.approx(math.exp(math.log(1275) + 0.15 / 0.16 * math.log(4250 / 1275)))},
    ]
    assert sign_changes([(1, 0.1), (2, math.nan), (3, 0.2)]) == []


def test_timings(ladder):
    print("regime ladder smoke seconds:", {k: round(v, 1) for k, v in ladder["seconds"].items()})
    assert sum(ladder["seconds"].values()) < 120


def test_docs_generator_renders_the_committed_ladder(ladder, tmp_path):
    """``python -m fsnlab.study.docs`` writes the ladder's summary into a page's regime-ladder block
    from ``studies/results/regime_ladder.nc`` (the study's study.nc, committed): the same tables as summary.md."""
    import shutil

    from fsnlab.study import docs

    r = ladder["rerun"]
    results = tmp_path / "studies" / "results"
    results.mkdir(parents=True)
    shutil.copy(r.dataset_path, results / "regime_ladder.nc")
    page = tmp_path / "docs" / "quality.md"
    page.parent.mkdir()
    page.write_text("## 8. The regime ladder\n\n<!-- generated: regime-ladder -->\npending\n<!-- end generated -->\n\nProse.\n")
    assert docs.main(["--root", str(tmp_path)]) == 0
    summary = (r.report_path.parent / "summary.md").read_text(encoding="utf-8")
    body = docs.blocks(page.read_text())[0].body
    assert body == summary.rstrip("\n") + "\n" and "| FSN − Transformer | 50 epochs |" in body
    assert page.read_text().endswith("<!-- end generated -->\n\nProse.\n")
    assert docs.main(["--root", str(tmp_path), "--check"]) == 0


def test_a_record_stands_in_for_runs_lost_with_the_machine(ladder, tmp_path, capsys):
    """``--record study.nc``: the runs a committed dataset holds as finished and this pool lacks are
    not trained again; their rows, copy depth included, come from the record; the LR check they
    belong to counts as finished; runs with a directory here are read from it."""
    import shutil

    r = ladder["rerun"]
    record = tmp_path / "record.nc"
    shutil.copy(r.dataset_path, record)
    runs = tmp_path / "runs"
    shutil.copytree(ladder["root"] / "runs", runs)
    lost = [x.name for x in r.manifest if x.tags["budget"] == 1 or x.tags["role"] == LR_CHECK
            or (x.tags["budget"] == 15 and x.tags["arm"] == "fsn")]
    for name in lost:
        shutil.rmtree(runs / name)
    argv = ["--scale", "smoke", "--out", str(tmp_path / "study"), "--runs", str(runs), "--threads", "1", "--quiet",
            "--record", str(record)]
    script = load_script()
    dry = script.run([*argv, "--dry-run"])
    assert dry.exit_code == 0 and len(dry.manifest) == 30  # the long runs are there: their checks are in the record
    lines = capsys.readouterr().out.strip().splitlines()
    assert sum(line.startswith("recorded ") for line in lines) == len(lost)
    assert lines[-1].startswith(f"30 runs: {30 - len(lost)} done, {len(lost)} recorded;")
    again = script.run(argv)
    assert again.exit_code == 0
    actions = {o.name: o.action for o in again.outcomes}
    assert {n for n, a in actions.items() if a == "recorded"} == set(lost)
    assert {a for n, a in actions.items() if n not in lost} == {"skipped"}
    assert not any((runs / n).exists() for n in lost)  # nothing trained
    assert again.manifest.settings["long_lr"] == r.manifest.settings["long_lr"]
    new, old = open_study(again.dataset_path), open_study(r.dataset_path)
    assert list(new["run"].values) == list(old["run"].values)
    assert (new["status"].values == "done").all()
    assert sorted(new["run"].values[new["source"].values == "record"]) == sorted(lost)
    for name in ("final_val_bpc", "val_bpc", "eval_tokens", "tokens_per_parameter", "copy_loss_sum", "token_mean_bits"):
        np.testing.assert_array_equal(new[name].values, old[name].values, err_msg=name)
    np.testing.assert_array_equal(new["copy_count"].values, old["copy_count"].values)
    assert list(new["config"].values) == list(old["config"].values)
    assert (new["copy_count"].values.sum(axis=(1, 2)) > 0).sum() == (old["copy_count"].values.sum(axis=(1, 2)) > 0).sum()
    wrong = script.run([*argv, "--record", str(ladder["root"] / "nothing.nc")])
    assert wrong.exit_code == 2 and "no study dataset" in capsys.readouterr().err
