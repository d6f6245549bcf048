"""torchrun with 2 gloo processes on CPU computes what one process with the same global batch does."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch.distributed as dist

from fsnlab.cli import main
from fsnlab.train import load_checkpoint, read_metrics

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo")

COMMON = ["--preset", "fsn-tiny", "--max-steps", "4", "--context-length", "32", "--eval-bytes", "1000",
          "--eval-interval", "2", "--log-interval", "1", "--device", "cpu", "--quiet"]


def test_two_gloo_processes_match_one_process(tmp_path):
    single, double = tmp_path / "single", tmp_path / "ddp"
    assert main(["train", *COMMON, "--batch-size", "4", "--out", str(single)]) == 0

    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "fsnlab", "train", *COMMON, "--batch-size", "2", "--out", str(double)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("val bpc") == 1 + 2  # rank 0 alone reports: two evals and the final line

    a, b = read_metrics(single), read_metrics(double)
    assert [(r["event"], r["step"], r["tokens"]) for r in a] == [(r["event"], r["step"], r["tokens"]) for r in b]
    for ra, rb in zip(a, b):
        key = "loss" if ra["event"] == "train" else "val_bpc"
        assert ra[key] == pytest.approx(rb[key], rel=1e-5)
    ckpt = load_checkpoint(double)
    assert ckpt["world_size"] == 2 and ckpt["tokens"] == 4 * 2 * 2 * 32
