"""Copy depth of every prediction, from the data alone (spec §9.5, OQ-33).

For a window of bytes x_0 … x_n (the model reads x_0 … x_{n-1}; prediction t is of x_{t+1} given
x_0 … x_t), the **copy depth** of prediction t is the largest k ≥ 1 such that the k bytes ending at
t, x_{t-k+1} … x_t, also occur earlier in the window ending at some j < t whose continuation is
correct, x_{j+1} = x_{t+1}; it is capped at ``max_depth`` (32) and 0 when no such j exists. A
match may overlap the bytes ending at t (in ``aaaa`` the k-gram ``aa`` ending at 2 matches the one
ending at 1), but it must lie inside the window (j − k + 1 ≥ 0): depth measures what the model
could have copied from what it saw.

The **copy distance** is t − j for the j of the longest match; among several j with the same
(capped) length the most recent one (largest j, smallest distance) wins. It is 0 where the depth
is 0.

Over a split, windows are exactly those of :func:`fsnlab.data.eval_windows` (non-overlapping, of
the model's context length T; window k covers bytes kT … kT+T and the last one may be shorter),
so the arrays returned by :func:`copy_depth_windows` line up one to one with the per-target losses
of an evaluation pass (:func:`fsnlab.study.tokens.token_losses`).

Bins: depth 0–1, 2–3, 4–7, 8–15, 16–23, 24–32 (attested, spec §9.5) and distance 1–16, 17–64,
65–256, 257+ (spec §9.5 second table).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

MAX_DEPTH = 32
DEPTH_BINS: tuple[tuple[int, int], ...] = ((0, 1), (2, 3), (4, 7), (8, 15), (16, 23), (24, 32))
DEPTH_BIN_LABELS: tuple[str, ...] = tuple(f"{lo}–{hi}" for lo, hi in DEPTH_BINS)
DISTANCE_BINS: tuple[tuple[int, float], ...] = ((1, 16), (17, 64), (65, 256), (257, float("inf")))
DISTANCE_BIN_LABELS: tuple[str, ...] = ("1–16", "17–64", "65–256", "257+")
# Column 0 of the (depth, distance-bin) tables holds the positions without a match (depth 0).
DISTANCE_COLUMNS: tuple[str, ...] = ("none", *DISTANCE_BIN_LABELS)


def _as_bytes_array(window: bytes | str | Sequence[int] | np.ndarray) -> np.ndarray:
    if isinstance(window, str):
        window = window.encode("utf-8")
    if isinstance(window, (bytes, bytearray, memoryview)):
        return np.frombuffer(bytes(window), dtype=np.uint8)
    arr = np.asarray(window)
    if arr.ndim != 1:
        raise ValueError(f"a window is one-dimensional, got shape {arr.shape}")
    return arr


def _depth_loop(x: np.ndarray, max_depth: int, depth: np.ndarray, distance: np.ndarray) -> None:
    """Reference loop over one window (kept for tests): row t of the match-length table
    L[t, j] = length of the common suffix of x[..t] and x[..j] (capped), built from row t-1."""
    n = x.shape[0] - 1
    prev = np.zeros(n, dtype=np.int32)
    cur = np.zeros(n, dtype=np.int32)
    for t in range(n):
        best, best_j = 0, -1
        xt, target = x[t], x[t + 1]
        for j in range(t):
            if x[j] == xt:
                length = min(prev[j - 1] + 1 if j > 0 else 1, max_depth)
            else:
                length = 0
            cur[j] = length
            if length > 0 and x[j + 1] == target and length >= best:
                best, best_j = length, j  # >= : a later j wins ties (most recent)
        depth[t] = best
        distance[t] = t - best_j if best > 0 else 0
        prev, cur = cur, prev


def _depth_batch(windows: np.ndarray, max_depth: int) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised over windows of equal length n + 1 (shape (W, n + 1)) and over the diagonals
    d = t - j of the match table: along diagonal d, the common-suffix length of x[..t] and
    x[..t-d] is the run of equal bytes ending at t (it cannot reach before the window start).
    Diagonals run from the most recent (d = 1) outwards and a later diagonal replaces the best
    only when strictly longer, so ties keep the most recent match."""
    x = windows[:, :-1]
    y = windows[:, 1:]
    W, n = x.shape
    best = np.zeros((W, n), dtype=np.int16)
    dist = np.zeros((W, n), dtype=np.int32)
    idx = np.arange(n, dtype=np.int32)
    for d in range(1, n):
        m = n - d
        eq = x[:, d:] == x[:, :m]  # eq[:, j] = (x[j + d] == x[j])
        last_break = np.maximum.accumulate(np.where(eq, -1, idx[:m]), axis=1)
        run = np.minimum(idx[:m] - last_break, max_depth).astype(np.int16)
        run[~(y[:, d:] == y[:, :m])] = 0  # the earlier continuation must be the target
        tail = best[:, d:]
        better = run > tail
        tail[better] = run[better]
        dist[:, d:][better] = d
    return best, dist


def copy_depth(
    window: bytes | str | Sequence[int] | np.ndarray, max_depth: int = MAX_DEPTH
) -> tuple[np.ndarray, np.ndarray]:
    """Copy depth and copy distance of each prediction in one window.

    ``window`` holds n + 1 bytes x_0 … x_n (the inputs and, last, the final target); the result
    has n entries, entry t for the prediction of x_{t+1}. Returns ``(depth, distance)`` as int16
    and int32 arrays (distance 0 where depth is 0).
    """
    if max_depth < 1:
        raise ValueError(f"max_depth must be >= 1, got {max_depth}")
    x = _as_bytes_array(window)
    n = max(x.shape[0] - 1, 0)
    depth = np.zeros(n, dtype=np.int16)
    distance = np.zeros(n, dtype=np.int32)
    if n:
        d, s = _depth_batch(x[None, :], int(max_depth))
        depth[:], distance[:] = d[0], s[0]
    return depth, distance


def copy_depth_windows(
    data: np.ndarray, context_length: int, max_depth: int = MAX_DEPTH
) -> tuple[np.ndarray, np.ndarray]:
    """Depth and distance of every target of ``data`` in :func:`fsnlab.data.eval_windows` order:
    window k covers ``data[kT : kT + T + 1]`` (T inputs, T targets; the last window may be shorter).
    Both arrays have ``len(data) - 1`` entries."""
    if context_length < 1:
        raise ValueError(f"context_length must be >= 1, got {context_length}")
    data = np.asarray(data)
    n_targets = max(int(data.shape[0]) - 1, 0)
    depth = np.zeros(n_targets, dtype=np.int16)
    distance = np.zeros(n_targets, dtype=np.int32)
    T = context_length
    n_full = n_targets // T
    chunk = max(1, (1 << 22) // max(T, 1))  # about 4M bytes of windows at a time
    for first in range(0, n_full, chunk):
        k = min(chunk, n_full - first)
        block = np.asarray(data[first * T : (first + k) * T + 1])
        # window i of the block is block[iT : iT + T + 1]; windows share their boundary byte
        windows = np.lib.stride_tricks.sliding_window_view(block, T + 1)[::T]
        d, s = _depth_batch(np.ascontiguousarray(windows), max_depth)
        depth[first * T : (first + k) * T] = d.reshape(-1)
        distance[first * T : (first + k) * T] = s.reshape(-1)
    if n_full * T < n_targets:
        d, s = copy_depth(np.asarray(data[n_full * T :]), max_depth)
        depth[n_full * T :], distance[n_full * T :] = d, s
    return depth, distance


def depth_bin(depth: np.ndarray | int) -> np.ndarray:
    """Index of the depth bin (0 … 5) of each depth (0 … 32)."""
    edges = np.array([hi for _, hi in DEPTH_BINS[:-1]])
    return np.searchsorted(edges, np.asarray(depth), side="left")


def distance_bin(distance: np.ndarray | int) -> np.ndarray:
    """Index of the distance bin (0 … 3) of each distance ≥ 1; −1 for distance 0 (no match)."""
    d = np.asarray(distance)
    edges = np.array([hi for _, hi in DISTANCE_BINS[:-1]])
    out = np.searchsorted(edges, d, side="left")
    return np.where(d >= 1, out, -1)


def copy_table(
    depth: np.ndarray, distance: np.ndarray, losses: np.ndarray | None = None, max_depth: int = MAX_DEPTH
) -> tuple[np.ndarray, np.ndarray]:
    """Sum of ``losses`` and count of positions per (depth 0 … max_depth, distance column), the
    distance columns being :data:`DISTANCE_COLUMNS` ("none" for depth 0, then the four distance
    bins). Both tables have shape ``(max_depth + 1, 5)``; with ``losses=None`` the sums are 0."""
    depth = np.asarray(depth, dtype=np.int64)
    column = distance_bin(distance) + 1  # -1 (no match) -> column 0
    cell = depth * len(DISTANCE_COLUMNS) + column
    size = (max_depth + 1) * len(DISTANCE_COLUMNS)
    counts = np.bincount(cell, minlength=size).reshape(max_depth + 1, len(DISTANCE_COLUMNS))
    if losses is None:
        sums = np.zeros(counts.shape, dtype=np.float64)
    else:
        losses = np.asarray(losses, dtype=np.float64)
        if losses.shape != depth.shape:
            raise ValueError(f"losses {losses.shape} and depths {depth.shape} differ in shape")
        sums = np.bincount(cell, weights=losses, minlength=size).reshape(counts.shape)
    return sums, counts
