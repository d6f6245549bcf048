"""The model family: FSN (and its kernel ablations), FSN-MF and the RoPE-SwiGLU transformer."""

from fsnlab.models.build import build_model, match_budget, param_groups, parameter_breakdown, parameter_components
from fsnlab.models.config import (
    FSNConfig,
    ModelConfig,
    TransformerConfig,
    config_from_dict,
    config_from_json,
    config_to_dict,
    config_to_json,
    replace_config,
)
from fsnlab.models.flops import FlopCount, flops
from fsnlab.models.hooks import HookPoint, capture, hook_points
from fsnlab.models.presets import RUNG_TARGETS, get_preset, list_presets, preset_rung

__all__ = [
    "FSNConfig",
    "FlopCount",
    "HookPoint",
    "ModelConfig",
    "RUNG_TARGETS",
    "TransformerConfig",
    "build_model",
    "capture",
    "config_from_dict",
    "config_from_json",
    "config_to_dict",
    "config_to_json",
    "flops",
    "get_preset",
    "hook_points",
    "list_presets",
    "match_budget",
    "param_groups",
    "parameter_breakdown",
    "parameter_components",
    "preset_rung",
    "replace_config",
]
