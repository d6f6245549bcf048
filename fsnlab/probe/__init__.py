"""The probe: run text through a network and write what it *is* as named synchronization objects
(spec §10) into a self-describing xarray dataset (``docs/probe.md``).

    from fsnlab.probe import probe, probe_to_file, open_probe
    ds = probe(model, "In the beginning")                       # xarray.Dataset in memory
    probe_to_file("runs/demo", text, "p.zarr", stride=512)      # streamed to zarr (or .nc)

Names are imported on first use, so that ``fsnlab`` commands other than ``probe`` do not pay for
loading xarray.
"""

from __future__ import annotations

import importlib
from typing import Any

from fsnlab.probe.errors import ProbeError
from fsnlab.probe.options import DEFAULT_IDENTITY_POSITIONS, ProbeOptions

_LAZY = {
    "iter_probe": "fsnlab.probe.core",
    "load_probe_model": "fsnlab.probe.core",
    "probe": "fsnlab.probe.core",
    "probe_to_file": "fsnlab.probe.core",
    "write_probe": "fsnlab.probe.core",
    "ProbeText": "fsnlab.probe.text",
    "text_from_corpus": "fsnlab.probe.text",
    "text_from_file": "fsnlab.probe.text",
    "open_probe": "fsnlab.probe.writers",
}

__all__ = ["DEFAULT_IDENTITY_POSITIONS", "ProbeError", "ProbeOptions", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'fsnlab.probe' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
