"""One module per study kind: its analyses of the study dataset and its section of the report.

Each module has ``KIND`` (the ``study`` attribute of the datasets it reads) and
``section(page, ds)``, which fills a :class:`fsnlab.study.page.Page` with the kind's header, its
table of our numbers next to the paper's claims, figures and tables. :mod:`fsnlab.study.report`
picks the module by the dataset's kind (:data:`KINDS`); :mod:`.generic` serves any other kind.
"""

from __future__ import annotations

KINDS: dict[str, str] = {
    "matched_budget": "fsnlab.study.kinds.matched_budget",
    "baseline_tuning": "fsnlab.study.kinds.baseline_tuning",
    "copy_depth": "fsnlab.study.kinds.copy_depth",
    "ablation_ladder": "fsnlab.study.kinds.ablation_ladder",
    "scale_ladder": "fsnlab.study.kinds.scale_ladder",
    "kernel_reading": "fsnlab.study.kinds.kernel_reading",
    "regime_ladder": "fsnlab.study.kinds.regime_ladder",
    "quality_sweep": "fsnlab.study.kinds.quality_sweep",
}
GENERIC = "fsnlab.study.kinds.generic"

__all__ = ["GENERIC", "KINDS"]
