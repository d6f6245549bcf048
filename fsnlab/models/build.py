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


def declared(module: nn.Module, attribute: str) -> dict[str, Any]:
    """A module's ``param_kinds`` or ``param_components``, merged over its classes (a subclass's or an
    earlier mixin's entry wins), so a layer composed of parts declares what each part declares."""
    merged: dict[str, Any] = {}
    for cls in reversed(type(module).__mro__):
        merged.update(cls.__dict__.get(attribute, {}))
    return merged


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
        kinds = declared(module, "param_kinds")
        for name, p in module.named_parameters(recurse=False):
            if id(p) in seen or not p.requires_grad:
                continue
            seen.add(id(p))
            groups[kinds.get(name, "decay" if p.ndim >= 2 else "no_decay")].append(p)
    return groups


Component = str | dict[str, float]  # one budget component, or fractions of several (a fused W_qkv)


def parameter_components(model: nn.Module) -> dict[str, Component]:
    """The budget component of every parameter, by dotted name, from the ``param_components`` each module
    declares: an entry names a parameter of that module or a child module, whose parameters it then covers
    unless the child declares its own. Raises :class:`ConfigError` for a parameter nothing declares."""
    out: dict[str, Component] = {}

    def visit(module: nn.Module, prefix: str, inherited: Component | None) -> None:
        own = declared(module, "param_components")
        for name, _ in module.named_parameters(recurse=False):
            component = own.get(name, inherited)
            if component is None:
                raise ConfigError(f"no budget component declared for parameter {prefix}{name} "
                                  f"({type(module).__name__}.param_components)")
            out[prefix + name] = component
        for name, child in module.named_children():
            visit(child, f"{prefix}{name}.", own.get(name, inherited))

    visit(model, "", None)
    return out


def parameter_breakdown(model_or_config: nn.Module | ModelConfig | str) -> dict[str, int]:
    """Component-wise parameter count: embedding, score map, kernel (the value pathway), feed-forward or
    modes, norms, readout and total, as each module declares them (:func:`parameter_components`). For the
    transformer, the score map is W_q, W_k and the kernel (value pathway) is W_v, W_o; a tied readout
    counts with the embedding."""
    if isinstance(model_or_config, nn.Module):
        model = model_or_config
    else:
        with torch.device("meta"):
            model = build_model(model_or_config)
    components = parameter_components(model)
    counts = {c: 0 for c in COMPONENTS}
    seen: set[int] = set()
    for name, p in model.named_parameters():  # a tied parameter once, under its first name
        if id(p) in seen:
            continue
        seen.add(id(p))
        component = components[name]
        if isinstance(component, str):
            counts[component] += p.numel()
            continue
        shares = [(c, round(p.numel() * f)) for c, f in component.items()]
        for c, n in shares[:-1]:
            counts[c] += n
        counts[shares[-1][0]] += p.numel() - sum(n for _, n in shares[:-1])  # the rest: the total stays exact
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
