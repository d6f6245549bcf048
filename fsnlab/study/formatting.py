"""Numbers as the study reports print them: a fixed number of decimals, ``–`` for what is missing."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

MISSING = "–"


def fmt(x: Any, digits: int = 4) -> str:
    """Integers with thousands separators, floats with ``digits`` decimals, NaN/None as ``–``;
    anything else as text."""
    if x is None:
        return MISSING
    if isinstance(x, (int, np.integer)):
        return f"{int(x):,}"
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    if not math.isfinite(x):
        return MISSING
    return f"{x:.{digits}f}"


def fmt_p(p: float | None) -> str:
    """A p-value with three significant digits."""
    if p is None or not math.isfinite(p):
        return MISSING
    return f"{p:.3g}"


def fmt_ci(lo: float, hi: float, digits: int = 4) -> str:
    """A confidence interval ``[lo, hi]``."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return MISSING
    return f"[{lo:.{digits}f}, {hi:.{digits}f}]"


__all__ = ["MISSING", "fmt", "fmt_ci", "fmt_p"]
