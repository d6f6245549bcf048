"""The training loop: exact resume, NaN stop, run directory, schedule, epochs and accumulation."""

from __future__ import annotations

import json
import math
import os
import signal

import pytest
import torch

from fsnlab.cli import main
from fsnlab.errors import ConfigError, TrainingError
from fsnlab.models import build_model
from fsnlab.train import TrainConfig, load_checkpoint, read_metrics, resume, train
from fsnlab.train.optim import build_optimizer, lr_at, set_lr
from fsnlab.train.trainer import Trainer

TINY = dict(context_length=32, batch_size=4, eval_bytes=1000)


def losses(run_dir):
    return [(r["step"], r["loss"]) for r in read_metrics(run_dir) if r["event"] == "train"]


def evals(run_dir):
    return [(r["step"], r["val_bpc"]) for r in read_metrics(run_dir) if r["event"] == "eval"]


def test_interrupted_and_resumed_run_matches_straight_run_bit_for_bit(tmp_path):
    """N steps straight == N/2 steps, stop, resume to N: every logged loss, every val bpc and the
    final weights are identical. log_interval=3 makes the stop fall inside a logging window."""
    config = TrainConfig(preset="fsn-tiny", max_steps=8, eval_interval=4, log_interval=3, **TINY)
    straight = train(config, tmp_path / "straight", quiet=True)

    first = train(config, tmp_path / "resumed", quiet=True, stop_at=5)
    assert first.step == 5 and not first.finished
    second = resume(tmp_path / "resumed", quiet=True)
    assert second.finished

    assert losses(tmp_path / "straight") == losses(tmp_path / "resumed")
    assert [s for s, _ in losses(tmp_path / "straight")] == [3, 6, 8]
    assert evals(tmp_path / "straight") == evals(tmp_path / "resumed")
    assert straight.val.bpc == second.val.bpc
    a, b = load_checkpoint(straight.checkpoint), load_checkpoint(second.checkpoint)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_resume_from_an_older_checkpoint_through_the_cli(tmp_path, capsys):
    """Resuming from step 2's checkpoint of a finished run is refused (nothing deleted) unless
    --rewind, which drops the later checkpoints and metrics and re-creates them identically."""
    run = tmp_path / "run"
    args = ["train", "--preset", "transformer-tiny", "--max-steps", "6", "--eval-interval", "2", "--keep", "5",
            "--context-length", "32", "--batch-size", "4", "--eval-bytes", "1000", "--log-interval", "1",
            "--out", str(run), "--quiet"]
    assert main(args) == 0
    expected_losses, expected_evals = losses(run), evals(run)
    before = sorted(p.name for p in run.iterdir())
    assert main(["train", "--resume", str(run / "checkpoint-2.pt"), "--quiet"]) == 2
    assert "--rewind" in capsys.readouterr().err
    assert sorted(p.name for p in run.iterdir()) == before and load_checkpoint(run / "best.pt")["step"] == 6
    assert main(["train", "--resume", str(run / "checkpoint-2.pt"), "--rewind", "--quiet"]) == 0
    assert losses(run) == expected_losses and evals(run) == expected_evals
    assert load_checkpoint(run)["step"] == 6
    assert "val bpc" in capsys.readouterr().out


def test_resume_refuses_changed_settings(tmp_path):
    config = TrainConfig(preset="transformer-tiny", max_steps=2, **TINY)
    train(config, tmp_path, quiet=True, stop_at=1)
    with pytest.raises(ConfigError, match="--lr"):
        resume(tmp_path, {"lr": 0.5})
    with pytest.raises(ConfigError, match="holds a transformer model"):
        resume(tmp_path, {"preset": "fsn-tiny"})
    with pytest.raises(ConfigError, match="already holds a run"):
        train(config, tmp_path)


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    real = Trainer._forward_loss

    def poisoned(self, x, y):
        loss = real(self, x, y)
        return loss * math.nan if self.step >= 3 else loss

    monkeypatch.setattr(Trainer, "_forward_loss", poisoned)
    run = tmp_path / "run"
    config = TrainConfig(preset="fsn-tiny", max_steps=8, eval_interval=2, log_interval=1, **TINY)
    with pytest.raises(TrainingError, match="non-finite loss at step 4"):
        train(config, run, quiet=True)
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 2
    assert all(torch.isfinite(t).all() for t in ckpt["model"].values())
    assert max(r["step"] for r in read_metrics(run)) == 3

    rc = main(["train", "--preset", "fsn-tiny", "--max-steps", "8", "--context-length", "32", "--batch-size", "4",
               "--eval-bytes", "1000", "--out", str(tmp_path / "cli"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "non-finite loss" in err and "Traceback" not in err


def test_run_directory_contents(tmp_path):
    run = tmp_path / "run"
    result = train(TrainConfig(preset="fsn-tiny", max_steps=4, log_interval=2, **TINY), run, quiet=True)
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["family"] == "fsn" and config["model"]["context_length"] == 32
    assert config["train"]["preset"] == "fsn-tiny" and config["data"]["spec"] == "embedded"
    assert config["run"]["tokens_per_step"] == 4 * 32 and config["run"]["total_steps"] == 4
    assert config["run"]["parameters"]["total"] == sum(p.numel() for p in build_model("fsn-tiny").parameters())
    env = json.loads((run / "environment.json").read_text())
    for key in ("fsnlab_version", "git_commit", "torch", "cuda", "device", "hostname", "python", "date"):
        assert key in env
    records = read_metrics(run)
    train_rec = [r for r in records if r["event"] == "train"]
    assert [r["step"] for r in train_rec] == [2, 4]
    for key in ("step", "tokens", "epoch", "lr", "loss", "bpc", "tokens_per_s", "time"):
        assert key in train_rec[0]
    (final,) = [r for r in records if r["event"] == "eval"]
    assert final["step"] == 4 and final["val_bpc"] == pytest.approx(final["val_nats"] / math.log(2))
    assert final["eval_targets"] == 999 and result.val.bpc == final["val_bpc"]
    assert {p.name for p in run.iterdir()} >= {"checkpoint.pt", "checkpoint-4.pt", "best.pt", "metrics.jsonl"}


@pytest.mark.parametrize("minutes, steps", [(1e-9, [1, 2, 3, 4]), (0.0, [4])])
def test_timed_checkpoints_write_a_step_file_without_evaluating(tmp_path, minutes, steps):
    """checkpoint_minutes: once that much wall time has passed since the last checkpoint, the next
    step boundary writes one (1e-9 minutes: every step); evaluation stays at its own schedule (the
    end only, here). 0 turns it off. It is a runtime field: not part of a study run's identity."""
    from fsnlab.study.manifest import run_name
    from fsnlab.train.checkpoint import step_checkpoints

    config = TrainConfig(preset="fsn-tiny", max_steps=4, log_interval=4, keep=10, checkpoint_minutes=minutes, **TINY)
    train(config, tmp_path / "run", quiet=True)
    assert [s for s, _ in step_checkpoints(tmp_path / "run")] == steps
    assert [s for s, _ in evals(tmp_path / "run")] == [4]
    assert run_name(config) == run_name(TrainConfig(preset="fsn-tiny", max_steps=4, log_interval=4, keep=10, **TINY))


def test_epochs_are_tokens_and_trigger_evaluation(tmp_path):
    """4,000 bytes -> 3,600 train bytes; 128 tokens/step -> epoch boundary inside step 29."""
    text = tmp_path / "corpus.txt"
    text.write_bytes(bytes(range(32, 127)) * 42 + b"x" * 10)
    config = TrainConfig(preset="transformer-tiny", data=f"text:{text}", epochs=1.5, max_steps=None,
                         context_length=32, batch_size=4, log_interval=50)
    result = train(config, tmp_path / "run", quiet=True)
    assert result.total_steps == math.ceil(1.5 * 3600 / 128)
    eval_records = [r for r in read_metrics(tmp_path / "run") if r["event"] == "eval"]
    assert [r["step"] for r in eval_records] == [29, result.total_steps]
    assert eval_records[0]["epoch"] == pytest.approx(29 * 128 / 3600)


def test_gradient_accumulation_matches_a_larger_batch(tmp_path):
    common = dict(preset="transformer-tiny", max_steps=3, log_interval=1, context_length=32, eval_bytes=500)
    train(TrainConfig(batch_size=8, **common), tmp_path / "big", quiet=True)
    train(TrainConfig(batch_size=4, grad_accum=2, **common), tmp_path / "accum", quiet=True)
    for (_, a), (_, b) in zip(losses(tmp_path / "big"), losses(tmp_path / "accum")):
        assert a == pytest.approx(b, rel=1e-5)


def test_schedule_warmup_cosine_floor():
    config = TrainConfig(lr=1.0, warmup_frac=0.02, min_lr_ratio=0.1)
    assert lr_at(0, 100, config) == pytest.approx(0.5)  # 2 warmup steps
    assert lr_at(1, 100, config) == pytest.approx(1.0)
    assert lr_at(100, 100, config) == pytest.approx(0.1)
    values = [lr_at(s, 100, config) for s in range(1, 101)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_optimizer_groups(tmp_path):
    model = build_model("fsn-tiny")
    opt = build_optimizer(model, TrainConfig(angle_lr_scale=10.0, scalar_lr_scale=3.0), torch.device("cpu"))
    groups = {g["group"]: g for g in opt.param_groups}
    assert groups["decay"]["weight_decay"] == 0.1
    assert groups["no_decay"]["weight_decay"] == 0.0 and groups["angle"]["weight_decay"] == 0.0
    assert groups["angle"]["lr_scale"] == 10.0 and opt.defaults["betas"] == (0.9, 0.95)
    assert groups["no_decay"]["lr_scale"] == 3.0 and groups["decay"]["lr_scale"] == 1.0
    set_lr(opt, 2e-3)
    assert groups["angle"]["lr"] == pytest.approx(2e-2) and groups["no_decay"]["lr"] == pytest.approx(6e-3)
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))


@pytest.mark.parametrize(
    "field, value",
    [("batch_size", 0), ("max_steps", -1), ("lr", 0.0), ("eval_bytes", 0), ("warmup_frac", 1.5), ("keep", -1),
     ("scalar_lr_scale", -1.0), ("checkpoint_minutes", -1.0), ("checkpoint_minutes", float("inf"))],
)
def test_invalid_train_config(field, value):
    with pytest.raises(ConfigError):
        TrainConfig(**{field: value}).validate()


def test_compiled_run_saves_uncompiled_weights(tmp_path, monkeypatch):
    """--compile trains through torch.compile (the eager backend here, to skip C++ codegen) but
    saves the plain module's state_dict: no ``_orig_mod.`` prefixes."""
    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model: real_compile(model, backend="eager"))
    result = train(TrainConfig(preset="transformer-tiny", max_steps=2, compile=True, **TINY), tmp_path, quiet=True)
    state = load_checkpoint(result.checkpoint)["model"]
    assert state.keys() == build_model("transformer-tiny", context_length=32).state_dict().keys()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_run_uses_fused_adamw_and_bf16(tmp_path):
    config = TrainConfig(preset="fsn-tiny", max_steps=4, device="cuda", log_interval=1, **TINY)
    result = train(config, tmp_path / "run", quiet=True)
    ckpt = load_checkpoint(result.checkpoint)
    assert all(g["fused"] for g in ckpt["optimizer"]["param_groups"])
    assert math.isfinite(result.val.bpc)
    resume(tmp_path / "run", {"device": "cuda"}, quiet=True)  # a finished run: nothing to do


def test_stop_signal_checkpoints_at_the_step_boundary_and_resumes_exactly(tmp_path, monkeypatch):
    config = TrainConfig(preset="transformer-tiny", max_steps=6, log_interval=1, **TINY)
    train(config, tmp_path / "straight", quiet=True)
    real = Trainer._forward_loss

    def signalled(self, x, y):
        if self.step == 2:  # during step 3
            os.kill(os.getpid(), signal.SIGTERM)
        return real(self, x, y)

    monkeypatch.setattr(Trainer, "_forward_loss", signalled)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "run", quiet=True)
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "run")["step"] == 3
    resume(tmp_path / "run", quiet=True)
    assert losses(tmp_path / "run") == losses(tmp_path / "straight")
