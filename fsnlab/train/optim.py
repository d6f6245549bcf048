"""AdamW over the model's parameter groups, and the warmup + cosine learning-rate schedule.

The schedule is a pure function of the step, so resuming needs nothing but the step count.
"""

from __future__ import annotations

import math

import torch

from fsnlab.errors import TrainingError
from fsnlab.models import param_groups
from fsnlab.train.config import TrainConfig


def build_optimizer(model: torch.nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only and a separate LR scale for phase tables (OQ-25).

    Each group carries an ``lr_scale`` that :func:`set_lr` multiplies into the scheduled LR.
    Fused kernels on CUDA, the multi-tensor (foreach) path elsewhere.
    """
    groups = param_groups(model)
    _check_partition(model, groups)
    spec = [
        ("decay", config.weight_decay, 1.0),
        ("no_decay", 0.0, config.scalar_lr_scale),
        ("angle", 0.0, config.angle_lr_scale),
    ]
    param_groups_ = [
        {"params": groups.get(name, []), "weight_decay": wd, "lr_scale": scale, "group": name}
        for name, wd, scale in spec
        if groups.get(name)
    ]
    kernel = {"fused": True} if device.type == "cuda" else {"foreach": True}
    return torch.optim.AdamW(
        param_groups_, lr=config.lr, betas=(config.beta1, config.beta2), eps=config.eps, **kernel
    )


def lr_at(step: int, total_steps: int, config: TrainConfig) -> float:
    """Learning rate for optimizer step ``step`` (0-based): linear warmup, then cosine to the floor."""
    warmup = max(1, round(config.warmup_frac * total_steps))
    if step < warmup:
        return config.lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    floor = config.min_lr_ratio
    return config.lr * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Apply the scheduled LR to every group, times the group's ``lr_scale``."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group["lr_scale"]


def _check_partition(model: torch.nn.Module, groups: dict[str, list[torch.nn.Parameter]]) -> None:
    """Every trainable parameter must sit in exactly one group, or it would silently not train."""
    seen: dict[int, str] = {}
    for name, params in groups.items():
        for p in params:
            if id(p) in seen:
                raise TrainingError(f"a parameter is in both the {seen[id(p)]!r} and {name!r} groups")
            seen[id(p)] = name
    missing = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in seen]
    if missing:
        raise TrainingError(f"param_groups leaves out {len(missing)} parameter(s), e.g. {missing[0]}")
