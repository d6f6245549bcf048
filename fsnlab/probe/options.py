"""Probe options (the CLI flags of ``fsnlab probe``), kept free of heavy imports so that the command
line can be built without loading xarray."""

from __future__ import annotations

from dataclasses import dataclass

from fsnlab.probe.errors import ProbeError

DEFAULT_IDENTITY_POSITIONS = 32
MAX_GRID_SIZE = 65536  # points of the coupling-function grid; finer than any plot needs
DEFAULT_WINDOWS = 8  # `fsnlab probe CKPT` with no text: this many context windows of the run's own val split
DEFAULT_PROBE_NAME = "probe.zarr"  # `fsnlab probe CKPT` with no --out: <run dir>/probe.zarr


@dataclass(frozen=True)
class ProbeOptions:
    """How to probe (the CLI options of ``fsnlab probe``)."""

    stride: int | None = None  # window stride for text longer than the context (required then)
    attention: bool = False  # store the top-k coupling weights per query (never a dense T x T)
    top_k: int = 8  # k for attention and FSN-MF mode selection
    batch_size: int = 2  # windows per forward pass (and per appended batch); memory grows with it
    identity_positions: int | None = DEFAULT_IDENTITY_POSITIONS  # queries checked by the delay identity; None = all
    grid_size: int = 256  # points of the coupling-function grid over [-pi, pi)

    def validate(self) -> "ProbeOptions":
        for name in ("top_k", "batch_size", "grid_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ProbeError(f"{name.replace('_', '-')} must be a positive integer, got {value!r}")
        if self.grid_size > MAX_GRID_SIZE:
            raise ProbeError(f"grid-size must be at most {MAX_GRID_SIZE:,} (points over [-pi, pi)), got {self.grid_size:,}")
        if self.identity_positions is not None and (not isinstance(self.identity_positions, int) or self.identity_positions < 0):
            raise ProbeError(f"identity-positions must be a non-negative integer, got {self.identity_positions!r}")
        return self
