"""``fsnlab verify``: check the delay identity (spec §4) on a trained checkpoint and real text.

Exit codes: 0 when every float64 residual is within the tolerance *and* every control (a wrong
frustration angle) fails as it must; 1 otherwise (the message says which); 2 for unusable input
(no delay kernel, unreadable checkpoint or text), as one line on stderr.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from fsnlab.errors import ConfigError, DataError

if TYPE_CHECKING:
    from fsnlab.probe.text import ProbeText


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``verify`` subcommand."""
    p = subparsers.add_parser(
        "verify",
        help="check the delay identity (spec §4) on a checkpoint's layers and real text",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "For every layer with a delay term and every harmonic n, evaluate on real text\n"
            "  (a)  Im(e^{-in theta_t} d_n Z1_{t,n}), the layer's order parameter from hook_Z1 (fused attention),\n"
            "  (a') the explicit sum over the successors of the attended tokens (successor_coupling),\n"
            "  (b)  Kuramoto-Sakaguchi coupling to the attended tokens themselves with the frustration\n"
            "       alpha = -(n Delta_u + arg d_n) set by the data's transitions (sakaguchi_coupling),\n"
            "in float64 and in the model's dtype, and report max/RMS absolute and relative residuals.\n"
            "Controls repeat (b) with wrong angles (shuffled transitions, zero transitions, alpha = 0):\n"
            "they must fail, or the check is vacuous. See docs/identity.md."
        ),
        epilog=(
            "examples:\n"
            "  fsnlab verify runs/fsn-small-20260101-120000              # val split of the run's corpus\n"
            "  fsnlab verify runs/fsn-small-20260101-120000/best.pt --text 'In the beginning'\n"
            "  fsnlab verify RUN --data embedded --split test --start 1000 --length 256 --json\n"
            "exit status: 0 pass, 1 identity or control failure, 2 unusable input"
        ),
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="checkpoint file or run directory (its latest checkpoint)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--text", metavar="T", help="verify on this text (UTF-8 bytes)")
    src.add_argument("--text-file", metavar="F", help="verify on the bytes of this file")
    src.add_argument("--data", metavar="SPEC", help="corpus spec (default: the checkpoint's training corpus)")
    p.add_argument("--split", choices=("train", "val", "test"), default="val", help="corpus split for --data (default: val)")
    p.add_argument("--start", type=int, default=0, metavar="N", help="first byte in the split (default: 0)")
    p.add_argument("--length", type=int, metavar="L",
                   help="bytes to use (default: one context window for corpora, all of --text/--text-file); "
                   "cut into windows of the model's context length")
    p.add_argument("--tolerance", type=float, default=1e-10, metavar="TOL",
                   help="largest float64 absolute residual that passes (default: 1e-10)")
    p.add_argument("--control-margin", type=float, default=1e3, metavar="M",
                   help="each control must miss by more than M x TOL; M >= 1 (default: 1e3)")
    p.add_argument("--seed", type=int, default=0, help="seed of the shuffled-transition control (default: 0)")
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.set_defaults(handler=run_verify)


def read_text_bytes(args: argparse.Namespace, ckpt: dict, context_length: int) -> tuple[np.ndarray, str]:
    """The byte ids to verify on, and a description of where they came from; the text is read by
    :mod:`fsnlab.probe.text`, as ``fsnlab probe`` reads its text."""
    from fsnlab.probe.text import as_probe_text, text_from_file

    if args.start < 0 or (args.length is not None and args.length < 1):
        raise DataError("--start must be >= 0 and --length >= 1")
    if args.text is None and args.text_file is None:
        return corpus_bytes(args, ckpt, context_length)
    if args.text is not None:
        data = _ids(as_probe_text(args.text))
        where = f"--text ({data.size} bytes)"
    else:
        data = _ids(text_from_file(args.text_file))
        where = f"{Path(args.text_file).expanduser()} ({data.size} bytes)"
    if args.length is not None or args.start:
        data = data[args.start : args.start + args.length if args.length else None]
        where += f" [{args.start}:{args.start + data.size}]"
    return _check(data, where), where


def corpus_bytes(args: argparse.Namespace, ckpt: dict, context_length: int) -> tuple[np.ndarray, str]:
    """``--length`` bytes (default: one context window, fewer where the split ends sooner) from
    ``--start`` of the ``--split`` of ``--data``, else of the checkpoint's training corpus."""
    from fsnlab.probe.text import text_from_corpus

    spec = args.data or ckpt.get("train_config", {}).get("data", "embedded")
    length = args.length or context_length
    data = _ids(text_from_corpus(spec, args.split, args.start, length, at_most=args.length is None))
    where = f"{spec} {args.split}[{args.start}:{args.start + data.size}]"
    return _check(data, where), where


def _ids(text: ProbeText) -> np.ndarray:
    """The bytes of ``text`` as ``uint8`` ids."""
    return np.frombuffer(text.data, dtype=np.uint8)


def check_thresholds(args: argparse.Namespace) -> None:
    """--tolerance > 0 and --control-margin >= 1, both finite; --seed >= 0 (one-line errors, exit 2).
    A margin below 1 would let a control that passes the tolerance count as failing."""
    if not (math.isfinite(args.tolerance) and args.tolerance > 0):
        raise ConfigError(f"--tolerance must be a finite number > 0, got {args.tolerance}")
    if not (math.isfinite(args.control_margin) and args.control_margin >= 1):
        raise ConfigError(
            f"--control-margin must be a finite number >= 1 (each control must miss by more than M x TOL), "
            f"got {args.control_margin}"
        )
    if args.seed < 0:
        raise ConfigError(f"--seed must be a non-negative integer, got {args.seed}")


def _check(data: np.ndarray, where: str) -> np.ndarray:
    if data.size < 3:
        raise DataError(f"{where}: need at least 3 bytes to check the identity, got {data.size}")
    return data


def windows(data: np.ndarray, context_length: int) -> torch.Tensor:
    """Non-overlapping windows ``(B, T)`` of at most ``context_length`` bytes; a short tail is dropped
    when there is at least one full window (:func:`fsnlab.probe.text.window_starts` without ``align_end``)."""
    from fsnlab.probe.text import window_starts

    T = min(context_length, data.size)
    starts = window_starts(data.size, T, T, align_end=False)
    return torch.as_tensor(np.stack([data[s : s + T] for s in starts]).astype(np.int64))


def run_verify(args: argparse.Namespace) -> int:
    from fsnlab.dynamics.identity import format_identity_table, identity_summary, require_delay_model, verify_identity
    from fsnlab.train.checkpoint import load_checkpoint, model_from_checkpoint, resolve_checkpoint

    check_thresholds(args)
    path = resolve_checkpoint(args.checkpoint)
    ckpt = load_checkpoint(path)
    model = model_from_checkpoint(ckpt)
    require_delay_model(model, name=f"checkpoint {path}")
    context = model.config.context_length
    data, where = read_text_bytes(args, ckpt, context)
    ids = windows(data, context)
    ds = verify_identity(model, ids, tolerance=args.tolerance, control_margin=args.control_margin, seed=args.seed)
    summary = identity_summary(ds)
    cfg = model.config
    summary["checkpoint"] = str(path)
    summary["checkpoint_sha256"] = _sha256(path)
    summary["step"] = ckpt.get("step")
    summary["text"] = where
    summary["tokens"] = int(ids.numel())
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"delay identity (spec §4) | {path} (step {ckpt.get('step')})")
        print(f"model: {cfg.n_layer} layers, kernel {cfg.kernel!r}, {cfg.kernel_spec.n_harmonics} harmonics, "
              f"{cfg.n_head} heads, delay_mask {cfg.delay_mask!r}")
        print(f"text: {where}, {ids.shape[0]} window(s) of {ids.shape[1]} bytes")
        print(f"float64 sources: Z1 {ds.attrs['source_float64_Z1']}; attention {ds.attrs['source_float64_attn']}")
        print()
        print(format_identity_table(ds))
    if not summary["controls_discriminate"]:
        import sys

        print("fsnlab verify: CONTROL DID NOT FAIL: a wrong frustration angle passes as well, so this check "
              "proves nothing on this input (try more varied text)", file=sys.stderr)
        return 1
    if not summary["identity_passed"]:
        import sys

        print(f"fsnlab verify: identity residual {summary['max_float64_identity_residual']:.3e} exceeds "
              f"tolerance {args.tolerance:.1e}", file=sys.stderr)
        return 1
    return 0


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
