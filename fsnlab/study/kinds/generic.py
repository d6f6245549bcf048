"""The report of a study of any other kind: validation curves and final losses per arm."""

from __future__ import annotations

import xarray as xr

from fsnlab.study.labels import ARM_ORDER
from fsnlab.study.page import Page
from fsnlab.study.sections import SUMMARY_HEADERS, curves, header, summary_rows

KIND = ""


def section(page: Page, ds: xr.Dataset) -> None:
    header(page, ds, "A study of fsnlab runs.")
    if "arm" in ds.coords:
        page.figure(curves(ds, "arm", "validation loss per evaluation"))
        page.table(SUMMARY_HEADERS, summary_rows(ds, "arm", ARM_ORDER))
