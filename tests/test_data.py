"""Tests for fsnlab.data: corpus loading/splitting (embedded, enwik8, code, text) and batching."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from fsnlab.data import Corpus, count_eval_targets, eval_windows, load_corpus, sample_batch
from fsnlab.data.code import SEPARATOR, find_sources, stdlib_dir
from fsnlab.data.corpus import split_sizes
from fsnlab.data.enwik8 import ENWIK8_BYTES
from fsnlab.errors import DataError

CORPORA = Path(__file__).resolve().parents[1] / "fsnlab" / "data" / "corpora"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Every test gets its own cache directory (never ~/.cache)."""
    monkeypatch.setenv("FSNLAB_CACHE", str(tmp_path / "cache"))


def whole(corpus: Corpus) -> np.ndarray:
    return np.concatenate([corpus.train, corpus.val, corpus.test])


def check_split(corpus: Corpus, n: int) -> None:
    assert [len(corpus.split(s)) for s in ("train", "val", "test")] == list(split_sizes(n))
    assert len(corpus.train) == n * 90 // 100 and len(corpus.val) == n * 5 // 100
    for s in ("train", "val", "test"):
        assert corpus.split(s).dtype == np.uint8 and corpus.split(s).ndim == 1
    assert corpus.description["total_bytes"] == n
    json.dumps(corpus.description)  # JSON-ready


# --- embedded ---------------------------------------------------------------------------------


def test_embedded_corpus():
    packed = CORPORA / "kjv.txt.xz"
    assert packed.stat().st_size < 2_000_000
    corpus = load_corpus()
    assert corpus.name == "embedded" and load_corpus("embedded").name == "embedded"
    n = corpus.description["total_bytes"]
    assert n > 1_000_000
    check_split(corpus, n)
    text = whole(corpus).tobytes()
    assert text.startswith(b"\nGenesis 1\n\n  1 In the beginning God created the heaven and the earth.\n")
    assert text.endswith(b"  21 The grace of our Lord Jesus Christ be with you all. Amen.\n")
    assert text.isascii()
    assert corpus.description["licence"] == "public domain"


def test_embedded_takes_no_argument():
    with pytest.raises(DataError):
        load_corpus("embedded:foo")


# --- enwik8 -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake_enwik8(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("enwik8") / "enwik8"
    pattern = (np.arange(251 * 4000) % 251).astype(np.uint8).tobytes()  # byte i == i % 251
    with open(path, "wb") as f:
        for _ in range(ENWIK8_BYTES // len(pattern)):
            f.write(pattern)
        f.write(pattern[: ENWIK8_BYTES % len(pattern)])
    assert path.stat().st_size == ENWIK8_BYTES
    return path


def check_enwik8(corpus: Corpus) -> None:
    check_split(corpus, ENWIK8_BYTES)
    assert (len(corpus.train), len(corpus.val), len(corpus.test)) == (90_000_000, 5_000_000, 5_000_000)
    assert isinstance(corpus.train, np.memmap)
    assert corpus.val[0] == 90_000_000 % 251 and corpus.test[0] == 95_000_000 % 251
    assert corpus.test[-1] == (ENWIK8_BYTES - 1) % 251
    assert corpus.description["checksum_ok"] is False
    assert "md5" in corpus.description["warning"]


def test_enwik8_raw(fake_enwik8):
    with pytest.warns(UserWarning, match="md5"):
        corpus = load_corpus(f"enwik8:{fake_enwik8}")
    assert corpus.name == f"enwik8:{fake_enwik8}"
    check_enwik8(corpus)
    with pytest.warns(UserWarning):  # a directory holding enwik8 works too
        assert load_corpus(f"enwik8:{fake_enwik8.parent}").name == corpus.name


def test_enwik8_zip(fake_enwik8, tmp_path):
    zpath = tmp_path / "enwik8.zip"
    with zipfile.ZipFile(zpath, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.write(fake_enwik8, "enwik8")
    with pytest.warns(UserWarning):
        corpus = load_corpus(f"enwik8:{zpath}")
    check_enwik8(corpus)
    extracted = Path(corpus.description["extracted_to"])
    assert extracted.parent == tmp_path and extracted.stat().st_size == ENWIK8_BYTES
    stamp = extracted.stat().st_mtime_ns
    with pytest.warns(UserWarning):
        again = load_corpus(f"enwik8:{zpath}")
    assert again.description["extracted_to"] == str(extracted)
    assert extracted.stat().st_mtime_ns == stamp  # extracted once, reused


def test_enwik8_wrong_size(tmp_path):
    path = tmp_path / "enwik8"
    with open(path, "wb") as f:
        f.truncate(ENWIK8_BYTES - 1)  # sparse, instant
    with pytest.raises(DataError, match="99,999,999 bytes"):
        load_corpus(f"enwik8:{path}")
    zpath = tmp_path / "small.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("enwik8", b"abc" * 100)
    with pytest.raises(DataError, match="300 bytes"):
        load_corpus(f"enwik8:{zpath}")


def test_enwik8_bad_zip_and_missing(tmp_path):
    corrupt = tmp_path / "enwik8.zip"
    corrupt.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    with pytest.raises(DataError, match="zip"):
        load_corpus(f"enwik8:{corrupt}")
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("README", b"hi")
    with pytest.raises(DataError, match="no member 'enwik8'"):
        load_corpus(f"enwik8:{other}")
    with pytest.raises(DataError, match="not found"):
        load_corpus(f"enwik8:{tmp_path / 'nope'}")
    with pytest.raises(DataError):
        load_corpus("enwik8")


# --- code -------------------------------------------------------------------------------------


@pytest.fixture
def source_tree(tmp_path) -> Path:
    root = tmp_path / "src"
    files = {
        "a.py": "import os\nprint('a' * 40)\n",
        "pkg/__init__.py": "# package pkg, with enough bytes to be split\n",
        "pkg/b.py": "def b():\n    return 'bbbbbbbbbbbbbbbbbbbb'\n",
        "pkg/sub/d.py": "D = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n",
        "pkg/tests/test_b.py": "EXCLUDED_TESTS = 1\n",
        "test/c.py": "EXCLUDED_TEST = 1\n",
        "idlelib/idle_test/x.py": "EXCLUDED_IDLE = 1\n",
        "site-packages/e.py": "EXCLUDED_SITE = 1\n",
        "notes.txt": "EXCLUDED_TXT\n",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_code_directory(source_tree):
    corpus = load_corpus(f"code:{source_tree}")
    assert corpus.name == f"code:{source_tree.resolve()}"
    data = whole(corpus).tobytes()
    assert b"EXCLUDED" not in data
    chunks = data.split(SEPARATOR)
    assert len(chunks) == corpus.description["n_files"] == 4
    kept = ["a.py", "pkg/__init__.py", "pkg/b.py", "pkg/sub/d.py"]
    assert sorted(chunks) == sorted((source_tree / rel).read_bytes() for rel in kept)
    assert sorted(find_sources(source_tree)) == kept
    check_split(corpus, len(data))
    again = load_corpus(f"code:{source_tree}")
    assert whole(again).tobytes() == data  # deterministic (second load from the cache)
    assert again.description["cache"] == corpus.description["cache"]
    assert isinstance(again.train, np.memmap)


def test_code_cache_tracks_changes(source_tree):
    first = load_corpus(f"code:{source_tree}")
    (source_tree / "pkg" / "b.py").write_text("def b():\n    return 'changed'\n")
    second = load_corpus(f"code:{source_tree}")
    assert b"changed" in whole(second).tobytes()
    assert second.description["cache"] != first.description["cache"]


def test_code_explicit_files(source_tree):
    a, d = source_tree / "a.py", source_tree / "pkg/sub/d.py"
    corpus = load_corpus(f"code:{d},{a}")
    assert whole(corpus).tobytes() == d.read_bytes() + SEPARATOR + a.read_bytes()
    with pytest.raises(DataError, match="not found"):
        load_corpus(f"code:{a},{source_tree / 'missing.py'}")


def test_code_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no \\*.py files"):
        load_corpus(f"code:{tmp_path / 'empty'}")
    with pytest.raises(DataError, match="not found"):
        load_corpus(f"code:{tmp_path / 'nowhere'}")


def test_code_stdlib_default():
    corpus = load_corpus("code")
    assert corpus.name == "code"
    assert corpus.description["source"] == str(stdlib_dir())
    n_files = corpus.description["n_files"]
    assert n_files > 100 and corpus.description["total_bytes"] > 1_000_000
    check_split(corpus, corpus.description["total_bytes"])
    rels = find_sources(stdlib_dir())
    assert len(rels) == n_files
    assert not any({"test", "tests", "idle_test", "site-packages"} & set(r.split("/")[:-1]) for r in rels)
    assert rels != sorted(rels)  # shuffled, not alphabetical


# --- text and spec errors ---------------------------------------------------------------------


def test_text_corpus(tmp_path):
    path = tmp_path / "t.txt"
    payload = (bytes(range(256)) * 4)[:1000]
    path.write_bytes(payload)
    corpus = load_corpus(f"text:{path}")
    assert corpus.name == f"text:{path.resolve()}"
    check_split(corpus, 1000)
    assert (len(corpus.train), len(corpus.val), len(corpus.test)) == (900, 50, 50)
    assert whole(corpus).tobytes() == payload
    assert corpus.val.tobytes() == payload[900:950]
    assert whole(load_corpus(f"text:{path}")).tobytes() == payload  # deterministic


def test_text_errors(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="0 bytes"):
        load_corpus(f"text:{empty}")
    tiny = tmp_path / "tiny.txt"
    tiny.write_bytes(b"x" * 39)  # val would be 1 byte
    with pytest.raises(DataError, match="39 bytes"):
        load_corpus(f"text:{tiny}")
    with pytest.raises(DataError, match="not found"):
        load_corpus(f"text:{tmp_path / 'missing.txt'}")
    with pytest.raises(DataError):
        load_corpus("text")


def test_unknown_kind_and_split():
    with pytest.raises(DataError, match="unknown corpus"):
        load_corpus("wikitext:foo")
    corpus = load_corpus("embedded")
    with pytest.raises(DataError, match="unknown split"):
        corpus.split("validation")


# --- batches ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=10_000, dtype=np.uint8)


def test_sample_batch(data):
    x, y = sample_batch(data, 8, 64, torch.Generator().manual_seed(1))
    assert x.shape == y.shape == (8, 64) and x.dtype == y.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])
    flat = torch.from_numpy(data.astype(np.int64))
    for row_x, row_y in zip(x, y):  # each row is a real window of the data
        starts = [i for i in range(len(data) - 64) if torch.equal(flat[i : i + 64], row_x)]
        assert starts and torch.equal(flat[starts[0] + 1 : starts[0] + 65], row_y)
    x2, y2 = sample_batch(data, 8, 64, torch.Generator().manual_seed(1))
    assert torch.equal(x, x2) and torch.equal(y, y2)


def test_sample_batch_resumes_from_generator_state(data):
    gen = torch.Generator().manual_seed(123)
    sample_batch(data, 4, 32, gen)
    state = gen.get_state()
    expected = sample_batch(data, 4, 32, gen)
    resumed = torch.Generator()
    resumed.set_state(state)
    got = sample_batch(data, 4, 32, resumed)
    assert torch.equal(expected[0], got[0]) and torch.equal(expected[1], got[1])


def test_sample_batch_short_data(data):
    x, y = sample_batch(data[:65], 3, 64, torch.Generator().manual_seed(0))  # exactly T+1: one window
    assert torch.equal(x[0], torch.from_numpy(data[:64].astype(np.int64)))
    with pytest.raises(DataError, match="val split has 64 bytes, fewer than context_length\\+1=65"):
        sample_batch(data[:64], 3, 64, torch.Generator(), what="val split")


def test_sample_batch_on_memmap(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes(b"abcdefghij" * 100)
    corpus = load_corpus(f"text:{path}")
    x, y = sample_batch(corpus.train, 2, 16, torch.Generator().manual_seed(0))
    assert x.shape == (2, 16) and torch.equal(x[:, 1:], y[:, :-1])


@pytest.mark.parametrize("n", [0, 1, 2, 50, 64, 65, 129, 1000, 10_000])
@pytest.mark.parametrize("batch_size", [1, 3])
def test_eval_windows_cover_every_target_once(data, n, batch_size):
    T = 64
    split = data[:n]
    batches = list(eval_windows(split, T, batch_size))
    targets = [y.reshape(-1) for _, y in batches]
    got = torch.cat(targets) if targets else torch.empty(0, dtype=torch.int64)
    assert count_eval_targets(split) == max(n - 1, 0) == got.numel()
    assert torch.equal(got, torch.from_numpy(split[1:].astype(np.int64)))
    for x, y in batches:
        assert x.dtype == y.dtype == torch.int64 and x.shape == y.shape
        assert x.shape[0] <= batch_size and x.shape[1] <= T
        assert torch.equal(x[:, 1:], y[:, :-1])
    full = (max(n - 1, 0)) // T
    partial = [x for x, _ in batches if x.shape[1] < T]
    assert len(partial) == (1 if max(n - 1, 0) % T else 0)
    assert sum(x.shape[0] for x, _ in batches if x.shape[1] == T) == full
    again = list(eval_windows(split, T, batch_size))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(batches, again))
