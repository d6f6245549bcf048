"""``build_model``, optimizer parameter groups and the component-wise parameter count."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fsnlab.errors import ConfigError
from fsnlab.models.config import FSNConfig, ModelConfig, TransformerConfig, replace_config
from fsnlab.models.fsn import FSN
from fsnlab.models.presets import get_preset
from fsnlab.models.transformer import Transformer

COMPONENTS = ("embedding", "score_map", "kernel", "feed_forward", "modes", "norms", "readout")


def build_model(preset_or_config: str | ModelConfig, **overrides: Any) -> nn.Module:
    """A model for a preset name (``"fsn-1m"``) or a config, with optional field overrides.

    The module maps byte ids ``(B, T)`` (int64) to logits ``(B, T, vocab_size)`` and keeps its
    config in ``model.config``.
    """
    config = get_preset(preset_or_config) if isinstance(preset_or_config, str) else preset_or_config
    if overrides:
        config = replace_config(config, **overrides)
    config.validate()
    if isinstance(config, FSNConfig):
        return FSN(config)
    if isinstance(config, TransformerConfig):
        return Transformer(config)
    raise ConfigError(f"not a model config: {type(config).__name__}")


def param_groups(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """Optimizer groups (spec §7.2, OQ-25): ``decay`` (weight matrices), ``no_decay`` (gains, biases,
    kernel coefficients, step sizes, temperatures) and ``angle`` (phase tables: the phase embedding and
    the FSN-MF mode phases, never decayed toward 0, which would bias the geometry).

    A module states the kind of any parameter that the default rule (matrices decay, vectors do not)
    gets wrong in a ``param_kinds`` class attribute. Shared (tied) parameters appear once.
    """
    groups: dict[str, list[nn.Parameter]] = {"decay": [], "no_decay": [], "angle": []}
    seen: set[int] = set()
    for module in model.modules():
        kinds = getattr(module, "param_kinds", {})
        for name, p in module.named_parameters(recurse=False):
            if id(p) in seen or not p.requires_grad:
                continue
            seen.add(id(p))
            groups[kinds.get(name, "decay" if p.ndim >= 2 else "no_decay")].append(p)
    return groups


def _component(family: str, config: ModelConfig, name: str) -> str:
    """Which budget component a parameter belongs to (the names of ``fsnlab params``)."""
    if name.startswith("embed."):
        return "embedding"
    if name.startswith("readout.") or name == "norm.weight":
        return "readout"
    if family == "transformer":
        if "norm" in name:
            return "norms"
        if ".ffn." in name:
            return "feed_forward"
        return "score_map" if "wqkv" in name else "kernel"  # wqkv is split below
    if ".ffn." in name:
        return "modes" if config.ffn == "mean_field" else "feed_forward"
    if ".kernel." in name or "eta_raw" in name or "natural_frequency" in name:
        return "kernel"
    return "score_map"  # gates and temperatures


def parameter_breakdown(model_or_config: nn.Module | ModelConfig | str) -> dict[str, int]:
    """Component-wise parameter count: embedding, score map, kernel (the value pathway), feed-forward or
    modes, norms, readout and total. For the transformer, the score map is W_q, W_k and the kernel
    (value pathway) is W_v, W_o; a tied readout counts with the embedding."""
    if isinstance(model_or_config, nn.Module):
        model = model_or_config
    else:
        with torch.device("meta"):
            model = build_model(model_or_config)
    config = model.config
    counts = {c: 0 for c in COMPONENTS}
    seen: set[int] = set()
    for name, p in model.named_parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        component = _component(config.family, config, name)
        if config.family == "transformer" and "wqkv" in name:
            counts["score_map"] += 2 * p.numel() // 3
            counts["kernel"] += p.numel() // 3
            continue
        counts[component] += p.numel()
    counts["total"] = sum(counts[c] for c in COMPONENTS)
    return counts


def match_budget(config: ModelConfig, target: int) -> ModelConfig:
    """Re-solve the width that absorbs the budget so the model has about ``target`` parameters (spec §7.3).

    The count is affine in the SwiGLU hidden width ``h`` (FSN and transformer) or in the number of
    modes ``M`` (FSN-MF), so two counts fix the line and the nearest integer solves it. Used when a
    switch adds or removes parameters (a tied readout, more harmonics, per-coordinate kernels), so that
    a variant is compared with the baseline at the same budget.
    """
    field_name = "n_modes" if getattr(config, "ffn", "swiglu") == "mean_field" else "ffn_hidden"

    def total(width: int) -> int:
        return parameter_breakdown(replace_config(config, **{field_name: width}))["total"]

    base, slope = total(1), total(2) - total(1)
    width = max(1, round(1 + (target - base) / slope))
    return replace_config(config, **{field_name: width})
