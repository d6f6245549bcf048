"""Execute a study's runs: skip finished ones, resume interrupted ones, train new ones.

Runs are independent, so they execute N at a time on this machine
(:class:`concurrent.futures.ProcessPoolExecutor`, ``jobs=N``; ``jobs=1`` trains in this process)
or are handed to SLURM through ``submitit`` (``executor="slurm"``; imported only then). There is
no job system of our own: the run directory *is* the state. A run is finished when its
``checkpoint.pt`` reached its total steps; a run with a checkpoint short of that is resumed
exactly (:func:`fsnlab.train.resume`); a run whose training raised has ``study-failure.json``
and is left alone unless ``retry_failed``.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import json
import multiprocessing
import os
import signal
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Collection, Sequence

from fsnlab.errors import RunLockedError, one_line
from fsnlab.study.manifest import FAILURE_FILE, Manifest, StudyError, check_run_dir, run_state
from fsnlab.train import TrainConfig
from fsnlab.train.lock import run_lock

EXECUTORS = ("local", "slurm")


@dataclass
class Outcome:
    """What happened to one run in one :func:`execute` call."""

    name: str
    action: str  # skipped | recorded | trained | resumed | failed | submitted | queued | interrupted | locked
    status: str  # the run's state afterwards: done | partial | new | failed
    step: int = 0
    total_steps: int | None = None
    seconds: float = 0.0
    val_bpc: float | None = None
    error: str | None = None
    signum: int | None = None  # the stop signal of an interrupted run (SIGINT, SIGTERM)

    @property
    def trained(self) -> bool:
        return self.action in ("trained", "resumed")


def train_one(
    run_dir: str,
    config: dict[str, Any],
    *,
    device: str | None = None,
    threads: int | None = None,
    retry_failed: bool = False,
    quiet: bool = True,
) -> Outcome:
    """Bring one run to its end: skip, resume or train. Never raises for a training failure
    (it is recorded in ``study-failure.json`` and returned); KeyboardInterrupt is returned as
    ``interrupted`` after the trainer saved its checkpoint. The run directory's lock is held
    throughout; a run another process is writing is returned as ``locked``, untouched."""
    path = Path(run_dir)
    name = path.name
    cfg = TrainConfig.from_dict(config)
    check_run_dir(path, cfg)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with run_lock(path):  # the same run may be in another study's pool: one writer at a time
            return _train_locked(path, cfg, device=device, threads=threads, retry_failed=retry_failed, quiet=quiet)
    except RunLockedError as exc:
        state = run_state(path)
        return Outcome(name, "locked", state.status, state.step, state.total_steps, error=str(exc))


def _train_locked(
    path: Path, cfg: TrainConfig, *, device: str | None, threads: int | None, retry_failed: bool, quiet: bool
) -> Outcome:
    import torch

    from fsnlab.train import resume, train

    name = path.name
    check_run_dir(path, cfg)  # again, now that no one else writes it
    state = run_state(path)
    if state.status == "done" or (state.status == "failed" and not retry_failed):
        return Outcome(name, "skipped", state.status, state.step, state.total_steps, error=state.error)
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    start = time.perf_counter()
    action = "resumed" if state.step > 0 else "trained"
    try:
        if state.step > 0:
            result = resume(path, {"device": device} if device else None, quiet=quiet)
        else:
            if device:
                cfg = dataclasses.replace(cfg, device=device)
            result = train(cfg, path, quiet=quiet)
    except KeyboardInterrupt as exc:
        after = run_state(path)
        return Outcome(name, "interrupted", after.status, after.step, after.total_steps, time.perf_counter() - start,
                       signum=getattr(exc, "signum", signal.SIGINT))
    except Exception as exc:  # a failed run must not stop the others; it is recorded and reported
        message = one_line(exc) or type(exc).__name__
        path.mkdir(parents=True, exist_ok=True)
        record = {
            "error": f"{type(exc).__name__}: {message}",
            "traceback": traceback.format_exc(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (path / FAILURE_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        after = run_state(path)
        return Outcome(name, "failed", "failed", after.step, after.total_steps, time.perf_counter() - start, error=record["error"])
    finally:
        torch.set_num_threads(previous_threads)
    (path / FAILURE_FILE).unlink(missing_ok=True)
    return Outcome(
        name, action, "done" if result.finished else "partial", result.step, result.total_steps,
        time.perf_counter() - start, result.val.bpc if result.val else None,
    )


# -- local pool ------------------------------------------------------------------------------------

_WORKER: dict[str, Any] = {}


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _init_worker(devices: Any, threads: int | None) -> None:
    _WORKER["device"] = devices.get() if devices is not None else None
    _WORKER["threads"] = threads
    # A stop signal that reaches an idle worker (between two runs) must not kill it: it is noted,
    # and the worker trains nothing more. While a run trains, the trainer's own handler takes over
    # (checkpoint at the next step boundary) and puts this one back afterwards.
    for signum in _STOP_SIGNALS:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, _note_stop)


def _note_stop(signum: int, frame: Any) -> None:
    _WORKER["stopped"] = signum


def _pool_task(run_dir: str, config: dict[str, Any], retry_failed: bool) -> Outcome:
    if _WORKER.get("stopped"):
        state = run_state(Path(run_dir))
        return Outcome(Path(run_dir).name, "interrupted", state.status, state.step, state.total_steps,
                       signum=_WORKER["stopped"])
    outcome = train_one(
        run_dir, config, device=_WORKER.get("device"), threads=_WORKER.get("threads"), retry_failed=retry_failed
    )
    if outcome.action == "interrupted":  # the trainer took the signal: this worker trains nothing more
        _WORKER["stopped"] = outcome.signum or signal.SIGINT
    return outcome


class _ForwardStopSignals:
    """In the study's own process, while a pool trains: SIGINT/SIGTERM are passed on to every worker,
    whose trainer stops after its step with a checkpoint, instead of killing this process (and with it
    the workers' unsaved steps). Signals this process ignores (``nohup``) stay ignored."""

    def __init__(self, pool: cf.ProcessPoolExecutor) -> None:
        self.pool, self.signum, self._previous = pool, None, {}

    def __enter__(self) -> "_ForwardStopSignals":
        for signum in _STOP_SIGNALS:
            if signal.getsignal(signum) is not signal.SIG_IGN:
                self._previous[signum] = signal.signal(signum, self._forward)
        return self

    def _forward(self, signum: int, frame: Any) -> None:
        first = self.signum is None
        self.signum = signum
        for process in list(getattr(self.pool, "_processes", {}).values()):
            try:
                os.kill(process.pid, signum)
            except OSError:
                pass
        if first:
            print(f"study: {signal.Signals(signum).name}: every run stops after its step with a checkpoint",
                  flush=True)

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def execute(
    manifest: Manifest,
    runs_dir: str | os.PathLike[str],
    *,
    jobs: int = 1,
    executor: str = "local",
    devices: Sequence[str] | None = None,
    threads: int | None = None,
    retry_failed: bool = False,
    slurm: dict[str, Any] | None = None,
    slurm_folder: str | os.PathLike[str] | None = None,
    wait: bool = True,
    log: Callable[[str], None] | None = print,
    recorded: Collection[str] = (),
) -> list[Outcome]:
    """Bring every run of ``manifest`` (directories ``runs_dir/<name>``) to its end.

    ``devices``: e.g. ``["cuda:0", "cuda:1"]``; each local worker takes one (a run's device is a
    runtime setting, not part of its identity). ``threads``: torch CPU threads per run (default
    for ``jobs > 1``: cores // jobs; oversubscribed cores make CPU training many times slower).
    ``slurm``: submitit parameters (``timeout_min``, ``gpus_per_node``, ``slurm_partition``, ...).
    ``recorded``: runs a study's record holds as finished (:mod:`fsnlab.study.record`); one of
    them with no checkpoint here is not trained (outcome ``recorded``).
    Returns one :class:`Outcome` per run, in manifest order.
    """
    if executor not in EXECUTORS:
        raise StudyError(f"unknown executor {executor!r}; use one of {', '.join(EXECUTORS)}")
    if jobs < 1:
        raise StudyError(f"--jobs must be >= 1, got {jobs}")
    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    say = log or (lambda _: None)
    outcomes: dict[str, Outcome] = {}
    todo = []
    for run in manifest:
        path = runs_dir / run.name
        check_run_dir(path, run.config)
        state = run_state(path)
        if run.name in recorded and state.status == "new":
            outcomes[run.name] = Outcome(run.name, "recorded", "done")
        elif state.status == "done" or (state.status == "failed" and not retry_failed):
            outcomes[run.name] = Outcome(run.name, "skipped", state.status, state.step, state.total_steps, error=state.error)
        else:
            todo.append(run)
    done_count = len(outcomes)
    n_recorded = sum(o.action == "recorded" for o in outcomes.values())
    say(f"{len(manifest)} runs: {done_count - n_recorded} finished or failed before (skipped), "
        + (f"{n_recorded} taken from the record, " if n_recorded else "") + f"{len(todo)} to run")
    if todo and executor == "slurm":
        folder = Path(slurm_folder) if slurm_folder else runs_dir / "slurm"
        for outcome in _execute_slurm(todo, runs_dir, folder, slurm or {}, wait, say):
            outcomes[outcome.name] = outcome
    elif todo:
        for i, outcome in enumerate(_execute_local(todo, runs_dir, jobs, devices, threads, retry_failed), 1):
            outcomes[outcome.name] = outcome
            say(f"[{i}/{len(todo)}] {_describe(outcome)}")
    return [outcomes[run.name] for run in manifest]


def _describe(o: Outcome) -> str:
    if o.error:
        return f"{o.action} {o.name}: {o.error}"
    bpc = f", val bpc {o.val_bpc:.4f}" if o.val_bpc is not None else ""
    return f"{o.action} {o.name} (step {o.step}/{o.total_steps}{bpc}, {o.seconds:.1f} s)"


def _execute_local(todo, runs_dir: Path, jobs: int, devices, threads, retry_failed):
    if jobs == 1 or len(todo) == 1:
        device = devices[0] if devices else None
        for run in todo:
            outcome = train_one(str(runs_dir / run.name), run.config.to_dict(), device=device, threads=threads,
                                retry_failed=retry_failed)
            yield outcome
            if outcome.action == "interrupted":  # Ctrl-C / SIGTERM stops the study, not just this run
                return
        return
    workers = min(jobs, len(todo))
    if threads is None:
        threads = max(1, (os.cpu_count() or 1) // workers)
    ctx = multiprocessing.get_context("spawn")  # torch and fork do not mix
    queue = None
    if devices:
        queue = ctx.Queue()
        for i in range(workers):
            queue.put(devices[i % len(devices)])
    with cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(queue, threads)) as pool, \
            _ForwardStopSignals(pool) as stop:
        futures = {pool.submit(_pool_task, str(runs_dir / r.name), r.config.to_dict(), retry_failed): r for r in todo}
        try:
            for future in cf.as_completed(futures):
                run = futures[future]
                if stop.signum is not None:  # no new run starts after a stop signal
                    for f in futures:
                        f.cancel()
                if future.cancelled():  # never started: reported as interrupted, its state unchanged
                    state = run_state(runs_dir / run.name)
                    yield Outcome(run.name, "interrupted", state.status, state.step, state.total_steps,
                                  signum=stop.signum)
                    continue
                try:
                    yield future.result()
                except Exception as exc:  # the worker process itself died (e.g. out of memory)
                    state = run_state(runs_dir / run.name)
                    yield Outcome(run.name, "failed", state.status, state.step, state.total_steps,
                                  error=f"worker died: {type(exc).__name__}: {exc}")
        except KeyboardInterrupt:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


# -- SLURM through submitit ------------------------------------------------------------------------


class SlurmTask:
    """The callable a SLURM job runs: :func:`train_one` on one run directory. Its ``checkpoint``
    method makes submitit requeue it on preemption or timeout; the requeued job resumes the run
    from its last checkpoint (exactly, on the same device type)."""

    def __init__(self, run_dir: str, config: dict[str, Any]) -> None:
        self.run_dir, self.config = run_dir, config

    def __call__(self) -> Outcome:
        return train_one(self.run_dir, self.config, retry_failed=True, quiet=True)

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        import submitit

        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


def _import_submitit() -> Any:
    try:
        import submitit
    except ImportError:
        raise StudyError("--executor slurm needs submitit: pip install 'fsnlab[studies]' (or pip install submitit)") from None
    return submitit


def _execute_slurm(todo, runs_dir: Path, folder: Path, params: dict[str, Any], wait: bool, say) -> list[Outcome]:
    submitit = _import_submitit()
    folder.mkdir(parents=True, exist_ok=True)
    jobs_file = folder / "jobs.json"
    known = json.loads(jobs_file.read_text(encoding="utf-8")) if jobs_file.is_file() else {}
    executor = submitit.AutoExecutor(folder=str(folder / "%j"))
    parameters = {"name": "fsnlab-study", "timeout_min": 60 * 24, "gpus_per_node": 1, "cpus_per_task": 8, "tasks_per_node": 1}
    parameters.update(params)
    executor.update_parameters(**parameters)
    cluster = getattr(executor, "cluster", "slurm")
    outcomes: list[Outcome] = []
    submit = []
    for run in todo:
        previous = known.get(run.name)
        if previous and previous.get("cluster") == "slurm" and cluster == "slurm":
            job = submitit.SlurmJob(folder=str(folder / "%j"), job_id=previous["job_id"])
            if not job.done(force_check=True):
                state = run_state(runs_dir / run.name)
                outcomes.append(Outcome(run.name, "queued", state.status, state.step, state.total_steps))
                say(f"queued {run.name} (job {previous['job_id']} still pending or running)")
                continue
        submit.append(run)
    jobs = []
    if submit:
        with executor.batch():
            for run in submit:
                jobs.append(executor.submit(SlurmTask(str(runs_dir / run.name), run.config.to_dict())))
        for run, job in zip(submit, jobs):
            known[run.name] = {"job_id": str(job.job_id), "cluster": cluster, "submitted": time.time()}
        tmp = jobs_file.with_name(".jobs.json.tmp")
        tmp.write_text(json.dumps(known, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, jobs_file)
        say(f"submitted {len(jobs)} run(s) to {cluster} (logs under {folder})")
    if not wait:
        for run, job in zip(submit, jobs):
            state = run_state(runs_dir / run.name)
            outcomes.append(Outcome(run.name, "submitted", state.status, state.step, state.total_steps))
        return outcomes
    for i, (run, job) in enumerate(zip(submit, jobs), 1):
        try:
            outcome = job.result()
        except Exception as exc:  # the job died outside Python (cancelled, out of memory, node failure)
            state = run_state(runs_dir / run.name)
            first = one_line(exc) or type(exc).__name__
            outcome = Outcome(run.name, "failed", state.status, state.step, state.total_steps, error=f"job {job.job_id}: {first}")
        outcomes.append(outcome)
        say(f"[{i}/{len(jobs)}] {_describe(outcome)}")
    return outcomes
