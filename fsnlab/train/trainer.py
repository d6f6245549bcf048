"""The training loop: :func:`train` starts a run, :func:`resume` continues one exactly.

One optimizer step = ``grad_accum`` micro-steps; each micro-step draws the *global* batch
(``batch_size x world_size`` windows) from one seeded generator and this rank keeps its slice, so
N processes with batch B compute what one process with batch N*B computes. Evaluation (full val
split, bits per byte) and a checkpoint happen at every epoch boundary, every ``eval_interval``
steps and at the end; a checkpoint alone (no evaluation) also once ``checkpoint_minutes`` of wall
time have passed since the last one, so a crash or a killed job loses minutes, not an epoch (an
epoch of enwik8 is 90 M tokens). SIGINT/SIGTERM stop the run at the next step boundary with a checkpoint
(:class:`TrainingInterrupted`, exit codes 130/143 on the command line); a second signal stops at once.
A run directory has one writer at a time (:mod:`fsnlab.train.lock`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import math
import re
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from fsnlab import __version__
from fsnlab.data import count_eval_targets, load_corpus, sample_batch
from fsnlab.errors import CheckpointError, ConfigError, DataError, FsnlabError, RunLockedError, TrainingError
from fsnlab.models import build_model, config_to_dict, parameter_breakdown
from fsnlab.paths import check_writable
from fsnlab.train.checkpoint import (
    FORMAT_VERSION,
    LATEST_NAME,
    CheckpointStore,
    later_checkpoints,
    load_checkpoint,
    model_from_checkpoint,
    newest_intact,
    resolve_checkpoint,
)
from fsnlab.train.config import TrainConfig
from fsnlab.train.distributed import DistContext, all_reduce_sum, init_distributed, shutdown_distributed
from fsnlab.train.environment import environment_record
from fsnlab.train.evaluate import EvalResult, autocast, evaluate
from fsnlab.train.lock import LOCK_NAME, release_all, run_lock
from fsnlab.train.optim import build_optimizer, lr_at, set_lr
from fsnlab.train.progress import MetricsLog, Progress
from fsnlab.train.rng import capture_rng, restore_rng, seed_everything


@dataclasses.dataclass
class TrainResult:
    """Where a run stands when :func:`train`/:func:`resume` returns."""

    run_dir: Path
    checkpoint: Path | None  # the latest checkpoint written (None if none was)
    step: int
    total_steps: int
    val: EvalResult | None  # the last validation result
    best_val_bpc: float | None
    is_main: bool  # whether this process is the one that writes and reports
    uniform_bpc: float = 8.0  # bits per symbol of a uniform guess: log2(vocab_size)

    @property
    def finished(self) -> bool:
        return self.step >= self.total_steps

    @property
    def diverged(self) -> bool:
        """A finished run whose final val bpc is non-finite or worse than a uniform guess."""
        if not self.finished or self.val is None:
            return False
        return not math.isfinite(self.val.bpc) or self.val.bpc > self.uniform_bpc

    @property
    def warning(self) -> str | None:
        """The one-line divergence warning, or None."""
        if not self.diverged:
            return None
        assert self.val is not None
        return (
            f"the run diverged: final val bpc {self.val.bpc:.4f} is worse than a uniform guess "
            f"({self.uniform_bpc:.2f} bits per byte); its checkpoints are kept; try a lower --lr"
        )


class TrainingInterrupted(KeyboardInterrupt):
    """A stop signal ended the run (after its checkpoint, for the first signal). ``signum`` is
    SIGINT or SIGTERM; the command line exits with 128 + signum (130, 143)."""

    def __init__(self, signum: int = signal.SIGINT, message: str = "interrupted") -> None:
        super().__init__(message)
        self.signum = int(signum)


def default_run_dir(preset: str) -> Path:
    """``runs/<preset>-<UTC timestamp>``, made unique."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    path = Path("runs") / f"{preset}-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = Path("runs") / f"{preset}-{stamp}-{n}"
    return path


def train(
    config: TrainConfig,
    out_dir: str | Path | None = None,
    *,
    quiet: bool = False,
    stop_at: int | None = None,
    overwrite: bool = False,
) -> TrainResult:
    """Start a new run in ``out_dir`` (default :func:`default_run_dir`). ``stop_at`` ends it early
    (with a checkpoint) at that step, as if interrupted; :func:`resume` then finishes it.

    ``out_dir`` must be new, empty or a run directory without a checkpoint (an attempt that failed
    early); ``overwrite`` also accepts a folder holding other files (they are left alone, same-named
    ones replaced) and a finished or partial run (its checkpoints and metrics are deleted first)."""
    config.validate()
    run_dir = Path(out_dir).expanduser() if out_dir is not None else default_run_dir(config.preset)
    check_new_run_dir(run_dir, overwrite)
    created = _make_run_dir(run_dir)
    try:
        with _distributed(config.device) as (ctx, device), _locked(run_dir, ctx, device):
            if ctx.is_main:
                check_new_run_dir(run_dir, overwrite)  # again, now that no one else writes it
                if overwrite:
                    _clear_run_files(run_dir)
            return Trainer(config, run_dir, ctx, device, quiet=quiet).run(stop_at)
    except BaseException:
        if created:
            _remove_if_empty(run_dir)
        raise


def resume(
    checkpoint: str | Path,
    overrides: dict[str, Any] | None = None,
    *,
    quiet: bool = False,
    stop_at: int | None = None,
    rewind: bool = False,
) -> TrainResult:
    """Continue the run that wrote ``checkpoint`` (a run directory means its latest checkpoint) in
    that run's directory, bit for bit on the same device type. ``overrides`` are options given again
    on the command line: only runtime ones (device, compile, keep, checkpoint_minutes) may differ from the saved run.

    Resuming from an older checkpoint of the run (``RUN/checkpoint-<step>.pt``) while the run holds
    later checkpoints (step files, ``checkpoint.pt``, ``best.pt``) is refused unless ``rewind``,
    which deletes them (and the later metrics records) first."""
    path = resolve_checkpoint(checkpoint)
    run_dir = path.parent
    seen = _file_state(path)
    ckpt = _load_for_resume(path)
    saved = TrainConfig.from_dict(ckpt["train_config"])
    overrides = dict(overrides or {})
    preset = overrides.pop("preset", saved.preset)
    if preset != saved.preset:
        family = ckpt["model_config"].get("family")
        raise ConfigError(
            f"cannot resume {path} as {preset}: it holds a {family} model (preset {saved.preset})"
        )
    config = saved.resumed_with(overrides)
    with _distributed(config.device) as (ctx, device), _locked(run_dir, ctx, device):
        if _file_state(path) != seen:  # rewritten before we held the lock: read it again
            ckpt = _load_for_resume(path)
        later = later_checkpoints(run_dir, int(ckpt["step"]), exclude=path)
        if later and not rewind:
            names = ", ".join(f"{name} (step {s})" for name, s in sorted(later, key=lambda x: x[1]))
            raise ConfigError(
                f"{path} is at step {ckpt['step']} but the run has later checkpoints: {names}; resuming from it "
                "would replace them: add --rewind to do so, or resume from the newest one"
            )
        trainer = Trainer(config, run_dir, ctx, device, quiet=quiet, checkpoint=ckpt)
        trainer.last_checkpoint = path
        return trainer.run(stop_at)


def _file_state(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _load_for_resume(path: Path) -> dict[str, Any]:
    """Load the checkpoint to resume; when it is damaged, say which intact step checkpoint to use."""
    try:
        return load_checkpoint(path)
    except CheckpointError as exc:
        found = newest_intact(path.parent, exclude=path)
        if found is None:
            raise
        other, step = found
        rewind = " --rewind" if later_checkpoints(path.parent, step, exclude=path) else ""
        raise CheckpointError(
            f"{exc}; the newest intact step checkpoint is {other} (step {step}): fsnlab train --resume {other}{rewind}"
        ) from None


# Files fsnlab writes into a run directory (what --overwrite may replace).
_RUN_FILES = re.compile(
    r"^(config\.json|environment\.json|environment-resume-\d+\.json|metrics\.jsonl|checkpoint(-\d+)?\.pt|"
    r"best\.pt|study-failure\.json|" + re.escape(LOCK_NAME) + r"|\..*\.tmp)$"
)


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` holds an fsnlab run: a checkpoint, or a ``config.json`` that fsnlab wrote."""
    if (path / LATEST_NAME).is_file():
        return True
    try:
        saved = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(saved, dict) and {"model", "train", "run"} <= set(saved)


def check_new_run_dir(run_dir: Path, overwrite: bool = False) -> None:
    """Refuse a place a new run cannot or must not be written to (one-line ConfigError)."""
    if run_dir.is_symlink() and not run_dir.exists():
        raise ConfigError(f"run directory {run_dir} is a broken symbolic link")
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"run directory {run_dir} is an existing file, not a directory; pick another --out")
    check_writable(run_dir, ConfigError, into=True)
    if not run_dir.is_dir():
        return
    if (run_dir / LATEST_NAME).exists() and not overwrite:
        raise ConfigError(
            f"{run_dir} already holds a run; continue it with --resume {run_dir}, pick another --out, "
            "or add --overwrite to replace it"
        )
    try:
        entries = sorted(p.name for p in run_dir.iterdir() if not _ignorable(p.name))
    except OSError as exc:
        raise ConfigError(f"cannot read run directory {run_dir}: {exc.strerror or exc}") from None
    if not entries or overwrite or is_run_dir(run_dir):
        return
    shown = ", ".join(entries[:3]) + (f" and {len(entries) - 3} more" if len(entries) > 3 else "")
    raise ConfigError(
        f"{run_dir} is not empty and not an fsnlab run directory (it holds {shown}); pick a new or empty --out, "
        "or add --overwrite to write the run into it (same-named files are replaced)"
    )


def _ignorable(name: str) -> bool:
    """Files that do not make a folder someone else's: the lock, temporary files, a study's failure record."""
    return name.startswith((LOCK_NAME, f".{LOCK_NAME}", ".fsnlab-write-test-")) or name == "study-failure.json"


def _make_run_dir(run_dir: Path) -> bool:
    """Create the run directory; return whether it was created here."""
    if run_dir.is_dir():
        return False
    try:
        run_dir.mkdir(parents=True)
    except FileExistsError:
        if run_dir.is_dir():
            return False
        raise ConfigError(f"run directory {run_dir} is an existing file, not a directory; pick another --out") from None
    except OSError as exc:
        raise ConfigError(f"cannot create run directory {run_dir}: {exc.strerror or exc}") from None
    return True


def _remove_if_empty(run_dir: Path) -> None:
    try:
        if run_dir.is_dir() and not any(run_dir.iterdir()):
            run_dir.rmdir()
    except OSError:
        pass


def _clear_run_files(run_dir: Path) -> None:
    """Delete an earlier run's files (``--overwrite``); other files are left alone."""
    for path in run_dir.iterdir():
        if path.name != LOCK_NAME and _RUN_FILES.match(path.name) and path.is_file():
            path.unlink()


@contextlib.contextmanager
def _locked(run_dir: Path, ctx: DistContext, device: torch.device) -> Iterator[None]:
    """Hold the run directory's lock (taken by the main process) for the block. Under torchrun
    every rank learns whether the main process got it, so that all of them stop together."""
    if not ctx.enabled:
        with run_lock(run_dir):
            yield
        return
    error: FsnlabError | None = None
    with contextlib.ExitStack() as stack:
        if ctx.is_main:
            try:
                stack.enter_context(run_lock(run_dir))
            except FsnlabError as exc:
                error = exc
        failed = all_reduce_sum(torch.tensor([float(error is not None)], device=device), ctx).item()
        if error is not None:
            raise error
        if failed:
            raise RunLockedError(f"the main process could not take the lock of {run_dir} (see its message)")
        yield


@contextlib.contextmanager
def _distributed(device_spec: str) -> Iterator[tuple[DistContext, torch.device]]:
    """Join torchrun's process group for the run (and leave it after, if we joined it)."""
    joined_here = not dist.is_initialized()
    ctx, device = init_distributed(device_spec)
    try:
        yield ctx, device
    finally:
        if joined_here:
            shutdown_distributed()


class Trainer:
    """One run's state and loop; built by :func:`train` or :func:`resume`."""

    def __init__(
        self,
        config: TrainConfig,
        run_dir: Path,
        ctx: DistContext,
        device: torch.device,
        *,
        quiet: bool = False,
        checkpoint: dict[str, Any] | None = None,
    ) -> None:
        self.config, self.run_dir, self.ctx, self.device, self.quiet = config, run_dir, ctx, device, quiet
        seed_everything(config.seed)
        if checkpoint is None:
            overrides = dict(config.model_overrides)
            if config.context_length:
                overrides["context_length"] = config.context_length
            self.model = build_model(config.preset, **overrides)
        else:
            self.model = model_from_checkpoint(checkpoint)
        self.model.to(device).train()
        corpus = load_corpus(config.data)
        self.train_data, self.val_data = corpus.train, corpus.val
        if count_eval_targets(self.val_data[: config.eval_bytes]) == 0:
            raise DataError(f"corpus {corpus.name} has no validation bytes to evaluate on")
        self.context_length = self.model.config.context_length
        self.tokens_per_step = config.batch_size * self.context_length * config.grad_accum * ctx.world_size
        self.total_steps = config.total_steps(len(self.train_data), self.tokens_per_step)

        self.optimizer = build_optimizer(self.model, config, device)
        self.generator = torch.Generator().manual_seed(config.seed)  # the data stream
        self.step = self.tokens = 0
        self.best_val_bpc: float | None = None
        self.best_step: int | None = None
        self.last_val: EvalResult | None = None
        self.loss_sum, self.loss_count = 0.0, 0  # training losses not yet logged
        self.elapsed_before = 0.0  # wall time of earlier sessions of this run
        self.last_checkpoint: Path | None = None
        self._saved_step: int | None = None
        if checkpoint is not None:
            self._load_state(checkpoint)
            self._saved_step = self.step
        self.lr = lr_at(self.step, self.total_steps, config)
        self._session_start = time.perf_counter()
        self._saved_time = self._session_start  # wall clock of the last checkpoint (this session)
        self._mark_window()

        module: torch.nn.Module = torch.compile(self.model) if config.compile else self.model
        if ctx.enabled:
            module = DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)
        self.module = module  # what the loop calls; self.model stays the plain module we save
        self.store = CheckpointStore(run_dir, config.keep)
        self.metrics = MetricsLog(run_dir / "metrics.jsonl")
        if ctx.is_main:
            self._prepare_run_dir(corpus, resumed=checkpoint is not None)

    # -- state -----------------------------------------------------------------------------------

    def _load_state(self, ckpt: dict[str, Any]) -> None:
        if ckpt["world_size"] != self.ctx.world_size:
            raise ConfigError(
                f"the checkpoint was written by {ckpt['world_size']} process(es); resume it with the same "
                f"number (this run has {self.ctx.world_size}) so that the batch stays the same"
            )
        self.optimizer.load_state_dict(ckpt["optimizer"])
        fused = self.device.type == "cuda"  # the kernel choice follows this run's device, not the saved one
        for group in self.optimizer.param_groups:
            group["fused"], group["foreach"] = (True, None) if fused else (None, True)
        restore_rng(ckpt["rng"], self.generator)
        self.step, self.tokens, self.total_steps = ckpt["step"], ckpt["tokens"], ckpt["total_steps"]
        self.best_val_bpc, self.best_step = ckpt["best_val_bpc"], ckpt["best_step"]
        self.last_val = EvalResult(**ckpt["val"]) if ckpt["val"] else None
        self.loss_sum, self.loss_count = ckpt["loss_window"]["sum"], ckpt["loss_window"]["count"]
        self.elapsed_before = ckpt["elapsed_s"]

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly (tensors and plain containers only)."""
        return {
            "format_version": FORMAT_VERSION,
            "fsnlab_version": __version__,
            "model": self.model.state_dict(),
            "model_config": config_to_dict(self.model.config),
            "train_config": self.config.to_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "tokens": self.tokens,
            "total_steps": self.total_steps,
            "world_size": self.ctx.world_size,
            "rng": capture_rng(self.generator),
            "best_val_bpc": self.best_val_bpc,
            "best_step": self.best_step,
            "val": dataclasses.asdict(self.last_val) if self.last_val else None,
            "loss_window": {"sum": self.loss_sum, "count": self.loss_count},
            "elapsed_s": self._elapsed(),
        }

    def _prepare_run_dir(self, corpus: Any, resumed: bool) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        env = environment_record(self.device, self.ctx.world_size)
        if resumed:
            self.store.remove_temporary()
            self.store.discard_after(self.step)  # later readable ones were refused without --rewind
            self.metrics.truncate_after(self.step)
            _write_json(self.run_dir / f"environment-resume-{self.step}.json", env)
            return
        self.metrics.path.unlink(missing_ok=True)  # left by an attempt that failed before its first checkpoint
        _write_json(self.run_dir / "environment.json", env)
        _write_json(
            self.run_dir / "config.json",
            {
                "model": config_to_dict(self.model.config),
                "train": self.config.to_dict(),
                "data": {
                    "spec": self.config.data,
                    "name": corpus.name,
                    "split_bytes": {s: int(len(corpus.split(s))) for s in ("train", "val", "test")},
                    "description": corpus.description,
                },
                "run": {
                    "total_steps": self.total_steps,
                    "tokens_per_step": self.tokens_per_step,
                    "epoch_tokens": len(self.train_data),
                    "world_size": self.ctx.world_size,
                    "parameters": parameter_breakdown(self.model),
                },
            },
        )

    # -- loop ------------------------------------------------------------------------------------

    def run(self, stop_at: int | None = None) -> TrainResult:
        """Train to ``total_steps`` (or ``stop_at``), evaluating and checkpointing on the way."""
        end = self.total_steps if stop_at is None else min(stop_at, self.total_steps)
        progress = Progress(self.total_steps, self.step, quiet=self.quiet, enabled=self.ctx.is_main)
        progress.write(self._banner())
        try:
            with _StopSignals(progress) as stop:
                while self.step < end:
                    if stop.requested and not self.ctx.enabled:  # arrived during evaluation or saving
                        self._stop(stop, progress)
                    stop_requested = self._train_step(stop)
                    progress.step(self.step)
                    if self.step % self.config.log_interval == 0 or self.step == self.total_steps:
                        self._log_train(progress)
                    if self._eval_due():
                        self._evaluate(progress)
                        self._save(is_best=self.best_step == self.step)
                    elif self.step == end or stop_requested or self._checkpoint_due():
                        self._save(is_best=False)
                    if stop_requested:
                        self._stop(stop, progress)
        finally:
            progress.close()
        return TrainResult(
            self.run_dir, self.last_checkpoint, self.step, self.total_steps, self.last_val, self.best_val_bpc,
            self.ctx.is_main, math.log2(self.model.config.vocab_size),
        )

    def _stop(self, stop: "_StopSignals", progress: Progress) -> None:
        """End the run at a stop signal, with a checkpoint of this step."""
        if self.last_checkpoint is None or self._saved_step != self.step:
            self._save(is_best=False)
        progress.write(f"stopped at step {self.step}; continue: fsnlab train --resume {self.run_dir}")
        raise TrainingInterrupted(stop.signum or signal.SIGINT)

    def _forward_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean next-byte cross-entropy (nats) of one micro-batch; logits upcast to fp32."""
        with autocast(self.device):
            logits = self.module(x)
        return F.cross_entropy(logits.float().flatten(0, 1), y.flatten())

    def _train_step(self, stop: "_StopSignals") -> bool:
        """One optimizer step. Returns whether a stop signal reached any rank by the end of its
        backward pass. Raises TrainingError, before touching the weights, if the loss or gradient
        norm is not finite."""
        accum = self.config.grad_accum
        loss_total = torch.zeros((), device=self.device)
        for micro in range(accum):
            x, y = self._batch()
            sync = micro == accum - 1 or not self.ctx.enabled
            with contextlib.nullcontext() if sync else self.module.no_sync():
                loss = self._forward_loss(x, y) / accum
                loss.backward()
            loss_total += loss.detach()
        max_norm = self.config.grad_clip or math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm)
        stop_flag = torch.tensor(float(stop.requested), device=self.device)
        stats = torch.stack([loss_total, grad_norm.to(loss_total), stop_flag])
        loss_sum, norm_sum, stops = all_reduce_sum(stats, self.ctx).tolist()
        loss_value, norm = loss_sum / self.ctx.world_size, norm_sum / self.ctx.world_size
        if not (math.isfinite(loss_value) and math.isfinite(norm)):
            self.optimizer.zero_grad(set_to_none=True)
            what = "loss" if not math.isfinite(loss_value) else "gradient norm"
            kept = f"the last good checkpoint is {self.last_checkpoint}" if self.last_checkpoint else "no checkpoint yet"
            raise TrainingError(
                f"non-finite {what} at step {self.step + 1} (loss {loss_value}); stopped, {kept}; try a lower --lr"
            )
        self.lr = lr_at(self.step, self.total_steps, self.config)
        set_lr(self.optimizer, self.lr)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.tokens += self.tokens_per_step
        self.loss_sum += loss_value
        self.loss_count += 1
        return stops > 0

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's slice of the next global batch."""
        b, rank = self.config.batch_size, self.ctx.rank
        x, y = sample_batch(
            self.train_data, b * self.ctx.world_size, self.context_length, self.generator, what="train split"
        )
        x, y = x[rank * b : (rank + 1) * b], y[rank * b : (rank + 1) * b]
        return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def _eval_due(self) -> bool:
        epoch_tokens = len(self.train_data)
        crossed_epoch = self.tokens // epoch_tokens > (self.tokens - self.tokens_per_step) // epoch_tokens
        interval = self.config.eval_interval and self.step % self.config.eval_interval == 0
        return bool(crossed_epoch or interval or self.step == self.total_steps)

    def _checkpoint_due(self) -> bool:
        """A timed checkpoint: ``checkpoint_minutes`` of wall time since the last one (0: never).
        Only the main process writes checkpoints, so the ranks of a DDP run need not agree on it."""
        minutes = self.config.checkpoint_minutes
        return bool(minutes) and time.perf_counter() - self._saved_time >= 60.0 * minutes

    # -- reporting and saving ---------------------------------------------------------------------

    def _log_train(self, progress: Progress) -> None:
        if not self.loss_count:
            return
        now = time.perf_counter()
        tokens_per_s = (self.tokens - self._window_tokens) / max(now - self._window_time, 1e-9)
        loss = self.loss_sum / self.loss_count
        self.loss_sum, self.loss_count = 0.0, 0
        steps_left = self.total_steps - self.step
        eta = steps_left * self.tokens_per_step / max(tokens_per_s, 1e-9)
        bpc = loss / math.log(2)
        progress.train_stats(self.step, loss, bpc, self.lr, tokens_per_s, eta)
        self._record({"event": "train", "lr": self.lr, "loss": loss, "bpc": bpc, "tokens_per_s": tokens_per_s})
        self._mark_window()

    def _evaluate(self, progress: Progress) -> None:
        result = evaluate(
            self.model, self.val_data, batch_size=self.config.batch_size, device=self.device,
            max_bytes=self.config.eval_bytes, dist=self.ctx,
        )
        self.last_val = result
        if self.best_val_bpc is None or result.bpc < self.best_val_bpc:
            self.best_val_bpc, self.best_step = result.bpc, self.step
        progress.write(
            f"step {self.step}: val bpc {result.bpc:.4f} (nats {result.nats:.4f}, {result.targets:,} bytes)"
            f"{' (best)' if self.best_step == self.step else ''}"
        )
        self._record(
            {"event": "eval", "split": "val", "val_bpc": result.bpc, "val_nats": result.nats, "eval_targets": result.targets}
        )

    def _save(self, is_best: bool) -> None:
        if self.ctx.is_main:
            self.last_checkpoint = self.store.save(self.state_dict(), is_best)
        self._saved_step = self.step
        self._saved_time = time.perf_counter()
        self._mark_window()  # evaluation and saving do not count against tokens/s

    def _record(self, fields: dict[str, Any]) -> None:
        if self.ctx.is_main:
            base = {"step": self.step, "tokens": self.tokens, "epoch": self.tokens / len(self.train_data)}
            self.metrics.append({**base, **fields, "time": round(self._elapsed(), 3)})

    def _mark_window(self) -> None:
        self._window_time, self._window_tokens = time.perf_counter(), self.tokens

    def _elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self._session_start

    def _banner(self) -> str:
        counts = parameter_breakdown(self.model)
        parts = ", ".join(f"{name} {n:,}" for name, n in counts.items() if n and name != "total")
        epochs = self.total_steps * self.tokens_per_step / len(self.train_data)
        where = f"{self.device}" + (f" x{self.ctx.world_size}" if self.ctx.enabled else "")
        start = f"resuming at step {self.step}" if self.step else "starting"
        return (
            f"{self.config.preset}: {counts['total']:,} parameters ({parts}) on {where}\n"
            f"{self.config.data} ({len(self.train_data):,} train bytes) | {self.total_steps} steps x "
            f"{self.tokens_per_step:,} tokens = {epochs:.2f} epochs | {start} | run dir {self.run_dir}"
        )


class _StopSignals:
    """Turns SIGINT/SIGTERM into a request to stop at the next step boundary (main thread only;
    signals the parent set to be ignored, as ``nohup`` does, stay ignored).

    The first signal is announced at once, even while a long step runs in C++: Python writes the
    signal number to a wakeup pipe from its C-level handler, and a watcher thread reading that pipe
    prints the notice. A second signal stops now: the Python-level handler raises
    :class:`TrainingInterrupted` at the next bytecode, and should the main thread be stuck inside
    one long operation, the watcher removes the run's lock and exits the process (128 + signum)
    after a short grace period; the last checkpoint on disk is complete either way (writes are
    atomic)."""

    GRACE_S = 2.0

    def __init__(self, progress: Progress | None = None) -> None:
        self.requested = False
        self.signum: int | None = None
        self.progress = progress
        self._previous: dict[int, Any] = {}
        self._seen = 0  # signals the watcher saw
        self._pipe: tuple[int, int] | None = None
        self._previous_wakeup = -1
        self._watcher: threading.Thread | None = None
        self._done = threading.Event()

    def _handle(self, signum: int, frame: Any) -> None:
        # Python runs a handler once for signals that arrived together (e.g. two Ctrl-C during one
        # long backward pass), so the watcher's count decides whether this is the second one.
        if self.requested or self._seen >= 2:
            raise TrainingInterrupted(signum, "stopped at once by a second signal")
        self.requested, self.signum = True, signum
        if self._watcher is None:  # no watcher thread: announce from here
            self._announce(signum)

    def _announce(self, signum: int) -> None:
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        self._say(f"fsnlab train: {name}: stopping after this step with a checkpoint (Ctrl-C again to stop now)")

    def _say(self, line: str) -> None:
        if self.progress is not None and not self.progress.enabled:
            return
        bar = getattr(self.progress, "bar", None)
        try:
            if bar is not None:
                bar.write(line, file=sys.stderr)
            else:
                os.write(2, (line + "\n").encode())
        except (OSError, ValueError):
            pass

    def _watch(self, read_fd: int) -> None:
        while not self._done.is_set():
            try:
                data = os.read(read_fd, 64)
            except OSError:
                return
            if not data or self._done.is_set():
                return
            for signum in data:
                if signum not in (signal.SIGINT, signal.SIGTERM):
                    continue  # another handled signal (the wakeup pipe sees them all)
                self._seen += 1
                if self._seen == 1:
                    self._announce(signum)
                    continue
                self._say("fsnlab train: stopping now; the last checkpoint written is kept")
                if not self._done.wait(self.GRACE_S):  # the main thread is stuck in one long call
                    release_all()
                    os._exit(128 + signum)

    def __enter__(self) -> "_StopSignals":
        if threading.current_thread() is not threading.main_thread():
            return self
        for sig in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(sig) is not signal.SIG_IGN:
                self._previous[sig] = signal.signal(sig, self._handle)
        if not self._previous:
            return self
        try:
            read_fd, write_fd = os.pipe()
            os.set_blocking(write_fd, False)
            self._previous_wakeup = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        except (OSError, ValueError):
            return self
        self._pipe = (read_fd, write_fd)
        self._watcher = threading.Thread(target=self._watch, args=(read_fd,), name="fsnlab-stop-signals", daemon=True)
        self._watcher.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._done.set()
        if self._pipe is not None:
            read_fd, write_fd = self._pipe
            try:
                signal.set_wakeup_fd(self._previous_wakeup)
            except (OSError, ValueError):
                signal.set_wakeup_fd(-1)
            try:
                os.write(write_fd, b"\0")  # wake the watcher
            except OSError:
                pass
            if self._watcher is not None:
                self._watcher.join(timeout=1.0)
            os.close(write_fd)
            os.close(read_fd)
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
