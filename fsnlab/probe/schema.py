"""The probe dataset schema: dimensions, every variable's CF attributes, and the global attributes.

One table (:data:`VARIABLES`) names every quantity a probe can write, with its ``long_name``,
``units``, a ``comment`` tying it to the spec, and ``valid_min``/``valid_max`` where the physics bounds
it. :func:`annotate` stamps these onto a dataset and :func:`schema_json` describes the variables a
dataset actually holds (stored as its ``schema`` attribute, so a file explains itself).
``docs/probe.md`` renders the same table for readers.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import xarray as xr

# The largest float32 strictly below pi: float32(pi) is 3.14159274 > pi, so wrapped float32 phases are
# clipped to [-PI32, PI32], which lies inside [-pi, pi).
PI32 = float(np.nextafter(np.float32(np.pi), np.float32(0)))
PHASE = (-PI32, PI32)
UNIT = (0.0, 1.0)
HALF_PI = (-math.pi / 2, math.pi / 2)

DIMS: dict[str, str] = {
    "sample": "one window of text: one causal forward pass of at most the model's context",
    "pos": "position inside the window (0 = the window's first byte)",
    "stage": "where phases are read: embed, then blocks.{i}.attn and blocks.{i}.ffn for each block i",
    "layer": "block index i",
    "head": "attention head h; it owns the coordinates osc = h*D_h .. (h+1)*D_h - 1 (coordinate osc_head)",
    "osc": "phase coordinate (oscillator) i of the torus T^D",
    "harmonic": "Daido harmonic order n = 1..N of the coupling kernel",
    "delay": "0: the attended tokens (coefficient c_n, order parameter Z0); 1: their successors (d_n, Z1)",
    "grid": "phase difference phi on a uniform grid over [-pi, pi)",
    "k": "rank of an attended key by coupling weight (0 = strongest)",
    "mode": "FSN-MF learned collective mode m",
    "mode_k": "rank of a mode by selection weight (0 = most selected)",
    "mode_harmonic": "harmonic order n of the FSN-MF mode coupling",
    "osc_i": "network kernel (OQ-9): receiving oscillator i within its head (coordinate osc = head*D_h + osc_i)",
    "osc_j": "network kernel (OQ-9): sending oscillator j within its head (coordinate osc = head*D_h + osc_j)",
}


@dataclass(frozen=True)
class VarSpec:
    """CF attributes of one variable or coordinate."""

    long_name: str
    units: str | None
    comment: str
    valid: tuple[float, float] | None = None


_V = VarSpec
VARIABLES: dict[str, VarSpec] = {
    # -- coordinates ------------------------------------------------------------------------------
    "sample": _V("window index", "1", "windows in text order"),
    "pos": _V("position in window", "1", "0-based"),
    "layer": _V("block index", "1", "0-based"),
    "head": _V("attention head", "1", "0-based"),
    "osc": _V("phase coordinate", "1", "0-based oscillator index i"),
    "harmonic": _V("harmonic order n", "1", "1-based Daido harmonic"),
    "delay": _V("delay", "1", "0 = attended token, 1 = its successor (spec section 3.4)"),
    "grid": _V("phase difference phi", "radian", "phi = theta_partner - theta_token", (-math.pi, math.pi)),
    "k": _V("rank by coupling weight", "1", "0 = strongest"),
    "mode": _V("FSN-MF mode", "1", "0-based"),
    "mode_k": _V("rank by mode selection weight", "1", "0 = most selected"),
    "mode_harmonic": _V("mode coupling harmonic order n", "1", "1-based"),
    "osc_i": _V("receiving oscillator within the head", "1", "0-based; coordinate osc = head*D_h + osc_i"),
    "osc_j": _V("sending oscillator within the head", "1", "0-based; coordinate osc = head*D_h + osc_j"),
    "stage": _V("stage name", None, "embed, blocks.{i}.attn (after the attention step), blocks.{i}.ffn (after the feed-forward or mode step)"),
    "stage_layer": _V("block of the stage", "1", "-1 for embed"),
    "stage_kind": _V("kind of stage", None, "embed, attn, ffn (SwiGLU) or modes (FSN-MF mean field)"),
    "osc_head": _V("head owning the coordinate", "1", "osc // D_h"),
    "window_start": _V("byte offset of the window's first byte", "1", "offset in the source (corpus split, file or inline text)"),
    "byte_offset": _V("byte offset of the token", "1", "window_start + pos"),
    "byte": _V("input byte", "1", "the token id (byte value)"),
    "char": _V("input character", None, "UTF-8 character starting at this byte; '' for continuation bytes (and NUL); U+FFFD for invalid bytes"),
    # -- per token ------------------------------------------------------------------------------
    "loss_bits": _V("next-byte loss", "bit", "-log2 p(byte at pos+1 | bytes up to pos); NaN where the text ends"),
    "theta": _V("token phase", "radian", "phases after each stage, wrapped to [-pi, pi) (spec 3.1); float32 clipped to +-3.1415925", PHASE),
    "R_global": _V("global Kuramoto order parameter", "1", "|mean over pos of exp(i theta)| per coordinate and stage: the consensus / rank-collapse signature (spec 10)", UNIT),
    "psi_global": _V("global mean phase", "radian", "arg of mean over pos of exp(i theta)", PHASE),
    "force": _V("coupling force F", "radian", "hook_force: sum_n Im(e^{-in theta_t}[c_n Z0 + d_n Z1]) before the step size eta (spec 3.4)"),
    "Z_real": _V("Daido order parameter, real part", "1", "Z^(delay)_{t,i,n}: sum_u A_tu e^{in theta_u} (delay 0, hook_Z0) or e^{in theta_u+1} (delay 1, hook_Z1), kernel not applied (spec 3.4)", (-1.0, 1.0)),
    "Z_imag": _V("Daido order parameter, imaginary part", "1", "see Z_real", (-1.0, 1.0)),
    "R": _V("Kuramoto order parameter of the attended context", "1", "|Z0_{t,i,1}| (clipped at 1 against float32 rounding)", UNIT),
    "psi": _V("mean phase of the attended context", "radian", "arg Z0_{t,i,1}", PHASE),
    "transition": _V("data transition", "radian", "Delta_u = theta_{u+1} - theta_u of the layer's input phases, wrapped (spec 4); NaN at the window's last position", PHASE),
    "delay_identity_residual": _V(
        "delay = Kuramoto-Sakaguchi identity residual", "radian",
        "max over queries t < identity_positions, heads, coordinates of |successor_coupling - sakaguchi_coupling with "
        "alpha = delay_frustration(Delta, d, n)|, per harmonic, float64, strictly-lower delay weights (spec 4)",
    ),
    "delay_identity_control": _V(
        "identity control: zero frustration", "radian",
        "as delay_identity_residual but with alpha = 0: large unless the data frustration is what the delay term carries",
    ),
    "delay_coupling_max": _V("largest successor coupling", "radian", "max |successor_coupling| over the same edges: the scale of the residual"),
    "delay_force_check": _V(
        "network delay force vs explicit per-edge sum", "radian",
        "max |sum_n Im(e^{-in theta} d_n Z1_n) from hook_Z1 - sum_n successor_coupling_n| (+ A_tt Im d_n for shared_self): "
        "the network's kernel against an independent edge-by-edge sum; float32 rounding level",
    ),
    "attn_topk_weight": _V("coupling weight of the k-th strongest key", "1", "A_{t,u} (hook_attn); 0 where fewer than k keys exist", UNIT),
    "attn_topk_index": _V("position of the k-th strongest key", "1", "key position u in the window; -1 where fewer than k keys exist"),
    "resid_norm": _V("residual-stream norm", "1", "transformer only: L2 norm of the residual stream after the embedding and after each sub-block"),
    # -- read from weights ------------------------------------------------------------------------
    "kernel_real": _V("coupling kernel coefficient, real part", "1", "c_{h,n} (delay 0) and d_{h,n} (delay 1), one per head (or coordinate) and harmonic (spec 3.4)"),
    "kernel_imag": _V("coupling kernel coefficient, imaginary part", "1", "see kernel_real"),
    "sakaguchi_alpha": _V("Kuramoto-Sakaguchi frustration angle", "radian", "alpha = -arg c folded into (-pi/2, pi/2] with a signed K (kernel.sakaguchi_angle, spec 10)", HALF_PI),
    "daido_K": _V("signed Daido amplitude", "1", "K of c = K e^{-i alpha}; K < 0 is a repulsive Daido component (kernel.daido_amplitude, spec 10)"),
    "coupling_function": _V("coupling function", "radian", "Gamma(phi) = sum_n Im(c_n e^{in phi}) (delay 0), Gamma+ with d_n (delay 1) (kernel.coupling_function, spec 10)"),
    "kernel_matrix_real": _V(
        "network coupling kernel entry, real part", "1",
        "K^(delay)_{h,n,ij} = diag(c or d) + W, receiver i, sender j within head h (network kernel, spec 3.4 OQ-9): "
        "F_{t,i} = sum_n Im(e^{-in theta_{t,i}} sum_j [K0_{n,ij} Z0_{t,j,n} + K1_{n,ij} Z1_{t,j,n}]); from attn.coupling_matrices()",
    ),
    "kernel_matrix_imag": _V("network coupling kernel entry, imaginary part", "1", "see kernel_matrix_real"),
    "kernel_matrix_strength": _V("network coupling strength", "1", "|K_ij|: the Kuramoto-Sakaguchi coupling strength from oscillator j to oscillator i (OQ-9)"),
    "kernel_matrix_alpha": _V(
        "network frustration angle", "radian",
        "alpha_ij = -arg K_ij in [-pi, pi] (K_ij = |K_ij| e^{-i alpha_ij}, spec 2); for delay 1 the identity's frustration is "
        "alpha_{u,ij} = -(n Delta_{u,j} + arg K1_ij) (spec 4, entry by entry)", (-math.pi, math.pi),
    ),
    "step_size": _V("step size eta", "1", "coupling strength per coordinate (spec 3.5, OQ-11)"),
    "temperature": _V("softmax inverse temperature beta", "1", "per head (spec 3.3, OQ-6)"),
    "gate": _V("score gate g", "1", "static learned metric per coordinate, softplus(gate_raw) (spec 3.3, OQ-4)"),
    "rope_frequency": _V("rotary drift frequency omega", "radian", "per position, per coordinate (spec 3.3, OQ-5)"),
    "natural_frequency": _V("natural frequency Omega", "radian", "constant drift per step (OQ-12)"),
    "score_offset": _V("score offset phi", "radian", "learned static offset inside the score's cosine (OQ-4, docs/models.md)"),
    # -- FSN-MF -------------------------------------------------------------------------------------
    "mode_phase": _V("mode phase Phi", "radian", "learned collective mode phases, wrapped (spec 5)", PHASE),
    "mode_step_size": _V("mode coupling step size eta'", "1", "per coordinate (spec 5)"),
    "mode_temperature": _V("mode selection inverse temperature", "1", "per head (spec 5, OQ-17)"),
    "mode_gate": _V("mode selection gate", "1", "softplus(gate_raw) per coordinate"),
    "mode_kappa_real": _V("mode coupling coefficient, real part", "1", "kappa_{h,n} (softmax selection)"),
    "mode_kappa_imag": _V("mode coupling coefficient, imaginary part", "1", "kappa_{h,n}"),
    "mode_weight_real": _V("mode weight, real part", "1", "w_m = K_m e^{-i alpha_m} (uniform selection)"),
    "mode_weight_imag": _V("mode weight, imaginary part", "1", "w_m"),
    "mode_topk_weight": _V("selection weight of the k-th mode", "1", "B_{t,m} (hook_mode_weights)", UNIT),
    "mode_topk_index": _V("index of the k-th mode", "1", "mode m"),
    "mode_Z_real": _V("mode mean field, real part", "1", "hook_Z of the mode coupling: sum_m B_tm e^{in Phi_m} (softmax) or sum_m w_m e^{in Phi_m} (uniform)"),
    "mode_Z_imag": _V("mode mean field, imaginary part", "1", "see mode_Z_real"),
}


def wrap_phase(x: np.ndarray) -> np.ndarray:
    """Wrap angles to [-pi, pi) in float64, then to float32 inside [-PI32, PI32] (NaN stays NaN)."""
    x = np.asarray(x, dtype=np.float64)
    wrapped = np.mod(x + np.pi, 2 * np.pi) - np.pi
    return np.clip(wrapped.astype(np.float32), np.float32(-PI32), np.float32(PI32))


def annotate(ds: xr.Dataset) -> xr.Dataset:
    """Set ``long_name``, ``units``, ``comment`` and ``valid_min``/``valid_max`` on every known variable."""
    for name in list(ds.variables):
        spec = VARIABLES.get(str(name))
        if spec is None:
            continue
        var = ds[name]
        attrs = {"long_name": spec.long_name, "comment": spec.comment}
        if spec.units is not None:
            attrs["units"] = spec.units
        if spec.valid is not None and var.dtype.kind == "f":
            attrs["valid_min"] = var.dtype.type(spec.valid[0])
            attrs["valid_max"] = var.dtype.type(spec.valid[1])
        var.attrs.update(attrs)
    return ds


def schema_json(ds: xr.Dataset) -> str:
    """JSON description of the dimensions and variables this dataset holds (its ``schema`` attribute)."""
    dims = {str(d): DIMS.get(str(d), "") for d in ds.dims}
    variables = {}
    for name in sorted(map(str, ds.variables)):
        var = ds[name]
        spec = VARIABLES.get(name)
        variables[name] = {
            "dims": [str(d) for d in var.dims],
            "dtype": str(var.dtype),
            "units": spec.units if spec else None,
            "long_name": spec.long_name if spec else "",
            "coordinate": name in ds.coords,
        }
    return json.dumps({"dims": dims, "variables": variables}, sort_keys=True)
