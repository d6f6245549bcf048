"""Copy depth (spec §9.5, OQ-33) on hand-made strings, against a brute-force reading of the
definition, and aligned with the evaluation windows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import fsnlab
from fsnlab.data import eval_windows
from fsnlab.study.copydepth import (
    DEPTH_BIN_LABELS,
    DISTANCE_COLUMNS,
    _depth_loop,
    copy_depth,
    copy_depth_windows,
    copy_table,
    depth_bin,
    distance_bin,
)
from fsnlab.study.tokens import token_losses
from fsnlab.train import evaluate


def brute_force(window: bytes | np.ndarray, max_depth: int = 32) -> tuple[list[int], list[int]]:
    """The definition read literally: for prediction t (of x[t+1]), the largest k (≤ max_depth)
    such that x[t-k+1..t] == x[j-k+1..j] for some j < t with j-k+1 ≥ 0 and x[j+1] == x[t+1];
    the distance t - j of the most recent such j at that k."""
    x = list(window) if not isinstance(window, bytes) else list(window)
    depths, dists = [], []
    for t in range(len(x) - 1):
        found = (0, 0)
        for k in range(min(t + 1, max_depth), 0, -1):
            js = [j for j in range(t - 1, k - 2, -1)
                  if x[j - k + 1 : j + 1] == x[t - k + 1 : t + 1] and x[j + 1] == x[t + 1]]
            if js:
                found = (k, t - js[0])  # js runs from the most recent j down
                break
        depths.append(found[0])
        dists.append(found[1])
    return depths, dists


def check(window: bytes, depth: list[int], distance: list[int], max_depth: int = 32) -> None:
    d, s = copy_depth(window, max_depth)
    assert d.tolist() == depth, (window, d.tolist(), depth)
    assert s.tolist() == distance, (window, s.tolist(), distance)
    assert brute_force(window, max_depth) == (depth, distance)


def test_no_repeat_means_depth_zero():
    check(b"abcdefg", [0] * 6, [0] * 6)


def test_short_inputs():
    for w in (b"", b"a"):
        d, s = copy_depth(w)
        assert d.size == 0 and s.size == 0
    check(b"ab", [0], [0])
    check(b"aa", [0], [0])  # t = 0 has no earlier position


def test_simple_copy_grows_then_breaks():
    # x = a b c a b c d: t=3 ('a' -> 'b') copies from j=0 with k=1; t=4 ('ab' -> 'c') from j=1 with
    # k=2 (k=3 would need a byte before the window); t=5 ('c' -> 'd'): the earlier 'c' was followed by 'a'.
    check(b"abcabcd", [0, 0, 0, 1, 2, 0], [0, 0, 0, 3, 3, 0])


def test_overlapping_matches_allowed():
    # "aaaa": the k-gram "aa" ending at 2 matches the one ending at 1 (they overlap)
    check(b"aaaa", [0, 1, 2], [0, 1, 1])
    check(b"aaaaaa", [0, 1, 2, 3, 4], [0, 1, 1, 1, 1])


def test_wrong_continuation_is_no_copy():
    # at t=4 the context "ab" recurs but was followed by X, and now Y comes: depth 0 there
    # (t=3, 'a' -> 'b', does copy the earlier "a" -> "b": depth 1 from 3 back)
    check(b"abXabY", [0, 0, 0, 1, 0], [0, 0, 0, 3, 0])
    # once "ab" -> "Y" has occurred, the next "ab" copies it (k = 2: "Yab" vs "Xab" differ at the third byte)
    check(b"abXabYabY", [0, 0, 0, 1, 0, 0, 1, 2], [0, 0, 0, 3, 0, 0, 3, 3])


def test_longest_match_wins_over_recent_shorter_one():
    # predicting the final Z from "...#Qbc": "Qbc"+Z occurred 9 back (k = 3), "bc"+Z only 5 back (k = 2)
    w = b"QbcZ#bcZ#QbcZ"
    d, s = copy_depth(w)
    assert d[11] == 3 and s[11] == 9
    assert (d.tolist(), s.tolist()) == brute_force(w)


def test_most_recent_on_ties():
    # predicting the final '1' from "...Rab": "Qab"+1 (4 back) and "Pab"+1 (8 back) both give k = 2
    w = b"Pab1Qab1Rab1"
    d, s = copy_depth(w)
    assert d[10] == 2 and s[10] == 4
    assert (d.tolist(), s.tolist()) == brute_force(w)
    # in a periodic text the most recent copy is also the longest (bounded by the window start)
    w = b"xabc-xabc-xabc"
    d, s = copy_depth(w)
    assert d[12] == 8 and s[12] == 5  # "xabc-xab" ending 5 back, bounded by the window start
    assert (d.tolist(), s.tolist()) == brute_force(w)


def test_cap_at_max_depth_and_most_recent_among_capped():
    rng = np.random.default_rng(0)
    block = bytes(rng.integers(97, 123, 40).tolist())
    w = block + block + block
    d, s = copy_depth(w)
    assert d.max() == 32
    last = len(w) - 2
    assert d[last] == 32 and s[last] == 40  # both earlier copies are ≥ 32 long: the recent one wins
    d8, s8 = copy_depth(w, max_depth=8)
    assert d8.max() == 8
    assert (d8.tolist(), s8.tolist()) == brute_force(w, 8)


def test_depth_bounded_by_window_start():
    w = b"abcabc"
    d, _ = copy_depth(w)
    for t, k in enumerate(d):
        assert k <= t  # a match ending at j < t has at most j + 1 <= t bytes


@pytest.mark.parametrize("alphabet,n,cap", [(2, 40, 32), (3, 60, 5), (4, 80, 32), (26, 50, 3)])
def test_random_strings_match_brute_force(alphabet, n, cap):
    rng = np.random.default_rng(alphabet * 1000 + n)
    for _ in range(25):
        length = int(rng.integers(0, n))
        w = bytes(rng.integers(0, alphabet, length).tolist())
        d, s = copy_depth(w, cap)
        assert (d.tolist(), s.tolist()) == brute_force(w, cap)


def test_reference_loop_matches_vectorised():
    rng = np.random.default_rng(7)
    for _ in range(100):
        x = rng.integers(0, 3, int(rng.integers(2, 70))).astype(np.uint8)
        d = np.zeros(x.size - 1, np.int16)
        s = np.zeros(x.size - 1, np.int32)
        _depth_loop(x, 32, d, s)
        d2, s2 = copy_depth(x)
        assert np.array_equal(d, d2) and np.array_equal(s, s2)


def test_str_and_array_inputs_agree():
    a = copy_depth("hello hello")
    b = copy_depth(np.frombuffer(b"hello hello", np.uint8))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    with pytest.raises(ValueError):
        copy_depth(np.zeros((2, 3)))
    with pytest.raises(ValueError):
        copy_depth(b"abc", max_depth=0)


def test_windows_follow_eval_windows_and_never_cross():
    rng = np.random.default_rng(1)
    data = rng.integers(0, 4, 1000).astype(np.uint8)
    T = 64
    depth, distance = copy_depth_windows(data, T)
    assert depth.shape == distance.shape == (data.size - 1,)
    # window k is data[kT : kT + T + 1], the last one shorter: same as eval_windows' targets
    targets = torch.cat([y.flatten() for _, y in eval_windows(data, T, 4)]).numpy()
    assert np.array_equal(targets, data[1:])
    for start in range(0, data.size - 1, T):
        stop = min(start + T, data.size - 1)
        d, s = copy_depth(data[start : stop + 1])
        assert np.array_equal(depth[start:stop], d) and np.array_equal(distance[start:stop], s)
        assert np.all(distance[start:stop] <= np.arange(stop - start))  # the source lies inside the window
    # a text repeated exactly one window later has no copies across the boundary
    piece = bytes(rng.integers(97, 123, T).tolist())
    d, _ = copy_depth_windows(np.frombuffer(piece * 2 + b"!", np.uint8), T)
    assert np.array_equal(d[T:], copy_depth(piece + b"!")[0])


def test_bins_and_table():
    assert DEPTH_BIN_LABELS == ("0–1", "2–3", "4–7", "8–15", "16–23", "24–32")
    depths = np.arange(33)
    expected = [0, 0, 1, 1] + [2] * 4 + [3] * 8 + [4] * 8 + [5] * 9
    assert depth_bin(depths).tolist() == expected
    assert distance_bin(np.array([0, 1, 16, 17, 64, 65, 256, 257, 10_000])).tolist() == [-1, 0, 0, 1, 1, 2, 2, 3, 3]
    depth = np.array([0, 1, 5, 5, 32])
    distance = np.array([0, 3, 20, 300, 70])
    losses = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    sums, counts = copy_table(depth, distance, losses)
    assert sums.shape == counts.shape == (33, len(DISTANCE_COLUMNS))
    assert counts.sum() == 5 and sums.sum() == pytest.approx(15.0)
    assert counts[0, 0] == 1 and counts[1, 1] == 1 and counts[5, 2] == 1 and counts[5, 4] == 1 and counts[32, 3] == 1
    assert sums[5, 4] == 4.0
    with pytest.raises(ValueError):
        copy_table(depth, distance, losses[:2])


def test_token_losses_match_evaluate():
    torch.manual_seed(0)
    model = fsnlab.build_model("transformer-tiny")
    data = np.random.default_rng(0).integers(0, 256, 300).astype(np.uint8)
    losses = token_losses(model, data, batch_size=2, device="cpu")
    assert losses.shape == (299,)
    result = evaluate(model, data, batch_size=3, device=torch.device("cpu"))
    assert losses.astype(np.float64).mean() == pytest.approx(result.bpc, abs=1e-5)
