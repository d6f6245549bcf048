"""``fsnlab report STUDY_DIR``: rebuild a study's HTML report from its dataset, training nothing."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report",
        help="rebuild a study's HTML report from its dataset (study.nc)",
        description="Rebuild the self-contained HTML report of a study (studies/*.py) from its dataset "
        "STUDY_DIR/study.nc alone: nothing is trained or evaluated. See docs/studies.md.",
    )
    p.add_argument("study", metavar="STUDY_DIR", help="a study directory (holding study.nc) or a study .nc file")
    p.add_argument("--out", metavar="HTML", help="where to write the report (default: report.html next to the dataset)")
    p.set_defaults(handler=run_report)


def run_report(args: argparse.Namespace) -> int:
    from fsnlab.study.dataset import open_study
    from fsnlab.study.report import write_report

    source = Path(args.study).expanduser()
    ds = open_study(source)
    out = Path(args.out) if args.out else (source if source.is_dir() else source.parent) / "report.html"
    path = write_report(ds, out)
    status = ds["status"].values
    print(f"{ds.attrs.get('study')} ({ds.attrs.get('scale')}): {int((status == 'done').sum())}/{status.size} runs done | report {path}")
    return 0
