"""The two scales every study runs at.

``smoke``: CPU, about a minute per study, run by the test suite: tiny presets, 30 steps of
8 sequences, an evaluation every 10 steps on the first 4,096 validation bytes, 2 seeds, the
embedded corpus (text) and the standard library's Python files (code). Its numbers show that the
machinery works; they are not comparable with the paper's.

``paper``: the spec's protocol (§7.2, §8): the 1M rung, enwik8 (``--data enwik8:PATH``),
64 × 512 = 32,768 tokens per step, 30 epochs (the main budget; ``--epochs 50`` for the extension
runs), evaluation over the whole validation split at every epoch boundary, peak LR 3e-3 (swept over
{1e-3, 2e-3, 3e-3, 5e-3} by the baseline-tuning study), 5 seeds for the headline comparison and
3 elsewhere. Meant for GPUs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fsnlab.study.manifest import SCALES, StudyError
from fsnlab.train import TrainConfig


@dataclass(frozen=True)
class Protocol:
    scale: str
    rung: str  # preset rung of the headline comparisons
    max_steps: int | None
    epochs: float | None
    batch_size: int
    context_length: int | None  # None: the preset's
    lr: float  # peak LR of every arm unless a study sets it
    eval_interval: int
    eval_bytes: int | None
    seeds: int  # seeds per arm outside the headline comparison
    headline_seeds: int  # seeds per arm of the headline (matched budget on text, copy depth)
    data: str | None  # the text corpus (None: must be given, enwik8:PATH)
    code_data: str  # the code corpus
    lr_sweep: tuple[float, ...]
    ladder_rungs: tuple[str, ...]

    def train_config(
        self,
        preset: str,
        *,
        data: str,
        seed: int,
        lr: float | None = None,
        kernel: str | None = None,
        device: str = "auto",
        **fields: Any,
    ) -> TrainConfig:
        """The TrainConfig of one run under this protocol (``kernel`` becomes a model override)."""
        config = TrainConfig(
            preset=preset,
            data=data,
            seed=seed,
            device=device,
            context_length=self.context_length,
            model_overrides={"kernel": kernel} if kernel else {},
            batch_size=self.batch_size,
            max_steps=self.max_steps,
            epochs=self.epochs,
            lr=self.lr if lr is None else lr,
            eval_interval=self.eval_interval,
            eval_bytes=self.eval_bytes,
        )
        return dataclasses.replace(config, **fields).validate()

    def with_overrides(self, *, seeds: int | None = None, epochs: float | None = None,
                       max_steps: int | None = None, eval_bytes: int | None = None) -> "Protocol":
        """This protocol with command-line overrides applied (``--seeds`` sets both seed counts)."""
        changes: dict[str, Any] = {}
        if seeds is not None:
            changes.update(seeds=seeds, headline_seeds=seeds)
        if epochs is not None:
            changes.update(epochs=epochs, max_steps=None)
        if max_steps is not None:
            changes.update(max_steps=max_steps)
        if eval_bytes is not None:
            changes.update(eval_bytes=eval_bytes)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


SMOKE = Protocol(
    scale="smoke", rung="tiny", max_steps=30, epochs=None, batch_size=8, context_length=None, lr=1e-2,
    eval_interval=10, eval_bytes=4096, seeds=2, headline_seeds=2, data="embedded", code_data="code",
    lr_sweep=(1e-2, 3e-3), ladder_rungs=("tiny", "small"),
)
PAPER = Protocol(
    scale="paper", rung="1m", max_steps=None, epochs=30, batch_size=64, context_length=512, lr=3e-3,
    eval_interval=0, eval_bytes=None, seeds=3, headline_seeds=5, data=None, code_data="code",
    lr_sweep=(1e-3, 2e-3, 3e-3, 5e-3), ladder_rungs=("1m", "2m", "4m"),
)
PROTOCOLS = {"smoke": SMOKE, "paper": PAPER}


def protocol(scale: str) -> Protocol:
    if scale not in PROTOCOLS:
        raise StudyError(f"unknown scale {scale!r}; use one of {', '.join(SCALES)}")
    return PROTOCOLS[scale]


def normalize_data_spec(spec: str) -> str:
    """Make the path of a corpus spec absolute (run names and identities depend on it)."""
    kind, sep, rest = spec.partition(":")
    if not sep or not rest:
        return spec
    paths = [str(Path(p).expanduser().resolve()) for p in rest.split(",")]
    return f"{kind}:{','.join(paths)}"
