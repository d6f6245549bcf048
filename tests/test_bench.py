"""The CPU-testable parts of the benchmarks and of the GPU check (issue 14): bench/throughput.py at a tiny
preset and its README table, bench/gpu_kernel_check.py's skip paths (and its accuracy check under the
Triton interpreter), bench/gpu_check.sh's syntax and stage bookkeeping, bench/gpu_check_report.py."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from fsnlab.models import flops

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny steps on a shared 2-core machine: two OpenMP threads contend (60x slower measured), one does not."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rows_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_throughput_smoke_and_markdown(tmp_path, capsys):
    bench = load("throughput")
    out = tmp_path / "throughput.jsonl"
    out.write_text(json.dumps({"kind": "train_step", "preset": "fsn-1m", "context_length": 512, "date": "2000-01-01",
                               "command": "old", "tokens_per_s": 1.0}) + "\n")  # an old row is kept
    argv = ["--rungs", "tiny", "--contexts", "32", "--steps", "1", "--warmup", "0", "--tokens-per-step", "64", "--out", str(out)]
    assert bench.main(argv) == 0
    rows = rows_of(out)
    assert rows[0]["command"] == "old" and len(rows) == 5
    by = {r["family"]: r for r in rows[1:]}
    assert set(by) == {"transformer", "ka", "fsn", "fsn-mf"}
    for family, r in by.items():
        assert "error" not in r, r
        assert r["kind"] == "train_step" and r["context_length"] == 32 and r["batch"] == 2 and r["steps"] == 1
        assert r["commit"] and r["date"] and r["device"] and r["command"].startswith("python bench/throughput.py --rungs tiny")
        assert r["flops_per_token"] == flops(f"{family}-tiny", 32).training
        assert r["achieved_gflops"] == pytest.approx(r["tokens_per_s"] * r["flops_per_token"] / 1e9)
        assert r["efficiency_to_transformer"] == pytest.approx(r["ratio_to_transformer"] / r["parity_ratio"])
        assert isinstance(r["minor_faults_per_step"], int) and r["minor_faults_per_step"] >= 0
        assert len(r["step_seconds"]) == r["steps"]  # the untimed memory step is not among them
        if sys.platform == "linux":
            assert r["peak_mem_mb"] >= 0 and "VmHWM" in r["memory_method"]
    assert by["transformer"]["ratio_to_transformer"] == 1.0
    printed = capsys.readouterr().out
    assert "fsn-tiny" in printed and "GFLOP/s" in printed and "appended 4 rows" in printed

    assert bench.main(["--markdown", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert f"`{by['fsn']['command']}`" in table
    assert "| `transformer-tiny` | 32 | fp32 | off |" in table and "| `fsn-mf-tiny` | 32 |" in table
    assert table.index("`transformer-tiny`") < table.index("`ka-tiny`") < table.index("`fsn-tiny`")


def test_markdown_reads_the_committed_rows(capsys):
    """The rows already in bench/results/ (some without dtype or FLOP fields) still make a table."""
    bench = load("throughput")
    assert bench.main(["--markdown", "--command", "--rungs 1m"]) == 0
    table = capsys.readouterr().out
    assert "| `fsn-1m` | 512 |" in table and "MFLOP/token" in table
    with pytest.raises(SystemExit):
        bench.main(["--markdown", "--commit", "no-such-commit"])


def test_throughput_memory_child_in_process():
    """What ``--memory subprocess`` runs in each fresh process."""
    r = load("throughput")._one("transformer-tiny", 32, 64, "fp32", False)
    assert r["peak_mem_mb"] >= 0 and r["sec_per_step"] > 0


def test_kernel_check_skips_cleanly(tmp_path, monkeypatch):
    check = load("gpu_kernel_check")
    out = tmp_path / "kernel.jsonl"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert check.main(["--out", str(out)]) == 0
    monkeypatch.setitem(sys.modules, "triton", None)  # as if triton were not installed
    assert check.main(["--out", str(out)]) == 0
    rows = rows_of(out)
    assert [r["status"] for r in rows] == ["skipped", "skipped"]
    assert rows[0]["reason"] == "no CUDA device" or rows[0]["reason"].startswith("triton is not installed")
    assert rows[1]["reason"].startswith("triton is not installed")
    assert all(r["commit"] and r["date"] for r in rows)


def test_kernel_check_accuracy_under_the_triton_interpreter():
    """The check's comparison against the torch path, on CPU under TRITON_INTERPRET=1 (float32)."""
    pytest.importorskip("triton")
    code = textwrap.dedent(
        """
        import json, sys, torch
        sys.path.insert(0, "bench")
        import gpu_kernel_check as g
        rows = [g.accuracy_case(m, "float32", (1, 2, 20, 32, 16), torch.device("cpu")) for m in g.MODES]
        print(json.dumps(rows))
        """
    )
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    if res.returncode and ("triton_attention" in res.stderr or "needs triton" in res.stderr):
        pytest.skip(f"the Triton kernel is not usable here: {res.stderr.strip().splitlines()[-1]}")
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout.strip().splitlines()[-1])
    assert [r["mode"] for r in rows] == ["none", "shared_zero_diag", "shared_self", "separate_strict"]
    assert all(r["pass"] for r in rows), rows
    assert rows[0]["max_abs_err"]["z1"] == 0 and "grad_w" in rows[2]["max_abs_err"]


def test_gpu_check_script_syntax():
    subprocess.run(["bash", "-n", str(BENCH / "gpu_check.sh")], check=True)
    res = subprocess.run(["bash", str(BENCH / "gpu_check.sh")], capture_output=True, text=True)
    assert res.returncode == 2 and "usage" in res.stderr


@pytest.mark.skipif(shutil.which("timeout") is None, reason="needs coreutils timeout")
def test_gpu_check_runs_every_stage_whatever_fails(tmp_path):
    """With a python that fails everything (and hangs in pytest), every stage still runs, the hung one is
    cut at its cap, and summary.jsonl has one line per stage."""
    stub = tmp_path / "python"
    stub.write_text('#!/usr/bin/env bash\ncase "$*" in *"-m pytest"*) exec sleep 30 ;; esac\necho stub >&2\nexit 3\n')
    stub.chmod(0o755)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": str(stub), "T_PYTEST": "1", "T_ENV": "5", "T_KERNEL": "5", "T_THROUGHPUT": "5", "T_TRAIN": "5"}
    res = subprocess.run(["bash", str(BENCH / "gpu_check.sh"), str(out)], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    summary = rows_of(out / "summary.jsonl")
    assert [r["stage"] for r in summary] == ["env", "pytest_gpu", "kernel", "throughput", "train_fsn-1m",
                                             "train_transformer-1m", "total"]
    stages = {r["stage"]: r for r in summary}
    assert stages["pytest_gpu"]["timed_out"] is True and stages["pytest_gpu"]["seconds"] < 10
    assert all(r["rc"] == 3 and r["timed_out"] is False for name, r in stages.items() if name not in ("pytest_gpu", "total"))
    assert "--max-steps 800" in stages["train_fsn-1m"]["command"]  # no throughput row: the default
    assert "--data code" in stages["train_transformer-1m"]["command"] and "--device cuda" in stages["train_fsn-1m"]["command"]
    assert (out / "kernel.log").read_text().strip() == "stub"


def test_gpu_check_report_helpers(tmp_path):
    report = load("gpu_check_report")
    tp = tmp_path / "throughput.jsonl"
    tp.write_text("\n".join(json.dumps(r) for r in [
        {"kind": "train_step", "preset": "fsn-1m", "context_length": 512, "compile": False, "tokens_per_s": 100_000.0},
        {"kind": "train_step", "preset": "fsn-1m", "context_length": 512, "compile": True, "tokens_per_s": 900_000.0},
        {"kind": "train_step", "preset": "fsn-1m", "context_length": 2048, "compile": False, "tokens_per_s": 5.0},
        {"kind": "train_step", "preset": "fsn-1m", "context_length": 512, "error": "out of memory"},
    ]) + "\n")
    steps, why = report.planned_steps(tp, "fsn-1m", 80, 65536, 800)
    assert steps == int(80 * 100_000 * 0.75 / 65536) == 91 and "100,000 tokens/s" in why
    assert report.planned_steps(tp, "transformer-1m", 80, 65536, 3000)[0] == 3000

    xml = tmp_path / "j.xml"
    xml.write_text('<testsuites><testsuite><testcase classname="tests.test_gpu" name="test_a" time="1.5"/>'
                   '<testcase classname="tests.test_gpu" name="test_b"><skipped message="needs CUDA"/></testcase>'
                   '<testcase classname="t" name="c"><failure message="boom">trace</failure></testcase>'
                   "</testsuite></testsuites>")
    assert report.main(["junit", str(xml), str(tmp_path / "p.jsonl")]) == 0
    lines = rows_of(tmp_path / "p.jsonl")
    assert [r.get("outcome") for r in lines[:3]] == ["passed", "skipped", "failed"]
    assert lines[-1]["summary"] == {"passed": 1, "failed": 1, "error": 0, "skipped": 1}

    run = tmp_path / "run"
    run.mkdir()
    metrics = [{"event": "train", "step": 10, "tokens": 10, "time": 1.0, "tokens_per_s": 1.0, "bpc": 5.0},
               {"event": "train", "step": 20, "tokens": 20, "time": 2.0, "tokens_per_s": 10.0, "bpc": 4.0},
               {"event": "eval", "step": 20, "tokens": 20, "time": 2.5, "val_bpc": 3.5},
               {"event": "train", "step": 30, "tokens": 30, "time": 3.0, "tokens_per_s": 12.0, "bpc": 3.0},
               {"event": "eval", "step": 30, "tokens": 30, "time": 3.5, "val_bpc": 3.25}]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(m) for m in metrics) + "\n")
    (run / "config.json").write_text(json.dumps({"run": {"total_steps": 30, "tokens_per_step": 1}}))
    assert report.main(["train", str(run), str(tmp_path / "train.jsonl"), "--preset", "fsn-1m", "--rc", "0"]) == 0
    (row,) = rows_of(tmp_path / "train.jsonl")
    assert row["tokens_per_s"] == 11.0 and row["val_bpc"] == 3.25 and row["best_val_bpc"] == 3.25
    assert row["finished"] is True and row["steps"] == 30
