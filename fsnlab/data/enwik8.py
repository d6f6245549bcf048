"""enwik8 (the first 10^8 bytes of an English Wikipedia XML dump, Hutter prize) from a user path:
the raw file, or ``enwik8.zip`` whose member ``enwik8`` is extracted once to a cache file."""

from __future__ import annotations

import shutil
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from fsnlab.data.cache import cache_dir, file_md5, memmap_bytes, write_atomically
from fsnlab.errors import DataError

ENWIK8_BYTES = 100_000_000
ENWIK8_MD5 = "a1fa5ffddb56f4953e226637dabbb36a"  # as published at http://mattmahoney.net/dc/textdata
ZIP_MEMBER = "enwik8"
ZIP_MAGIC = b"PK\x03\x04"


def load_enwik8(arg: str) -> tuple[str, np.ndarray, dict[str, Any]]:
    """(normalised name, memory-mapped bytes, description) for ``enwik8:arg``.

    ``arg`` is the raw file, a zip holding member ``enwik8``, or a directory containing
    ``enwik8`` or ``enwik8.zip``. The size must be exactly 100,000,000 bytes; an md5 other than
    the published one only sets ``checksum_ok: False`` (and issues a UserWarning)."""
    path = _resolve(arg)
    description: dict[str, Any] = {"kind": "enwik8", "source": str(path)}
    if path.suffix.lower() == ".zip" or _starts_with(path, ZIP_MAGIC):
        raw = _extracted(path)
        description["extracted_to"] = str(raw)
    else:
        raw = path
        size = raw.stat().st_size
        if size != ENWIK8_BYTES:
            raise DataError(f"enwik8 file {raw} is {size:,} bytes; expected exactly {ENWIK8_BYTES:,}")
    md5 = file_md5(raw)
    ok = md5 == ENWIK8_MD5
    description.update(md5=md5, expected_md5=ENWIK8_MD5, checksum_ok=ok)
    if not ok:
        message = f"enwik8 at {path} has md5 {md5}, not the published {ENWIK8_MD5}; using it anyway"
        description["warning"] = message
        warnings.warn(message, UserWarning, stacklevel=3)
    return f"enwik8:{path}", memmap_bytes(raw), description


def _resolve(arg: str) -> Path:
    if not arg:
        raise DataError("the enwik8 corpus needs a path: enwik8:PATH (the raw file or enwik8.zip)")
    path = Path(arg).expanduser().resolve()
    if path.is_dir():
        for candidate in (path / "enwik8", path / "enwik8.zip"):
            if candidate.is_file():
                return candidate
        raise DataError(f"no enwik8 or enwik8.zip in directory {path}")
    if not path.exists():
        raise DataError(f"enwik8 file not found: {path}")
    if not path.is_file():
        raise DataError(f"enwik8 path is not a regular file: {path}")
    return path


def _starts_with(path: Path, magic: bytes) -> bool:
    with open(path, "rb") as f:
        return f.read(len(magic)) == magic


def _extracted(zip_path: Path) -> Path:
    """Path of the extracted member, extracting it on first use. The file is named after the
    member's CRC-32 (``enwik8-<crc>.raw``) and lives next to the zip when that directory is
    writable, else in ``cache_dir()/enwik8``."""
    try:
        with zipfile.ZipFile(zip_path) as zf:
            try:
                info = zf.getinfo(ZIP_MEMBER)
            except KeyError:
                names = ", ".join(zf.namelist()[:5]) or "none"
                raise DataError(f"{zip_path} has no member 'enwik8' (members: {names})") from None
            if info.file_size != ENWIK8_BYTES:
                raise DataError(
                    f"enwik8 in {zip_path} is {info.file_size:,} bytes; expected exactly {ENWIK8_BYTES:,}"
                )
            name = f"enwik8-{info.CRC:08x}.raw"
            places = [zip_path.parent / name, cache_dir() / "enwik8" / name]
            for place in places:
                if place.is_file() and place.stat().st_size == ENWIK8_BYTES:
                    return place
            for place in places:
                try:
                    write_atomically(place, lambda f: _copy_member(zf, info, f))
                    return place
                except OSError:
                    continue
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        raise DataError(f"corrupt or unreadable zip {zip_path}: {exc}") from None
    raise DataError(
        f"cannot write the extracted enwik8 next to {zip_path} or under {places[1].parent}; "
        "set FSNLAB_CACHE to a writable directory"
    )


def _copy_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, out) -> None:
    # zipfile checks the CRC-32 when the member has been read to the end (BadZipFile if not).
    with zf.open(info) as src:
        shutil.copyfileobj(src, out, length=1 << 22)
