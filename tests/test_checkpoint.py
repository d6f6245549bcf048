"""Checkpoint files: weights-only loading, atomic writes under a simulated kill, keep-last-K/best,
RNG round trips, and one-line errors for missing, corrupt and truncated files."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from fsnlab.errors import CheckpointError
from fsnlab.train import TrainConfig, load_checkpoint, model_from_checkpoint, train
from fsnlab.train.checkpoint import CheckpointStore, atomic_save, resolve_checkpoint, step_checkpoints
from fsnlab.train.rng import capture_rng, restore_rng

TINY = dict(preset="transformer-tiny", context_length=32, batch_size=4, eval_bytes=1000, log_interval=1)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished 6-step run with checkpoints at steps 2, 4 and 6 (keep 2)."""
    out = tmp_path_factory.mktemp("ckpt") / "run"
    train(TrainConfig(**TINY, max_steps=6, eval_interval=2, keep=2), out, quiet=True)
    return out


def test_checkpoint_loads_weights_only_and_holds_everything(run_dir):
    ckpt = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    for key in ("model", "model_config", "train_config", "optimizer", "rng", "step", "tokens", "best_val_bpc"):
        assert key in ckpt
    assert ckpt["step"] == 6 and ckpt["tokens"] == 6 * 4 * 32
    assert set(ckpt["rng"]) == {"torch", "cuda", "numpy", "python", "data"}
    assert not any(k.startswith(("_orig_mod.", "module.")) for k in ckpt["model"])
    model = model_from_checkpoint(ckpt)
    assert model.config.family == "transformer" and model.config.context_length == 32


def test_keep_last_k_and_best(run_dir):
    assert [s for s, _ in step_checkpoints(run_dir)] == [4, 6]
    best = load_checkpoint(run_dir / "best.pt")
    assert best["step"] == best["best_step"]
    assert best["best_val_bpc"] == load_checkpoint(run_dir)["best_val_bpc"]
    assert not list(run_dir.glob(".*.tmp"))


def test_run_directory_means_its_latest_checkpoint(run_dir, tmp_path):
    assert resolve_checkpoint(run_dir) == run_dir / "checkpoint.pt"
    with pytest.raises(CheckpointError, match="has no checkpoint.pt"):
        resolve_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="no checkpoint file"):
        load_checkpoint(tmp_path / "missing.pt")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_checkpoint_is_a_one_line_error(run_dir, tmp_path, damage):
    data = (run_dir / "checkpoint.pt").read_bytes()
    bad = tmp_path / "bad.pt"
    bad.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"not a checkpoint" * 10, "empty": b""}[damage])
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(bad)
    assert "\n" not in str(info.value) and "corrupt" in str(info.value)


def test_unsafe_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format_version": 1, "payload": object()}, path)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_kill_during_save_leaves_previous_checkpoint(run_dir, tmp_path, monkeypatch):
    """A save that dies half way (torch.save writes part of the file, then the process 'dies')
    must leave the previous checkpoint.pt complete and loadable."""
    store = CheckpointStore(tmp_path, keep=2)
    good = load_checkpoint(run_dir)
    store.save(good, is_best=False)

    real_save = torch.save

    def dying_save(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        f.truncate(f.tell() // 3)  # a partial file on disk ...
        raise KeyboardInterrupt("killed")  # ... and the process is gone

    monkeypatch.setattr(torch, "save", dying_save)
    newer = dict(good, step=good["step"] + 1)
    with pytest.raises(KeyboardInterrupt):
        store.save(newer, is_best=True)
    monkeypatch.undo()

    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == good["step"]
    assert not (tmp_path / "best.pt").exists()
    assert [s for s, _ in step_checkpoints(tmp_path)] == [good["step"]]


def test_failed_rename_keeps_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "checkpoint.pt"
    atomic_save({"step": 1}, target)

    def failing_replace(src, dst):
        raise OSError("disk gone")

    monkeypatch.setattr("os.replace", failing_replace)
    with pytest.raises(OSError):
        atomic_save({"step": 2}, target)
    monkeypatch.undo()
    assert torch.load(target, weights_only=True) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_rng_state_round_trip_is_weights_only_safe(tmp_path):
    gen = torch.Generator().manual_seed(3)
    random.seed(1), np.random.seed(2), torch.manual_seed(4)
    state = capture_rng(gen)
    atomic_save(state, tmp_path / "rng.pt")
    expected = (random.random(), np.random.rand(), torch.rand(1).item(), torch.rand(1, generator=gen).item())
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    gen2 = torch.Generator()
    restore_rng(torch.load(tmp_path / "rng.pt", weights_only=True), gen2)
    assert (random.random(), np.random.rand(), torch.rand(1).item(), torch.rand(1, generator=gen2).item()) == expected
