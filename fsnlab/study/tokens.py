"""Per-target losses of a trained model over a split, in the order of
:func:`fsnlab.data.eval_windows` (the windows :func:`fsnlab.train.evaluate` scores), so that
``token_losses(...).mean()`` is the evaluation's bits per byte and entry i lines up with
:func:`fsnlab.study.copydepth.copy_depth_windows` entry i."""

from __future__ import annotations

import contextlib
import math

import numpy as np
import torch
import torch.nn.functional as F

from fsnlab.data import eval_windows


def pick_device(spec: str | torch.device | None = "auto") -> torch.device:
    """``auto`` → CUDA when available, else CPU."""
    if spec is None or str(spec) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(spec)


@torch.no_grad()
def token_losses(
    model: torch.nn.Module,
    data: np.ndarray,
    *,
    batch_size: int = 16,
    device: str | torch.device | None = "auto",
) -> np.ndarray:
    """−log₂ p(target) of every target of ``data`` (``len(data) - 1`` values, float32), with the
    model's own context length and non-overlapping windows. bf16 autocast on CUDA, as in
    evaluation; fp32 on CPU."""
    device = pick_device(device)
    was_training = model.training
    model.eval()
    model.to(device)
    out = np.empty(max(int(np.asarray(data).shape[0]) - 1, 0), dtype=np.float32)
    at = 0
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    for x, y in eval_windows(data, model.config.context_length, batch_size):
        x, y = x.to(device), y.to(device)
        with amp:
            logits = model(x)
        nats = F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), reduction="none")
        n = nats.numel()
        out[at : at + n] = (nats / math.log(2)).cpu().numpy()
        at += n
    model.train(was_training)
    return out
