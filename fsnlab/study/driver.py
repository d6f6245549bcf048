"""The command line shared by the scripts in ``studies/``: parse, build the manifest, execute the
runs, assemble the dataset, run the study's analyses, write ``study.nc`` and ``report.html``.

A study script only says which runs it needs (a :class:`~fsnlab.study.manifest.Manifest`) and
which analyses it adds; everything else is here, so every study has the same options::

    python studies/matched_budget.py --scale smoke
    python studies/matched_budget.py --scale paper --data enwik8:data/enwik8.zip --jobs 4 --devices cuda:0,cuda:1,cuda:2,cuda:3
    python studies/matched_budget.py --scale paper --data enwik8:data/enwik8.zip --executor slurm --slurm-partition gpu
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from fsnlab.commands.options import add_dataclass_arguments
from fsnlab.errors import FsnlabError, one_line
from fsnlab.study.dataset import assemble, write_dataset
from fsnlab.study.manifest import SCALES, Manifest, StudyError, run_state
from fsnlab.study.protocol import Protocol, normalize_data_spec, protocol
from fsnlab.study.record import StudyRecord
from fsnlab.study.runner import EXECUTORS, Outcome, execute

DEFAULT_ROOT = Path("runs") / "studies"


@dataclass
class StudyContext:
    """What a manifest builder and an analysis get: the parsed options and the protocol."""

    args: argparse.Namespace
    protocol: Protocol
    study_dir: Path
    runs_dir: Path
    log: Callable[[str], None] = print
    record: StudyRecord | None = None  # --record: the committed dataset whose finished runs are not trained again

    @property
    def scale(self) -> str:
        return self.protocol.scale

    def text_data(self) -> str:
        data = self.args.data or self.protocol.data
        if not data:
            raise StudyError("--scale paper needs the text corpus: --data enwik8:PATH (spec §8)")
        return normalize_data_spec(data)

    def code_data(self) -> str:
        return normalize_data_spec(self.args.code_data or self.protocol.code_data)


@dataclass
class StudyResult:
    manifest: Manifest
    outcomes: list[Outcome]
    dataset_path: Path | None
    report_path: Path | None
    exit_code: int
    seconds: float = 0.0
    dataset: Any = field(default=None, repr=False)

    def count(self, action: str) -> int:
        return sum(o.action == action for o in self.outcomes)


Analysis = Callable[[Any, Manifest, StudyContext], Any]


@dataclass
class StudyOptions:
    """The options every study script shares (its own come from its ``Options``, :func:`add_options`)."""

    scale: str = "smoke"  # smoke: CPU, about a minute; paper: the spec's protocol (GPUs)
    data: str | None = None  # text corpus (paper: enwik8:PATH, required; smoke default: embedded)
    code_data: str | None = None  # code corpus (default: code, the standard library's *.py; spec OQ-29: CodeParrot via code:DIR)
    out: str | None = None  # study directory for study.nc, report.html, manifest.json (default runs/studies/SCALE/STUDY)
    runs: str | None = None  # run pool shared between studies (default runs/studies/SCALE/runs)
    record: str | None = None
    """a committed study.nc of this study (e.g. studies/results/regime_ladder.nc): its finished runs
    that have no checkpoint in the pool are taken from it, not trained again"""
    seeds: int | None = None  # seeds per arm (default: the scale's, 5 headline / 3 elsewhere; smoke 2)
    epochs: float | None = None  # training length in epochs (paper default 30; 50 for the extension runs)
    max_steps: int | None = None  # training length in steps, overriding --epochs (default: the scale's; smoke 30)
    eval_bytes: int | None = None  # evaluate on the first N validation bytes (default: smoke 4096, paper all)
    jobs: int = 1  # runs at a time on this machine (default 1: in this process)
    devices: str | None = None  # comma-separated devices for local jobs, e.g. cuda:0,cuda:1 (default: each run's auto)
    threads: int | None = None  # torch CPU threads per run (default: cores // jobs when jobs > 1)
    executor: str = "local"  # local (process pool) or slurm (through submitit)
    slurm_partition: str | None = None  # slurm: the partition to submit to
    slurm_timeout_min: int = 60 * 24  # per job; a timed-out job is requeued and resumes
    slurm_gpus: int = 1  # GPUs per job
    slurm_cpus: int = 8  # CPUs per job
    slurm_mem_gb: float | None = None  # memory per job in GB (default: the partition's)
    slurm_parallel: int | None = None  # at most N jobs of the array at a time
    slurm_param: list[str] = field(default_factory=list)  # any other submitit parameter, e.g. slurm_account=abc (repeatable)
    no_wait: bool = False  # slurm: submit and return; rerun the script later to assemble the report
    retry_failed: bool = False  # run again the runs whose training failed before
    dry_run: bool = False  # list the runs and their state, train nothing
    analysis_device: str = "auto"  # device for analyses that run the trained models
    overwrite: bool = False  # let --out be a folder that holds other files (not a study of ours); same-named files are replaced
    quiet: bool = False  # only the summary lines


@dataclass
class LrOptions:
    """The peak learning rates of a study's arms (the studies that train the headline arms)."""

    lr: list[str] = field(default_factory=list)  # peak LR of one arm (fsn=5e-3) or of every arm (3e-3); repeatable (default: the scale's)
    tuned: str | None = None  # take each arm's LR from a baseline-tuning study (its lowest mean final bpc)


# What the fields cannot say themselves: choices held elsewhere, and metavars that name a syntax.
OPTION_FLAGS: dict[str, dict[str, Any]] = {
    "scale": {"choices": SCALES},
    "executor": {"choices": EXECUTORS},
    "data": {"metavar": "SPEC"},
    "code_data": {"metavar": "SPEC"},
    "out": {"metavar": "DIR"},
    "runs": {"metavar": "DIR"},
    "record": {"metavar": "STUDY_NC"},
    "tuned": {"metavar": "STUDY_DIR"},
    "devices": {"metavar": "LIST"},
    "analysis_device": {"metavar": "DEV"},
    "slurm_partition": {"metavar": "NAME"},
    "slurm_param": {"metavar": "KEY=VALUE"},
    "lr": {"metavar": "[ARM=]LR"},
}


def add_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type, **kwargs: Any) -> dict[str, str]:
    """One option per field of the dataclass ``cls`` (:mod:`fsnlab.commands.options`), with the
    study options' choices and metavars (:data:`OPTION_FLAGS`); a bool field is a plain switch."""
    names = {f.name for f in dataclasses.fields(cls)}
    overrides = {name: spec for name, spec in OPTION_FLAGS.items() if name in names}
    overrides.update(kwargs.pop("overrides", {}))
    return add_dataclass_arguments(parser, cls, overrides=overrides, negatable=False, **kwargs)


def study_parser(kind: str, description: str) -> argparse.ArgumentParser:
    """The parser of ``studies/<kind>.py`` with the shared options (:class:`StudyOptions`)."""
    p = argparse.ArgumentParser(prog=f"studies/{kind}.py", description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    out_help = f"study directory for study.nc, report.html, manifest.json (default {DEFAULT_ROOT}/SCALE/{kind})"
    add_options(p, StudyOptions, overrides={"out": {"metavar": "DIR", "help": out_help}})
    return p


_POSITIVE = ("seeds", "max_steps", "eval_bytes", "jobs", "threads", "slurm_timeout_min", "slurm_cpus", "slurm_parallel")


def check_arguments(args: argparse.Namespace) -> None:
    """The same checks for every study's options, before anything is built (one-line StudyError)."""
    for name in _POSITIVE:
        value = getattr(args, name, None)
        if value is not None and value <= 0:
            raise StudyError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    if getattr(args, "slurm_gpus", None) is not None and args.slurm_gpus < 0:
        raise StudyError(f"--slurm-gpus must be a non-negative integer, got {args.slurm_gpus}")
    for name in ("epochs", "slurm_mem_gb"):
        value = getattr(args, name, None)
        if value is not None and not (math.isfinite(value) and value > 0):
            raise StudyError(f"--{name.replace('_', '-')} must be a positive number, got {value}")
    choices = getattr(args, "arm_choices", None)
    if choices and getattr(args, "arms", None):
        asked = split_list(args.arms, choices)
        unknown = [a for a in asked if a not in choices]
        if unknown or not asked:
            raise StudyError(f"--arms: unknown arm(s) {', '.join(unknown) or '(none given)'}; this study's arms: {', '.join(choices)}")


def check_output_dirs(ctx: "StudyContext", overwrite: bool) -> None:
    """The study directory must be new, empty or a study of ours (its manifest.json), unless
    ``overwrite``; both it and the run pool must be writable directories."""
    from fsnlab.paths import check_writable

    for label, path in (("--out", ctx.study_dir), ("--runs", ctx.runs_dir)):
        if path.exists() and not path.is_dir():
            raise StudyError(f"{label} {path} is an existing file, not a directory")
        check_writable(path, StudyError, into=True)
    study = ctx.study_dir
    if study.is_dir() and not overwrite and not (study / "manifest.json").is_file():
        entries = sorted(p.name for p in study.iterdir() if p.resolve() != ctx.runs_dir.resolve())
        if entries:
            shown = ", ".join(entries[:3]) + (f" and {len(entries) - 3} more" if len(entries) > 3 else "")
            raise StudyError(
                f"--out {study} is not empty and holds no study (no manifest.json; it holds {shown}); "
                "pick a new or empty folder, or add --overwrite"
            )


def validate_manifest(manifest: Manifest, data: bool = True) -> None:
    """Every run's model (preset and overrides) and (``data``) corpus, checked once before any
    training, so a bad arm or --data is found now and not when its run starts."""
    from fsnlab.data import load_corpus
    from fsnlab.models import get_preset, replace_config

    checked_models: set[str] = set()
    checked_data: set[str] = set()
    for run in manifest:
        cfg = run.config
        overrides = dict(cfg.model_overrides)
        if cfg.context_length:
            overrides["context_length"] = cfg.context_length
        key = repr((cfg.preset, sorted(overrides.items())))
        if key not in checked_models:
            try:
                replace_config(get_preset(cfg.preset), **overrides)
            except FsnlabError as exc:
                raise StudyError(f"run {run.name}: {exc}") from None
            checked_models.add(key)
        if data and cfg.data not in checked_data:
            try:
                load_corpus(cfg.data)
            except FsnlabError as exc:
                raise StudyError(f"run {run.name}: --data {cfg.data}: {exc}") from None
            checked_data.add(cfg.data)


def _slurm_params(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {"timeout_min": args.slurm_timeout_min, "gpus_per_node": args.slurm_gpus,
                              "cpus_per_task": args.slurm_cpus}
    if args.slurm_partition:
        params["slurm_partition"] = args.slurm_partition
    if args.slurm_mem_gb:
        params["mem_gb"] = args.slurm_mem_gb
    if args.slurm_parallel:
        params["slurm_array_parallelism"] = args.slurm_parallel
    for item in args.slurm_param:
        key, sep, value = item.partition("=")
        if not sep:
            raise StudyError(f"--slurm-param wants KEY=VALUE, got {item!r}")
        params[key] = _literal(value)
    return params


def _literal(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def make_context(kind: str, args: argparse.Namespace) -> StudyContext:
    proto = protocol(args.scale).with_overrides(
        seeds=args.seeds, epochs=args.epochs, max_steps=args.max_steps, eval_bytes=args.eval_bytes
    )
    root = DEFAULT_ROOT / args.scale
    study_dir = Path(args.out) if args.out else root / kind
    runs_dir = Path(args.runs) if args.runs else root / "runs"
    log = (lambda _msg: None) if args.quiet else (lambda msg: print(msg, flush=True))
    record = StudyRecord.load(args.record, kind) if getattr(args, "record", None) else None
    return StudyContext(args, proto, study_dir, runs_dir, log, record)


def assemble_with_record(ctx: StudyContext, manifest: Manifest, analyses: Sequence[Analysis]) -> Any:
    """The study's dataset: its runs read from the pool, those of the record that have no
    checkpoint here from the record (before the analyses and, for the variables of analyses that
    need a checkpoint, after them), then the analyses."""
    recorded = ctx.record.recorded_runs(manifest, ctx.runs_dir) if ctx.record is not None else set()
    ds = assemble(manifest, ctx.runs_dir)
    if ctx.record is not None:
        ds = ctx.record.restore(ds, recorded)
    for analysis in analyses:
        ds = analysis(ds, manifest, ctx)
    if ctx.record is not None:
        ds = ctx.record.restore(ds, recorded)
    return ds


def run_study(
    kind: str,
    args: argparse.Namespace,
    build_manifest: Callable[[StudyContext], Manifest],
    analyses: Sequence[Analysis] = (),
) -> StudyResult:
    """Everything after argument parsing. Never raises an FsnlabError: it is printed and the
    result carries exit code 2."""
    start = time.perf_counter()
    threads = None
    if args.threads:  # for the analyses in this process too (training runs set their own)
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(args.threads)
    try:
        check_arguments(args)
        ctx = make_context(kind, args)
        manifest = build_manifest(ctx)
        manifest.settings.setdefault("protocol", ctx.protocol.to_dict())
        manifest.settings.setdefault("argv", list(getattr(args, "argv", sys.argv)))
        validate_manifest(manifest, data=not args.dry_run)  # a dry run may list runs whose data is elsewhere
        if args.dry_run:
            print_run_states(manifest, ctx.runs_dir, ctx.record)
            return StudyResult(manifest, [], None, None, 0, time.perf_counter() - start)
        check_output_dirs(ctx, getattr(args, "overwrite", False))
        manifest.save(ctx.study_dir / "manifest.json")
        devices = [d.strip() for d in args.devices.split(",") if d.strip()] if args.devices else None
        outcomes = execute(
            manifest, ctx.runs_dir, jobs=args.jobs, executor=args.executor, devices=devices,
            threads=args.threads, retry_failed=args.retry_failed, slurm=_slurm_params(args),
            slurm_folder=ctx.study_dir / "slurm", wait=not args.no_wait, log=ctx.log,
            recorded=ctx.record.recorded_runs(manifest, ctx.runs_dir) if ctx.record is not None else (),
        )
        ds = assemble_with_record(ctx, manifest, analyses)
        dataset_path = write_dataset(ds, ctx.study_dir)
        from fsnlab.study.report import write_report

        report_path = write_report(ds, ctx.study_dir / "report.html")
    except (FsnlabError, OSError) as exc:
        message = one_line(exc) if isinstance(exc, FsnlabError) else f"{exc.filename or ''}: {exc.strerror or one_line(exc)}".lstrip(": ")
        print(f"{kind}: error: {message}", file=sys.stderr)
        return StudyResult(Manifest(kind, kind, "smoke"), [], None, None, 2, time.perf_counter() - start)
    finally:
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
    counts = {a: sum(o.action == a for o in outcomes)
              for a in ("trained", "resumed", "skipped", "recorded", "failed", "submitted", "queued", "interrupted", "locked")}
    status = {s: int((ds["status"].values == s).sum()) for s in ("done", "partial", "new", "failed")}
    print(
        f"{kind} ({ctx.scale}): " + ", ".join(f"{n} {a}" for a, n in counts.items() if n)
        + f" | runs done {status['done']}/{len(manifest)}"
        + (f", failed {status['failed']}" if status["failed"] else "")
        + f" | {dataset_path} | {report_path}",
        flush=True,
    )
    crashed = [o for o in outcomes if o.action == "failed" and not (o.error or "").startswith("TrainingError")]
    unfinished = status["done"] + status["failed"] < len(manifest)
    stops = [o.signum or 2 for o in outcomes if o.action == "interrupted"]
    # 128 + the stop signal, as a shell reports it: 143 after SIGTERM (a requeued SLURM job resumes), 130 after Ctrl-C
    code = 1 if crashed else 128 + max(stops) if stops else 3 if unfinished else 0
    return StudyResult(manifest, outcomes, dataset_path, report_path, code, time.perf_counter() - start, ds)


def print_run_states(manifest: Manifest, runs_dir: Path, record: StudyRecord | None = None) -> None:
    """``--dry-run``: one line per run (its state, ``training`` when a live process holds its lock,
    ``recorded`` when it is taken from ``--record``; the steps of its last checkpoint of the total;
    name, tags), then the counts and the steps left."""
    from fsnlab.train.lock import live_holder

    counts: dict[str, int] = {}
    steps_left = 0
    recorded = record.recorded_runs(manifest, runs_dir) if record is not None else set()
    for run in manifest:
        state = run_state(runs_dir / run.name)
        holder = live_holder(runs_dir / run.name) if state.status in ("new", "partial") else None
        status = "training" if holder else "recorded" if run.name in recorded else state.status
        counts[status] = counts.get(status, 0) + 1
        progress = f"{state.step}/{state.total_steps}" if state.total_steps else "-"
        if state.total_steps and state.status == "partial":  # failed runs are not resumed
            steps_left += state.total_steps - state.step
        by = f" (pid {holder['pid']} on {holder.get('host', '?')})" if holder else ""
        print(f"{status:8} {progress:>13} {run.name}{by}  {run.tags}")
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    print(f"{len(manifest)} runs: {summary}; {steps_left:,} steps left in the started runs (new runs not counted)")


def study_main(
    kind: str,
    description: str,
    build_manifest: Callable[[StudyContext], Manifest],
    analyses: Sequence[Analysis] = (),
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    argv: Sequence[str] | None = None,
) -> StudyResult:
    parser = study_parser(kind, description)
    if add_arguments:
        add_arguments(parser)
    args = parser.parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    return run_study(kind, args, build_manifest, analyses)


def entry_points(
    kind: str,
    description: str,
    build_manifest: Callable[[StudyContext], Manifest],
    analyses: Sequence[Analysis] = (),
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> tuple[Callable[..., StudyResult], Callable[..., int]]:
    """A study script's ``run(argv) -> StudyResult`` and ``main(argv) -> exit code``."""

    def run(argv: Sequence[str] | None = None) -> StudyResult:
        return study_main(kind, description, build_manifest, analyses, add_arguments, argv)

    def main(argv: Sequence[str] | None = None) -> int:
        return run(argv).exit_code

    return run, main


# -- the arms of a study ----------------------------------------------------------------------------


@dataclass
class ArmOptions:
    """The arms a study trains."""

    arms: str | None = None  # comma-separated arms


def add_arms_argument(parser: argparse.ArgumentParser, arms: Sequence[str]) -> None:
    """``--arms LIST``, defaulting to all of ``arms``; an unknown arm is refused by :func:`check_arguments`."""
    add_options(parser, ArmOptions, defaults={"arms": ",".join(arms)}, overrides={"arms": {"metavar": "LIST"}})
    parser.set_defaults(arm_choices=tuple(arms))  # checked by check_arguments before anything runs


def add_arm_runs(
    manifest: Manifest,
    ctx: StudyContext,
    arms: Sequence[str],
    lrs: dict[str, float],
    data: str,
    seeds: int,
    rung: str | None = None,
    corpus: str = "text",
) -> None:
    """Add ``seeds x arms`` runs at one rung (the protocol's by default), each arm at its own LR."""
    p = ctx.protocol
    rung = rung or p.rung
    for seed in range(seeds):
        for arm in arms:
            config = p.train_config(f"{arm}-{rung}", data=data, seed=seed, lr=lrs[arm])
            manifest.add(config, arm=arm, seed=seed, corpus=corpus, lr=lrs[arm], rung=rung)


# -- learning rates per arm (shared by the studies that train the headline arms) -------------------


def study_arguments(
    arms: Sequence[str] | None = None, options: type | None = None, **option_kwargs: Any,
) -> Callable[[argparse.ArgumentParser], None]:
    """A study script's ``add_arguments(parser)`` for :func:`entry_points`: ``--arms`` over ``arms``
    (:func:`add_arms_argument`) and one option per field of the dataclass ``options``
    (:func:`add_options`, which takes ``option_kwargs``, e.g. ``overrides``)."""

    def add_arguments(parser: argparse.ArgumentParser) -> None:
        if arms is not None:
            add_arms_argument(parser, arms)
        if options is not None:
            add_options(parser, options, **option_kwargs)

    return add_arguments


def tuned_lrs(study_dir: str | Path) -> dict[str, float]:
    """Each arm's best LR in a baseline-tuning study: the lowest mean final bpc over seeds, among
    the LRs whose runs all finished."""
    import numpy as np

    from fsnlab.study.dataset import open_study

    ds = open_study(study_dir)
    if ds.attrs.get("study") != "baseline_tuning":
        raise StudyError(f"--tuned wants a baseline_tuning study, {study_dir} holds {ds.attrs.get('study')}")
    best: dict[str, tuple[float, float]] = {}
    for arm in sorted(set(ds["arm"].values.tolist())):
        for lr in sorted(set(ds["lr"].values.tolist())):
            mask = (ds["arm"].values == arm) & (ds["lr"].values == lr)
            vals = ds["final_val_bpc"].values[mask]
            if not mask.any() or not np.isfinite(vals).all():
                continue
            mean = float(vals.mean())
            if arm not in best or mean < best[arm][1]:
                best[arm] = (float(lr), mean)
    return {arm: lr for arm, (lr, _) in best.items()}


def arm_lrs(ctx: StudyContext, arms: Sequence[str]) -> dict[str, float]:
    """The peak LR of every arm: the scale's default, then --tuned, then --lr."""
    lrs = {arm: ctx.protocol.lr for arm in arms}
    if getattr(ctx.args, "tuned", None):
        lrs.update({a: lr for a, lr in tuned_lrs(ctx.args.tuned).items() if a in lrs})
    for item in getattr(ctx.args, "lr", []) or []:
        arm, sep, value = item.rpartition("=")
        try:
            lr = float(value)
        except ValueError:
            raise StudyError(f"--lr wants [ARM=]LR, got {item!r}") from None
        if not sep:
            lrs = {a: lr for a in lrs}
        elif arm in lrs:
            lrs[arm] = lr
        else:
            raise StudyError(f"--lr {item}: no arm {arm!r} in this study (arms: {', '.join(arms)})")
    return lrs


def float_list(text: str | None, default: Sequence[float], flag: str) -> list[float]:
    """A comma-separated list of positive finite numbers (``--lrs``); a bad item is one line."""
    values = []
    for item in split_list(text, [f"{v:g}" for v in default]):
        try:
            value = float(item)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            raise StudyError(f"{flag}: expected comma-separated positive numbers, got {item!r}")
        values.append(value)
    return values


def split_list(text: str | None, default: Sequence[str]) -> list[str]:
    if not text:
        return list(default)
    return [t.strip() for t in text.split(",") if t.strip()]
