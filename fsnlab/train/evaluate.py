"""Bits per byte over a whole split (or its first N bytes), every target counted exactly once."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from fsnlab.data import eval_windows
from fsnlab.errors import DataError
from fsnlab.train.distributed import DistContext, all_reduce_sum


@dataclass(frozen=True)
class EvalResult:
    """Mean cross-entropy per target byte, in bits (``bpc``) and nats, over ``targets`` bytes."""

    bpc: float
    nats: float
    targets: int


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (spec OQ-27); full fp32 on CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    data: np.ndarray,
    *,
    batch_size: int,
    device: torch.device,
    max_bytes: int | None = None,
    dist: DistContext = DistContext(),
) -> EvalResult:
    """Evaluate ``model`` (an unwrapped module) on ``data[:max_bytes]`` with non-overlapping windows
    of the model's context length. Under torchrun each rank takes every world_size-th batch and the
    sums are reduced, so every rank returns the same result."""
    if max_bytes is not None:
        data = data[:max_bytes]
    was_training = model.training
    model.eval()
    totals = torch.zeros(2, dtype=torch.float64, device=device)  # (sum of nats, target count)
    windows = eval_windows(data, model.config.context_length, batch_size)
    for i, (x, y) in enumerate(windows):
        if i % dist.world_size != dist.rank:
            continue
        x, y = x.to(device), y.to(device)
        with autocast(device):
            logits = model(x)
        nats = F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), reduction="sum")
        totals[0] += nats.double()
        totals[1] += y.numel()
    model.train(was_training)
    nats_sum, count = all_reduce_sum(totals, dist).tolist()
    if count == 0:
        raise DataError(f"nothing to evaluate: the split has {len(data)} byte(s), fewer than 2")
    nats = nats_sum / count
    return EvalResult(bpc=nats / math.log(2), nats=nats, targets=int(count))
