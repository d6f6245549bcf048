"""The study runner: manifests, skip finished runs, resume interrupted ones exactly, record
failures, run N at a time, hand runs to SLURM through submitit (faked here), assemble datasets."""

from __future__ import annotations

import contextlib
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from fsnlab.study import Manifest, StudyError, assemble, execute, open_study, run_name, run_state, write_dataset
from fsnlab.study.manifest import FAILURE_FILE, identity, replace_config
from fsnlab.study.runner import SlurmTask
from fsnlab.train import TrainConfig, read_metrics, train


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: fast on a shared 2-core machine and the same rounding in every run."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny(seed: int = 0, **kw) -> TrainConfig:
    fields = dict(preset="transformer-tiny", data="embedded", seed=seed, device="cpu", max_steps=4, batch_size=2,
                  eval_interval=2, eval_bytes=256, log_interval=2, lr=1e-2)
    fields.update(kw)
    return TrainConfig(**fields)


def manifest_of(*configs: TrainConfig) -> Manifest:
    m = Manifest("matched_budget", "test", "smoke")
    for i, c in enumerate(configs):
        m.add(c, arm=c.preset.rsplit("-", 1)[0], seed=c.seed, corpus="text")
    return m


def mtimes(root: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in sorted(root.rglob("checkpoint.pt"))}


def test_run_names_are_derived_from_the_config():
    a = tiny()
    assert run_name(a) == run_name(tiny())  # deterministic
    assert run_name(a) == run_name(replace_config(a, device="cuda", keep=1))  # runtime fields aside
    assert run_name(a) != run_name(tiny(lr=3e-3)) and run_name(a) != run_name(tiny(seed=1))
    assert run_name(tiny(model_overrides={"kernel": "+delay"}, preset="fsn-tiny")).startswith("fsn-tiny.kdelay.embedded.lr0.01.4st.s0-")
    assert "device" not in identity(a)


def test_manifest_round_trip_and_duplicates(tmp_path):
    m = manifest_of(tiny(0), tiny(1))
    m.add(tiny(0), arm="transformer", seed=0, corpus="text")  # same run, same tags: no-op
    assert len(m) == 2
    with pytest.raises(StudyError):
        m.add(tiny(0), arm="other", seed=0, corpus="text")
    again = Manifest.load(m.save(tmp_path / "manifest.json"))
    assert again.to_dict() == m.to_dict()
    with pytest.raises(StudyError):
        Manifest("x", "x", "huge")


def test_execute_trains_then_skips(tmp_path):
    m = manifest_of(tiny(0), tiny(1))
    first = execute(m, tmp_path, log=None, threads=1)
    assert [o.action for o in first] == ["trained", "trained"] and all(o.status == "done" for o in first)
    before = mtimes(tmp_path)
    second = execute(m, tmp_path, log=None, threads=1)
    assert [o.action for o in second] == ["skipped", "skipped"]
    assert mtimes(tmp_path) == before  # nothing was written

    ds = assemble(m, tmp_path)
    assert ds.sizes["run"] == 2 and ds.sizes["eval"] == 2  # evaluations at steps 2 and 4
    assert list(ds["status"].values) == ["done", "done"] and list(ds["seed"].values) == [0, 1]
    assert np.isfinite(ds["final_val_bpc"].values).all()
    assert ds["eval_step"].values[0].tolist() == [2.0, 4.0]
    cfg = json.loads(str(ds["config"].values[0]))
    assert cfg["train"]["seed"] == 0 and cfg["run"]["total_steps"] == 4
    path = write_dataset(ds, tmp_path / "study")
    back = open_study(tmp_path / "study")
    assert back.attrs["study"] == "matched_budget" and back["val_bpc"].shape == (2, 2)
    np.testing.assert_array_equal(back["val_bpc"].values, ds["val_bpc"].values)
    assert path.name == "study.nc"


def test_interrupted_run_is_resumed_exactly(tmp_path):
    config = tiny(seed=3)
    m = manifest_of(config)
    run_dir = tmp_path / m.runs[0].name
    train(config, run_dir, quiet=True, stop_at=2)  # as if killed after step 2
    assert run_state(run_dir).status == "partial"
    [outcome] = execute(m, tmp_path, log=None, threads=1)
    assert outcome.action == "resumed" and outcome.status == "done" and outcome.step == 4
    straight = train(config, tmp_path / "straight", quiet=True)
    assert outcome.val_bpc == straight.val.bpc  # bit for bit the run that was never interrupted
    evals = [r["step"] for r in read_metrics(run_dir) if r["event"] == "eval"]
    assert evals == [2, 4]


def test_failed_run_is_recorded_and_left_alone(tmp_path):
    bad = tiny(data=f"text:{tmp_path / 'missing.txt'}")
    good = tiny(seed=1)
    m = manifest_of(bad, good)
    first = execute(m, tmp_path / "runs", log=None, threads=1)
    assert first[0].action == "failed" and "DataError" in first[0].error
    assert first[1].action == "trained"
    assert (tmp_path / "runs" / m.runs[0].name / FAILURE_FILE).is_file()
    second = execute(m, tmp_path / "runs", log=None, threads=1)
    assert [o.action for o in second] == ["skipped", "skipped"] and second[0].status == "failed"
    (tmp_path / "missing.txt").write_bytes(b"In the beginning God created the heaven and the earth. " * 40)
    third = execute(m, tmp_path / "runs", log=None, threads=1, retry_failed=True)
    assert third[0].action == "trained" and third[0].status == "done"
    assert not (tmp_path / "runs" / m.runs[0].name / FAILURE_FILE).exists()
    ds = assemble(m, tmp_path / "runs")
    assert list(ds["status"].values) == ["done", "done"]


def test_a_run_directory_holding_another_run_is_refused(tmp_path):
    m = manifest_of(tiny())
    run_dir = tmp_path / m.runs[0].name
    train(tiny(lr=3e-3), run_dir, quiet=True, stop_at=1)
    with pytest.raises(StudyError, match="different run"):
        execute(m, tmp_path, log=None)


def test_process_pool(tmp_path):
    m = manifest_of(tiny(0, max_steps=2, eval_interval=0), tiny(1, max_steps=2, eval_interval=0))
    outcomes = execute(m, tmp_path, jobs=2, threads=1, devices=["cpu"], log=None)
    assert sorted(o.action for o in outcomes) == ["trained", "trained"]
    assert all(run_state(tmp_path / r.name).status == "done" for r in m)
    assert [o.action for o in execute(m, tmp_path, jobs=2, log=None)] == ["skipped", "skipped"]


class _FakeJob:
    count = 0

    def __init__(self, fn):
        _FakeJob.count += 1
        self.job_id = f"42_{_FakeJob.count}"
        self._fn = fn

    def result(self):
        return self._fn()


class _FakeExecutor:
    instances: list = []

    def __init__(self, folder, cluster=None):
        self.folder, self.cluster, self.params, self.submitted = folder, "slurm", {}, []
        _FakeExecutor.instances.append(self)

    def update_parameters(self, **kw):
        self.params.update(kw)

    @contextlib.contextmanager
    def batch(self):
        yield

    def submit(self, fn, *args):
        self.submitted.append(fn)
        return _FakeJob(fn)


class _FakeSlurmJob:
    done_state = True

    def __init__(self, folder, job_id):
        self.job_id = job_id

    def done(self, force_check=False):
        return _FakeSlurmJob.done_state


@pytest.fixture
def fake_submitit(monkeypatch):
    module = types.ModuleType("submitit")
    module.AutoExecutor = _FakeExecutor
    module.SlurmJob = _FakeSlurmJob
    module.helpers = types.SimpleNamespace(DelayedSubmission=lambda fn, *a, **k: ("delayed", fn, a, k))
    monkeypatch.setitem(sys.modules, "submitit", module)
    _FakeExecutor.instances.clear()
    return module


def test_slurm_through_submitit(tmp_path, fake_submitit):
    m = manifest_of(tiny(0, max_steps=2, eval_interval=0), tiny(1, max_steps=2, eval_interval=0))
    # not waiting: submitted, recorded, nothing trained here yet
    out = execute(m, tmp_path / "runs", executor="slurm", slurm={"slurm_partition": "gpu"}, wait=False,
                  slurm_folder=tmp_path / "slurm", log=None)
    assert [o.action for o in out] == ["submitted", "submitted"]
    ex = _FakeExecutor.instances[-1]
    assert ex.params["slurm_partition"] == "gpu" and ex.params["gpus_per_node"] == 1
    assert str(ex.folder).endswith("%j") and all(isinstance(t, SlurmTask) for t in ex.submitted)
    jobs = json.loads((tmp_path / "slurm" / "jobs.json").read_text())
    assert set(jobs) == {r.name for r in m}
    # a rerun while those jobs are still queued submits nothing again
    _FakeSlurmJob.done_state = False
    out = execute(m, tmp_path / "runs", executor="slurm", slurm_folder=tmp_path / "slurm", log=None)
    assert [o.action for o in out] == ["queued", "queued"] and not _FakeExecutor.instances[-1].submitted
    # once they are gone (the fake never ran them), a rerun submits and waits; the jobs train the runs
    _FakeSlurmJob.done_state = True
    out = execute(m, tmp_path / "runs", executor="slurm", slurm_folder=tmp_path / "slurm", log=None)
    assert [o.action for o in out] == ["trained", "trained"]
    assert [o.action for o in execute(m, tmp_path / "runs", executor="slurm", slurm_folder=tmp_path / "slurm", log=None)] == ["skipped", "skipped"]
    task = SlurmTask(str(tmp_path / "x"), tiny().to_dict())
    delayed = task.checkpoint()
    assert delayed[0] == "delayed" and delayed[1] is task  # requeued as itself: it resumes the run


def test_slurm_without_submitit_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit -> ImportError
    with pytest.raises(StudyError, match="pip install"):
        execute(manifest_of(tiny()), tmp_path, executor="slurm", log=None)
    with pytest.raises(StudyError):
        execute(manifest_of(tiny()), tmp_path, executor="pbs", log=None)


def test_a_snapshot_carries_a_pool_to_another_machine(tmp_path):
    """``fsnlab.study.snapshot``: the runs a record lacks (here: one partial, one finished) are
    packed, restored into an empty pool, and the partial one resumes there to the same result as a
    run never moved; runs the record holds are left out; restore overwrites nothing."""
    from fsnlab.study import snapshot

    partial, finished, recorded = tiny(seed=3), tiny(seed=4), tiny(seed=5)
    pool = tmp_path / "pool"
    train(partial, pool / run_name(partial), quiet=True, stop_at=2)
    execute(manifest_of(finished, recorded), pool, log=None, threads=1)
    (pool / "empty").mkdir()  # a run directory with no checkpoint is not packed
    write_dataset(assemble(manifest_of(recorded), pool), tmp_path / "record")
    archive = tmp_path / "results" / "pool.tar"
    packed = snapshot.save(pool, archive, tmp_path / "record" / "study.nc")
    assert sorted(packed) == sorted([run_name(partial), run_name(finished)])
    assert snapshot.main(["save", str(pool), str(tmp_path / "all.tar")]) == 0
    import tarfile

    with tarfile.open(tmp_path / "all.tar") as tar:
        names = tar.getnames()
    assert {n.split("/")[0] for n in names} == {run_name(c) for c in (partial, finished, recorded)}
    assert not any(n.endswith(("best.pt", ".lock")) or "checkpoint-" in n for n in names)

    other = tmp_path / "other"
    assert sorted(snapshot.restore(archive, other)) == sorted(packed)
    assert run_state(other / run_name(partial)).status == "partial" and run_state(other / run_name(finished)).status == "done"
    assert snapshot.restore(archive, other) == []  # never overwrites
    outcomes = {o.name: o for o in execute(manifest_of(partial, finished), other, log=None, threads=1)}
    assert outcomes[run_name(partial)].action == "resumed" and outcomes[run_name(finished)].action == "skipped"
    straight = train(partial, tmp_path / "straight", quiet=True)
    assert outcomes[run_name(partial)].val_bpc == straight.val.bpc
    assert snapshot.main(["restore", str(tmp_path / "missing.tar"), str(other)]) == 2
