"""``fsnlab probe``: run text through a checkpoint and write its synchronization objects to zarr or netCDF."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from fsnlab.commands.options import add_dataclass_arguments, dataclass_values, flag
from fsnlab.probe.errors import ProbeError
from fsnlab.probe.options import DEFAULT_IDENTITY_POSITIONS, DEFAULT_PROBE_NAME, DEFAULT_WINDOWS, ProbeOptions

if TYPE_CHECKING:
    from fsnlab.probe.text import ProbeText

# Where `fsnlab probe` differs from ProbeOptions' own defaults: the command stores the attention
# top-k the explorer draws (--no-attention leaves it out).
CLI_DEFAULTS = {"attention": True}

DESCRIPTION = """\
Run text through a trained network and write what the paper says the network *is* (spec section 10)
as named synchronization objects into a self-describing xarray dataset (docs/probe.md):

  per token   input bytes and characters, next-byte loss in bits, phases after the embedding and
              after every attention and feed-forward step (wrapped to [-pi, pi)), the Kuramoto order
              parameter R e^{i psi} of the attended context, the Daido order parameters Z_n of the
              attended tokens and of their successors, the force, the data's transitions
  per window  the global order parameter per stage, and the delay = Kuramoto-Sakaguchi identity
              evaluated on this run in float64 (its residual, a zero-frustration control, and the
              network's delay force against an explicit per-edge sum)
  weights     kernel coefficients c, d, Sakaguchi angles, signed Daido amplitudes, the coupling
              function Gamma on a grid, step sizes, temperatures (FSN-MF: mode phases, mode selection)

With no options, `fsnlab probe RUN` reads the first {windows} context windows of the validation split of
the corpus the run was trained on and writes RUN/{name}, with the attention top-k the explorer draws.
The output format follows the extension: .zarr (streamed batch by batch, any length) or .nc
(netCDF-4 via h5netcdf, also appended batch by batch). Text longer than the model's context is cut
into windows of the context length every --stride S bytes (default: S = the context, windows that do
not overlap; the last one is aligned to the end).
Transformer checkpoints get loss, characters, residual-stream norms and attention top-k only.
The checkpoint is loaded weights-only (never unpickled).""".replace("{windows}", str(DEFAULT_WINDOWS)).replace("{name}", DEFAULT_PROBE_NAME)

EPILOG = """\
examples:
  fsnlab probe runs/latest                      # the run's val split -> runs/latest/probe.zarr
  fsnlab probe runs/demo --text "In the beginning God created" --out p.zarr
  fsnlab probe runs/demo --text-file notes.txt --out p.nc --no-attention   # stride = context
  fsnlab probe runs/demo/best.pt --data embedded --split val --start 0 --length 100000 \\
               --stride 512 --out val.zarr --overwrite"""


def _identity_positions(value: str) -> int | None:
    if value == "all":
        return None
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer or 'all', got {value!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer or 'all', got {value!r}")
    return n


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``probe`` subcommand."""
    p = subparsers.add_parser(
        "probe",
        help="write a checkpoint's phases, order parameters and kernel on a text to zarr/netCDF",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("checkpoint", metavar="CKPT", help="checkpoint file or run directory (its checkpoint.pt), e.g. runs/latest")
    source = p.add_argument_group("text (at most one source; default: the run's own corpus, val split)")
    src = source.add_mutually_exclusive_group()
    src.add_argument("--text", metavar="TEXT", help="probe this text (encoded as UTF-8)")
    src.add_argument("--text-file", metavar="PATH", help="probe the bytes of this file")
    src.add_argument("--data", metavar="SPEC",
                     help="probe a slice of a corpus: embedded, enwik8:PATH, code, code:DIR, text:PATH "
                     "(default: the corpus the checkpoint was trained on)")
    source.add_argument("--split", choices=("train", "val", "test"), help="corpus split (default: val)")
    source.add_argument("--start", type=int, metavar="N", help="first byte of the slice within the split (default: 0)")
    source.add_argument("--length", type=int, metavar="L",
                        help=f"bytes in the slice (default: {DEFAULT_WINDOWS} x the model's context length, "
                        "or what the split has after --start)")
    p.add_argument("--out", metavar="PATH",
                   help=f"output dataset: PATH.zarr or PATH.nc (default: <run dir>/{DEFAULT_PROBE_NAME}, next to the checkpoint; "
                   "if it exists it is kept: see --overwrite)")
    options = p.add_argument_group("probe options (ProbeOptions fields; recorded in the dataset's attributes)")
    add_dataclass_arguments(options, ProbeOptions, defaults=CLI_DEFAULTS, overrides={
        "stride": {"help": "window stride for text longer than the context, 1 <= N <= context (default: the context "
                   "length, windows that do not overlap)"},
        "identity_positions": {
            "type": _identity_positions,
            "help": "check the delay identity on the first N queries of every window; 0 skips it, 'all' checks "
            f"every query (cost grows as N^2; default: {DEFAULT_IDENTITY_POSITIONS})",
        },
    })
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing output (default: off; an existing --out is an error, an existing "
                   f"default <run dir>/{DEFAULT_PROBE_NAME} is kept when it is this checkpoint's probe of the same text "
                   "and options, else an error)")
    p.add_argument("--quiet", action="store_true", help="no progress bar (default: off)")
    p.set_defaults(handler=run_probe)


def _text(args: argparse.Namespace, context: int, train_data: str | None) -> "ProbeText":
    """The text to probe: --text, --text-file, or a slice of a corpus (--data, else the run's own)."""
    from fsnlab.probe.text import as_probe_text, text_from_corpus, text_from_file

    if args.text is not None or args.text_file is not None:
        for flag in ("split", "start", "length"):
            if getattr(args, flag) is not None:
                raise ProbeError(f"--{flag} goes with --data (or the run's own corpus), not with --text/--text-file")
        if args.text is not None:
            return as_probe_text(args.text)
        return text_from_file(args.text_file)
    spec = args.data or train_data
    if not spec or spec == "unknown":
        raise ProbeError("the checkpoint does not record the corpus it was trained on; pass --data SPEC, --text or --text-file")
    if args.length is not None:
        return text_from_corpus(spec, args.split or "val", args.start or 0, args.length)
    return text_from_corpus(spec, args.split or "val", args.start or 0, DEFAULT_WINDOWS * context, at_most=True)


def default_out(checkpoint: str) -> Path:
    """``<run dir>/probe.zarr``: next to the checkpoint (a run directory means its checkpoint.pt)."""
    from fsnlab.train.checkpoint import resolve_checkpoint

    return resolve_checkpoint(checkpoint).parent / DEFAULT_PROBE_NAME


def _same_probe(path: Path, provenance: dict, text: "ProbeText", options: ProbeOptions) -> bool:
    """Whether ``path`` is a probe this fsnlab wrote from the same checkpoint, text and options (then
    writing it again would give the same dataset: probes are deterministic)."""
    import json
    from dataclasses import asdict

    from fsnlab import __version__
    from fsnlab.probe import open_probe

    try:
        with open_probe(path) as ds:
            attrs = dict(ds.attrs)
    except Exception:  # not a probe, unreadable, another format: not the same
        return False
    want = {
        "checkpoint_sha256": provenance.get("checkpoint_sha256"), "text_sha256": text.sha256, "split": text.split,
        "start": text.start, "options": json.dumps(asdict(options), sort_keys=True), "fsnlab_version": __version__,
    }
    return all(str(attrs.get(k)) == str(v) for k, v in want.items())


def run_probe(args: argparse.Namespace) -> int:
    from fsnlab.probe.core import load_probe_model, write_probe  # xarray and friends: only when probing
    from fsnlab.probe.text import window_starts
    from fsnlab.probe.writers import check_output

    options = ProbeOptions(**dataclass_values(args, ProbeOptions)).validate()
    out = default_out(args.checkpoint) if args.out is None else Path(args.out).expanduser()
    if args.out is not None:
        check_output(out, args.overwrite)
    if args.text is not None and not args.text:
        raise ProbeError("the text to probe is empty")
    model, provenance = load_probe_model(args.checkpoint)
    cfg = model.config
    text = _text(args, cfg.context_length, provenance.get("train_data"))
    if options.stride is None and text.length > cfg.context_length:
        options = dataclasses.replace(options, stride=cfg.context_length)  # windows that do not overlap
    starts = window_starts(text.length, cfg.context_length, options.stride)  # a clear error before any work
    if args.out is None:
        if out.exists() and not args.overwrite:
            if _same_probe(out, provenance, text, options):
                print(f"probe: {out} is up to date (this checkpoint, the same text and options); --overwrite writes it again")
                return 0
            raise ProbeError(f"{out} already exists and is not this checkpoint's probe of the same text and options; "
                             "pass --overwrite to replace it, or --out PATH")
        check_output(out, args.overwrite)
    if cfg.family == "transformer":
        print(
            "fsnlab probe: note: transformer checkpoint: phase, order-parameter and kernel quantities do not apply; "
            "writing loss, characters, residual-stream norms" + (" and attention top-k" if options.attention else ""),
            file=sys.stderr,
        )
    path = write_probe(
        model, text, out, options, overwrite=args.overwrite, progress=not args.quiet,
        provenance=provenance, history=_command(args),
    )
    window = min(text.length, cfg.context_length)
    source = f" of {text.corpus} {text.split}" if text.split != "none" else ""
    print(f"probe: {len(starts)} window(s) of {window} bytes ({text.length:,} bytes{source}) -> {path}")
    return 0


def _command(args: argparse.Namespace) -> str:
    """The command line, rebuilt from the parsed options (for the ``history`` attribute)."""
    words = ["fsnlab", "probe", args.checkpoint]
    for name in ("text", "text_file", "data", "split", "start", "length", "out"):
        value = getattr(args, name)
        if value is not None:
            words += [flag(name), str(value)]
    for name, value in dataclass_values(args, ProbeOptions).items():
        if isinstance(value, bool):  # a switch only where it is not the command's default
            words += [] if value == CLI_DEFAULTS.get(name, getattr(ProbeOptions(), name)) else [flag(name) if value else flag("no_" + name)]
        elif name == "identity_positions":
            words += [flag(name), "all" if value is None else str(value)]
        elif value is not None:
            words += [flag(name), str(value)]
    words += [flag(name) for name in ("overwrite", "quiet") if getattr(args, name)]
    return " ".join(shlex.quote(w) for w in words)
