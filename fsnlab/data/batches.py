"""Training batches (random windows, reproducible from a torch.Generator) and evaluation windows
(deterministic, non-overlapping, every target byte exactly once)."""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from fsnlab.errors import DataError


def sample_batch(
    data: np.ndarray,
    batch_size: int,
    context_length: int,
    generator: torch.Generator,
    *,
    what: str = "data",
) -> tuple[torch.Tensor, torch.Tensor]:
    """x, y: int64 (B, T); windows of T+1 bytes at uniform random offsets drawn with `generator`
    (torch.randint with that generator, so saving generator.get_state() makes batches resumable
    exactly); y is x shifted by one.

    ``what`` names the data in the error raised when it is shorter than T+1 bytes
    (e.g. ``what="val split"``). Tensors are on the CPU."""
    if batch_size < 1 or context_length < 1:
        raise ValueError(f"batch_size and context_length must be >= 1, got {batch_size}, {context_length}")
    n = int(data.shape[0])
    if n < context_length + 1:
        raise DataError(f"{what} has {n} bytes, fewer than context_length+1={context_length + 1}")
    offsets = torch.randint(0, n - context_length, (batch_size,), generator=generator, device=generator.device)
    index = offsets.cpu().numpy()[:, None] + np.arange(context_length + 1)
    windows = torch.from_numpy(np.asarray(data)[index].astype(np.int64))
    return windows[:, :-1].contiguous(), windows[:, 1:].contiguous()


def eval_windows(
    data: np.ndarray, context_length: int, batch_size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Deterministic, non-overlapping windows covering the whole split: every byte after the first
    is a target exactly once. Full windows are T inputs / T targets stepping by T; the final partial
    window (if any) is yielded as its own shorter batch. Batches of up to batch_size windows.

    Window k has inputs ``data[kT : kT+T]`` and targets ``data[kT+1 : kT+T+1]``."""
    if batch_size < 1 or context_length < 1:
        raise ValueError(f"batch_size and context_length must be >= 1, got {batch_size}, {context_length}")
    T = context_length
    n_targets = count_eval_targets(data)
    n_full = n_targets // T
    for first in range(0, n_full, batch_size):
        k = min(batch_size, n_full - first)
        chunk = np.asarray(data[first * T : (first + k) * T + 1]).astype(np.int64)
        yield torch.from_numpy(chunk[:-1].reshape(k, T)), torch.from_numpy(chunk[1:].reshape(k, T))
    rest = n_targets - n_full * T
    if rest:
        chunk = np.asarray(data[n_full * T :]).astype(np.int64)
        yield torch.from_numpy(chunk[None, :-1]), torch.from_numpy(chunk[None, 1:])


def count_eval_targets(data: np.ndarray) -> int:
    """How many targets :func:`eval_windows` yields: ``len(data) - 1`` (0 for empty data)."""
    return max(int(data.shape[0]) - 1, 0)
