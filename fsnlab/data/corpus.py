"""The :class:`Corpus` type, the 90/5/5 byte split, and :func:`load_corpus`, which turns a spec
string (``embedded``, ``enwik8:PATH``, ``code``, ``code:DIR``, ``text:PATH``) into a corpus."""

from __future__ import annotations

import hashlib
import importlib.resources
import lzma
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fsnlab.errors import DataError

SPLIT_NAMES = ("train", "val", "test")
SPLIT_RULE = (
    "n = total bytes; train = bytes [0, floor(0.90 n)), val = the next floor(0.05 n) bytes, "
    "test = the remaining bytes (contiguous, in file order)"
)
KINDS = ("embedded", "enwik8", "code", "text")
SPEC_HELP = "embedded, enwik8:PATH, code, code:DIR, code:FILE1,FILE2, text:PATH"

EMBEDDED_FILE = "kjv.txt.xz"
EMBEDDED_INFO = {
    "title": "The King James Version of the Bible (1611/1769), English",
    "licence": "public domain",
    "provenance": "Debian package bible-kjv 4.38 (text from bible-kjv-text 4.38): "
    "output of `bible -l100000 gen1:1-rev22:21`, xz -9e; see fsnlab/data/corpora/README.md",
}


@dataclass
class Corpus:
    """A byte corpus cut into three contiguous splits (1-D uint8 arrays, often memory maps)."""

    name: str
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    description: dict[str, Any] = field(default_factory=dict)

    def split(self, name: str) -> np.ndarray:
        """The split called ``name`` ("train", "val" or "test")."""
        if name not in SPLIT_NAMES:
            raise DataError(f"unknown split {name!r}; expected one of: train, val, test")
        return getattr(self, name)


def split_sizes(n: int) -> tuple[int, int, int]:
    """(train, val, test) sizes for ``n`` bytes under :data:`SPLIT_RULE`."""
    n_train = n * 90 // 100
    n_val = n * 5 // 100
    return n_train, n_val, n - n_train - n_val


def make_corpus(name: str, data: np.ndarray, description: dict[str, Any]) -> Corpus:
    """Split ``data`` 90/5/5 and fill in the size fields of ``description``."""
    n = int(data.shape[0])
    n_train, n_val, n_test = split_sizes(n)
    if min(n_train, n_val, n_test) < 2:
        raise DataError(
            f"corpus {name} has {n} bytes, too few to split 90/5/5 "
            f"(each split needs at least 2 bytes, so at least 40 bytes in all)"
        )
    description = dict(description)
    description.update(
        total_bytes=n,
        split_bytes={"train": n_train, "val": n_val, "test": n_test},
        split_rule=SPLIT_RULE,
    )
    return Corpus(
        name=name,
        train=data[:n_train],
        val=data[n_train : n_train + n_val],
        test=data[n_train + n_val :],
        description=description,
    )


def parse_spec(spec: str) -> tuple[str, str]:
    """``"kind:arg"`` -> (kind, arg); the kind is checked, the argument is not."""
    if not isinstance(spec, str):
        raise DataError(f"corpus spec must be a string, got {type(spec).__name__}")
    kind, _, arg = spec.strip().partition(":")
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise DataError(f"unknown corpus {spec!r}; expected one of: {SPEC_HELP}")
    return kind, arg.strip()


def load_corpus(spec: str = "embedded") -> Corpus:
    """Load the corpus named by ``spec``; every failure is a one-line :class:`DataError`."""
    kind, arg = parse_spec(spec)
    if kind == "embedded":
        if arg:
            raise DataError(f"the embedded corpus takes no argument (got {spec!r})")
        return make_corpus("embedded", *_load_embedded())
    if kind == "text":
        path = existing_file(arg, "text")
        return make_corpus(f"text:{path}", *_load_text(path))
    if kind == "enwik8":
        from fsnlab.data.enwik8 import load_enwik8

        name, data, description = load_enwik8(arg)
        return make_corpus(name, data, description)
    from fsnlab.data.code import load_code

    name, data, description = load_code(arg)
    return make_corpus(name, data, description)


def existing_file(arg: str, kind: str) -> Path:
    """``arg`` as an absolute path to an existing regular file (DataError otherwise)."""
    if not arg:
        raise DataError(f"the {kind} corpus needs a path: {kind}:PATH")
    path = Path(arg).expanduser().resolve()
    if not path.exists():
        raise DataError(f"{kind} corpus file not found: {path}")
    if not path.is_file():
        raise DataError(f"{kind} corpus path is not a regular file: {path}")
    return path


def _load_text(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    from fsnlab.data.cache import file_md5, memmap_bytes

    data = memmap_bytes(path)
    return data, {"kind": "text", "source": str(path), "md5": file_md5(path)}


def _load_embedded() -> tuple[np.ndarray, dict[str, Any]]:
    text = _embedded_text()
    data = np.frombuffer(text, dtype=np.uint8)  # read-only view of the cached bytes
    description = {
        "kind": "embedded",
        "source": f"fsnlab/data/corpora/{EMBEDDED_FILE}",
        **EMBEDDED_INFO,
        "md5": hashlib.md5(text).hexdigest(),
    }
    return data, description


_EMBEDDED_CACHE: dict[str, bytes] = {}


def _embedded_text() -> bytes:
    """The decompressed embedded corpus (about 4.3 MB, kept in memory after the first call)."""
    if EMBEDDED_FILE not in _EMBEDDED_CACHE:
        resource = importlib.resources.files("fsnlab.data").joinpath("corpora").joinpath(EMBEDDED_FILE)
        try:
            packed = resource.read_bytes()
        except OSError as exc:
            raise DataError(f"embedded corpus file is missing ({exc}); reinstall fsnlab") from None
        try:
            _EMBEDDED_CACHE[EMBEDDED_FILE] = lzma.decompress(packed)
        except lzma.LZMAError as exc:
            raise DataError(f"embedded corpus file is corrupt ({exc}); reinstall fsnlab") from None
    return _EMBEDDED_CACHE[EMBEDDED_FILE]
