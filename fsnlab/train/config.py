"""The training configuration: one typed, JSON-round-tripping dataclass.

Everything that shapes the optimisation trajectory lives here and is recorded in the run
directory and in every checkpoint; a resumed run keeps it, except for :data:`RUNTIME_FIELDS`.
Defaults are those of a bare ``fsnlab train``: ``fsn-small`` on the embedded corpus, on CPU, in
about three minutes. The spec's enwik8 protocol (§7.2) is spelled out in ``docs/training.md``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from fsnlab.errors import ConfigError

# Fields a resumed run may change: they affect where and how fast it runs, not what it computes
# (on one device type; moving a run between CPU and GPU changes the floating-point rounding).
RUNTIME_FIELDS: tuple[str, ...] = ("device", "compile", "keep", "checkpoint_minutes")


@dataclass
class TrainConfig:
    """How to train one model (spec §7.2; the OQ-n each guess answers is noted per field)."""

    preset: str = "fsn-small"  # model preset name (fsnlab.models.list_presets())
    data: str = "embedded"  # corpus spec for fsnlab.data.load_corpus
    seed: int = 0  # model init, data stream; every run is reproducible from it (OQ-28)
    device: str = "auto"  # auto | cpu | cuda | cuda:N; under torchrun each rank uses cuda:LOCAL_RANK
    context_length: int | None = None  # T; None keeps the preset's (OQ-20)
    model_overrides: dict[str, Any] = field(default_factory=dict)  # model config fields over the preset's (e.g. kernel)
    batch_size: int = 16  # sequences per micro-step *per process* (OQ-21; the spec's protocol: 64)
    grad_accum: int = 1  # micro-steps per optimizer step
    max_steps: int | None = 500  # optimizer steps; overrides epochs when both are set
    epochs: float | None = None  # one epoch = as many tokens as the train split has bytes (OQ-21)
    lr: float = 1e-2  # peak LR; good for short CPU runs (spec §7.2 sweeps {1e-3, 2e-3, 3e-3, 5e-3} at 1M)
    angle_lr_scale: float = 10.0  # LR multiplier for phase tables (embedding, mode phases); 10x measured best (docs/quality.md §2, OQ-25)
    scalar_lr_scale: float = 1.0  # LR multiplier for the no-decay group: gains, biases, kernel coefficients, step sizes, temperatures
    warmup_frac: float = 0.02  # linear warmup over this fraction of the steps (OQ-24)
    min_lr_ratio: float = 0.1  # cosine decay ends at this fraction of the peak (OQ-24)
    weight_decay: float = 0.1  # on matrices only; never on phases, gains, kernels (OQ-25)
    beta1: float = 0.9  # AdamW (OQ-23)
    beta2: float = 0.95  # AdamW (OQ-23)
    eps: float = 1e-8  # AdamW (OQ-23)
    grad_clip: float = 1.0  # global gradient-norm clip; 0 disables
    eval_interval: int = 0  # also evaluate (and checkpoint) every N steps; 0: epochs and end only
    eval_bytes: int | None = None  # evaluate on the first N bytes of the split; None: all of it
    log_interval: int = 10  # steps between training-loss records
    keep: int = 3  # step checkpoints kept besides checkpoint.pt and best.pt
    checkpoint_minutes: float = 10.0  # also checkpoint (without evaluating) once this much wall time has passed since the last checkpoint; 0: off
    compile: bool = False  # torch.compile the model (weights are saved uncompiled)

    def validate(self) -> "TrainConfig":
        """Check ranges; raise :class:`ConfigError` with the offending option."""
        positive = ["batch_size", "grad_accum", "log_interval"]
        positive += [n for n in ("context_length", "max_steps", "eval_bytes") if getattr(self, n) is not None]
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        for name in ("eval_interval", "keep"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ConfigError(f"{name} must be a non-negative integer, got {getattr(self, name)!r}")
        if not isinstance(self.model_overrides, dict):
            raise ConfigError("model_overrides must be a mapping of model config fields to values")
        if self.max_steps is None and self.epochs is None:
            raise ConfigError("give a training length: epochs or max_steps")
        if self.epochs is not None and not (self.epochs > 0 and math.isfinite(self.epochs)):
            raise ConfigError(f"epochs must be a positive number, got {self.epochs!r}")
        floats = ("lr", "eps", "angle_lr_scale", "scalar_lr_scale", "warmup_frac", "min_lr_ratio", "weight_decay",
                  "beta1", "beta2", "grad_clip")
        for name in floats:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"{name} must be a finite number, got {value!r}")
        for name in ("lr", "eps"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)!r}")
        minutes = self.checkpoint_minutes
        if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not (math.isfinite(minutes) and minutes >= 0):
            raise ConfigError(f"checkpoint_minutes must be a non-negative number, got {minutes!r}")
        if not 0 <= self.warmup_frac < 1 or not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError("warmup_frac must lie in [0, 1) and min_lr_ratio in [0, 1]")
        if min(self.angle_lr_scale, self.scalar_lr_scale, self.weight_decay, self.grad_clip) < 0:
            raise ConfigError("angle_lr_scale, scalar_lr_scale, weight_decay and grad_clip must be non-negative")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ConfigError("AdamW betas must lie in [0, 1)")
        return self

    def total_steps(self, train_bytes: int, tokens_per_step: int) -> int:
        """Optimizer steps for this run: ``max_steps``, else ``epochs`` converted via tokens."""
        if self.max_steps is not None:
            return self.max_steps
        assert self.epochs is not None
        return max(1, math.ceil(self.epochs * train_bytes / tokens_per_step))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        """Inverse of :meth:`to_dict`; unknown fields are a :class:`ConfigError`."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"unknown train config field(s): {', '.join(unknown)}")
        return cls(**data).validate()

    def resumed_with(self, overrides: dict[str, Any]) -> "TrainConfig":
        """This (saved) config with the options given on a resume command line applied.

        Only :data:`RUNTIME_FIELDS` may change; any other option that differs from the saved
        value is a :class:`ConfigError`, since it would silently make a different run.
        """
        changes = {}
        for name, value in overrides.items():
            saved = getattr(self, name)
            if name in RUNTIME_FIELDS:
                changes[name] = value
            elif value != saved:
                flag = "--" + name.replace("_", "-")
                raise ConfigError(
                    f"{flag} {value} differs from the resumed run's {saved}; a resumed run keeps its settings"
                )
        return dataclasses.replace(self, **changes).validate()
