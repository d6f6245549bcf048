"""The probe: run text through a network and write what it *is* as named synchronization objects
(spec §10) into a self-describing xarray dataset (``docs/probe.md``).

    from fsnlab.probe import probe, probe_to_file, open_probe
    ds = probe(model, "In the beginning")                       # xarray.Dataset in memory
    probe_to_file("runs/demo", text, "p.zarr", stride=512)      # streamed to zarr (or .nc)
"""

from fsnlab.probe.core import (
    DEFAULT_IDENTITY_POSITIONS,
    ProbeOptions,
    iter_probe,
    load_probe_model,
    probe,
    probe_to_file,
    write_probe,
)
from fsnlab.probe.errors import ProbeError
from fsnlab.probe.text import ProbeText, text_from_corpus, text_from_file
from fsnlab.probe.writers import open_probe

__all__ = [
    "DEFAULT_IDENTITY_POSITIONS",
    "ProbeError",
    "ProbeOptions",
    "ProbeText",
    "iter_probe",
    "load_probe_model",
    "open_probe",
    "probe",
    "probe_to_file",
    "text_from_corpus",
    "text_from_file",
    "write_probe",
]
