"""Run a batch of windows through the model's hook points and turn the captured tensors into the
per-window variables of the probe dataset (spec §3, §4, §10; hook names: ``fsnlab/models/fsn.py``).

The model runs uncompiled, in eval mode, through :func:`fsnlab.models.capture`; reading a hook never
changes the output (``tests/test_probe.py`` checks that the probed logits equal the plain ones).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from fsnlab.models import capture
from fsnlab.probe.physics import delay_identity, global_order_parameter, top_k
from fsnlab.probe.schema import wrap_phase


@dataclass(frozen=True)
class CaptureSettings:
    """What to read on each batch (resolved from the probe options by :func:`fsnlab.probe.core._settings`)."""

    attention: bool  # store the top-k coupling weights per query
    top_k: int  # k for attention (already clamped to the window length)
    mode_top_k: int  # k for FSN-MF mode selection (clamped to the number of modes; 0 = none)
    identity_positions: int  # queries t < P checked by the delay identity (0 = skip)


def hook_names(model: torch.nn.Module, settings: CaptureSettings) -> list[str]:
    """The hook points a probe listens to."""
    cfg = model.config
    names: list[str] = []
    if cfg.family == "transformer":
        for i in range(cfg.n_layer):
            names += [f"blocks.{i}.hook_resid_mid", f"blocks.{i}.hook_resid_out"]
            if settings.attention:
                names.append(f"blocks.{i}.attn.hook_attn")
        return names
    delay = cfg.kernel_spec.delay
    names.append("hook_embed")
    for i in range(cfg.n_layer):
        a = f"blocks.{i}.attn."
        names += [a + "hook_theta_in", a + "hook_theta_out", a + "hook_Z0", a + "hook_force", f"blocks.{i}.ffn.hook_theta_out"]
        if delay:
            names.append(a + "hook_Z1")
        if settings.attention or (delay and settings.identity_positions):
            names.append(a + "hook_attn")
        if cfg.ffn == "mean_field":
            names.append(f"blocks.{i}.ffn.hook_Z")
            if settings.mode_top_k:
                names.append(f"blocks.{i}.ffn.hook_mode_weights")
    return names


@torch.no_grad()
def forward_with_hooks(model: torch.nn.Module, idx: torch.Tensor, names: list[str]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Logits of ``idx (B, T)`` and the tensors seen at the hook points ``names``."""
    with capture(model, names) as cache:
        logits = model(idx)
    return logits.cpu(), {name: tensor.cpu() for name, tensor in cache.items()}


def loss_bits(logits: torch.Tensor, targets: torch.Tensor) -> np.ndarray:
    """Per-token next-byte loss in bits; ``targets`` is -1 where no next byte exists (NaN there)."""
    logp = F.log_softmax(logits.double(), dim=-1)
    valid = targets >= 0
    nll = -logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1) / math.log(2)
    return torch.where(valid, nll, torch.full_like(nll, float("nan"))).numpy().astype(np.float32)


def _split_stack(tensors: list) -> tuple[np.ndarray, np.ndarray]:
    """Real and imaginary parts (float32) of complex tensors nested in (lists of) lists, stacked at dim 1
    (and 2): ``[[z_(0,0), z_(0,1)], ...]`` of ``(B, ...)`` -> ``(B, len, len, ...)``, without a complex copy."""
    nested = isinstance(tensors[0], (list, tuple))
    rows = tensors if nested else [[t] for t in tensors]
    first = rows[0][0]
    shape = (first.shape[0], len(rows), len(rows[0]), *first.shape[1:])
    re, im = np.empty(shape, np.float32), np.empty(shape, np.float32)
    for i, row in enumerate(rows):
        for j, z in enumerate(row):
            re[:, i, j] = z.real.numpy()
            im[:, i, j] = z.imag.numpy()
    if not nested:
        re, im = re[:, :, 0], im[:, :, 0]
    return re, im


@torch.no_grad()
def batch_variables(
    model: torch.nn.Module, idx: torch.Tensor, targets: torch.Tensor, settings: CaptureSettings
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Run one batch and return ``(logits, {name: (dims, data)})`` for the per-window variables."""
    logits, cache = forward_with_hooks(model, idx, hook_names(model, settings))
    out: dict[str, Any] = {"loss_bits": (("sample", "pos"), loss_bits(logits, targets.cpu()))}
    if model.config.family == "transformer":
        out.update(_transformer_variables(model, idx, cache, settings))
    else:
        out.update(_fsn_variables(model, cache, settings))
    return logits, out


def _transformer_variables(model: torch.nn.Module, idx: torch.Tensor, cache: dict, settings: CaptureSettings) -> dict[str, Any]:
    """Residual-stream norms at every stage, and (with ``attention``) the top-k attention weights."""
    L = model.config.n_layer
    streams = [model.embed(idx).cpu()]
    for i in range(L):
        streams += [cache[f"blocks.{i}.hook_resid_mid"], cache[f"blocks.{i}.hook_resid_out"]]
    norms = torch.stack([s.float().norm(dim=-1) for s in streams], dim=1)  # (B, stage, T)
    out: dict[str, Any] = {"resid_norm": (("sample", "stage", "pos"), norms.numpy().astype(np.float32))}
    if settings.attention:
        out.update(_attention_topk([cache[f"blocks.{i}.attn.hook_attn"] for i in range(L)], settings.top_k))
    return out


def _attention_topk(attn: list[torch.Tensor], k: int) -> dict[str, Any]:
    pairs = [top_k(a, k, causal=True) for a in attn]
    dims = ("sample", "layer", "head", "pos", "k")
    return {
        "attn_topk_weight": (dims, np.stack([p[0] for p in pairs], axis=1)),
        "attn_topk_index": (dims, np.stack([p[1] for p in pairs], axis=1)),
    }


def _fsn_variables(model: torch.nn.Module, cache: dict, settings: CaptureSettings) -> dict[str, Any]:
    """Phases, order parameters, forces, transitions, the identity check and (optionally) top-k."""
    cfg = model.config
    L = cfg.n_layer
    delay = cfg.kernel_spec.delay
    stages = [cache["hook_embed"]]
    for i in range(L):
        stages += [cache[f"blocks.{i}.attn.hook_theta_out"], cache[f"blocks.{i}.ffn.hook_theta_out"]]
    theta = torch.stack(stages, dim=1)  # (B, stage, T, D), unwrapped
    z_global = global_order_parameter(theta)  # (B, stage, D)
    theta_in = [cache[f"blocks.{i}.attn.hook_theta_in"] for i in range(L)]
    z_names = ["hook_Z0", "hook_Z1"] if delay else ["hook_Z0"]
    z_re, z_im = _split_stack([[cache[f"blocks.{i}.attn.{h}"] for h in z_names] for i in range(L)])  # (B, L, delay, T, D, N)
    z0 = [cache[f"blocks.{i}.attn.hook_Z0"][..., 0] for i in range(L)]  # n = 1: the Kuramoto order parameter
    r = np.minimum(np.stack([z.abs().numpy() for z in z0], axis=1), np.float32(1.0)).astype(np.float32)
    psi = wrap_phase(np.stack([torch.angle(z).numpy() for z in z0], axis=1))
    delta = torch.stack([th.double()[:, 1:] - th.double()[:, :-1] for th in theta_in], dim=1)  # (B, L, T-1, D)
    transition = np.concatenate([wrap_phase(delta.numpy()), np.full(delta[:, :, :1].shape, np.nan, np.float32)], axis=2)
    out: dict[str, Any] = {
        "theta": (("sample", "stage", "pos", "osc"), wrap_phase(theta.numpy())),
        "R_global": (("sample", "stage", "osc"), np.minimum(z_global.abs().numpy(), 1.0).astype(np.float32)),
        "psi_global": (("sample", "stage", "osc"), wrap_phase(torch.angle(z_global).numpy())),
        "force": (("sample", "layer", "pos", "osc"), torch.stack([cache[f"blocks.{i}.attn.hook_force"] for i in range(L)], 1).numpy().astype(np.float32)),
        "Z_real": (("sample", "layer", "delay", "pos", "osc", "harmonic"), z_re),
        "Z_imag": (("sample", "layer", "delay", "pos", "osc", "harmonic"), z_im),
        "R": (("sample", "layer", "pos", "osc"), r),
        "psi": (("sample", "layer", "pos", "osc"), psi),
        "transition": (("sample", "layer", "pos", "osc"), transition),
    }
    if delay and settings.identity_positions:
        out.update(_identity_variables(model, cache, theta_in, settings.identity_positions))
    if settings.attention:
        out.update(_attention_topk([cache[f"blocks.{i}.attn.hook_attn"] for i in range(L)], settings.top_k))
    if cfg.ffn == "mean_field":
        mz_re, mz_im = _split_stack([cache[f"blocks.{i}.ffn.hook_Z"] for i in range(L)])  # (B, L, T, D, N')
        dims = ("sample", "layer", "pos", "osc", "mode_harmonic")
        out["mode_Z_real"], out["mode_Z_imag"] = (dims, mz_re), (dims, mz_im)
        if settings.mode_top_k:
            pairs = [top_k(cache[f"blocks.{i}.ffn.hook_mode_weights"], settings.mode_top_k, causal=False) for i in range(L)]
            dims = ("sample", "layer", "head", "pos", "mode_k")
            out["mode_topk_weight"] = (dims, np.stack([p[0] for p in pairs], axis=1))
            out["mode_topk_index"] = (dims, np.stack([p[1] for p in pairs], axis=1))
    return out


def _identity_variables(model: torch.nn.Module, cache: dict, theta_in: list[torch.Tensor], positions: int) -> dict[str, Any]:
    """The delay identity and the network-vs-explicit delay force, per window and layer (spec §4); with the
    network kernel (OQ-9) both include the cross-coupling, entry by entry."""
    from fsnlab.dynamics.identity import delay_cross_coupling  # scipy, as delay_identity's own import

    results = []
    for i, block in enumerate(model.blocks):
        _, d_pair = block.attn.coordinate_coefficients()
        d = torch.complex(d_pair[0].detach().cpu().double(), d_pair[1].detach().cpu().double())  # (D, N)
        cross = delay_cross_coupling(block.attn, torch.float64)  # the network kernel's W1 (OQ-9), or None
        results.append(
            delay_identity(theta_in[i], cache[f"blocks.{i}.attn.hook_attn"], d, cache[f"blocks.{i}.attn.hook_Z1"],
                           model.config.delay_mask, positions, None if cross is None else cross.cpu())
        )
    per_harmonic = ("sample", "layer", "harmonic")
    return {
        "delay_identity_residual": (per_harmonic, np.stack([r.residual for r in results], axis=1)),
        "delay_identity_control": (per_harmonic, np.stack([r.control for r in results], axis=1)),
        "delay_coupling_max": (per_harmonic, np.stack([r.coupling_max for r in results], axis=1)),
        "delay_force_check": (("sample", "layer"), np.stack([r.force_check for r in results], axis=1)),
    }
