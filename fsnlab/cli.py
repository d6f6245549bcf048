"""The ``fsnlab`` command: a thin argparse front end over the library.

Each subcommand lives in a module of :mod:`fsnlab.commands` that defines
``register(subparsers)``; its handler returns an exit code. Library errors
(:class:`fsnlab.errors.FsnlabError`) and OS errors (a read-only or full disk, say) become one line on
stderr and exit code 2, never a traceback; an interrupted command exits 130 (Ctrl-C) or 143 (SIGTERM).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
from importlib.metadata import entry_points
from typing import Sequence

from fsnlab import __version__
from fsnlab.errors import FsnlabError, one_line

# Subcommand modules, in the order `fsnlab --help` lists them. A module that cannot be imported
# (e.g. an optional dependency is missing) is skipped, so the other commands keep working. Packages
# outside fsnlab (the phase explorer in apps/) add commands through the `fsnlab.commands`
# entry-point group, so fsnlab never imports them by name.
COMMAND_MODULES = (
    "fsnlab.commands.train",
    "fsnlab.commands.probe",
    "fsnlab.commands.verify",
    "fsnlab.commands.models",
    "fsnlab.commands.report",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fsnlab",
        description="Frustrated Synchronization Networks: train, probe and verify phase-oscillator language models.",
    )
    parser.add_argument("--version", action="version", version=f"fsnlab {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("fsnlab.commands"):
                continue  # command not built yet
            raise
        module.register(subparsers)
    for entry_point in sorted(entry_points(group="fsnlab.commands"), key=lambda ep: ep.name):
        try:
            module = entry_point.load()
        except ImportError:
            continue  # a plugin whose package is not importable here
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 0
    try:
        return int(args.handler(args) or 0)
    except FsnlabError as exc:
        print(f"fsnlab {args.command}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)  # TrainingInterrupted: SIGINT or SIGTERM
        name = "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C"
        print(f"fsnlab {args.command}: interrupted ({name})", file=sys.stderr)
        return 128 + signum
    except BrokenPipeError:  # e.g. `fsnlab sample ... | head -1`
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:  # an OS refusal no check foresaw (disk full, read-only, permissions): one line
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"fsnlab {args.command}: error: {where}{exc.strerror or one_line(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
