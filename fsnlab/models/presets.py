"""Named presets: the parameter ladder of the paper (spec §7.2-§7.3, OQ-31) plus small rungs.

Each rung has four families at the same parameter budget (every count within 1% of the rung's
target; ``tests/test_models.py::test_every_preset_is_within_one_percent_of_its_rung`` checks it):

* ``fsn-*``: the full FSN kernel (harmonics, Sakaguchi angles, delay);
* ``ka-*``: the unfrustrated base layer, Kuramoto attention (``kernel="base"``, §6);
* ``fsn-mf-*``: FSN-MF, mean-field coupling to learned modes instead of every MLP (§5);
* ``transformer-*``: the RoPE-SwiGLU, pre-RMSNorm transformer.

Width grows with the rung (D_h = 48 phase coordinates per FSN head, head width 32 for the
transformer) at fixed depth, context and harmonics; the SwiGLU hidden width ``h`` (or the number of
modes ``M``) is then solved for the budget (spec §7.3: "scale width first ... re-solve h (or M)").
``tiny`` (~45k, T=64) is for tests; ``small`` (~0.2M, T=128) is the CPU demo that ``fsnlab train``
runs by default.

Every FSN-family preset turns on the learned score offset (``score_offset=True``, OQ-4): measured to
help at both CPU rungs (docs/quality.md), it keeps the spec's value pathway, and the base layer gets
it too so that ``ka-*`` against ``fsn-*`` still isolates the kernel.
"""

from __future__ import annotations

import copy

from fsnlab.errors import ConfigError
from fsnlab.models.config import FSNConfig, ModelConfig, TransformerConfig

RUNG_TARGETS: dict[str, int] = {
    "tiny": 45_500,
    "small": 200_000,
    "1m": 1_000_000,
    "2m": 2_000_000,
    "4m": 4_000_000,
    "8m": 8_000_000,
}

# rung: (context T, FSN layers L, D, H, h for fsn, h for ka, M for fsn-mf)
_FSN_RUNGS: dict[str, tuple[int, int, int, int, int, int, int]] = {
    "tiny": (64, 2, 32, 2, 64, 64, 317),
    "small": (128, 3, 64, 2, 156, 156, 780),
    "1m": (512, 4, 192, 4, 220, 220, 1105),
    "2m": (512, 4, 288, 6, 308, 308, 1539),
    "4m": (512, 4, 384, 8, 480, 480, 2408),
    "8m": (512, 4, 576, 12, 656, 656, 3276),
}
# rung: (context T, layers L, d_model, heads, SwiGLU hidden h)
_TRANSFORMER_RUNGS: dict[str, tuple[int, int, int, int, int]] = {
    "tiny": (64, 2, 32, 2, 152),
    "small": (128, 4, 64, 2, 152),
    "1m": (512, 5, 128, 4, 332),
    "2m": (512, 5, 192, 6, 420),
    "4m": (512, 5, 256, 8, 684),
    "8m": (512, 5, 384, 12, 860),
}


def _build_presets() -> dict[str, ModelConfig]:
    presets: dict[str, ModelConfig] = {}
    for rung, (T, L, D, H, h_fsn, h_ka, modes) in _FSN_RUNGS.items():
        # the learned score offset (OQ-4) is on: it gains at both CPU rungs (docs/quality.md) and leaves the value pathway as specified
        common = dict(context_length=T, n_layer=L, d_phase=D, n_head=H, score_offset=True)
        presets[f"fsn-{rung}"] = FSNConfig(**common, kernel="full", ffn_hidden=h_fsn)
        presets[f"ka-{rung}"] = FSNConfig(**common, kernel="base", ffn_hidden=h_ka)
        presets[f"fsn-mf-{rung}"] = FSNConfig(**common, kernel="full", ffn="mean_field", n_modes=modes)
    for rung, (T, L, d, H, h) in _TRANSFORMER_RUNGS.items():
        presets[f"transformer-{rung}"] = TransformerConfig(
            context_length=T, n_layer=L, d_model=d, n_head=H, ffn_hidden=h
        )
    return presets


PRESETS: dict[str, ModelConfig] = _build_presets()


def preset_rung(name: str) -> str:
    """The rung of a preset name (``"fsn-mf-1m"`` -> ``"1m"``)."""
    return name.rsplit("-", 1)[-1]


def get_preset(name: str) -> ModelConfig:
    """A fresh copy of the named preset's config; ConfigError lists the valid names otherwise."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return copy.deepcopy(PRESETS[name])


def list_presets() -> list[str]:
    return list(PRESETS)
