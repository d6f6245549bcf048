"""GPU tests (``pytest -m gpu``; skipped without CUDA), run by ``bench/gpu_check.sh`` (issue 14, item 5).

On CUDA the trainer runs the model under bf16 autocast, with fused AdamW, and ``--compile`` wraps it in
``torch.compile``. A compiled bf16 run must still resume exactly: N steps straight give the same losses,
validation and weights, bit for bit, as N/2 steps, a stop and a resume (the check of
``tests/test_train.py`` on CPU). Deterministic algorithms are switched on (warn only) for that test, and
``CUBLAS_WORKSPACE_CONFIG`` is set before CUDA starts, so that a reduction order that changes from call
to call shows up as a real failure, not as noise of the platform.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import pytest  # noqa: E402
import torch  # noqa: E402

from fsnlab.train import TrainConfig, load_checkpoint, read_metrics, resume, train  # noqa: E402

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(context_length=64, batch_size=16, eval_bytes=4096)


def losses(run_dir):
    return [(r["step"], r["loss"]) for r in read_metrics(run_dir) if r["event"] == "train"]


def evals(run_dir):
    return [(r["step"], r["val_bpc"]) for r in read_metrics(run_dir) if r["event"] == "eval"]


@pytest.fixture
def deterministic():
    enabled, warn_only = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    yield
    torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


def test_compiled_bf16_fused_adamw_run_resumes_exactly(tmp_path, monkeypatch, deterministic):
    compiled = []
    real_compile = torch.compile

    def counting_compile(model, *args, **kwargs):
        compiled.append(type(model).__name__)
        return real_compile(model, *args, **kwargs)

    monkeypatch.setattr(torch, "compile", counting_compile)
    config = TrainConfig(preset="fsn-tiny", device="cuda", compile=True, max_steps=8, eval_interval=4, log_interval=2, **TINY)
    straight = train(config, tmp_path / "straight", quiet=True)
    first = train(config, tmp_path / "resumed", quiet=True, stop_at=5)
    assert first.step == 5 and not first.finished
    second = resume(tmp_path / "resumed", quiet=True)
    assert second.finished
    assert compiled == ["FSN"] * 3  # every session trained through torch.compile

    assert losses(tmp_path / "straight") == losses(tmp_path / "resumed")
    assert evals(tmp_path / "straight") == evals(tmp_path / "resumed")
    a, b = load_checkpoint(straight.checkpoint), load_checkpoint(second.checkpoint)
    assert all(g["fused"] for g in b["optimizer"]["param_groups"])
    differ = {k: (a["model"][k].float() - b["model"][k].float()).abs().max().item()
              for k in a["model"] if not torch.equal(a["model"][k], b["model"][k])}
    assert not differ, f"weights after resume differ from the straight run: {differ}"


def test_cuda_training_runs_under_bf16_autocast(tmp_path, monkeypatch):
    """The trainer's forward pass runs its matmuls in bf16 on CUDA (phases and trig stay fp32)."""
    import fsnlab.train.trainer as trainer

    seen = set()
    real_build = trainer.build_model

    def build_and_hook(*args, **kwargs):
        model = real_build(*args, **kwargs)
        model.readout.proj.register_forward_hook(lambda m, i, out: seen.add(out.dtype))
        return model

    monkeypatch.setattr(trainer, "build_model", build_and_hook)
    result = train(TrainConfig(preset="fsn-tiny", device="cuda", max_steps=2, **TINY), tmp_path / "run", quiet=True)
    assert torch.bfloat16 in seen
    assert all(g["fused"] for g in load_checkpoint(result.checkpoint)["optimizer"]["param_groups"])


def test_throughput_bench_on_cuda(tmp_path):
    """bench/throughput.py on CUDA: bf16, compiled, one interleaved step of the tiny rung."""
    spec = importlib.util.spec_from_file_location("bench_throughput", ROOT / "bench" / "throughput.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "t.jsonl"
    assert bench.main(["--device", "cuda", "--dtype", "bf16", "--compile", "--rungs", "tiny", "--contexts", "64",
                       "--steps", "1", "--tokens-per-step", "1024", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 4 and all("error" not in r for r in rows), rows
    assert all(r["compile"] and r["dtype"] == "bf16" and r["peak_mem_mb"] > 0 for r in rows)
