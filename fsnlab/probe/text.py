"""The text a probe reads: where it comes from, how it is cut into windows, and its character labels.

A probe runs byte-level text through a model whose context holds ``T`` bytes (spec §2: tokens are
bytes). Text of at most ``T`` bytes is one window (one ``sample``). Longer text needs a stride ``S``:
windows of ``T`` bytes start at ``0, S, 2S, ...``, and when the last of these stops short of the end a
final window is aligned to the end of the text, so every byte is seen. Each window is a causal
forward pass of its own, so a token sees only the bytes of its window up to itself.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fsnlab.probe.errors import ProbeError

REPLACEMENT = "\ufffd"


@dataclass(frozen=True)
class ProbeText:
    """Bytes to probe and where they come from (recorded in the dataset attributes).

    ``corpus`` names the source (``"inline"``, ``"file:/abs/path"`` or a corpus name such as
    ``"embedded"``); ``split``/``start`` locate the bytes inside a corpus split (``"none"``/0 otherwise).
    """

    data: bytes
    corpus: str = "inline"
    split: str = "none"
    start: int = 0

    @property
    def length(self) -> int:
        return len(self.data)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def as_probe_text(text: "bytes | str | ProbeText") -> ProbeText:
    """Accept ``bytes``, a ``str`` (encoded as UTF-8) or a :class:`ProbeText`; empty text is an error."""
    if isinstance(text, ProbeText):
        result = text
    elif isinstance(text, str):
        result = ProbeText(text.encode("utf-8"))
    elif isinstance(text, (bytes, bytearray, memoryview)):
        result = ProbeText(bytes(text))
    else:
        raise ProbeError(f"text must be bytes or str, got {type(text).__name__}")
    if not result.data:
        raise ProbeError("the text to probe is empty")
    return result


def text_from_file(path: str | Path) -> ProbeText:
    """The bytes of a file, as is (no decoding, no normalisation)."""
    p = Path(path).expanduser()
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise ProbeError(f"text file not found: {p}") from None
    except IsADirectoryError:
        raise ProbeError(f"text file is a directory: {p}") from None
    except OSError as exc:
        raise ProbeError(f"cannot read text file {p}: {exc.strerror or exc}") from None
    return as_probe_text(ProbeText(data, corpus=f"file:{p.resolve()}"))


def text_from_corpus(spec: str, split: str, start: int, length: int, *, at_most: bool = False) -> ProbeText:
    """``length`` bytes from ``start`` of a corpus split (:func:`fsnlab.data.load_corpus` spec);
    ``at_most``: fewer when the split ends sooner (a default length, not one the user asked for)."""
    from fsnlab.data import load_corpus

    if start < 0 or length <= 0:
        raise ProbeError(f"--start must be >= 0 and --length > 0 (got start {start}, length {length})")
    corpus = load_corpus(spec)
    data = corpus.split(split)
    if at_most and start < len(data):
        length = min(length, len(data) - start)
    if start + length > len(data):
        raise ProbeError(
            f"{corpus.name} {split} split has {len(data):,} bytes; start {start:,} + length {length:,} runs past its end"
        )
    return ProbeText(bytes(np.asarray(data[start : start + length])), corpus=corpus.name, split=split, start=start)


def window_starts(n: int, context: int, stride: int | None, align_end: bool = True) -> list[int]:
    """Start offsets of the windows that cover ``n`` bytes with a model of context ``context``.

    ``n <= context``: one window ``[0]`` of length ``n``. Otherwise a ``stride`` (1..context) is
    required; the windows are ``0, S, 2S, ...`` and, if the last stops short of ``n`` and ``align_end``,
    one more at ``n - context`` (so the final window may overlap its predecessor). Without
    ``align_end`` a short tail is left out (``fsnlab verify``'s non-overlapping windows).
    """
    if n <= 0:
        raise ProbeError("the text to probe is empty")
    if n < 2:
        raise ProbeError("the text to probe has 1 byte; a probe needs at least 2 (each byte's loss is on the next one)")
    if stride is not None and not (isinstance(stride, int) and 0 < stride <= context):
        raise ProbeError(f"stride must be an integer in 1..{context} (the model's context), got {stride!r}")
    if n <= context:
        return [0]
    if stride is None:
        raise ProbeError(
            f"the text has {n:,} bytes, more than the model's context of {context}; "
            f"pass a stride (--stride {context} for non-overlapping windows)"
        )
    starts = list(range(0, n - context + 1, stride))
    if align_end and starts[-1] + context < n:
        starts.append(n - context)
    return starts


def char_labels(data: bytes) -> np.ndarray:
    """One display character per byte (``<U1``): the UTF-8 character that *starts* at the byte,
    ``""`` for the continuation bytes of a multi-byte character, U+FFFD for an invalid byte.

    The ``byte`` coordinate stays the exact value; labels are for reading (a NUL byte reads as ``""``).
    """
    arr = np.frombuffer(data, dtype=np.uint8)
    labels = np.empty(len(arr), dtype="<U1")
    ascii_mask = arr < 0x80
    if ascii_mask.any():
        labels[ascii_mask] = np.array([chr(b) for b in range(128)], dtype="<U1")[arr[ascii_mask]]
    skip_until = 0
    for i in np.flatnonzero(~ascii_mask).tolist():
        if i < skip_until:
            continue  # a continuation byte of the character labelled at its lead byte
        lead = int(arr[i])
        width = 2 if 0xC2 <= lead <= 0xDF else 3 if 0xE0 <= lead <= 0xEF else 4 if 0xF0 <= lead <= 0xF4 else 0
        labels[i] = REPLACEMENT
        if width:
            try:
                labels[i] = data[i : i + width].decode("utf-8")
            except UnicodeDecodeError:
                continue
            labels[i + 1 : i + width] = ""
            skip_until = i + width
    return labels
