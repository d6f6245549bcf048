"""fsnlab: Frustrated Synchronization Networks (Nunley, arXiv 2606.18694), reference implementation.

The public entry points::

    from fsnlab import build_model, get_preset
    model = build_model("fsn-1m")          # byte ids (B, T) -> logits (B, T, 256)
"""

__version__ = "0.1.0"

from fsnlab.models import (  # noqa: E402
    FSNConfig,
    TransformerConfig,
    build_model,
    config_from_dict,
    get_preset,
    list_presets,
    parameter_breakdown,
)

__all__ = [
    "__version__",
    "FSNConfig",
    "TransformerConfig",
    "build_model",
    "config_from_dict",
    "get_preset",
    "list_presets",
    "parameter_breakdown",
]
