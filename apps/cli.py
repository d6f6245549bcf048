"""``fsnlab explore``: open a probe dataset in the phase explorer (a local Dash web app).

fsnlab never imports the app: this module is registered as a plugin command in the
``fsnlab.commands`` entry-point group (``pyproject.toml``), which :mod:`fsnlab.cli` discovers. Dash
and plotly are imported inside the handler, so ``fsnlab --help`` works without them.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
from pathlib import Path

from fsnlab.errors import FsnlabError

DESCRIPTION = """\
Open a probe dataset (written by `fsnlab probe`, .zarr or .nc) or a folder of them in the phase
explorer, a web app that shows the network as a dynamical system: token phases on the circle
animated layer by layer, the selected token's couplings and the successors the delay term pulls it
toward, order parameters (R, psi, Daido |Z_n|), the learned coupling function and its decomposition
into Kuramoto-Sakaguchi angles and Daido harmonics, the data's frustration angles, the delay
identity term by term for the selected token, and the per-token loss. See docs/explorer.md.

Given a run directory (e.g. runs/latest) it opens the probes in it; given a checkpoint, its run's
probe.zarr. Without a probe it stops with the one command that makes it (fsnlab probe RUN).

The server listens on 127.0.0.1 only, unless --host says otherwise, and reads only probe files under
the given folder. It never runs in debug mode."""

EPILOG = """\
examples:
  fsnlab explore runs/latest                    # the run's probes (fsnlab probe runs/latest makes one)
  fsnlab explore p.zarr                         # opens the browser at http://127.0.0.1:8050/
  fsnlab explore probes/ --port 8060            # every .zarr / .nc under probes/
  fsnlab explore p.nc --no-browser --port 0     # a free port; the URL is printed (servers, ssh -L)
needs the app extra: pip install 'fsnlab[app]' (dash, plotly)"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``explore`` subcommand."""
    p = subparsers.add_parser(
        "explore",
        help="open a probe dataset in the phase explorer (local web app)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("probe", metavar="RUN_DIR|CKPT|PROBE",
                   help="a run directory (e.g. runs/latest: the probes in it), a checkpoint (its run's probe.zarr), "
                   "a probe file (.zarr or .nc, from fsnlab probe) or a folder of them")
    p.add_argument("--port", type=int, default=8050, metavar="P", help="port to listen on (default: 8050; 0 = any free port)")
    p.add_argument("--host", default="127.0.0.1", metavar="H",
                   help="address to listen on (default: 127.0.0.1, this machine only); 0.0.0.0 exposes the app to the network")
    p.add_argument("--no-browser", action="store_true", help="do not open a web browser (e.g. on a server)")
    p.set_defaults(handler=run_explore)


def load_app_package():
    """Import :mod:`apps.explorer`, with a one-line error when the app extra is not installed."""
    try:
        import dash  # noqa: F401
        import plotly  # noqa: F401
    except ModuleNotFoundError as exc:
        raise FsnlabError(f"the explorer needs {exc.name}: pip install 'fsnlab[app]'") from None
    return importlib.import_module("apps.explorer")


def run_explore(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise FsnlabError(f"--port must be in 0..65535, got {args.port}")
    target = explore_target(args.probe)  # a run without a probe: one line naming the command that makes it
    explorer = load_app_package()
    app = explorer.create_app(target)  # one-line errors: missing path, not a probe, empty folder
    explorer.serve(app, host=args.host, port=args.port, open_browser=not args.no_browser)  # port in use: one line
    return 0


def explore_target(given: str) -> Path:
    """What ``fsnlab explore`` opens for ``given``: a run directory stays a folder (every probe in it),
    a checkpoint means its run's ``probe.zarr`` (that one file only), anything else is passed on as it
    is. A run, or a checkpoint's run, without a probe is an :class:`FsnlabError` whose one line is the
    exact command that makes the default probe (the explorer only reads; it never writes a probe)."""
    from fsnlab.probe.options import DEFAULT_PROBE_NAME
    from fsnlab.train.latest import follow_latest

    p = follow_latest(given)
    exe = sys.argv[0] if Path(sys.argv[0]).name == "fsnlab" else "fsnlab"  # as typed: .venv/bin/fsnlab, or fsnlab
    make = f"make one with: {shlex.quote(exe)} probe {shlex.quote(given)}"
    if p.is_dir() and ((p / "checkpoint.pt").is_file() or (p / "config.json").is_file()):
        if not _has_probe(p):
            raise FsnlabError(f"no probe in run {given} yet; {make}")
        return p
    if p.is_file() and p.suffix == ".pt":
        probe = p.parent / DEFAULT_PROBE_NAME
        if not probe.is_dir():
            raise FsnlabError(f"no probe of {given} yet ({probe} does not exist); {make}")
        return probe
    return p


def _has_probe(run: Path) -> bool:
    from apps.explorer.data import ProbeCatalog

    return bool(ProbeCatalog(root=run.resolve(), single=None).keys())
