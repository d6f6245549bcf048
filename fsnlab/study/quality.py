"""The quality sweep (docs/quality.md): why the FSN trails the matched transformer, and which switch
closes the gap. Its protocols, the manifest of a sweep, and running it in the shared run pool.

A sweep is a study like the others: a :class:`~fsnlab.study.manifest.Manifest` of
(variant, learning rate, seed) runs, executed by :func:`fsnlab.study.runner.execute` (finished runs
are skipped, interrupted ones resumed) and read back by :func:`fsnlab.study.dataset.assemble`. Each
finished run is also one line of the sweep's committed record, ``studies/results/quality-<protocol>.jsonl``
(:mod:`fsnlab.study.records`), from which docs/quality.md's tables are generated
(:mod:`fsnlab.study.docs`).

Protocols (CPU, embedded KJV corpus, validation bpc on the first ``eval_bytes`` of the val split):

* ``tiny``: rung ``tiny`` (~45k parameters), T = 64, batch 32, 400 steps, eval 50,000 bytes.
* ``small``: rung ``small`` (~0.2M parameters), T = 128, batch 16, 500 steps, eval 100,000 bytes.
* ``tiny-long`` / ``small-long``: the same rungs for 3,000 / 2,000 steps (6.1M / 4.1M tokens, about
  135 / 20 tokens per parameter), evaluated every 500 / 250 steps for learning curves.
* ``smoke``: a few steps of the tiny rung, for the tests; its numbers mean nothing.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from fsnlab.study.manifest import Manifest, StudyError
from fsnlab.study.variants import VARIANTS, Variant, budget_matched, resolve
from fsnlab.train import TrainConfig

if TYPE_CHECKING:
    from fsnlab.study.records import RecordStore

KIND = "quality_sweep"


@dataclass(frozen=True)
class SweepProtocol:
    """One protocol of the sweep: the rung, the batches, the length and the evaluation."""

    rung: str
    context_length: int
    batch_size: int
    max_steps: int
    eval_bytes: int
    seeds: tuple[int, ...]
    lrs: tuple[float, ...]
    eval_interval: int = 0  # > 0: also evaluate every N steps (learning curves)
    scale: str = "paper"  # the study scale its manifests are recorded at (smoke: the tests' protocol)

    @property
    def tokens(self) -> int:
        """Training tokens of one run."""
        return self.max_steps * self.batch_size * self.context_length

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


PROTOCOLS: dict[str, SweepProtocol] = {
    "tiny": SweepProtocol("tiny", 64, 32, 400, 50_000, (0, 1), (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)),
    "small": SweepProtocol("small", 128, 16, 500, 100_000, (0, 1), (3e-3, 1e-2, 3e-2)),
    # the long budgets: many tokens per parameter, where capacity rather than early speed decides
    "tiny-long": SweepProtocol("tiny", 64, 32, 3000, 50_000, (0, 1), (3e-3, 1e-2, 3e-2), eval_interval=500),
    "small-long": SweepProtocol("small", 128, 16, 2000, 100_000, (0, 1), (3e-3, 1e-2), eval_interval=250),
    "smoke": SweepProtocol("tiny", 32, 4, 6, 2048, (0,), (1e-2,), eval_interval=3, scale="smoke"),
}

# the protocol pins the angle LR at 1x (the trainer's default was 1x when the sweeps began): a variant
# that wants another scale says so, so every recorded run keeps its meaning
PINNED_TRAIN: dict[str, Any] = {"angle_lr_scale": 1.0}


def get_protocol(name: str) -> SweepProtocol:
    if name not in PROTOCOLS:
        raise StudyError(f"unknown protocol {name!r}; use one of {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def matched_variant(name: str, protocol: SweepProtocol) -> Variant:
    """The variant ``name`` as it runs under ``protocol``: per-rung values filled in, its model
    overrides budget-matched (:func:`fsnlab.study.variants.budget_matched`)."""
    if name not in VARIANTS:
        raise StudyError(f"unknown variant {name!r}")
    variant = resolve(VARIANTS[name], protocol.rung)
    return Variant(variant.family, budget_matched(variant, protocol.rung), variant.train, variant.note, variant.matched)


def train_config(name: str, protocol: SweepProtocol, lr: float, seed: int) -> TrainConfig:
    """The TrainConfig of one run of the sweep (the same fields every recorded run was trained with)."""
    variant = matched_variant(name, protocol)
    return TrainConfig(
        preset=f"{variant.family}-{protocol.rung}",
        seed=seed,
        lr=lr,
        max_steps=protocol.max_steps,
        batch_size=protocol.batch_size,
        context_length=protocol.context_length,
        eval_bytes=protocol.eval_bytes,
        eval_interval=protocol.eval_interval,
        model_overrides=dict(variant.model),
        **{**PINNED_TRAIN, **variant.train},
    )


Job = tuple[str, float, int]  # (variant, lr, seed)


def sweep_manifest(protocol_name: str, jobs: Iterable[Job]) -> Manifest:
    """The manifest of a sweep: one run per (variant, lr, seed), tagged with them (``arm`` is the
    variant's family, so the shared report sections can group by it)."""
    protocol = get_protocol(protocol_name)
    manifest = Manifest(KIND, f"Quality sweep, protocol {protocol_name}", protocol.scale,
                        settings={"protocol_name": protocol_name, "protocol": protocol.to_dict()})
    for name, lr, seed in jobs:
        variant = matched_variant(name, protocol)
        manifest.add(train_config(name, protocol, lr, seed), variant=name, arm=variant.family, lr=lr, seed=seed,
                     protocol=protocol_name)
    return manifest


def sweep_jobs(what: str, protocol_name: str, *, variants: Sequence[str] | None = None, arms: Sequence[str] = (),
               lr: float | None = None, lrs: Sequence[float] | None = None, seeds: Sequence[int] | None = None,
               best_lr: Callable[[str], float] | None = None) -> list[Job]:
    """The runs of one command of the sweep: ``lr`` (every LR of ``lrs`` for each of ``arms``),
    ``variants`` (each of ``variants``, default every FSN switch and ``ka``, at ``lr``, default
    ``best_lr("fsn")``) or ``confirm`` (``variants`` plus the transformer and the FSN at every LR)."""
    protocol = get_protocol(protocol_name)
    lrs = tuple(lrs) if lrs else protocol.lrs
    seeds = tuple(seeds) if seeds else protocol.seeds
    jobs: list[Job] = []
    if what == "lr":
        for name in arms:
            jobs += [(name, x, s) for x in lrs for s in seeds]
    elif what in ("variants", "confirm"):
        names = list(variants) if variants else [n for n in VARIANTS if n.startswith("fsn:") or n == "ka"]
        if lr is None:
            if best_lr is None:
                raise StudyError("pass --lr (no recorded runs to take the FSN's best LR from)")
            lr = best_lr("fsn")
        jobs += [(name, lr, s) for name in names for s in seeds]
        if what == "confirm":
            for base in ("transformer", "fsn"):
                jobs += [(base, x, s) for x in lrs for s in seeds]
    else:
        raise StudyError(f"unknown sweep command {what!r}")
    return jobs


def run_record(run: Any, runs_dir: Path, root: Path, val_bpc: float) -> dict[str, Any]:
    """The record line of one finished run of a sweep manifest (``run`` a
    :class:`~fsnlab.study.manifest.StudyRun`); ``run_dir`` relative to ``root`` where it lies below."""
    run_dir = (runs_dir / run.name).resolve()
    try:
        shown = str(run_dir.relative_to(root.resolve()))
    except ValueError:
        shown = str(run_dir)
    config = run.config
    train = {k: getattr(config, k) for k in VARIANTS[run.tags["variant"]].train}
    return {"variant": run.tags["variant"], "protocol": run.tags["protocol"], "lr": run.tags["lr"],
            "seed": run.tags["seed"], "val_bpc": val_bpc, "model": dict(config.model_overrides), "train": train,
            "run_dir": shown}


def run_sweep(protocol_name: str, jobs: Iterable[Job], store: RecordStore, root: str | os.PathLike[str],
              runs_dir: str | os.PathLike[str], *, parallel: int = 1, threads: int | None = None,
              log: Callable[[str], None] = print) -> tuple[Manifest, list[Any], Any]:
    """Train (or skip, or resume) the runs of ``jobs`` in the run pool ``runs_dir``, record every
    finished one in ``store`` (once per variant, lr and seed) and return the manifest, the runs'
    outcomes and the sweep's dataset (:func:`fsnlab.study.dataset.assemble`)."""
    import math

    from fsnlab.study.dataset import assemble
    from fsnlab.study.runner import execute

    manifest = sweep_manifest(protocol_name, jobs)
    runs_dir = Path(runs_dir)
    outcomes = execute(manifest, runs_dir, jobs=parallel, threads=threads, log=log)
    ds = assemble(manifest, runs_dir)
    for run, final in zip(manifest, ds["final_val_bpc"].values.tolist()):
        if math.isfinite(final):
            store.record(protocol_name, run_record(run, runs_dir, Path(root), float(final)))
    return manifest, outcomes, ds


def default_runs_dir(root: str | os.PathLike[str]) -> Path:
    """The sweep's run pool under the repository ``root``."""
    return Path(root) / "runs" / "studies" / "quality" / "runs"


__all__ = ["KIND", "PINNED_TRAIN", "PROTOCOLS", "SweepProtocol", "default_runs_dir", "get_protocol", "matched_variant",
           "run_record", "run_sweep", "sweep_jobs", "sweep_manifest", "train_config"]
