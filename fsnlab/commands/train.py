"""``fsnlab train``, ``eval``, ``sample`` and ``export``: argument parsing over :mod:`fsnlab.train`."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

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

# Command-line options of `fsnlab train` that set a TrainConfig field of the same name.
_CONFIG_OPTIONS = (
    "preset", "data", "epochs", "max_steps", "seed", "device", "batch_size", "context_length", "lr",
    "angle_lr_scale", "scalar_lr_scale", "eval_interval", "eval_bytes", "log_interval", "grad_accum", "compile", "keep",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the train, eval, sample and export subcommands."""
    d = TrainConfig()
    formatter = argparse.RawDescriptionHelpFormatter

    p = subparsers.add_parser(
        "train",
        help="train a model (default: fsn-small on the embedded corpus, ~3 min on CPU)",
        formatter_class=formatter,
        description=(
            "Train a model and write a run directory: config.json, environment.json, metrics.jsonl,\n"
            "checkpoint.pt (latest), checkpoint-<step>.pt (last --keep) and best.pt (lowest val bpc).\n"
            "Validation bits per byte are measured at every epoch boundary (one epoch = as many tokens\n"
            "as the train split has bytes), every --eval-interval steps and at the end.\n"
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
    p.add_argument("--preset", help=f"model preset, see `fsnlab presets` (default: {d.preset})")
    p.add_argument(
        "--data", metavar="SPEC",
        help=f"corpus: embedded, enwik8:PATH, code, code:DIR, text:PATH (default: {d.data})",
    )
    p.add_argument(
        "--epochs", type=float, metavar="E",
        help="train for E epochs (converted to steps via tokens per step)",
    )
    p.add_argument(
        "--max-steps", type=int, metavar="S",
        help=f"train for S optimizer steps; overrides --epochs (default: {d.max_steps})",
    )
    p.add_argument("--out", metavar="DIR", help="run directory (default: runs/<preset>-<timestamp>)")
    p.add_argument("--seed", type=int, help=f"seed of model init and data stream (default: {d.seed})")
    p.add_argument("--device", help=f"auto, cpu, cuda or cuda:N (default: {d.device})")
    p.add_argument(
        "--batch-size", type=int, metavar="B",
        help=f"sequences per micro-step per process (default: {d.batch_size})",
    )
    p.add_argument("--context-length", type=int, metavar="T", help="context length, overriding the preset's")
    p.add_argument(
        "--model",
        action="append",
        metavar="FIELD=VALUE",
        help="override a model config field of the preset, e.g. --model kernel=base --model n_harmonics=2 "
        "(repeatable; values are parsed as JSON when they can be, else taken as strings; see docs/models.md)",
    )
    p.add_argument(
        "--lr", type=float,
        help=f"peak learning rate; 2%% warmup, cosine to 10%% (default: {d.lr:g})",
    )
    p.add_argument(
        "--angle-lr-scale", type=float, metavar="X",
        help=f"LR multiplier for phase tables (default: {d.angle_lr_scale:g})",
    )
    p.add_argument(
        "--scalar-lr-scale", type=float, metavar="X",
        help=f"LR multiplier for gains, biases, kernel coefficients, step sizes and temperatures (default: {d.scalar_lr_scale:g})",
    )
    p.add_argument(
        "--eval-interval", type=int, metavar="N",
        help="also evaluate and checkpoint every N steps (default: epochs and end only)",
    )
    p.add_argument(
        "--eval-bytes", type=int, metavar="N",
        help="evaluate on the first N bytes of the val split (default: all of it)",
    )
    p.add_argument(
        "--log-interval", type=int, metavar="N",
        help=f"steps between training-loss records (default: {d.log_interval})",
    )
    p.add_argument(
        "--grad-accum", type=int, metavar="N",
        help=f"micro-steps per optimizer step (default: {d.grad_accum})",
    )
    p.add_argument(
        "--compile", action="store_true", default=None,
        help="torch.compile the model (weights are saved uncompiled)",
    )
    p.add_argument(
        "--keep", type=int, metavar="K",
        help=f"step checkpoints to keep besides checkpoint.pt and best.pt (default: {d.keep})",
    )
    p.add_argument(
        "--resume", metavar="RUN_DIR",
        help="continue the run in RUN_DIR (or from one of its checkpoint files) exactly",
    )
    p.add_argument(
        "--rewind", action="store_true",
        help="with --resume RUN/checkpoint-<step>.pt: allow restarting from an older checkpoint, deleting the "
        "run's later checkpoints (step files, checkpoint.pt, best.pt) and metrics first; without it such a "
        "resume is refused and nothing is deleted",
    )
    p.add_argument(
        "--overwrite", action="store_true",
        help="let --out be a folder that is not empty: an existing run there is replaced (its checkpoints and "
        "metrics deleted), other files are left alone; without it such an --out is refused",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar; plain log lines instead")
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
    given: dict[str, Any] = {n: getattr(args, n) for n in _CONFIG_OPTIONS if getattr(args, n) is not None}
    _check_positive(args, "max_steps", "batch_size", "context_length", "eval_interval", "eval_bytes",
                    "log_interval", "grad_accum")
    _check_non_negative(args, "seed", "keep")
    if args.model:
        given["model_overrides"] = parse_overrides(args.model)
    if args.resume:
        if args.out:
            raise ConfigError("--out cannot be combined with --resume: a resumed run stays in its directory")
        if args.overwrite:
            raise ConfigError("--overwrite goes with --out (a new run); to restart a run from an older checkpoint use --rewind")
        result = resume(args.resume, given, quiet=args.quiet, rewind=args.rewind)
    else:
        if args.rewind:
            raise ConfigError("--rewind goes with --resume RUN/checkpoint-<step>.pt")
        if "epochs" in given:
            given["max_steps"] = None  # --epochs replaces the default step count
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
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")


def _check_non_negative(args: argparse.Namespace, *names: str) -> None:
    for name in names:
        value = getattr(args, name)
        if value is not None and value < 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be a non-negative integer, got {value}")


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["kernel=base", "n_harmonics=2"]`` -> ``{"kernel": "base", "n_harmonics": 2}`` (JSON values where valid)."""
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--model expects FIELD=VALUE, got {item!r}")
        try:
            overrides[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            overrides[key.strip()] = raw
    return overrides
