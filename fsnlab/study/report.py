"""A self-contained HTML report of a study, rebuilt from its dataset alone (``fsnlab report``).

The study's kind (the dataset's ``study`` attribute) picks its module in
:mod:`fsnlab.study.kinds`, which computes the kind's numbers and fills the page (figures from
:mod:`fsnlab.viz.study`, the paper's values from :mod:`fsnlab.study.claims`); every report ends
with its runs and settings, and :func:`fsnlab.study.page.render` writes the page through its
Jinja2 template, with plotly.js inlined once so that it opens offline.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType

import xarray as xr

from fsnlab.errors import FsnlabError
from fsnlab.study.kinds import GENERIC, KINDS
from fsnlab.study.manifest import StudyError
from fsnlab.study.page import Page, render
from fsnlab.study.sections import runs_table, settings_block


def kind_module(kind: str) -> ModuleType:
    """The module that reports studies of ``kind`` (the generic one for an unknown kind)."""
    try:
        import fsnlab.viz.study  # noqa: F401 - the figures need plotly
    except (ImportError, FsnlabError):
        raise StudyError("the study report needs plotly: pip install plotly (or pip install 'fsnlab[studies]')") from None
    return importlib.import_module(KINDS.get(kind, GENERIC))


def build_html(ds: xr.Dataset) -> str:
    """The report of ``ds`` as one HTML document."""
    page = Page(ds.attrs.get("title", "fsnlab study"))
    kind_module(ds.attrs.get("study", "")).section(page, ds)
    runs_table(page, ds)
    settings_block(page, ds)
    page.note(f"Reference: {ds.attrs.get('references', '')}. Rebuild this page with: fsnlab report STUDY_DIR")
    return render(page)


def write_report(ds: xr.Dataset, path: str | os.PathLike[str]) -> Path:
    """Write the report of ``ds`` to ``path`` (atomically) and return it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(build_html(ds), encoding="utf-8")
    os.replace(tmp, path)
    return path


__all__ = ["build_html", "kind_module", "write_report"]
