"""A deliberately naive float64 reference of one FSN attention step, straight from the spec's equations.

Explicit loops over query t, key u, coordinate i and harmonic n; no attention kernels, no
order-parameter form, no interleaving. It reads the layer's parameters (gate, temperature, step
size, kernel coefficients) and nothing else of its code.

    s_{t,u}  = sum_{i in h} g_i cos(theta_{t,i} - theta_{u,i} + omega_i (t - u) [+ phi_{t,i}])  (§3.3)
    A_{t,u}  = softmax_{u <= t}(beta_h s_{t,u})
    F_{t,i}  = sum_u sum_n [ A_{t,u} Im(c_n e^{i n (theta_u - theta_t)})
                            + Atilde_{t,u} Im(d_n e^{i n (theta_{u+1} - theta_t)}) ]     (§3.4)
               (+ the network kernel's sum_{j != i} of the same terms with W_ij and theta_{., j}, OQ-9)
    theta'   = theta + eta F (+ Omega)                                                   (§3.5)
"""

from __future__ import annotations

import cmath
import math

import numpy as np
import torch


def _layer_parameters(layer):
    cfg = layer.config
    D, H = cfg.d_phase, cfg.n_head
    Dh = D // H
    with torch.no_grad():
        if cfg.gate == "static":
            gate = lambda theta_t: torch.nn.functional.softplus(layer.gate_raw.detach()).double().numpy()  # noqa: E731
        else:
            W = layer.gate_proj.weight.double().numpy()
            b = layer.gate_proj.bias.double().numpy()

            def gate(theta_t):
                phi = np.concatenate([np.cos(theta_t), np.sin(theta_t)])
                return 1 / (1 + np.exp(-(W @ phi + b)))

        beta = layer.log_beta.double().exp().numpy()
        eta = torch.nn.functional.softplus(layer.eta_raw.double()).numpy()
        omega_nat = layer.natural_frequency.double().numpy() if layer.natural_frequency is not None else np.zeros(D)
        (c_re, c_im), d = layer.coordinate_coefficients()
        c = c_re.double().numpy() + 1j * c_im.double().numpy()  # (D, N)
        d = (d[0].double().numpy() + 1j * d[1].double().numpy()) if d is not None else None
    # the rotary frequencies are read from the layer's buffer (float32 values of base^(-j/D_h));
    # test_rotary_frequencies checks them against the formula
    rope = layer.rope_omega.double().numpy()
    static = layer.score_offset.detach().double().numpy() if layer.score_offset is not None else np.zeros(D)
    if layer.offset_proj is not None:  # phi_t = W_phi [cos; sin] theta_t + b_phi (+ the static phi)
        W_phi = layer.offset_proj.weight.detach().double().numpy()
        b_phi = layer.offset_proj.bias.detach().double().numpy()

        def rope_offset(theta_t):
            return W_phi @ np.concatenate([np.cos(theta_t), np.sin(theta_t)]) + b_phi + static
    else:

        def rope_offset(theta_t):
            return static
    if getattr(layer, "value_proj", None) is not None:  # diagnostic: senders broadcast theta_u + W_psi [cos; sin] theta_u + b_psi
        W_psi = layer.value_proj.weight.detach().double().numpy()
        b_psi = layer.value_proj.bias.detach().double().numpy()
        sender = lambda th: th + np.concatenate([np.cos(th), np.sin(th)], -1) @ W_psi.T + b_psi  # noqa: E731
    else:
        sender = lambda th: th  # noqa: E731
    return gate, beta, eta, omega_nat, c, d, (rope, rope_offset), Dh, sender


def _cross_coupling(layer) -> dict[int, np.ndarray]:
    """The network kernel's cross-coupling W^(delta) (H, n_cover, D_h, D_h) complex, from its raw parameters:
    w_re + i w_im, or U V^H for the low-rank form; the diagonal is not part of W (OQ-9). Empty when diagonal."""
    net = getattr(layer, "network", None)
    if net is None:
        return {}
    raw = {n: p.detach().double().numpy() for n, p in net.named_parameters()}
    out = {}
    for delay in (0, 1):
        if f"w{delay}_re" in raw:
            W = raw[f"w{delay}_re"] + 1j * raw.get(f"w{delay}_im", 0.0)
        elif f"u{delay}_re" in raw:
            U = raw[f"u{delay}_re"] + 1j * raw.get(f"u{delay}_im", 0.0)
            V = raw[f"v{delay}_re"] + 1j * raw.get(f"v{delay}_im", 0.0)
            W = U @ np.conj(np.swapaxes(V, -1, -2))
        else:
            continue
        Dh = W.shape[-1]
        out[delay] = W * (1 - np.eye(Dh))
    return out


def reference_attention_step(layer, theta: np.ndarray) -> np.ndarray:
    """One FSN attention step for a single sequence ``theta (T, D)`` in float64."""
    cfg = layer.config
    T, D = theta.shape
    H = cfg.n_head
    gate, beta, eta, omega_nat, c, d, (rope, phi), Dh, sender = _layer_parameters(layer)
    cross = _cross_coupling(layer)  # network kernel (OQ-9): receiver i couples to sender j != i of its head
    sent = sender(theta)  # the phases each token broadcasts (theta itself unless value_offset)
    N = c.shape[1]
    out = theta.copy()
    for t in range(T):
        g = gate(theta[t])
        phi_t = phi(theta[t])
        for h in range(H):
            coords = range(h * Dh, (h + 1) * Dh)
            scores = [
                beta[h] * sum(g[i] * math.cos(theta[t, i] - theta[u, i] + rope[i] * (t - u) + phi_t[i]) for i in coords)
                for u in range(t + 1)
            ]
            m = max(scores)
            w = [math.exp(s - m) for s in scores]
            A = [x / sum(w) for x in w]
            if cfg.delay_mask == "separate_strict":
                ws = w[:t]
                A_delay = [x / sum(ws) for x in ws] if t > 0 else []
            else:
                A_delay = A[:t]  # u <= t-1 with the shared normalisation (the diagonal has no successor)
            for i in coords:
                force = 0.0
                for n in range(1, N + 1):
                    for u in range(t + 1):
                        force += A[u] * (c[i, n - 1] * cmath.exp(1j * n * (sent[u, i] - theta[t, i]))).imag
                    if d is not None:
                        for u in range(t):
                            force += A_delay[u] * (d[i, n - 1] * cmath.exp(1j * n * (sent[u + 1, i] - theta[t, i]))).imag
                        if cfg.delay_mask == "shared_self":  # the diagonal's successor is the token itself
                            force += A[t] * (d[i, n - 1] * cmath.exp(1j * n * (sent[t, i] - theta[t, i]))).imag
                    for j in coords:
                        a, b = i - h * Dh, j - h * Dh
                        if 0 in cross and n <= cross[0].shape[1]:
                            K = cross[0][h, n - 1, a, b]
                            for u in range(t + 1):
                                force += A[u] * (K * cmath.exp(1j * n * (sent[u, j] - theta[t, i]))).imag
                        if 1 in cross and n <= cross[1].shape[1]:
                            K = cross[1][h, n - 1, a, b]
                            for u in range(t):
                                force += A_delay[u] * (K * cmath.exp(1j * n * (sent[u + 1, j] - theta[t, i]))).imag
                            if cfg.delay_mask == "shared_self":
                                force += A[t] * (K * cmath.exp(1j * n * (sent[t, j] - theta[t, i]))).imag
                out[t, i] = theta[t, i] + eta[i] * force + omega_nat[i]
    return out
