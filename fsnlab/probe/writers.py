"""Streaming writers for probe datasets: zarr and netCDF (h5netcdf), plus an in-memory collector.

Every writer receives the dataset batch by batch along ``sample``. The first batch carries the
static variables (coordinates, weight readings) and the global attributes; later batches carry only
the variables that have a ``sample`` dimension and are appended, so a probe of any length holds one
batch in memory at a time.

* **zarr** (``.zarr``, zarr format 2 for the widest reader support): ``to_zarr(append_dim="sample")``.
* **netCDF** (``.nc``, netCDF-4 via h5netcdf): the first batch through ``to_netcdf`` with ``sample``
  unlimited, later batches by resizing ``sample`` and writing the new slices with h5netcdf.

Complex quantities never reach a writer as complex numbers: the probe splits them into
``*_real``/``*_imag`` variables for both formats. Files are written under a temporary name next to
the target and renamed into place when complete, so an interrupted probe leaves no half-written
output under the requested name.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import xarray as xr

from fsnlab.probe.errors import ProbeError
from fsnlab.probe.schema import annotate

FORMATS = {".zarr": "zarr", ".nc": "netcdf"}


def output_format(path: str | os.PathLike[str]) -> str:
    """``"zarr"`` or ``"netcdf"`` from the output's extension (ProbeError otherwise)."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ProbeError(f"unknown output extension {suffix or '(none)'!r} for {path}; use .zarr or .nc")
    return FORMATS[suffix]


def sample_only(ds: xr.Dataset) -> xr.Dataset:
    """The variables and coordinates of ``ds`` that have a ``sample`` dimension."""
    drop = [name for name, var in ds.variables.items() if "sample" not in var.dims]
    return ds.drop_vars(drop)


class MemoryWriter:
    """Collects batches and concatenates them (the ``probe()`` API for notebooks)."""

    def __init__(self) -> None:
        self.static: xr.Dataset | None = None
        self.batches: list[xr.Dataset] = []

    def append(self, ds: xr.Dataset) -> None:
        if self.static is None:
            self.static = ds.drop_vars([n for n, v in ds.variables.items() if "sample" in v.dims])
            self.static.attrs = dict(ds.attrs)
        self.batches.append(sample_only(ds))

    def result(self) -> xr.Dataset:
        assert self.static is not None, "no batch was written"
        samples = xr.concat(self.batches, dim="sample", data_vars="all", coords="all", join="exact")
        out = xr.merge([self.static, samples], compat="equals", join="exact", combine_attrs="drop")
        out.attrs = dict(self.static.attrs)
        return annotate(out)


class _FileWriter:
    """Common part: the temporary path, overwrite rules and the final rename."""

    def __init__(self, path: str | os.PathLike[str], overwrite: bool) -> None:
        self.path = Path(path).expanduser()
        self.overwrite = overwrite
        check_output(self.path, overwrite)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.name}.partial")
        _remove(self.tmp)
        self.started = False

    def close(self) -> Path:
        """Move the finished file into place (replacing an old one only with ``overwrite``)."""
        if not self.started:
            raise ProbeError("nothing was probed, so no output was written")
        if self.path.exists():
            _remove(self.path)
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        _remove(self.tmp)


class ZarrWriter(_FileWriter):
    """Appends batches along ``sample`` to a zarr (format 2) store."""

    def append(self, ds: xr.Dataset) -> None:
        if not self.started:
            # one chunk per window: bounded encode buffers, and appends of any batch size stay aligned
            encoding = {name: {"chunks": (1, *var.shape[1:])} for name, var in ds.variables.items() if "sample" in var.dims}
            ds.to_zarr(self.tmp, mode="w-", zarr_format=2, encoding=encoding, consolidated=True)
            self.attrs = dict(ds.attrs)
            self.started = True
        else:
            batch = sample_only(ds)
            batch.attrs = self.attrs  # an append rewrites the group's attributes: keep the first batch's
            batch.to_zarr(self.tmp, append_dim="sample", zarr_format=2, consolidated=True)


class NetCDFWriter(_FileWriter):
    """Writes a netCDF-4 file with an unlimited ``sample`` dimension and appends to it with h5netcdf."""

    def __init__(self, path: str | os.PathLike[str], overwrite: bool) -> None:
        try:
            import h5py  # noqa: F401  (h5netcdf's HDF5 backend; h5netcdf alone cannot write)
        except ImportError:
            raise ProbeError("netCDF output needs the h5py package (pip install h5py); or write .zarr") from None
        super().__init__(path, overwrite)

    def append(self, ds: xr.Dataset) -> None:
        if not self.started:
            encoding = {}
            for name, var in ds.variables.items():
                if "sample" in var.dims:
                    if var.dims[0] != "sample":
                        raise AssertionError(f"{name}: sample must be the first dimension")
                    encoding[name] = {"chunksizes": (1, *var.shape[1:])}
            ds.to_netcdf(self.tmp, engine="h5netcdf", unlimited_dims=["sample"], encoding=encoding)
            self.started = True
            return
        import h5netcdf

        batch = sample_only(ds)
        with h5netcdf.File(self.tmp, "a") as f:
            start = f.dimensions["sample"].size
            stop = start + batch.sizes["sample"]
            f.resize_dimension("sample", stop)
            for name, var in batch.variables.items():
                values = var.values
                if values.dtype.kind == "U":
                    values = values.astype(object)
                f.variables[name][start:stop, ...] = values


def open_writer(path: str | os.PathLike[str], overwrite: bool) -> ZarrWriter | NetCDFWriter:
    """A writer for ``path`` chosen by its extension (``.zarr`` or ``.nc``)."""
    fmt = output_format(path)
    return ZarrWriter(path, overwrite) if fmt == "zarr" else NetCDFWriter(path, overwrite)


def check_output(path: Path, overwrite: bool) -> None:
    """Refuse an output that cannot be written (a parent that is a file, a read-only or virtual
    filesystem), an existing one without ``overwrite``, and with it anything but a probe output of
    the same kind (a directory for ``.nc``, a file for ``.zarr``, a folder that is not a zarr store)."""
    from fsnlab.paths import check_writable

    fmt = output_format(path)
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise ProbeError(f"{path} already exists; pass --overwrite to replace it")
        if fmt == "netcdf" and path.is_dir():
            raise ProbeError(f"refusing to overwrite {path}: it is a directory, not a netCDF file")
        if fmt == "zarr" and not path.is_dir():
            raise ProbeError(f"refusing to overwrite {path}: it is a file, not a zarr store")
        if path.is_dir() and not _looks_like_zarr(path):
            raise ProbeError(f"refusing to overwrite {path}: it is a directory but not a zarr store")
    check_writable(path, ProbeError)


def _looks_like_zarr(path: Path) -> bool:
    return any((path / marker).exists() for marker in (".zgroup", ".zmetadata", "zarr.json")) or not any(path.iterdir())


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def open_probe(path: str | os.PathLike[str]) -> xr.Dataset:
    """Open a probe file written by :func:`fsnlab.probe.probe_to_file` (lazily; ``.load()`` to read)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ProbeError(f"no probe file at {p}")
    if output_format(p) == "zarr":
        return xr.open_zarr(p, consolidated=True)
    return xr.open_dataset(p, engine="h5netcdf")


__all__ = ["MemoryWriter", "NetCDFWriter", "ZarrWriter", "open_probe", "open_writer", "output_format"]
