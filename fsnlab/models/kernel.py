"""The FSN coupling kernel: the one source of truth for the layer's physics (spec §3.4, §4, §10).

Everything the layer, the probe, ``fsnlab verify`` and the explorer compute about the kernel goes
through these functions; nothing else re-derives them.

Conventions (spec §2): phases in radians; the Kuramoto-Sakaguchi form is
``dtheta_i/dt = sum_j K_ij sin(theta_j - theta_i - alpha)``, so a complex coefficient
``c = K e^{-i alpha}`` carries the frustration angle ``alpha = -arg c``.

Shapes: ``theta`` is ``(..., D)``; harmonic features are ``(..., D, N)``; coefficients broadcast
against ``(D, N)`` (one per coordinate and harmonic, expanded from per-head sharing).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from fsnlab.models.config import KernelSpec

SIGN_CONVENTION = "dtheta_i/dt = sum_j K_ij sin(theta_j - theta_i - alpha); c = K exp(-i alpha)"


def harmonic_orders(n_harmonics: int, device: torch.device | None = None) -> torch.Tensor:
    """The harmonic orders ``n = 1..N`` as a float tensor."""
    return torch.arange(1, n_harmonics + 1, device=device, dtype=torch.float32)


def harmonic_features(theta: torch.Tensor, n_harmonics: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``cos(n theta)`` and ``sin(n theta)`` for n = 1..N: the values fed to attention (§3.4).

    Returns two tensors of shape ``(..., D, N)``.
    """
    n = harmonic_orders(n_harmonics, theta.device).to(theta.dtype)
    angles = theta.unsqueeze(-1) * n
    return torch.cos(angles), torch.sin(angles)


class _HarmonicPhasors(torch.autograd.Function):
    """``e^{i n theta}`` as real pairs, saving only its output: ``d cos(n theta) = -n sin(n theta) d theta``
    and ``d sin(n theta) = n cos(n theta) d theta`` need no angle tensor."""

    @staticmethod
    def forward(ctx, theta, n_harmonics: int):
        n = harmonic_orders(n_harmonics, theta.device).to(theta.dtype)
        angles = theta.unsqueeze(-1) * n
        out = torch.stack([torch.cos(angles), torch.sin(angles)], -1)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        n = harmonic_orders(out.shape[-2], out.device).to(out.dtype)
        cos, sin = out.unbind(-1)
        g_cos, g_sin = grad.unbind(-1)
        return ((cos * g_sin - sin * g_cos) * n).sum(-1), None


def harmonic_phasors(theta: torch.Tensor, n_harmonics: int) -> torch.Tensor:
    """``[cos(n theta), sin(n theta)]`` for n = 1..N, stacked: ``(..., D) -> (..., D, N, 2)`` (§3.4).

    The same values as :func:`harmonic_features`; for the training path, its backward pass reads the
    output itself (which the attention keeps as its values anyway) instead of keeping the angles.
    """
    return _HarmonicPhasors.apply(theta, n_harmonics)


class _TangentForce(torch.autograd.Function):
    """``F = sum_n Im(e^{-i n theta} P_n)`` with its gradients written out, so that the pull ``P`` is not kept:

    ``dF/dP = i g e^{i n theta}`` (PyTorch's convention for complex gradients, ``dRe + i dIm``) needs only
    the phasors, and ``dF/dtheta = -sum_n n Re(e^{-i n theta} P_n)`` is one ``(..., D)`` tensor computed in
    the forward pass. ``theta`` itself is read by neither pass: it is the input the gradient flows to.
    """

    @staticmethod
    def forward(ctx, theta, phasors, pull):
        cos, sin = phasors.unbind(-1)
        p_re, p_im = torch.view_as_real(pull).unbind(-1)
        n = harmonic_orders(cos.shape[-1], cos.device).to(cos.dtype)
        force = (cos * p_im - sin * p_re).sum(-1)
        radial = ((cos * p_re + sin * p_im) * n).sum(-1)
        ctx.save_for_backward(phasors, radial)
        return force

    @staticmethod
    def backward(ctx, grad):
        phasors, radial = ctx.saved_tensors
        g = grad.unsqueeze(-1)
        cos, sin = phasors.unbind(-1)
        d_pull = torch.complex(-g * sin, g * cos)  # i g e^{i n theta}
        return -grad * radial, None, d_pull


def tangent_force(theta: torch.Tensor, phasors: torch.Tensor, pull: torch.Tensor) -> torch.Tensor:
    """The force ``sum_n Im(e^{-i n theta_t} P_n)`` (§3.5) of a complex pull ``P (..., D, N)`` on phases
    ``theta (..., D)`` whose phasors ``e^{i n theta}`` are ``phasors (..., D, N, 2)`` (from
    :func:`harmonic_phasors`; not differentiated here: the gradient to ``theta`` flows directly).

    The same value as :func:`tangent_projection`; the backward pass keeps neither ``P`` nor the angles.
    """
    return _TangentForce.apply(theta, phasors.detach(), pull)


def tangent_projection(cos_nt: torch.Tensor, sin_nt: torch.Tensor, w: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """``sum_n Im(e^{-i n theta_t} w_n)``: the component of the pull ``w`` tangent to the circle (§3.5).

    ``cos_nt``/``sin_nt`` are the token's harmonic features ``(..., D, N)``; ``w`` a complex
    ``(real, imag)`` pair of the same shape. Returns ``(..., D)``. For the base layer
    (``w = Z^{(0)}_1 = R e^{i psi}``) this is ``R sin(psi - theta)``, the Kuramoto interaction.
    """
    return (cos_nt * w[1] - sin_nt * w[0]).sum(-1)


def coupling_force(
    cos_nt: torch.Tensor,
    sin_nt: torch.Tensor,
    z0: tuple[torch.Tensor, torch.Tensor],
    c: tuple[torch.Tensor, torch.Tensor],
    z1: tuple[torch.Tensor, torch.Tensor] | None = None,
    d: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """The coupling force in order-parameter form (spec §3.4)::

        F_t = sum_n Im( e^{-i n theta_t} [ c_n Z0_{t,n} + d_n Z1_{t,n} ] )

    Complex numbers are passed as ``(real, imag)`` pairs so that the computation stays in real
    fp32 arithmetic. ``z0``/``z1`` are the attention-weighted Daido order parameters of the attended
    tokens and of their successors ``(..., D, N)``; ``c``/``d`` broadcast against ``(D, N)``.
    Returns ``(..., D)``.
    """
    w = complex_mul(c, z0)
    if z1 is not None and d is not None:
        v = complex_mul(d, z1)
        w = (w[0] + v[0], w[1] + v[1])
    return tangent_projection(cos_nt, sin_nt, w)


def coupling_function(c: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """Daido coupling function ``Gamma(phi) = sum_n Im(c_n e^{i n phi})`` (spec §3.4 real form, §10).

    ``c`` is complex ``(..., N)``; ``phi`` is a real grid ``(G,)``. Returns ``(..., G)``. With
    ``c_n = a_n + i b_n`` this is ``sum_n a_n sin(n phi) + b_n cos(n phi)``; a token coupled to one
    partner at phase difference ``phi = theta_u - theta_t`` moves by ``Gamma(phi)``.
    """
    c = c if c.is_complex() else c.to(torch.complex64)
    n = torch.arange(1, c.shape[-1] + 1, device=c.device, dtype=c.real.dtype)
    angles = n[:, None] * phi.to(device=c.device, dtype=c.real.dtype)[None, :]
    e = torch.polar(torch.ones_like(angles), angles)
    return torch.einsum("...n,ng->...g", c, e).imag


def sakaguchi_angle(c: torch.Tensor) -> torch.Tensor:
    """Canonical reading ``c = K e^{-i alpha}`` with ``K`` real and ``alpha in (-pi/2, pi/2]`` (spec §10).

    Returns ``alpha``; pair with :func:`daido_amplitude` for the signed ``K`` (negative = repulsive).
    """
    alpha = -torch.angle(c)
    # fold into (-pi/2, pi/2] by flipping the sign of K
    alpha = torch.where(alpha > math.pi / 2, alpha - math.pi, alpha)
    alpha = torch.where(alpha <= -math.pi / 2, alpha + math.pi, alpha)
    return alpha


def daido_amplitude(c: torch.Tensor) -> torch.Tensor:
    """Signed amplitude ``K`` of the canonical form ``c = K e^{-i alpha}``; ``K < 0`` iff Re c < 0 (repulsive)."""
    k = torch.abs(c)
    return torch.where(c.real < 0, -k, k)


def complex_mul(a: tuple[torch.Tensor, torch.Tensor], b: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Product of two complex numbers given as ``(real, imag)`` pairs (broadcasting)."""
    return a[0] * b[0] - a[1] * b[1], a[0] * b[1] + a[1] * b[0]


class CouplingKernel(nn.Module):
    """Learned complex coupling kernel ``c_{h,n}`` (delay 0) and ``d_{h,n}`` (delay 1), spec §3.4.

    Parameterisation follows the kernel setting (:class:`fsnlab.models.config.KernelSpec`):

    * real positive amplitudes (``base``, ``+delay``'s ``c``): ``c = softplus(raw)``, init 1;
    * signed real amplitudes (``+harmonics``; the delay coefficient of ``+delay``): ``c = raw``;
    * complex coefficients (``+sakaguchi``, ``full``): ``c = re + i im``.

    Init (OQ-10): ``c_1 = 1``, ``c_{n>=2} = 0`` (the layer starts as the unfrustrated base layer);
    ``d_n = eps * e^{i xi}``, ``xi ~ U(-a, a)`` (small random frustration).
    ``groups`` is H (one coefficient per head and harmonic) or D (per coordinate), OQ-9.
    """

    param_kinds = {"c_re": "no_decay", "c_im": "no_decay", "d_re": "no_decay", "d_im": "no_decay"}

    def __init__(self, spec: KernelSpec, groups: int, delay_init_scale: float = 0.1, delay_init_angle: float = 0.1):
        super().__init__()
        self.spec = spec
        n = spec.n_harmonics
        c_re = torch.zeros(groups, n)
        if spec.signed:
            c_re[:, 0] = 1.0
        else:
            c_re[:, 0] = _softplus_inverse(1.0)
        self.c_re = nn.Parameter(c_re)
        self.c_im = nn.Parameter(torch.zeros(groups, n)) if spec.complex_coeffs else None
        if spec.delay:
            xi = (torch.rand(groups, n) * 2 - 1) * delay_init_angle
            self.d_re = nn.Parameter(delay_init_scale * torch.cos(xi))
            self.d_im = nn.Parameter(delay_init_scale * torch.sin(xi)) if spec.complex_coeffs else None
        else:
            self.d_re, self.d_im = None, None

    def delay_coefficients(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``d`` as a (real, imag) pair of shape ``(groups, N)``, or None without delay."""
        if self.d_re is None:
            return None
        return self.d_re, self.d_im if self.d_im is not None else torch.zeros_like(self.d_re)

    def coefficients(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``c`` as a (real, imag) pair of shape ``(groups, N)``."""
        c_re = self.c_re if self.spec.signed else nn.functional.softplus(self.c_re)
        return c_re, self.c_im if self.c_im is not None else torch.zeros_like(c_re)

    def complex_coefficients(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(c, d)`` as complex tensors ``(groups, N)`` for probes (``d`` is None without delay)."""
        c = torch.complex(*[p.detach().float() for p in self.coefficients()])
        d_pair = self.delay_coefficients()
        d = torch.complex(*[p.detach().float() for p in d_pair]) if d_pair is not None else None
        return c, d


def _softplus_inverse(y: float) -> float:
    return math.log(math.expm1(y))


# -- the delay identity (spec §4) ---------------------------------------------------------------
#
# The delay term couples token t to the successor u+1 of each attended token u:
#     G_{t,u} = Im(d e^{i n (theta_{u+1} - theta_t)}).
# Inserting theta_u, with the data's transition Delta_u = theta_{u+1} - theta_u, gives
#     G_{t,u} = |d| sin(n (theta_u - theta_t) - alpha_{u,n}),   alpha_{u,n} = -(n Delta_u + arg d),
# i.e. Kuramoto-Sakaguchi coupling to u itself with a per-edge frustration set by the data. The two
# functions below evaluate both sides independently, edge by edge, so that `fsnlab verify` and the
# probe can measure the residual on real layers.


def delay_weights(attn: torch.Tensor, delay_mask: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The weights with which the delay term couples token ``t`` to the successor of ``u`` (§3.4, OQ-8).

    ``attn (..., T, T)`` is the layer's softmax ``A``. Returns ``(W, diag)``: ``W (..., T, T)`` is zero on
    and above the diagonal (only ``u < t`` has a successor the query may see). ``shared_zero_diag`` and
    ``shared_self`` use ``A`` itself there; ``separate_strict`` renormalises each row over ``u < t`` (its
    own softmax of the same scores; row 0 is empty). ``diag (..., T)`` is ``A_tt`` for ``shared_self``,
    whose diagonal couples a token to itself as its own successor (not an edge to a successor), else None.
    """
    strict = torch.tril(attn, diagonal=-1)
    if delay_mask == "shared_zero_diag":
        return strict, None
    if delay_mask == "shared_self":
        return strict, torch.diagonal(attn, dim1=-2, dim2=-1)
    if delay_mask == "separate_strict":
        total = strict.sum(-1, keepdim=True)
        safe = torch.where(total > 0, total, torch.ones_like(total))
        return torch.where(total > 0, strict / safe, torch.zeros_like(strict)), None
    raise ValueError(f"unknown delay_mask {delay_mask!r}")


def transitions(theta: torch.Tensor) -> torch.Tensor:
    """The data's transitions ``Delta_u = theta_{u+1} - theta_u`` along positions (dim -2) (spec §4 step 2).

    ``theta (..., T, D)`` -> ``(..., T, D)``; the last position has no successor and gets NaN.
    """
    delta = theta[..., 1:, :] - theta[..., :-1, :]
    return torch.cat([delta, torch.full_like(theta[..., :1, :], float("nan"))], dim=-2)


def delay_frustration(delta: torch.Tensor, d: torch.Tensor, n: int) -> torch.Tensor:
    """KS frustration angle of the delay term at harmonic ``n``: ``alpha_{u,n} = -(n Delta_u + arg d_n)`` (§4 step 6)."""
    return -(n * delta + torch.angle(d))


def successor_coupling(theta: torch.Tensor, weights: torch.Tensor, d: torch.Tensor, n: int) -> torch.Tensor:
    """The delay term computed the network's way: coupling to the *successors* of the attended tokens,

        sum_{u < t} W_{t,u} Im(d e^{i n (theta_{u+1} - theta_t)}),

    ``theta (..., T, D)``, ``weights (..., T, T)`` (the delay weights; zero for u >= t), ``d`` complex,
    broadcast against ``(D,)``. Returns ``(..., T, D)``.
    """
    succ = torch.cat([theta[..., 1:, :], theta[..., -1:, :]], dim=-2)  # theta_{u+1}; the last is never weighted
    phase = n * (succ.unsqueeze(-3) - theta.unsqueeze(-2))  # (..., T_t, T_u, D)
    terms = torch.abs(d) * torch.sin(phase + torch.angle(d))  # Im(d e^{i phase})
    return _weighted_sum(weights, terms)


def sakaguchi_coupling(theta: torch.Tensor, weights: torch.Tensor, alpha: torch.Tensor, strength: torch.Tensor, n: int) -> torch.Tensor:
    """Kuramoto-Sakaguchi coupling to the attended tokens *themselves* with per-edge frustration,

        sum_{u < t} W_{t,u} K sin(n (theta_u - theta_t) - alpha_u),

    ``alpha (..., T, D)`` the frustration of each attended token (for the identity,
    :func:`delay_frustration` of the data's transitions), ``strength`` = K = ``|d|``.
    """
    phase = n * (theta.unsqueeze(-3) - theta.unsqueeze(-2)) - alpha.unsqueeze(-3)
    terms = strength * torch.sin(phase)
    return _weighted_sum(weights, terms)


# -- the same two sides for the network kernel (OQ-9): coupling entry by entry, sender j to receiver i --
#
#     G_{t,u,ij} = Im(K_ij e^{i n (theta_{u+1,j} - theta_{t,i})})
#                = |K_ij| sin(n (theta_{u,j} - theta_{t,i}) - alpha_{u,ij}),   alpha_{u,ij} = -(n Delta_{u,j} + arg K_ij):
# Kuramoto-Sakaguchi coupling from oscillator j of u itself, frustrated by the transition of coordinate j.


def pair_successor_coupling(receiver: torch.Tensor, sender: torch.Tensor, weights: torch.Tensor, k: torch.Tensor, n: int) -> torch.Tensor:
    """:func:`successor_coupling` over oscillator pairs: ``sum_{u<t} W_{t,u} sum_j Im(K_ij e^{in(theta_{u+1,j} - theta_{t,i})})``.

    ``receiver (..., T, I)`` the phases ``theta_{t,i}``, ``sender (..., T, J)`` the phases ``theta_{u,j}``,
    ``weights (..., T, T)`` the delay weights, ``k`` complex broadcast against ``(..., T_t, T_u, I, J)``.
    Returns ``(..., T, I)``.
    """
    succ = torch.cat([sender[..., 1:, :], sender[..., -1:, :]], dim=-2)  # theta_{u+1,j}; the last is never weighted
    phase = n * (succ[..., None, :, None, :] - receiver[..., :, None, :, None])  # (..., T_t, T_u, I, J)
    return _pair_weighted_sum(weights, torch.abs(k) * torch.sin(phase + torch.angle(k)))


def pair_sakaguchi_coupling(
    receiver: torch.Tensor, sender: torch.Tensor, weights: torch.Tensor, alpha: torch.Tensor, strength: torch.Tensor, n: int
) -> torch.Tensor:
    """:func:`sakaguchi_coupling` over oscillator pairs: ``sum_{u<t} W_{t,u} sum_j K_ij sin(n(theta_{u,j} - theta_{t,i}) - alpha_{u,ij})``.

    ``alpha (..., T_u, I, J)`` the frustration of each attended token's pair (for the identity,
    :func:`delay_frustration` of the sender's transitions and ``K``), ``strength`` = ``|K_ij|`` broadcast
    against ``(..., T_t, T_u, I, J)``. Shapes otherwise as :func:`pair_successor_coupling`.
    """
    phase = n * (sender[..., None, :, None, :] - receiver[..., :, None, :, None])  # n (theta_{u,j} - theta_{t,i})
    return _pair_weighted_sum(weights, strength * torch.sin(phase - alpha.unsqueeze(-4)))


def _pair_weighted_sum(weights: torch.Tensor, terms: torch.Tensor) -> torch.Tensor:
    """``sum_u W_{t,u} sum_j terms_{t,u,i,j}`` for ``terms (..., T_t, T_u, I, J)`` and ``weights (..., T_t, T_u)``,
    ignoring the edges whose weight is exactly 0 (their terms may be NaN: the last position has no transition)."""
    per_edge = terms.sum(-1)
    w = weights.unsqueeze(-1)
    return torch.where(w != 0, w * per_edge, torch.zeros((), dtype=per_edge.dtype)).sum(-2)


def _weighted_sum(weights: torch.Tensor, terms: torch.Tensor) -> torch.Tensor:
    """``sum_u W_{t,u} terms_{t,u,:}``, ignoring terms where the weight is exactly 0 (they may be NaN)."""
    w = weights.unsqueeze(-1)
    return torch.where(w != 0, w * terms, torch.zeros((), dtype=terms.dtype)).sum(-2)
