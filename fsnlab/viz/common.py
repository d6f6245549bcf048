"""Shared pieces of the figure builders: plotly import, labels, colours, dataset look-ups.

Nothing here computes physics: these helpers only find things in a probe dataset (which stage is a
layer's input, which kernel group owns a coordinate) and label them for display.
"""

from __future__ import annotations

import json
import math
import unicodedata
from typing import Any, Sequence

import numpy as np

from fsnlab.errors import FsnlabError

try:  # plotly is optional (pip install fsnlab[app]); fsnlab itself never imports this module
    import plotly.graph_objects as go
    import plotly.io as pio
except ModuleNotFoundError as exc:  # pragma: no cover - exercised only without plotly
    raise FsnlabError("fsnlab.viz needs plotly: pip install 'fsnlab[app]'") from exc

__all__ = [
    "CLASS_COLORS",
    "CLASS_ORDER",
    "MODEL_COLORS",
    "PALETTE",
    "VizError",
    "base_layout",
    "char_classes",
    "display_char",
    "figure_html",
    "go",
    "has_phases",
    "input_stage",
    "kernel_group_dim",
    "kernel_index",
    "model_config",
    "osc_head",
    "require",
    "sample_label",
    "series_color",
    "with_alpha",
]


class VizError(FsnlabError):
    """A figure cannot be drawn from this dataset (a variable is missing, an index out of range)."""


# Character classes for colouring tokens (the colours are Okabe-Ito, safe for colour-blind readers).
CLASS_ORDER = ("letter", "digit", "space", "punctuation", "other")
CLASS_COLORS = {
    "letter": "#0072B2",
    "digit": "#E69F00",
    "space": "#999999",
    "punctuation": "#D55E00",
    "other": "#CC79A7",
}

# The one palette of every figure (Okabe-Ito, in the order series take it), and the fixed colour of
# each model family and kernel ablation in the study figures (a kernel ablation takes the colour of
# the family it equals: base = KA, full = FSN).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
MODEL_COLORS = {
    "transformer": "#000000", "fsn": "#D55E00", "fsn-mf": "#E69F00", "ka": "#0072B2",
    "base": "#0072B2", "+harmonics": "#CC79A7", "+sakaguchi": "#009E73", "+delay": "#56B4E9", "full": "#D55E00",
}


def series_color(key: Any, index: int = 0) -> str:
    """The colour of a model family or kernel (:data:`MODEL_COLORS`), else the ``index``-th of the palette."""
    return MODEL_COLORS.get(str(key), PALETTE[index % len(PALETTE)])


def with_alpha(hex_color: str, alpha: float) -> str:
    """``#rrggbb`` as ``rgba(r,g,b,alpha)`` (for bands under a line)."""
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"

# Display form of characters that would be invisible in a label.
_VISIBLE = {" ": "␣", "\n": "↵", "\r": "⏎", "\t": "⇥", "": "·"}


def display_char(c: str) -> str:
    """A visible label for one token's character (space, newline, tab, continuation bytes)."""
    c = str(c)
    if c in _VISIBLE:
        return _VISIBLE[c]
    if unicodedata.category(c[0]).startswith("C"):
        return f"\\x{ord(c[0]):02x}"
    return c


def char_class(c: str) -> str:
    """``letter``, ``digit``, ``space``, ``punctuation`` or ``other`` (continuation bytes, controls)."""
    c = str(c)
    if not c:
        return "other"
    if c.isspace():
        return "space"
    if c.isalpha():
        return "letter"
    if c.isdigit():
        return "digit"
    if unicodedata.category(c[0]).startswith(("P", "S")):
        return "punctuation"
    return "other"


def char_classes(chars: Sequence[str]) -> list[str]:
    """:func:`char_class` of each character."""
    return [char_class(c) for c in chars]


def has_phases(ds: Any) -> bool:
    """True for probes of phase models (FSN, its ablations, FSN-MF); False for transformer probes."""
    return "theta" in ds.variables and str(ds.attrs.get("phase_quantities", "present")) == "present"


def require(ds: Any, *names: str, what: str = "this figure") -> None:
    """Raise :class:`VizError` unless every variable in ``names`` is in the dataset."""
    missing = [n for n in names if n not in ds.variables]
    if missing:
        hint = " (probe with --attention)" if any(n.startswith("attn_topk") for n in missing) else ""
        raise VizError(f"{what} needs {', '.join(missing)}, which this probe does not hold{hint}")


def model_config(ds: Any) -> dict[str, Any]:
    """The probed model's config (the ``model_config`` JSON attribute); empty if absent."""
    try:
        return json.loads(ds.attrs.get("model_config", "{}"))
    except (TypeError, ValueError):
        return {}


def input_stage(ds: Any, layer: int) -> int:
    """Index on ``stage`` of layer ``layer``'s input phases (``attn.hook_theta_in``): the stage just
    before ``blocks.{layer}.attn`` (``embed`` for layer 0)."""
    names = [str(s) for s in ds["stage"].values]
    name = f"blocks.{int(layer)}.attn"
    if name not in names:
        raise VizError(f"layer {layer} is not in this probe (stages: {', '.join(names)})")
    return names.index(name) - 1


def osc_head(ds: Any, osc: int) -> int:
    """The attention head that owns coordinate ``osc``."""
    return int(ds["osc_head"].values[int(osc)])


def kernel_group_dim(ds: Any) -> str:
    """``head`` (one kernel per head) or ``osc`` (``kernel_sharing="coord"``): the kernel's group dim."""
    dims = ds["kernel_real"].dims
    return "head" if "head" in dims else "osc"


def kernel_index(ds: Any, osc: int) -> int:
    """Index on the kernel's group dim of the coefficients acting on coordinate ``osc``."""
    return osc_head(ds, osc) if kernel_group_dim(ds) == "head" else int(osc)


def base_layout(title: str | None = None, **extra: Any) -> dict[str, Any]:
    """The house style: white template, compact margins, titles left-aligned."""
    layout: dict[str, Any] = {
        "template": "plotly_white",
        "margin": {"l": 50, "r": 20, "t": 40 if title else 20, "b": 40},
        "font": {"size": 12},
        "legend": {"font": {"size": 11}},
    }
    if title:
        layout["title"] = {"text": title, "x": 0.01, "xanchor": "left", "font": {"size": 14}}
    layout.update(extra)
    return layout


def figure_html(fig: Any) -> str:
    """A self-contained HTML page of ``fig`` (plotly.js inline: it opens offline, no CDN)."""
    if isinstance(fig, dict):
        fig = go.Figure(fig)
    return pio.to_html(fig, include_plotlyjs=True, full_html=True, config={"displaylogo": False})


def unit_circle(n: int = 181, radius: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Points of a circle for drawing (not physics)."""
    t = np.linspace(-math.pi, math.pi, n)
    return radius * np.cos(t), radius * np.sin(t)


def circle_axes(extent: float = 1.3) -> dict[str, Any]:
    """Equal-aspect x/y axes without ticks for drawing on the unit circle."""
    axis = {"range": [-extent, extent], "showgrid": False, "zeroline": False, "showticklabels": False, "fixedrange": False}
    return {"xaxis": dict(axis), "yaxis": {**axis, "scaleanchor": "x", "scaleratio": 1}}


def sample_index(ds: Any, sample: int) -> int:
    """Validate a sample index (position on the ``sample`` dim)."""
    n = int(ds.sizes.get("sample", 0))
    if not 0 <= int(sample) < n:
        raise VizError(f"sample {sample} is out of range (this probe has {n})")
    return int(sample)


def sample_label(ds: Any, sample: int) -> int:
    """The ``sample`` coordinate (window number in the file) at position ``sample``: the explorer
    passes one-window slices, whose position 0 is window ``sample_label``."""
    if "sample" in ds.coords:
        return int(ds["sample"].values[int(sample)])
    return int(sample)


def values(da: Any) -> np.ndarray:
    """``da.values`` as a numpy array (reads lazily opened files)."""
    return np.asarray(da.values)
