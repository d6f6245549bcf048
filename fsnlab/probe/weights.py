"""Quantities read from the weights alone (spec §10): the coupling kernel as named synchronization
objects, the coupling function on a grid, step sizes, temperatures, and FSN-MF's modes.

Each kernel part is read through the layer and :mod:`fsnlab.models.kernel`:
``FSNAttention.kernel.complex_coefficients()`` gives ``c, d``; ``sakaguchi_angle`` and
``daido_amplitude`` give the canonical ``c = K e^{-i alpha}``; ``coupling_function`` gives
``Gamma(phi) = sum_n Im(c_n e^{in phi})`` (and ``Gamma+`` from ``d``).

The network kernel (spec §3.4, "Alternative reading [G, OQ-9]") is read as its whole coupling matrix
``K^(delta)_{h,n,ij} = diag(c, d) + W`` per head (``FSNAttention.coupling_matrices()``), entry by entry a
strength ``|K_ij|`` and a frustration ``alpha_ij = -arg K_ij`` (:func:`kernel_matrix_variables`); the
per-group variables above keep reading its diagonal ``c, d``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import xarray as xr

from fsnlab.models.kernel import coupling_function, daido_amplitude, sakaguchi_angle
from fsnlab.probe.schema import wrap_phase


def phase_grid(size: int) -> np.ndarray:
    """``size`` points ``-pi + 2 pi j / size``: a uniform grid over [-pi, pi) (float64)."""
    return -math.pi + 2 * math.pi * np.arange(size, dtype=np.float64) / size


def stage_names(n_layer: int, ffn_kind: str) -> tuple[list[str], list[int], list[str]]:
    """Stage names, their block index (-1 for embed) and kind, in forward order."""
    names, layers, kinds = ["embed"], [-1], ["embed"]
    for i in range(n_layer):
        names += [f"blocks.{i}.attn", f"blocks.{i}.ffn"]
        layers += [i, i]
        kinds += ["attn", ffn_kind]
    return names, layers, kinds


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy()


@torch.no_grad()
def fsn_weight_variables(model: torch.nn.Module, grid_size: int) -> dict[str, Any]:
    """Static variables of an FSN / FSN-MF model: name -> (dims, data)."""
    cfg = model.config
    blocks = list(model.blocks)
    group_dim = "head" if cfg.kernel_sharing == "head" else "osc"
    coeffs = []
    for block in blocks:
        c, d = block.attn.kernel.complex_coefficients()
        coeffs.append(torch.stack([c, d]) if d is not None else c[None])
    coef = torch.stack(coeffs)  # (L, delay, groups, N) complex64
    grid = torch.from_numpy(phase_grid(grid_size))
    kernel_dims = ("layer", "delay", group_dim, "harmonic")
    out: dict[str, Any] = {
        "kernel_real": (kernel_dims, _np(coef.real).astype(np.float32)),
        "kernel_imag": (kernel_dims, _np(coef.imag).astype(np.float32)),
        "sakaguchi_alpha": (kernel_dims, _np(sakaguchi_angle(coef)).astype(np.float32)),
        "daido_K": (kernel_dims, _np(daido_amplitude(coef)).astype(np.float32)),
        "coupling_function": (("layer", "delay", group_dim, "grid"), _np(coupling_function(coef.to(torch.complex128), grid))),
        "step_size": (("layer", "osc"), np.stack([_np(b.attn.step_size()) for b in blocks]).astype(np.float32)),
        "temperature": (("layer", "head"), np.stack([_np(b.attn.temperature()) for b in blocks]).astype(np.float32)),
        "rope_frequency": (("osc",), _np(blocks[0].attn.rope_omega).astype(np.float32)),
    }
    if cfg.gate == "static":
        # the layer's own gate accessor (FSNAttention.gate)
        out["gate"] = (("layer", "osc"), np.stack([_np(b.attn.gate()) for b in blocks]).astype(np.float32))
    if cfg.natural_frequency:
        out["natural_frequency"] = (("layer", "osc"), np.stack([_np(b.attn.natural_frequency) for b in blocks]).astype(np.float32))
    if cfg.score_offset:
        out["score_offset"] = (("layer", "osc"), np.stack([_np(b.attn.score_offset) for b in blocks]).astype(np.float32))
    if cfg.ffn == "mean_field":
        out.update(_mode_variables(blocks, cfg))
    if getattr(cfg, "kernel_form", "diagonal") != "diagonal":
        out.update(kernel_matrix_variables(blocks))
    return out


MATRIX_DIMS = ("layer", "delay", "head", "harmonic", "osc_i", "osc_j")


def kernel_matrix_variables(blocks: list) -> dict[str, Any]:
    """The network kernel (OQ-9) per oscillator pair: ``K^(delta)_{h,n,ij}`` (receiver ``i``, sender ``j`` of head
    ``h``; delay 0 the attended tokens, 1 their successors) from ``attn.coupling_matrices()``, as
    ``kernel_matrix_real/_imag``, its strength ``|K_ij|`` (``kernel_matrix_strength``) and its frustration
    ``alpha_ij = -arg K_ij`` (``kernel_matrix_alpha``, in [-pi, pi], the sign convention of spec §2), each
    ``(layer, delay, head, harmonic, osc_i, osc_j)`` float32. The force is
    ``F_{t,i} = sum_n Im(e^{-in theta_{t,i}} sum_j [K0_{n,ij} Z0_{t,j,n} + K1_{n,ij} Z1_{t,j,n}])`` (spec §3.4)."""
    mats = []
    for block in blocks:
        k0, k1 = block.attn.coupling_matrices()  # complex64 (H, N, D_h, D_h), detached
        mats.append(torch.stack([k0, k1]) if k1 is not None else k0[None])
    K = torch.stack(mats).cpu()  # (L, delay, H, N, D_h, D_h)
    return {
        "kernel_matrix_real": (MATRIX_DIMS, _np(K.real).astype(np.float32)),
        "kernel_matrix_imag": (MATRIX_DIMS, _np(K.imag).astype(np.float32)),
        "kernel_matrix_strength": (MATRIX_DIMS, _np(K.abs()).astype(np.float32)),
        "kernel_matrix_alpha": (MATRIX_DIMS, _np(-torch.angle(K)).astype(np.float32)),
    }


def _mode_variables(blocks: list, cfg: Any) -> dict[str, Any]:
    """FSN-MF (spec §5): mode phases, mode step sizes, and the selection/coupling parameters."""
    ffns = [b.ffn for b in blocks]
    out: dict[str, Any] = {
        "mode_phase": (("layer", "mode", "osc"), np.stack([wrap_phase(_np(f.mode_phases)) for f in ffns])),
        "mode_step_size": (("layer", "osc"), np.stack([_np(f.step_size()) for f in ffns]).astype(np.float32)),
    }
    if cfg.mf_select == "softmax":
        out["mode_temperature"] = (("layer", "head"), np.stack([_np(f.temperature()) for f in ffns]).astype(np.float32))
        out["mode_gate"] = (("layer", "osc"), np.stack([_np(f.gate()) for f in ffns]).astype(np.float32))
        out["mode_kappa_real"] = (("layer", "head", "mode_harmonic"), np.stack([_np(f.kappa_re) for f in ffns]).astype(np.float32))
        out["mode_kappa_imag"] = (("layer", "head", "mode_harmonic"), np.stack([_np(f.kappa_im) for f in ffns]).astype(np.float32))
    else:
        out["mode_weight_real"] = (("layer", "mode"), np.stack([_np(f.mode_weight_re) for f in ffns]).astype(np.float32))
        out["mode_weight_imag"] = (("layer", "mode"), np.stack([_np(f.mode_weight_im) for f in ffns]).astype(np.float32))
    return out


def static_coords(model: torch.nn.Module, window: int, grid_size: int, top_k: int | None, mode_top_k: int | None) -> dict[str, Any]:
    """Index coordinates (and stage/osc labels) that do not depend on the text."""
    cfg = model.config
    L, H = cfg.n_layer, cfg.n_head
    coords: dict[str, Any] = {
        "layer": ("layer", np.arange(L, dtype=np.int32)),
        "head": ("head", np.arange(H, dtype=np.int32)),
        "pos": ("pos", np.arange(window, dtype=np.int32)),
    }
    if top_k:
        coords["k"] = ("k", np.arange(top_k, dtype=np.int32))
    if cfg.family == "transformer":
        names, layers, kinds = stage_names(L, "ffn")
    else:
        D, N = cfg.d_phase, cfg.kernel_spec.n_harmonics
        names, layers, kinds = stage_names(L, "modes" if cfg.ffn == "mean_field" else "ffn")
        coords.update(
            osc=("osc", np.arange(D, dtype=np.int32)),
            osc_head=("osc", (np.arange(D) // cfg.head_dim).astype(np.int32)),
            harmonic=("harmonic", np.arange(1, N + 1, dtype=np.int32)),
            delay=("delay", np.arange(2 if cfg.kernel_spec.delay else 1, dtype=np.int32)),
            grid=("grid", phase_grid(grid_size)),
        )
        if getattr(cfg, "kernel_form", "diagonal") != "diagonal":  # the network kernel's pair dims (OQ-9)
            coords["osc_i"] = ("osc_i", np.arange(cfg.head_dim, dtype=np.int32))
            coords["osc_j"] = ("osc_j", np.arange(cfg.head_dim, dtype=np.int32))
        if cfg.ffn == "mean_field":
            coords["mode"] = ("mode", np.arange(cfg.n_modes, dtype=np.int32))
            coords["mode_harmonic"] = ("mode_harmonic", np.arange(1, cfg.mf_harmonics + 1, dtype=np.int32))
            if mode_top_k:
                coords["mode_k"] = ("mode_k", np.arange(mode_top_k, dtype=np.int32))
    coords["stage"] = ("stage", np.array(names))
    coords["stage_layer"] = ("stage", np.array(layers, dtype=np.int32))
    coords["stage_kind"] = ("stage", np.array(kinds))
    return coords


def static_dataset(model: torch.nn.Module, window: int, grid_size: int, top_k: int | None, mode_top_k: int | None) -> xr.Dataset:
    """Everything that does not depend on the text: coordinates and (FSN) the weight readings."""
    data_vars = fsn_weight_variables(model, grid_size) if model.config.family == "fsn" else {}
    return xr.Dataset(data_vars, coords=static_coords(model, window, grid_size, top_k, mode_top_k))
