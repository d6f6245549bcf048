"""The paper-scale manifests (spec §7.2): built, not trained (--dry-run)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_study(name: str):
    spec = importlib.util.spec_from_file_location(f"fsnlab_study_script_{name}", ROOT / "studies" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def paper(name: str, tmp_path: Path, *extra: str):
    args = ["--scale", "paper", "--data", "enwik8:data/enwik8.zip", "--out", str(tmp_path / name),
            "--runs", str(tmp_path / "runs"), "--dry-run", *extra]
    result = load_study(name).run(args)
    assert result.exit_code == 0
    return result.manifest


EXPECTED = {  # runs at paper scale: 5 seeds headline, 3 elsewhere
    "matched_budget": 4 * 5 + 4 * 3,
    "baseline_tuning": 2 * 4 * 3,
    "copy_depth": 4 * 5,
    "ablation_ladder": 5 * 3,
    "scale_ladder": 3 * 2 * 3,
    "kernel_reading": 2 * 3,
}


@pytest.mark.parametrize("name", EXPECTED)
def test_paper_manifest(name, tmp_path, capsys):
    m = paper(name, tmp_path)
    assert m.scale == "paper" and len(m) == EXPECTED[name]
    for run in m:
        c = run.config
        assert c.batch_size == 64 and c.context_length == 512  # 32,768 tokens per step
        assert c.epochs == 30 and c.max_steps is None and c.eval_bytes is None and c.eval_interval == 0
        assert c.data.startswith("enwik8:/") or c.data == "code"  # absolute path: run names do not depend on the cwd
        assert c.preset.rsplit("-", 1)[-1] in ("1m", "2m", "4m")
    if name == "baseline_tuning":
        assert sorted({r.config.lr for r in m}) == [1e-3, 2e-3, 3e-3, 5e-3]
    else:
        assert {r.config.lr for r in m} == {3e-3}
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(m) + 1 and lines[-1].startswith(f"{len(m)} runs: {len(m)} new;")  # one per run, then the counts


def test_paper_runs_are_shared(tmp_path):
    names = {n: {r.name for r in paper(n, tmp_path)} for n in EXPECTED}
    assert names["copy_depth"] <= names["matched_budget"]
    assert names["kernel_reading"] <= names["matched_budget"]
    assert {r for r in names["ablation_ladder"] if ".k" not in r} <= names["matched_budget"]  # the full kernel
    assert {r for r in names["scale_ladder"] if "-1m." in r} <= names["matched_budget"]


def test_paper_options(tmp_path):
    m = paper("matched_budget", tmp_path, "--epochs", "50", "--lr", "fsn=5e-3", "--corpora", "text", "--seeds", "2")
    assert len(m) == 4 * 2 and all(r.config.epochs == 50 for r in m)
    assert {r.tags["arm"]: r.config.lr for r in m} == {"fsn": 5e-3, "transformer": 3e-3, "ka": 3e-3, "fsn-mf": 3e-3}
    m = paper("scale_ladder", tmp_path, "--rungs", "1m,2m,4m,8m", "--seeds", "1")
    assert sorted({r.tags["rung"] for r in m}) == ["1m", "2m", "4m", "8m"]
    m = paper("ablation_ladder", tmp_path, "--kernels", "base,full")
    assert sorted({r.tags["kernel"] for r in m}) == ["base", "full"]


def test_paper_scale_needs_enwik8(tmp_path, capsys):
    result = load_study("matched_budget").run(["--scale", "paper", "--out", str(tmp_path), "--runs", str(tmp_path), "--dry-run"])
    assert result.exit_code == 2
    assert "--data enwik8:PATH" in capsys.readouterr().err
    result = load_study("matched_budget").run(["--scale", "paper", "--data", "enwik8:x", "--lr", "bogus=1", "--dry-run",
                                               "--out", str(tmp_path), "--runs", str(tmp_path)])
    assert result.exit_code == 2
