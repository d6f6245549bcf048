"""Display names and orders of the tags a study's runs carry (arms, kernels, rungs).

Shared by the report pages, the figures' legends and the markdown summaries; plain strings, no
plotly, so a summary can be written where plotly is not installed.
"""

from __future__ import annotations

from typing import Any

ARM_ORDER = ("transformer", "fsn", "fsn-net", "fsn-mf", "ka")
ARM_LABELS = {"transformer": "Transformer", "fsn": "FSN", "fsn-net": "FSN (network kernel)", "fsn-mf": "FSN-MF",
              "ka": "KA (base)"}
KERNEL_ORDER = ("base", "+harmonics", "+sakaguchi", "+delay", "full")
RUNG_ORDER = ("tiny", "small", "1m", "2m", "4m", "8m")


def label(value: Any) -> str:
    """The display name of an arm (``fsn`` → ``FSN``); any other value as text."""
    return ARM_LABELS.get(str(value), str(value))


__all__ = ["ARM_LABELS", "ARM_ORDER", "KERNEL_ORDER", "RUNG_ORDER", "label"]
