"""The ``fsnlab`` command: a thin argparse front end over the library.

Each subcommand lives in a module of :mod:`fsnlab.commands` that defines
``register(subparsers)``; its handler returns an exit code. Library errors
(:class:`fsnlab.errors.FsnlabError`) become one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from importlib.metadata import entry_points
from typing import Sequence

from fsnlab import __version__
from fsnlab.errors import FsnlabError

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
        print(f"fsnlab {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fsnlab {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
