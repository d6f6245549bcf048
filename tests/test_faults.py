"""Fault injection (issue 15): nothing lost, nothing silently wrong, one clear line for every bad input.

Each fault is deterministic: kill -9 in the middle of a checkpoint write (a subprocess that kills
itself there), a concurrent writer (a real second process paused inside a step), corrupt weights,
unwritable and impossible outputs, SIGINT/SIGTERM exit codes and resumability, a divergent run,
edge inputs, and the explorer's Host check. fsn-tiny, a few steps of 4 x 32 bytes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fsnlab.cli import main
from fsnlab.errors import CheckpointError
from fsnlab.train import TrainConfig, load_checkpoint, model_from_checkpoint, train
from fsnlab.train.checkpoint import payload_checksum
from fsnlab.train.lock import LOCK_NAME, read_lock
from fsnlab.train.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
CONFIG = dict(preset="fsn-tiny", max_steps=6, eval_interval=2, context_length=32, batch_size=4, eval_bytes=500,
              log_interval=1)
CLI = ["--preset", "fsn-tiny", "--max-steps", "6", "--eval-interval", "2", "--context-length", "32",
       "--batch-size", "4", "--eval-bytes", "500", "--log-interval", "1", "--quiet"]


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The run never interrupted: 6 steps, checkpoints at 2, 4, 6."""
    out = tmp_path_factory.mktemp("faults") / "straight"
    train(TrainConfig(**CONFIG), out, quiet=True)
    return out


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run)["model"]


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = weights(a), weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def one_error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"fsnlab {command}: error: ") and "Traceback" not in err
    return lines[0]


def run_python(script: str, *args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-c", script, *args], env=env, **kwargs)


# -- checkpoints: independent files, checksums, corrupt weights ---------------------------------------


def test_checkpoint_files_are_independent_and_carry_a_checksum(straight):
    inodes = {os.stat(straight / name).st_ino for name in ("checkpoint.pt", "checkpoint-6.pt", "best.pt")}
    assert len(inodes) == 3  # no hard links: damage to one is not damage to all
    ckpt = torch.load(straight / "checkpoint.pt", weights_only=True)
    assert ckpt["checksum"] == {"algorithm": "sha256", "digest": payload_checksum(ckpt)}
    assert not (straight / LOCK_NAME).exists()  # released on exit


def corrupt(path: Path) -> None:
    """XOR 64 bytes in the middle of the file (inside the tensor data): torch still loads it."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    for i in range(middle, middle + 64):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))
    torch.load(path, weights_only=True)  # the damage is invisible to torch itself


@pytest.fixture
def damaged(straight, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(straight, run)
    corrupt(run / "checkpoint.pt")
    return run


@pytest.mark.parametrize("command", ["eval", "sample", "export", "verify", "probe", "resume"])
def test_corrupt_weights_are_refused_by_every_reader(command, damaged, tmp_path, capsys):
    argv = {
        "eval": ["eval", str(damaged)],
        "sample": ["sample", str(damaged), "--length", "4"],
        "export": ["export", str(damaged), "--safetensors", str(tmp_path / "w.safetensors")],
        "verify": ["verify", str(damaged)],
        "probe": ["probe", str(damaged), "--text", "In the beginning", "--out", str(tmp_path / "p.zarr")],
        "resume": ["train", "--resume", str(damaged)],
    }[command]
    assert main(argv) == 2
    line = one_error_line(capsys, argv[0])
    assert f"{damaged / 'checkpoint.pt'} is corrupt" in line and "checksum" in line
    if command == "resume":  # ... and says which intact step checkpoint to resume from
        assert f"newest intact step checkpoint is {damaged / 'checkpoint-6.pt'}" in line
    assert not (tmp_path / "w.safetensors").exists() and not (tmp_path / "p.zarr").exists()


def test_checkpoint_without_checksum_still_loads(straight, tmp_path):
    ckpt = torch.load(straight / "checkpoint.pt", weights_only=True)
    del ckpt["checksum"]  # as written before checkpoints carried one
    torch.save(ckpt, tmp_path / "old.pt")
    assert load_checkpoint(tmp_path / "old.pt")["step"] == 6


def test_a_state_dict_mismatch_keeps_its_detail(straight):
    ckpt = load_checkpoint(straight)
    key = next(iter(ckpt["model"]))
    ckpt["model"] = {k: v for k, v in ckpt["model"].items() if k != key}
    with pytest.raises(CheckpointError) as info:
        model_from_checkpoint(ckpt)
    message = str(info.value)
    assert "\n" not in message and "Missing key(s)" in message and key in message


# -- kill -9 during a checkpoint write ----------------------------------------------------------------

KILL_DURING_WRITE = r"""
import json, os, signal, sys
import fsnlab.train.checkpoint as ck
from fsnlab.train import TrainConfig, train

real, calls = ck.atomic_write_bytes, []

def dying(data, path):
    if path.name == "checkpoint.pt":
        calls.append(path)
        if len(calls) == 2:  # step 4's checkpoint: half of it on disk, then kill -9
            with open(path.with_name(".checkpoint.pt.tmp"), "wb") as f:
                f.write(bytes(data[: len(data) // 2]))
                f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
    real(data, path)

ck.atomic_write_bytes = dying
train(TrainConfig(**json.loads(sys.argv[2])), sys.argv[1], quiet=True)
"""


def test_kill_9_during_a_checkpoint_write_loses_nothing(straight, tmp_path, capsys):
    run = tmp_path / "run"
    proc = run_python(KILL_DURING_WRITE, str(run), json.dumps(CONFIG), stdout=subprocess.DEVNULL)
    assert proc.wait(timeout=120) == -signal.SIGKILL
    assert load_checkpoint(run)["step"] == 2  # the previous checkpoint, whole
    assert load_checkpoint(run / "best.pt")["step"] == 2
    assert (run / ".checkpoint.pt.tmp").exists()
    assert read_lock(run)["pid"] == proc.pid  # a stale lock: its owner is dead

    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert f"was locked by process {proc.pid}" in err and "no longer running; taking over its lock" in err
    assert not (run / ".checkpoint.pt.tmp").exists() and not (run / LOCK_NAME).exists()
    assert same_weights(run, straight)  # resumed exactly


# -- a concurrent writer, SIGTERM mid-step ------------------------------------------------------------

PAUSE_IN_STEP_3 = r"""
import sys, time
from pathlib import Path
from fsnlab.cli import main
from fsnlab.train.trainer import Trainer

ready, go = Path(sys.argv[1]), Path(sys.argv[2])
real = Trainer._forward_loss

def paused(self, x, y):
    if self.step == 2 and not ready.exists():  # inside step 3, after step 2's checkpoint
        ready.touch()
        deadline = time.monotonic() + 60
        while not go.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
    return real(self, x, y)

Trainer._forward_loss = paused
sys.exit(main(["train", *sys.argv[3:]]))
"""


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_second_writer_is_refused_and_sigterm_checkpoints_with_143(straight, tmp_path, capsys):
    run, ready, go, log = tmp_path / "run", tmp_path / "ready", tmp_path / "go", tmp_path / "stderr.txt"
    with open(log, "w") as err:
        proc = run_python(PAUSE_IN_STEP_3, str(ready), str(go), *CLI, "--out", str(run), stdout=err, stderr=err)
    try:
        wait_for(ready.exists, 120, "the run to reach step 3")
        # a second writer, while the first one trains: refused in one line, nothing written
        before = (run / "metrics.jsonl").read_bytes()
        assert main(["train", "--resume", str(run)]) == 2
        line = one_error_line(capsys, "train")
        assert f"run directory {run} is in use by process {proc.pid} on {socket.gethostname()}" in line
        assert main(["train", *CLI, "--out", str(run)]) == 2  # nor a new run over it
        capsys.readouterr()
        assert (run / "metrics.jsonl").read_bytes() == before

        proc.send_signal(signal.SIGTERM)  # as SLURM does before preemption
        wait_for(lambda: "stopping after this step" in log.read_text(), 30, "the stop notice")  # at once, mid-step
        go.touch()
        assert proc.wait(timeout=60) == 143
    finally:
        go.touch()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert "stopped at step 3" in text and "interrupted (SIGTERM)" in text
    assert load_checkpoint(run)["step"] == 3 and not (run / LOCK_NAME).exists()
    assert main(["train", "--resume", str(run), "--quiet"]) == 0  # the requeued job
    assert same_weights(run, straight)


# -- SIGINT in process: once stops after the step (130), twice stops at once ----------------------------


@pytest.fixture
def terminal_sigint():
    """Python's own Ctrl-C handler, as under a terminal: a shell starts background jobs with SIGINT
    ignored, and the trainer (like any program) leaves an ignored SIGINT ignored."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def signal_during_step_3(monkeypatch, *signals: int) -> None:
    real = Trainer._forward_loss

    def signalled(self, x, y):
        if self.step == 2:
            for sig in signals:
                os.kill(os.getpid(), sig)
        return real(self, x, y)

    monkeypatch.setattr(Trainer, "_forward_loss", signalled)


def test_ctrl_c_stops_after_the_step_with_130(tmp_path, monkeypatch, capfd, terminal_sigint):
    signal_during_step_3(monkeypatch, signal.SIGINT)
    assert main(["train", *CLI, "--out", str(tmp_path / "run")]) == 130
    err = capfd.readouterr().err
    assert "stopping after this step with a checkpoint (Ctrl-C again to stop now)" in err
    assert "interrupted (Ctrl-C)" in err
    assert load_checkpoint(tmp_path / "run")["step"] == 3 and not (tmp_path / "run" / LOCK_NAME).exists()


def test_a_second_ctrl_c_stops_at_once_keeping_the_last_checkpoint(tmp_path, monkeypatch, capfd, terminal_sigint):
    signal_during_step_3(monkeypatch, signal.SIGINT, signal.SIGINT)
    assert main(["train", *CLI, "--out", str(tmp_path / "run")]) == 130
    assert load_checkpoint(tmp_path / "run")["step"] == 2  # step 3 never finished
    assert not (tmp_path / "run" / LOCK_NAME).exists()
    capfd.readouterr()


# -- locks written by others --------------------------------------------------------------------------


def write_lock(run: Path, pid: int, host: str | None = None) -> None:
    (run / LOCK_NAME).write_text(json.dumps({"pid": pid, "host": host or socket.gethostname(), "since": "earlier"}))


def test_locks_of_live_dead_and_remote_owners(straight, tmp_path, capsys):
    from fsnlab.study.runner import train_one
    from fsnlab.train.lock import live_holder

    run = tmp_path / "run"
    shutil.copytree(straight, run)
    assert live_holder(run) is None  # not locked
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        write_lock(run, live.pid)
        assert live_holder(run)["pid"] == live.pid
        assert main(["train", "--resume", str(run)]) == 2
        assert f"in use by process {live.pid}" in one_error_line(capsys, "train")
        outcome = train_one(str(run), TrainConfig(**CONFIG).to_dict())  # the study runner: left alone
        assert outcome.action == "locked" and f"process {live.pid}" in outcome.error
    finally:
        live.kill()
        live.wait()
    assert live_holder(run) is None  # its process is gone: a stale lock
    write_lock(run, live.pid, host="elsewhere")  # another host's lock is never taken over
    assert live_holder(run)["host"] == "elsewhere"  # cannot be checked from here: counts as live
    assert main(["train", "--resume", str(run)]) == 2
    line = one_error_line(capsys, "train")
    assert "on elsewhere" in line and f"delete {run / LOCK_NAME}" in line
    write_lock(run, live.pid)  # dead now, on this host: reported and taken over
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    assert "no longer running; taking over its lock" in capsys.readouterr().err


# -- resume from an older checkpoint --------------------------------------------------------------------


def test_resume_from_an_older_checkpoint_deletes_nothing_without_rewind(straight, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(straight, run)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    assert main(["train", "--resume", str(run / "checkpoint-4.pt")]) == 2
    line = one_error_line(capsys, "train")
    assert "later checkpoints" in line and "best.pt (step 6)" in line and "--rewind" in line
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


# -- outputs: unwritable, impossible, someone else's ----------------------------------------------------


def unwritable_places(tmp_path: Path) -> list[Path]:
    """Folders no file can be made in: /proc, a read-only /sys, a mode-555 folder (unless root)."""
    places = [Path("/proc")]
    try:
        (Path("/sys") / "fsnlab-write-test").touch()
    except OSError:
        places.append(Path("/sys"))
    if os.geteuid() != 0:
        locked = tmp_path / "read-only"
        locked.mkdir(exist_ok=True)
        locked.chmod(0o555)
        places.append(locked)
    return places


@pytest.mark.parametrize("ext", [".zarr", ".nc"])
def test_probe_outputs_that_cannot_be_written(straight, tmp_path, capsys, ext):
    (tmp_path / "afile").write_text("x")
    (tmp_path / f"dir{ext}").mkdir()
    (tmp_path / f"dir{ext}" / "keep").write_text("x")
    (tmp_path / "file.zarr").write_text("x")
    outs = [tmp_path / "afile" / f"p{ext}"] + [place / "sub" / f"p{ext}" for place in unwritable_places(tmp_path)]
    cases = [(out, []) for out in outs] + [(tmp_path / f"dir{ext}", ["--overwrite"])]
    if ext == ".zarr":
        cases.append((tmp_path / "file.zarr", ["--overwrite"]))
    for out, extra in cases:
        assert main(["probe", str(straight), "--text", "In the beginning", "--out", str(out), *extra]) == 2, out
        one_error_line(capsys, "probe")
    assert (tmp_path / f"dir{ext}" / "keep").exists() and (tmp_path / "afile").read_text() == "x"


def test_train_export_and_study_outputs(straight, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text('{"my": "settings"}')
    (mine / "metrics.jsonl").write_text("my numbers\n")
    for out in [tmp_path / "afile", tmp_path / "afile" / "run", mine,
                *(place / "run" for place in unwritable_places(tmp_path))]:
        assert main(["train", *CLI, "--out", str(out)]) == 2, out
        one_error_line(capsys, "train")
    assert (mine / "config.json").read_text() == '{"my": "settings"}' and len(list(mine.iterdir())) == 2

    export = ["export", str(straight), "--safetensors"]
    (tmp_path / "w.safetensors").write_text("not mine to replace")
    for target in [tmp_path, tmp_path / "afile" / "w.safetensors", tmp_path / "w.safetensors", Path("/proc/w.safetensors")]:
        assert main([*export, str(target)]) == 2, target
        one_error_line(capsys, "export")
    assert (tmp_path / "w.safetensors").read_text() == "not mine to replace"
    assert main([*export, str(tmp_path / "w.safetensors"), "--overwrite"]) == 0  # one flag, as for probe
    capsys.readouterr()

    study = load_study("baseline_tuning")
    for out in [tmp_path / "afile", mine]:
        assert study.run(["--out", str(out), "--runs", str(tmp_path / "pool")]).exit_code == 2
        assert "error: --out" in capsys.readouterr().err
    assert not (tmp_path / "pool").exists()


def load_study(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"fsnlab_faults_study_{name}", ROOT / "studies" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- edge inputs ----------------------------------------------------------------------------------------


def test_edge_inputs_are_one_line_exit_2(straight, tmp_path, capsys):
    run = str(straight)
    cases = {
        "probe": [
            (["--text", "a", "--out", str(tmp_path / "a.zarr")], "1 byte"),
            (["--text", "abc", "--grid-size", "100000000", "--out", str(tmp_path / "g.zarr")], "grid-size must be at most"),
        ],
        "sample": [(["--temperature", "nan"], "--temperature"), (["--temperature", "-1"], "--temperature"),
                   (["--length", "-1"], "--length")],
        "verify": [(["--tolerance", "nan"], "--tolerance"), (["--tolerance", "-1"], "--tolerance"),
                   (["--control-margin", "-1"], "--control-margin"), (["--control-margin", "nan"], "--control-margin")],
    }
    for command, items in cases.items():
        for extra, needle in items:
            assert main([command, run, *extra]) == 2, extra
            assert needle in one_error_line(capsys, command)
    for flag, value in [("--eval-interval", "0"), ("--log-interval", "0"), ("--max-steps", "0"), ("--grad-accum", "0"),
                        ("--keep", "-1"), ("--seed", "-1"), ("--lr", "nan"), ("--lr", "inf"), ("--epochs", "nan")]:
        assert main(["train", *CLI, "--out", str(tmp_path / "never"), flag, value]) == 2, flag
        assert flag.lstrip("-").replace("-", "_") in one_error_line(capsys, "train").replace("-", "_")
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize("extra, needle", [(["--arms", "foo"], "--arms: unknown arm(s) foo"),
                                           (["--data", "text:/nowhere/corpus.txt"], "corpus file not found"),
                                           (["--seeds", "0"], "--seeds must be a positive integer")])
def test_a_study_validates_its_whole_manifest_before_training(extra, needle, tmp_path, capsys):
    result = load_study("baseline_tuning").run(["--out", str(tmp_path / "s"), "--runs", str(tmp_path / "pool"), *extra])
    assert result.exit_code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]
    assert not (tmp_path / "pool").exists()  # nothing trained


# -- a divergent run ------------------------------------------------------------------------------------


@pytest.mark.parametrize("bpc", [14.0, float("nan")])
def test_a_divergent_run_warns_and_exits_3(bpc, tmp_path, monkeypatch, capsys):
    from fsnlab.train import trainer
    from fsnlab.train.evaluate import EvalResult

    monkeypatch.setattr(trainer, "evaluate", lambda *a, **k: EvalResult(bpc=bpc, nats=bpc * 0.693, targets=499))
    assert main(["train", *CLI, "--max-steps", "2", "--out", str(tmp_path / "run")]) == 3
    err = capsys.readouterr().err
    assert "warning: the run diverged" in err and "uniform guess (8.00 bits per byte)" in err
    assert load_checkpoint(tmp_path / "run")["step"] == 2  # the checkpoints are kept


# -- the explorer's Host check --------------------------------------------------------------------------


def test_explorer_serves_only_its_own_host(straight, tmp_path):
    pytest.importorskip("dash")
    from apps.explorer import create_app
    from fsnlab.probe import probe_to_file

    probe_to_file(straight, "In the beginning God created", tmp_path / "p.zarr")
    app = create_app(tmp_path / "p.zarr")
    app.server.config["FSN_BOUND"] = ("127.0.0.1", 8050)  # what make_server records
    client = app.server.test_client()
    for host in ("127.0.0.1:8050", "localhost:8050", "[::1]:8050", "localhost"):
        assert client.get("/", headers={"Host": host}).status_code == 200, host
    for host in ("evil.example:8050", "evil.example", "127.0.0.1:9999", "127.0.0.1.evil.example:8050"):
        assert client.get("/", headers={"Host": host}).status_code == 403, host
        assert client.get("/_dash-layout", headers={"Host": host}).status_code == 403, host


def test_sigterm_to_a_parallel_study_checkpoints_every_running_run(tmp_path):
    """``--jobs 2``: SIGTERM to the study's process is passed on to its workers; each running run stops
    after its step with a checkpoint, no further run starts, no lock is left, and the study exits 143."""
    repo = Path(__file__).resolve().parents[1]
    runs = tmp_path / "runs"
    cmd = [sys.executable, str(repo / "studies" / "matched_budget.py"), "--scale", "smoke", "--jobs", "2",
           "--threads", "1", "--max-steps", "100000", "--arms", "fsn,transformer", "--corpora", "text", "--seeds", "4",
           "--out", str(tmp_path / "study"), "--runs", str(runs), "--quiet"]
    proc = subprocess.Popen(cmd, cwd=repo, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:  # both runs are training once each has logged a step
            logs = list(runs.glob("*/metrics.jsonl"))
            if len(logs) == 2 and all('"train"' in p.read_text() for p in logs):
                break
            time.sleep(0.5)
        else:
            pytest.fail("the two runs did not start training")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, out[-2000:]
    assert "Traceback" not in out, out[-2000:]  # the 6 runs that never started are reported, not a crash
    dirs = sorted(p for p in runs.iterdir() if p.is_dir())
    assert len(dirs) == 2, "a run started after the signal"
    for run in dirs:
        assert (run / "checkpoint.pt").is_file() and not (run / LOCK_NAME).exists()
        assert load_checkpoint(run)["step"] > 0
