"""The training loop: :func:`train` starts a run, :func:`resume` continues one exactly.

One optimizer step = ``grad_accum`` micro-steps; each micro-step draws the *global* batch
(``batch_size x world_size`` windows) from one seeded generator and this rank keeps its slice, so
N processes with batch B compute what one process with batch N*B computes. Evaluation (full val
split, bits per byte) and a checkpoint happen at every epoch boundary, every ``eval_interval``
steps and at the end; a checkpoint alone (no evaluation) also once ``checkpoint_minutes`` of wall
time have passed since the last one, so a crash or a killed job loses minutes, not an epoch (an
epoch of enwik8 is 90 M tokens). SIGINT/SIGTERM stop the run at the next step boundary with a checkpoint
(:class:`~fsnlab.train.signals.TrainingInterrupted`, exit codes 130/143 on the command line); a second
signal stops at once (:mod:`fsnlab.train.signals`). A run directory has one writer at a time
(:mod:`fsnlab.train.lock`); naming, checking and clearing it is :mod:`fsnlab.train.run_dir`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import signal
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
from fsnlab.train.checkpoint import (
    FORMAT_VERSION,
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
from fsnlab.train.lock import run_lock
from fsnlab.train.optim import build_optimizer, lr_at, set_lr
from fsnlab.train.progress import MetricsLog, Progress
from fsnlab.train.rng import capture_rng, restore_rng, seed_everything
from fsnlab.train.run_dir import check_new_run_dir, clear_run_files, default_run_dir, make_run_dir, remove_if_empty
from fsnlab.train.signals import StopSignals, TrainingInterrupted


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
    created = make_run_dir(run_dir)
    try:
        with _distributed(config.device) as (ctx, device), _locked(run_dir, ctx, device):
            if ctx.is_main:
                check_new_run_dir(run_dir, overwrite)  # again, now that no one else writes it
                if overwrite:
                    clear_run_files(run_dir)
            return Trainer(config, run_dir, ctx, device, quiet=quiet).run(stop_at)
    except BaseException:
        if created:
            remove_if_empty(run_dir)
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
            with StopSignals(progress) as stop:
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

    def _stop(self, stop: StopSignals, progress: Progress) -> None:
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

    def _train_step(self, stop: StopSignals) -> bool:
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


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
