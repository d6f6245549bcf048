"""Typed, JSON-serialisable model configurations.

Every choice that the spec (``shared/paper/fsn-paper.md``) marks as a guess carries the open
question it answers (OQ-n) in its field comment. Defaults are the spec's best guesses (§7.2, §12).

Two config classes cover the four families:

* :class:`FSNConfig` -- the FSN (``kernel="full"``), its ablations (``kernel="base"`` is the
  unfrustrated Kuramoto-attention layer of §6; ``+harmonics``, ``+sakaguchi``, ``+delay``) and the
  mean-field variant FSN-MF (``ffn="mean_field"``, §5).
* :class:`TransformerConfig` -- the matched RoPE-SwiGLU, pre-RMSNorm transformer baseline.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Literal, Union

from fsnlab.errors import ConfigError

CONFIG_SCHEMA_VERSION = 1

KernelSetting = Literal["base", "+harmonics", "+sakaguchi", "+delay", "full"]
KERNEL_SETTINGS: tuple[str, ...] = ("base", "+harmonics", "+sakaguchi", "+delay", "full")
DELAY_MASKS: tuple[str, ...] = ("shared_zero_diag", "separate_strict", "shared_self")


@dataclass(frozen=True)
class KernelSpec:
    """What a kernel setting switches on (spec §3.4, §6).

    Each ablation adds exactly one kind of frustration to the unfrustrated base layer:

    ========== ========= =================== ===================== =============
    setting    harmonics  coefficient c_n     static KS angle        delay d_n
    ========== ========= =================== ===================== =============
    base       1          real, > 0           no                     no
    +harmonics N          real, signed        no                     no
    +sakaguchi 1          complex             yes                    no
    +delay     1          real, > 0           no                     yes (real)
    full       N          complex             yes                    yes (complex)
    ========== ========= =================== ===================== =============
    """

    n_harmonics: int
    complex_coeffs: bool  # static Kuramoto-Sakaguchi angles arg(c), arg(d)
    signed: bool  # amplitudes may be negative (repulsive Daido terms)
    delay: bool  # one-step successor term d_n


def kernel_spec(setting: str, n_harmonics: int) -> KernelSpec:
    """Resolve a kernel setting name into the switches it implies."""
    if setting == "base":
        return KernelSpec(1, complex_coeffs=False, signed=False, delay=False)
    if setting == "+harmonics":
        return KernelSpec(n_harmonics, complex_coeffs=False, signed=True, delay=False)
    if setting == "+sakaguchi":
        return KernelSpec(1, complex_coeffs=True, signed=True, delay=False)
    if setting == "+delay":
        return KernelSpec(1, complex_coeffs=False, signed=False, delay=True)
    if setting == "full":
        return KernelSpec(n_harmonics, complex_coeffs=True, signed=True, delay=True)
    raise ConfigError(f"unknown kernel setting {setting!r}; choose one of {', '.join(KERNEL_SETTINGS)}")


@dataclass
class FSNConfig:
    """Frustrated Synchronization Network (spec §3), its ablations (§6) and FSN-MF (§5)."""

    family: Literal["fsn"] = "fsn"
    vocab_size: int = 256  # raw bytes (OQ-22)
    context_length: int = 512  # T (OQ-20)
    n_layer: int = 4  # L (OQ-2)
    d_phase: int = 192  # D phase coordinates per token; the torus is T^D (OQ-2)
    n_head: int = 4  # H; each head owns D/H coordinates and its own softmax (OQ-2)

    # -- value pathway: one complex coupling kernel (§3.4) --------------------------------------
    kernel: str = "full"  # base | +harmonics | +sakaguchi | +delay | full (§6, OQ-32)
    n_harmonics: int = 4  # N Daido harmonics when the setting uses harmonics (OQ-9)
    kernel_sharing: Literal["head", "coord"] = "head"  # one coefficient per (head, n) or per (coord, n) (OQ-9)
    # the network reading of OQ-9: K = diag(c) + W, W a cross-coupling matrix within each head (fsnlab/models/network_kernel.py)
    kernel_form: Literal["diagonal", "network1", "network", "low_rank"] = "diagonal"  # diagonal | network1 (harmonic 1) | network (all) | low_rank (OQ-9)
    kernel_rank: int = 4  # rank of W for kernel_form="low_rank" (OQ-9)
    network_init_std: float = 0.02  # std of W's entries (re and im; of V for low_rank) at init (OQ-9, OQ-10)
    delay_mask: str = "shared_zero_diag"  # normalisation of the successor term at the diagonal (OQ-8)
    delay_init_scale: float = 0.1  # |d_n| at init, epsilon of OQ-10
    delay_init_angle: float = 0.1  # arg d_n ~ U(-a, a) at init (OQ-10)

    # -- score map: gated phase coherence with rotary drift (§3.3) ------------------------------
    gate: Literal["static", "query"] = "static"  # learned metric g (OQ-4)
    score_offset: bool = False  # learned static phase offset phi_i in the score: cos(theta_t - theta_u + omega (t-u) + phi) (OQ-4); the presets turn it on
    query_offset: bool = False  # content-dependent offset phi_t = W_phi [cos; sin] theta_t + b_phi, added to the static phi if any (OQ-4)
    temperature_init: float | None = None  # beta_h at init; None -> 1/sqrt(D_h) (OQ-6)
    rope_base: float = 10000.0  # omega_j = base^(-j/D_h), one frequency per phase coordinate (OQ-5)

    # -- phase update (§3.5) ----------------------------------------------------------------------
    step_size_init: float = 1.0  # eta = softplus(.) per coordinate, coupling strength K (OQ-11)
    natural_frequency: bool = False  # learned constant drift Omega per coordinate (OQ-12)
    value_offset: bool = False  # DIAGNOSTIC: senders broadcast theta_u + psi(theta_u), psi = W_psi [cos; sin] theta_u + b (not the spec's layer, OQ-9)
    # DIAGNOSTICS, not the spec's layer (docs/quality.md): dot_product = a transformer's attention on [cos; sin] theta;
    # phase_scores = the FSN's score map with W_v, W_o values; dot_scores = W_q, W_k scores with the Kuramoto kernel
    attention: Literal["kuramoto", "dot_product", "phase_scores", "dot_scores"] = "kuramoto"
    attn_steps: int = 1  # weight-tied Euler steps of the coupling per block, as in AKOrN (OQ-15, spec 13)

    # -- embedding and readout (§3.2, §3.7) -------------------------------------------------------
    embedding: Literal["angle", "tanh", "vector"] = "angle"  # angle table, pi*tanh(real table), or atan2 of 2-D vectors (OQ-3)
    vector_init_radius: float = 1.0  # |W| at init for embedding="vector"; Adam turns the angle by about lr/|W| (OQ-3)
    readout: Literal["linear", "tied"] = "linear"  # linear on [cos; sin], or coherence with E (OQ-16)

    # -- feed-forward (§3.6) or mean-field modes (§5) ---------------------------------------------
    ffn: Literal["swiglu", "mean_field"] = "swiglu"  # mean_field = FSN-MF: no MLP anywhere (OQ-14, OQ-17)
    ffn_hidden: int = 224  # SwiGLU hidden width h, solved for the parameter budget (§7.3)
    ffn_norm: bool = False  # RMSNorm on the SwiGLU hidden layer (OQ-13)
    n_modes: int = 1104  # M learned collective modes per layer for FSN-MF (OQ-18)
    mf_select: Literal["softmax", "uniform"] = "softmax"  # how tokens select modes (OQ-17)
    mf_harmonics: int = 1  # N' harmonics of the mode coupling (OQ-17)

    init_std: float = 0.02  # std of matrix weights (SwiGLU, readout)

    @property
    def head_dim(self) -> int:
        return self.d_phase // self.n_head

    @property
    def kernel_spec(self) -> KernelSpec:
        return kernel_spec(self.kernel, self.n_harmonics)

    def diagnostic_switches(self) -> list[str]:
        """The diagnostic switches that are on: they leave the spec's layer, so the instruments that read
        the coupling (probe, verify, population dynamics) refuse such a model."""
        out = []
        if self.attention != "kuramoto":
            out.append(f"attention={self.attention!r}")
        if self.value_offset:
            out.append("value_offset=True")
        return out

    def validate(self) -> "FSNConfig":
        _check_positive(self, ("vocab_size", "context_length", "n_layer", "d_phase", "n_head", "n_harmonics", "attn_steps"))
        if self.d_phase % self.n_head:
            raise ConfigError(f"d_phase={self.d_phase} is not divisible by n_head={self.n_head}")
        kernel_spec(self.kernel, self.n_harmonics)
        if self.delay_mask not in DELAY_MASKS:
            raise ConfigError(f"unknown delay_mask {self.delay_mask!r}; choose one of {', '.join(DELAY_MASKS)}")
        _check_choice(self, "kernel_sharing", ("head", "coord"))
        _check_choice(self, "kernel_form", ("diagonal", "network1", "network", "low_rank"))
        if self.kernel_form == "low_rank" and not (isinstance(self.kernel_rank, int) and 0 < self.kernel_rank <= self.head_dim):
            raise ConfigError(f"kernel_rank must be an integer in 1..head_dim={self.head_dim}, got {self.kernel_rank!r}")
        if self.kernel_form != "diagonal" and self.attention == "phase_scores":
            raise ConfigError("kernel_form needs the Kuramoto kernel, which attention='phase_scores' replaces")
        _check_choice(self, "gate", ("static", "query"))
        _check_choice(self, "attention", ("kuramoto", "dot_product", "phase_scores", "dot_scores"))
        _check_choice(self, "embedding", ("angle", "tanh", "vector"))
        _check_choice(self, "readout", ("linear", "tied"))
        if not self.vector_init_radius > 0:
            raise ConfigError(f"vector_init_radius must be positive, got {self.vector_init_radius!r}")
        _check_choice(self, "ffn", ("swiglu", "mean_field"))
        _check_choice(self, "mf_select", ("softmax", "uniform"))
        if self.ffn == "swiglu" and self.ffn_hidden <= 0:
            raise ConfigError("ffn_hidden must be positive")
        if self.ffn == "mean_field" and (self.n_modes <= 0 or self.mf_harmonics <= 0):
            raise ConfigError("n_modes and mf_harmonics must be positive for ffn='mean_field'")
        return self


@dataclass
class TransformerConfig:
    """RoPE-SwiGLU transformer with pre-RMSNorm and tied embeddings (the matched baseline)."""

    family: Literal["transformer"] = "transformer"
    vocab_size: int = 256
    context_length: int = 512
    n_layer: int = 5
    d_model: int = 128
    n_head: int = 4
    ffn_hidden: int = 332  # SwiGLU hidden width, solved for the parameter budget (§7.3)
    rope_base: float = 10000.0
    tie_embeddings: bool = True
    norm_eps: float = 1e-5
    init_std: float = 0.02

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    def validate(self) -> "TransformerConfig":
        _check_positive(self, ("vocab_size", "context_length", "n_layer", "d_model", "n_head", "ffn_hidden"))
        if self.d_model % self.n_head or self.head_dim % 2:
            raise ConfigError(f"d_model={self.d_model} must split into n_head={self.n_head} heads of even width")
        return self


ModelConfig = Union[FSNConfig, TransformerConfig]
_FAMILIES: dict[str, type] = {"fsn": FSNConfig, "transformer": TransformerConfig}


def config_to_dict(config: ModelConfig) -> dict[str, Any]:
    """A plain, JSON-ready dict (with the schema version) that :func:`config_from_dict` inverts."""
    return {"schema_version": CONFIG_SCHEMA_VERSION, **dataclasses.asdict(config)}


def config_from_dict(data: dict[str, Any]) -> ModelConfig:
    """Rebuild a config from :func:`config_to_dict` output; unknown fields are an error."""
    data = dict(data)
    version = data.pop("schema_version", CONFIG_SCHEMA_VERSION)
    if version != CONFIG_SCHEMA_VERSION:
        raise ConfigError(f"config schema version {version} is not supported (this fsnlab reads {CONFIG_SCHEMA_VERSION})")
    family = data.get("family")
    if family not in _FAMILIES:
        raise ConfigError(f"unknown model family {family!r}; expected one of {', '.join(_FAMILIES)}")
    cls = _FAMILIES[family]
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown {family} config field(s): {', '.join(unknown)}")
    return cls(**data).validate()


def config_to_json(config: ModelConfig) -> str:
    return json.dumps(config_to_dict(config), indent=2, sort_keys=True)


def config_from_json(text: str) -> ModelConfig:
    return config_from_dict(json.loads(text))


def replace_config(config: ModelConfig, **overrides: Any) -> ModelConfig:
    """``dataclasses.replace`` with a clear error for unknown fields, then validation."""
    names = {f.name for f in dataclasses.fields(config)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ConfigError(f"unknown {config.family} config field(s): {', '.join(unknown)}")
    return dataclasses.replace(config, **overrides).validate()


def _check_positive(config: Any, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, int) or value <= 0:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def _check_choice(config: Any, name: str, choices: tuple[str, ...]) -> None:
    value = getattr(config, name)
    if value not in choices:
        raise ConfigError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")
