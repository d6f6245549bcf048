"""Which files the explorer may read, and a cache of the datasets it has opened.

**Path safety.** The explorer is given one probe file or one folder. :class:`ProbeCatalog` lists the
probe files (``*.zarr`` stores, ``*.nc`` files) under that folder and is the only way a name coming
from the browser turns into a file read: :meth:`ProbeCatalog.resolve` resolves the name (symlinks
and ``..`` included) and refuses anything that is not one of the listed files under the folder.
Given a single file, that file is the only one allowed.

**Caching.** Opened datasets are kept in a small LRU keyed by ``(resolved path, mtime)``, so a file
rewritten by ``fsnlab probe --overwrite`` is reopened; one window (``sample``) at a time is loaded
into memory (every per-window variable, fully), also LRU-cached.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from fsnlab.errors import FsnlabError, one_line

PROBE_SUFFIXES = (".zarr", ".nc")
MAX_DEPTH = 4  # folder levels searched below the given folder
MAX_FILES = 1000


class ExplorerError(FsnlabError):
    """The explorer cannot start or serve a request (missing file, not a probe, port in use)."""


class PathRefused(ExplorerError):
    """A request named a file outside the folder the explorer was given."""


def is_probe_path(p: Path) -> bool:
    """A ``.zarr`` directory or a ``.nc`` file (by name and kind; contents are checked on open)."""
    suffix = p.suffix.lower()
    if suffix == ".zarr":
        return p.is_dir()
    if suffix == ".nc":
        return p.is_file()
    return False


def mtime_of(path: Path) -> int:
    """Modification time (ns) of a probe: a zarr store's consolidated metadata, or the file."""
    if path.is_dir():
        stamps = [path.stat().st_mtime_ns]
        for marker in (".zmetadata", "zarr.json", ".zattrs"):
            m = path / marker
            if m.exists():
                stamps.append(m.stat().st_mtime_ns)
        return max(stamps)
    return path.stat().st_mtime_ns


@dataclass(frozen=True)
class ProbeCatalog:
    """The probe files the explorer may read: keys (relative POSIX paths shown in the page) -> paths."""

    root: Path  # resolved folder every allowed file lies under
    single: Path | None  # the one allowed file, when a file (not a folder) was given

    @classmethod
    def open(cls, target: str | os.PathLike[str]) -> "ProbeCatalog":
        p = Path(target).expanduser()
        if not p.exists():
            raise ExplorerError(f"no such probe file or folder: {p}")
        p = p.resolve()
        if is_probe_path(p):
            catalog = cls(root=p.parent, single=p)
        elif p.is_dir():
            catalog = cls(root=p, single=None)
            if not catalog.keys():
                raise ExplorerError(f"no probe files (*.zarr, *.nc written by fsnlab probe) in {p}")
        else:
            raise ExplorerError(f"{p} is not a probe file (.zarr or .nc) or a folder of them")
        return catalog

    def files(self) -> dict[str, Path]:
        """Every allowed probe file, by key (rescanned on each call: new probes appear on reload)."""
        if self.single is not None:
            return {self.single.name: self.single}
        found: dict[str, Path] = {}
        root_depth = len(self.root.parts)
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=False):
            here = Path(dirpath)
            depth = len(here.parts) - root_depth
            keep = []
            for name in sorted(dirnames):
                if name.startswith("."):
                    continue  # hidden, and fsnlab probe's ".NAME.partial" while it writes
                sub = here / name
                if name.lower().endswith(".zarr"):
                    self._add(found, sub)
                elif depth + 1 < MAX_DEPTH:
                    keep.append(name)
            dirnames[:] = keep
            for name in sorted(filenames):
                if name.lower().endswith(".nc") and not name.startswith("."):
                    self._add(found, here / name)
            if len(found) >= MAX_FILES:
                break
        return dict(sorted(found.items()))

    def _add(self, found: dict[str, Path], p: Path) -> None:
        try:
            real = p.resolve()
        except OSError:
            return
        if _inside(real, self.root) and is_probe_path(real):  # a symlink out of the folder is not listed
            found[p.relative_to(self.root).as_posix()] = real

    def keys(self) -> list[str]:
        return list(self.files())

    def resolve(self, key: Any) -> Path:
        """The file for ``key``; :class:`PathRefused` for anything but an allowed file under the root."""
        if not isinstance(key, str) or not key or "\x00" in key or len(key) > 4096:
            raise PathRefused("refused: not a probe file name")
        try:
            candidate = (self.root / key).resolve()
        except (OSError, RuntimeError, ValueError):
            raise PathRefused(f"refused: {key!r} is not a file under {self.root}") from None
        if not _inside(candidate, self.root):
            raise PathRefused(f"refused: {key!r} is outside the folder being explored ({self.root})")
        allowed = {p for p in self.files().values()}
        if candidate not in allowed:
            raise PathRefused(f"refused: {key!r} is not one of the probe files being explored")
        return candidate


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


def validate_probe(ds: Any, path: Path) -> None:
    """Raise :class:`ExplorerError` unless ``ds`` looks like a dataset written by ``fsnlab probe``."""
    dims = set(ds.dims)
    if not {"sample", "pos"} <= dims or "loss_bits" not in ds.variables or "char" not in ds.variables:
        raise ExplorerError(f"{path} is not a probe dataset (written by fsnlab probe): it has no sample/pos/loss_bits/char")
    if int(ds.sizes["sample"]) == 0:
        raise ExplorerError(f"{path} holds no windows (sample is empty)")


def open_checked(path: Path) -> Any:
    """Open a probe lazily (:func:`fsnlab.probe.open_probe`) and check that it is one."""
    from fsnlab.probe import open_probe

    try:
        ds = open_probe(path)
    except FsnlabError:
        raise
    except Exception as exc:  # xarray/zarr/h5 raise many types for a file that is not a dataset
        raise ExplorerError(f"{path} is not a probe dataset (written by fsnlab probe): {type(exc).__name__}: {one_line(exc)}") from None
    validate_probe(ds, path)
    return ds


class LRU:
    """A small thread-safe least-recently-used cache: ``get(key, make)``."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.RLock()
        self._making: dict[Any, threading.Lock] = {}

    def get(self, key: Any, make: Callable[[], Any]) -> Any:
        """The cached value, or ``make()``; concurrent requests for the same key wait for one ``make``
        (a page load fires a dozen callbacks that all need the same window)."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            key_lock = self._making.setdefault(key, threading.Lock())
        with key_lock:  # other keys are not blocked while this one loads
            with self._lock:
                if key in self._items:
                    self._items.move_to_end(key)
                    return self._items[key]
            try:
                value = make()
            finally:
                with self._lock:
                    self._making.pop(key, None)
            with self._lock:
                self._items[key] = value
                self._items.move_to_end(key)
                while len(self._items) > self.maxsize:
                    self._items.popitem(last=False)
            return value

    def __len__(self) -> int:
        return len(self._items)

    def keys(self) -> list[Any]:
        with self._lock:
            return list(self._items)


class DatasetCache:
    """Opened probe datasets (LRU on ``(path, mtime)``) and loaded windows (LRU on ``(path, mtime, sample)``)."""

    def __init__(self, catalog: ProbeCatalog, max_files: int = 4, max_samples: int = 3) -> None:
        self.catalog = catalog
        self.files = LRU(max_files)
        self.samples = LRU(max_samples)

    def _stamp(self, key: str) -> tuple[Path, int]:
        path = self.catalog.resolve(key)
        try:
            return path, mtime_of(path)
        except OSError as exc:
            raise ExplorerError(f"cannot read {path}: {exc.strerror or exc}") from None

    def dataset(self, key: str) -> Any:
        """The whole probe, opened lazily (only what a figure reads is read)."""
        path, stamp = self._stamp(key)
        return self.files.get((str(path), stamp), lambda: open_checked(path))

    def window(self, key: str, sample: Any) -> Any:
        """Window ``sample`` as a dataset with a ``sample`` dim of length 1, fully in memory; the weight
        variables (no ``sample`` dim) come along."""
        path, stamp = self._stamp(key)
        ds = self.dataset(key)
        try:
            s = int(sample)
        except (TypeError, ValueError):
            raise ExplorerError(f"bad sample {sample!r}") from None
        n = int(ds.sizes["sample"])
        if not 0 <= s < n:
            raise ExplorerError(f"sample {s} is out of range (this probe has {n})")
        return self.samples.get((str(path), stamp, s), lambda: ds.isel(sample=[s]).load())
