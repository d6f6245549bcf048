"""``fsnlab train``, ``eval``, ``sample`` and ``export``: argument parsing over :mod:`fsnlab.train`."""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from typing import Any

from fsnlab.commands.options import add_dataclass_arguments, dataclass_values
from fsnlab.data import load_corpus
from fsnlab.errors import ConfigError
from fsnlab.train import (
    TrainConfig,
    evaluate,
    export_safetensors,
    generate,
    load_checkpoint,
    model_from_checkpoint,
    resolve_checkpoint,
    resume,
    train,
)
from fsnlab.train.distributed import resolve_device

# `fsnlab train` has one option per TrainConfig field (fsnlab.commands.options); what the fields
# cannot say themselves is here: an alias and the metavars that name a syntax.
_CONFIG_FLAGS: dict[str, dict[str, Any]] = {
    "data": {"metavar": "SPEC"},
    "model_overrides": {"flags": ("--model", "--model-overrides"), "metavar": "FIELD=VALUE"},
}
_COMMAND_FLAGS: dict[str, dict[str, Any]] = {"out": {"metavar": "DIR"}, "resume": {"metavar": "RUN_DIR"}}


@dataclass
class TrainCommand:
    """The options of ``fsnlab train`` that are not part of the run's config."""

    out: str | None = None  # run directory (default: runs/<preset>-<timestamp>)
    resume: str | None = None  # continue the run in RUN_DIR (or from one of its checkpoint files) exactly
    rewind: bool = False
    """with --resume RUN/checkpoint-<step>.pt: allow restarting from an older checkpoint, deleting the
    run's later checkpoints (step files, checkpoint.pt, best.pt) and metrics first; without it such a
    resume is refused and nothing is deleted"""
    overwrite: bool = False
    """let --out be a folder that is not empty: an existing run there is replaced (its checkpoints and
    metrics deleted), other files are left alone; without it such an --out is refused"""
    quiet: bool = False  # no progress bar; plain log lines instead


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the train, eval, sample and export subcommands."""
    formatter = argparse.RawDescriptionHelpFormatter

    p = subparsers.add_parser(
        "train",
        help="train a model (default: fsn-small on the embedded corpus, ~3 min on CPU)",
        formatter_class=formatter,
        description=(
            "Train a model and write a run directory: config.json, environment.json, metrics.jsonl,\n"
            "checkpoint.pt (latest), checkpoint-<step>.pt (last --keep) and best.pt (lowest val bpc).\n"
            "Validation bits per byte are measured at every epoch boundary (one epoch = as many tokens\n"
            "as the train split has bytes), every --eval-interval steps and at the end; a checkpoint\n"
            "alone is also written every --checkpoint-minutes of wall time (default 10).\n"
            "Multi-GPU: torchrun --nproc-per-node N -m fsnlab train ... (--batch-size is per process).\n"
            "Ctrl-C or SIGTERM stops after the current step with a checkpoint (a second Ctrl-C stops at\n"
            "once); --resume continues exactly. One process writes a run directory at a time (its\n"
            "fsnlab.lock); a second is refused.\n"
            "Exit status: 0 done; 2 bad input, damaged checkpoint or non-finite loss; 3 the run diverged\n"
            "(final val bpc worse than a uniform guess, 8 bits per byte); 130 Ctrl-C; 143 SIGTERM."
        ),
        epilog=(
            "examples:\n"
            "  fsnlab train                                    # fsn-small, embedded corpus, CPU\n"
            "  fsnlab train --preset transformer-1m --data enwik8:data/enwik8 --epochs 30 \\\n"
            "               --batch-size 64 --context-length 512 --lr 3e-3\n"
            "  fsnlab train --resume runs/fsn-small-20250101-120000"
        ),
    )
    config = p.add_argument_group("run config (TrainConfig fields; recorded in the run's config.json)")
    add_dataclass_arguments(config, TrainConfig, overrides=_CONFIG_FLAGS, suppress=True)
    command = p.add_argument_group("run directory and output")
    add_dataclass_arguments(command, TrainCommand, overrides=_COMMAND_FLAGS, negatable=False)
    p.set_defaults(handler=_train)

    p = subparsers.add_parser(
        "eval",
        help="bits per byte of a checkpoint on a corpus split",
        description="Evaluate a checkpoint (a file, or a run directory meaning its checkpoint.pt) in bits "
        "per byte over a whole split, with non-overlapping windows of the model's context length.",
    )
    p.add_argument("checkpoint", metavar="CKPT", help="checkpoint file or run directory")
    p.add_argument(
        "--data", metavar="SPEC",
        help="corpus spec (default: the one the checkpoint was trained on)",
    )
    p.add_argument("--split", choices=("val", "test"), default="val", help="split to evaluate (default: val)")
    p.add_argument("--eval-bytes", type=int, metavar="N", help="only the first N bytes of the split")
    p.add_argument(
        "--batch-size", type=int, default=32, metavar="B",
        help="windows per forward pass (default: 32)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a line of text")
    p.set_defaults(handler=_eval)

    p = subparsers.add_parser(
        "sample",
        help="generate text from a checkpoint",
        description="Continue a prompt byte by byte; the model sees at most its context length. The output "
        "(prompt and continuation) is decoded as UTF-8, invalid bytes replaced.",
    )
    p.add_argument("checkpoint", metavar="CKPT", help="checkpoint file or run directory")
    p.add_argument("--prompt", default="\n", metavar="TEXT", help="text to continue (default: a newline)")
    p.add_argument("--length", type=int, default=256, metavar="N", help="bytes to generate (default: 256)")
    p.add_argument(
        "--temperature", type=float, default=1.0, metavar="T",
        help="softmax temperature; 0 = greedy (default: 1)",
    )
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.set_defaults(handler=_sample)

    p = subparsers.add_parser(
        "export",
        help="write a checkpoint's weights to safetensors",
        description="Write the weights alone (no optimizer state) to a safetensors file whose metadata holds "
        "the model config (key fsnlab_config, JSON). Load with safetensors.torch.load_model.",
    )
    p.add_argument("checkpoint", metavar="CKPT", help="checkpoint file or run directory")
    p.add_argument(
        "--safetensors", nargs="?", const="", required=True, metavar="OUT",
        help="export as safetensors, to OUT if given (default: the checkpoint path with .safetensors)",
    )
    p.add_argument("--out", metavar="PATH", help="output file (same as the value of --safetensors)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file (refused without it)")
    p.set_defaults(handler=_export)


def _train(args: argparse.Namespace) -> int:
    given: dict[str, Any] = dataclass_values(args, TrainConfig, {"model_overrides": "--model"})  # only what was typed
    _check_positive(args, "max_steps", "batch_size", "context_length", "eval_interval", "eval_bytes",
                    "log_interval", "grad_accum")
    _check_non_negative(args, "seed", "keep", "checkpoint_minutes")
    if args.resume:
        if args.out:
            raise ConfigError("--out cannot be combined with --resume: a resumed run stays in its directory")
        if args.overwrite:
            raise ConfigError("--overwrite goes with --out (a new run); to restart a run from an older checkpoint use --rewind")
        result = resume(args.resume, given, quiet=args.quiet, rewind=args.rewind)
    else:
        if args.rewind:
            raise ConfigError("--rewind goes with --resume RUN/checkpoint-<step>.pt")
        if "epochs" in given and "max_steps" not in given:
            given["max_steps"] = None  # --epochs replaces the default step count; --max-steps overrides it
        result = train(TrainConfig(**given), args.out, quiet=args.quiet, overwrite=args.overwrite)
    if result.is_main:
        val = f"val bpc {result.val.bpc:.4f}" if result.val else "no validation yet"
        print(f"{val} at step {result.step}/{result.total_steps} | checkpoint {result.checkpoint}")
        if result.checkpoint is not None and not result.diverged:
            _print_next(result.run_dir, new_run=not args.resume)
    if result.diverged:
        if result.is_main:
            print(f"fsnlab train: warning: {result.warning}", file=sys.stderr)
        return 3
    return 0


def _print_next(run_dir: Any, new_run: bool) -> None:
    """The commands that come next for this run (its real path), after pointing ``<runs>/latest`` at it."""
    import shlex
    from pathlib import Path

    from fsnlab.probe.options import DEFAULT_PROBE_NAME, DEFAULT_WINDOWS
    from fsnlab.train.latest import point_latest

    note = ""
    if new_run:
        link, why = point_latest(run_dir)
        note = f" ({link} now names this run)" if link else f" ({Path(run_dir).parent}/latest not updated: {why})"
    exe = sys.argv[0] if Path(sys.argv[0]).name == "fsnlab" else "fsnlab"  # as typed: .venv/bin/fsnlab, or fsnlab
    exe, run = shlex.quote(exe), shlex.quote(str(run_dir))
    rows = [
        (f"{exe} probe {run}", f"{DEFAULT_WINDOWS} val windows -> {Path(run_dir) / DEFAULT_PROBE_NAME}"),
        (f"{exe} verify {run}", "the delay identity (spec §4) on the val split"),
        (f"{exe} explore {run}", "the phase explorer on that probe"),
    ]
    width = max(len(c) for c, _ in rows)
    print(f"next{note}:")
    for command, what in rows:
        print(f"  {command:<{width}}  # {what}")


def _eval(args: argparse.Namespace) -> int:
    _check_positive(args, "batch_size", "eval_bytes")
    device = resolve_device(args.device)
    ckpt = load_checkpoint(args.checkpoint)
    model = model_from_checkpoint(ckpt).to(device)
    spec = args.data or ckpt["train_config"]["data"]
    corpus = load_corpus(spec)
    split = corpus.split(args.split)
    result = evaluate(model, split, batch_size=args.batch_size, device=device, max_bytes=args.eval_bytes)
    path = resolve_checkpoint(args.checkpoint)
    if args.json:
        record = {"checkpoint": str(path), "step": ckpt["step"], "data": spec, "split": args.split,
                  "bpc": result.bpc, "nats": result.nats, "targets": result.targets}
        print(json.dumps(record))
    else:
        scored = f"nats {result.nats:.4f}, {result.targets:,} bytes of {spec}"
        print(f"{args.split} bpc {result.bpc:.4f} ({scored}) | {path} step {ckpt['step']}")
    return 0


def _sample(args: argparse.Namespace) -> int:
    _check_non_negative(args, "length", "seed")
    if not (math.isfinite(args.temperature) and args.temperature >= 0):
        raise ConfigError(f"--temperature must be a finite number >= 0 (0 = greedy), got {args.temperature}")
    device = resolve_device(args.device)
    model = model_from_checkpoint(load_checkpoint(args.checkpoint)).to(device)
    prompt = args.prompt.encode("utf-8")
    text = generate(model, prompt, args.length, temperature=args.temperature, seed=args.seed, device=device)
    sys.stdout.write((prompt + text).decode("utf-8", errors="replace") + "\n")
    return 0


def _export(args: argparse.Namespace) -> int:
    if args.safetensors and args.out and args.safetensors != args.out:
        raise ConfigError("give the output path once: --safetensors OUT or --out OUT")
    path = export_safetensors(args.checkpoint, args.safetensors or args.out or None, overwrite=args.overwrite)
    print(f"wrote {path}")
    return 0


def _check_positive(args: argparse.Namespace, *names: str) -> None:
    """Integer options that must be >= 1 when given (the same wording for every command)."""
    for name in names:
        value = getattr(args, name, None)
        if value is not None and value <= 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")


def _check_non_negative(args: argparse.Namespace, *names: str) -> None:
    for name in names:
        value = getattr(args, name, None)
        if value is not None and value < 0:
            kind = "integer" if isinstance(value, int) else "number"
            raise ConfigError(f"--{name.replace('_', '-')} must be a non-negative {kind}, got {value}")
