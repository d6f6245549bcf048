"""Plotly figure builders for probe datasets (``docs/probe.md``), shared by the phase explorer
(``fsnlab explore``, ``apps/explorer``) and the study reports.

Every builder is a pure function: a probe :class:`xarray.Dataset` (or plain arrays) in, a
:class:`plotly.graph_objects.Figure` (or a list of table rows) out. They draw; they compute no
physics. Where a figure needs a computed quantity (the per-token delay identity, circular
statistics), the builder calls the one implementation in :mod:`fsnlab.models.kernel` or
:mod:`fsnlab.dynamics`, never a copy.

plotly is an optional dependency (``pip install fsnlab[app]``): ``import fsnlab`` never imports this
package, and importing ``fsnlab.viz`` itself is cheap; plotly is loaded with the first builder used.

    from fsnlab.probe import open_probe
    from fsnlab import viz
    ds = open_probe("p.zarr")
    viz.phase_figure(ds, sample=0, osc=0, stage="blocks.1.ffn").show()
    viz.coupling_function_figure(ds, layer=0, group=0).write_html("gamma.html")
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    # phases on the circle
    "token_phases": "fsnlab.viz.phases",
    "phase_circle_figure": "fsnlab.viz.phases",
    "phase_figure": "fsnlab.viz.phases",
    "phase_animation_figure": "fsnlab.viz.phases",
    # order parameters
    "global_order_figure": "fsnlab.viz.order",
    "local_order_heatmap": "fsnlab.viz.order",
    "daido_figure": "fsnlab.viz.order",
    # the kernel read as a coupling function, and the data's frustration
    "coupling_function_figure": "fsnlab.viz.kernel",
    "kernel_matrix_figure": "fsnlab.viz.kernel",
    "has_kernel_matrix": "fsnlab.viz.kernel",
    "kernel_table": "fsnlab.viz.kernel",
    "kernel_polar_figure": "fsnlab.viz.kernel",
    "frustration_histogram": "fsnlab.viz.kernel",
    "locking_offsets": "fsnlab.viz.kernel",
    # the delay identity, per token and for the whole run
    "TokenIdentity": "fsnlab.viz.identity",
    "token_identity": "fsnlab.viz.identity",
    "identity_terms_figure": "fsnlab.viz.identity",
    "identity_circle_figure": "fsnlab.viz.identity",
    "identity_residual_table": "fsnlab.viz.identity",
    # prediction
    "loss_figure": "fsnlab.viz.loss",
    # study datasets (fsnlab report)
    "Series": "fsnlab.viz.study",
    "SeedCoefficients": "fsnlab.viz.study",
    "curves_figure": "fsnlab.viz.study",
    "bars_figure": "fsnlab.viz.study",
    "ci_lines_figure": "fsnlab.viz.study",
    "coefficients_figure": "fsnlab.viz.study",
    # helpers
    "VizError": "fsnlab.viz.common",
    "input_stage": "fsnlab.viz.common",
    "char_classes": "fsnlab.viz.common",
    "display_char": "fsnlab.viz.common",
    "has_phases": "fsnlab.viz.common",
    "figure_html": "fsnlab.viz.common",
    "PALETTE": "fsnlab.viz.common",
    "series_color": "fsnlab.viz.common",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'fsnlab.viz' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
