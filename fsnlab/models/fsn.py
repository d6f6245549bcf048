"""The Frustrated Synchronization Network (spec §3), its ablations (§6) and FSN-MF (§5).

A token is a vector of ``D`` phases on the torus. Each block is an Euler step of a
coupled-oscillator system (spec §3.8)::

    theta <- theta + eta * F(theta)            # frustrated synchronization attention (§3.3-3.5)
    theta <- theta + SwiGLU([cos; sin] theta)  # phase feed-forward (§3.6), or, in FSN-MF,
    theta <- theta + eta' * F_modes(theta)     # mean-field coupling to learned modes (§5)

with the force in order-parameter form (§3.4)::

    F_t = sum_n Im( e^{-i n theta_t} [ c_n Z0_{t,n} + d_n Z1_{t,n} ] ),
    Z0_{t,n} = sum_{u<=t}   A_{t,u} e^{i n theta_u},   Z1_{t,n} = sum_{u<=t-1} A_{t,u} e^{i n theta_{u+1}}.

``A`` is a softmax of the gated phase-coherence score with rotary drift (§3.3),
``s_{t,u} = sum_i g_i cos(theta_{t,i} - theta_{u,i} + omega_i (t - u))``, computed as a dot product of
cos/sin features so that fused attention kernels apply. Phases, trig and the force are fp32.

The attention step is composed of three parts, each a small mixin that owns its parameters (so their
names, ``blocks.{i}.attn.gate_raw`` and so on, are those of the checkpoints):

* :class:`PhaseScoreMap`: the score map, ``q, k`` of §3.3 (gate ``g``, temperature ``beta``, offset ``phi``,
  rotary drift ``omega``);
* :class:`KuramotoCoupling`: the value pathway, the kernel's force ``F`` from the order parameters (§3.4);
* the Euler step ``theta + eta F (+ Omega)`` (§3.5), :meth:`KuramotoCoupling.euler_step`.

:class:`FSNAttention` is the spec's layer and nothing else. The diagnostic forms of ``config.attention``
and ``config.value_offset`` (docs/quality.md) are in :mod:`fsnlab.models.diagnostics`, built from the same
parts; :func:`build_attention` chooses.

Hook points (shapes; B batch, T positions, D phases, H heads, N harmonics, M modes):

* ``hook_embed`` ``(B, T, D)``: phases out of the embedding; ``hook_theta_final`` ``(B, T, D)``.
* ``blocks.{i}.attn.hook_theta_in`` / ``hook_theta_out`` ``(B, T, D)``: phases before/after the attention step.
* ``blocks.{i}.attn.hook_Z0`` / ``hook_Z1`` complex ``(B, T, D, N)``: Daido order parameters of the
  attended tokens / of their successors (``Z1`` only with a delay kernel).
* ``blocks.{i}.attn.hook_force`` ``(B, T, D)``: the force ``F`` (before the step size ``eta``).
* ``blocks.{i}.attn.hook_attn`` ``(B, H, T, T)``: coupling weights ``A``; dense, built only when hooked.
* ``blocks.{i}.ffn.hook_theta_out`` ``(B, T, D)``: phases after the feed-forward / mode coupling.
* FSN-MF: ``blocks.{i}.ffn.hook_Z`` complex ``(B, T, D, N')``, ``hook_force`` ``(B, T, D)``,
  ``hook_mode_weights`` ``(B, H, T, M)`` (built only when hooked).

Complex-valued and dense hooks are materialised only when someone listens (``HookPoint.active``),
and never change the output.

Every module declares the budget component of its parameters (``param_components``, read by
:func:`fsnlab.models.build.parameter_breakdown`) and any optimizer group the default rule gets wrong
(``param_kinds``, read by :func:`fsnlab.models.build.param_groups`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from fsnlab.models.attention import (
    attend, attention_backend, attention_weights, causal_attention, delay_attention, full_precision,
)
from fsnlab.models.fused_force import fused_delay_force
from fsnlab.models.config import FSNConfig
from fsnlab.models.hooks import HookPoint
from fsnlab.models.kernel import (
    CouplingKernel, complex_mul, harmonic_features, harmonic_phasors, tangent_force, tangent_projection,
)
from fsnlab.models.network_kernel import NetworkCoupling
from fsnlab.models.transformer import SwiGLU


def phase_features(theta: torch.Tensor) -> torch.Tensor:
    """``[cos theta; sin theta]``: the ``2D`` real features of ``D`` phases, ``(..., D) -> (..., 2D)``.

    The input of every learned map on the phases (gate, offsets, SwiGLU, readout; §3.3, §3.6, §3.7).
    """
    return torch.cat([torch.cos(theta), torch.sin(theta)], -1)


def phase_rope_frequencies(d_phase: int, n_head: int, base: float) -> torch.Tensor:
    """Rotary drift ``omega_i = base^(-j/D_h)``, j the index of coordinate i inside its head (§3.3, OQ-5).

    Each phase coordinate is already one 2-D rotation pair, so it gets one frequency.
    """
    head_dim = d_phase // n_head
    return (base ** (-torch.arange(head_dim, dtype=torch.float32) / head_dim)).repeat(n_head)


def _softplus_inverse(y: float) -> float:
    """``x`` with ``softplus(x) = y``: the raw value that initialises a softplus-parameterised positive."""
    return math.log(math.expm1(y))


def split_heads(x: torch.Tensor, n_head: int) -> torch.Tensor:
    """``(B, T, D, *rest)`` -> ``(B, H, T, (D/H) * prod(rest))``: per-head features for attention."""
    B, T, D = x.shape[:3]
    return x.reshape(B, T, n_head, -1).transpose(1, 2)


def merge_heads(x: torch.Tensor, d_phase: int) -> torch.Tensor:
    """Inverse of :func:`split_heads`: ``(B, H, T, D/H, *rest)`` or ``(B, H, T, (D/H) * W)`` -> ``(B, T, D, W)``."""
    B, H, T = x.shape[:3]
    return x.transpose(1, 2).reshape(B, T, d_phase, -1)


def as_complex(re: torch.Tensor, im: torch.Tensor) -> torch.Tensor:
    """A complex tensor from real and imaginary parts: complex128 for float64 inputs, complex64 otherwise."""
    dtype = torch.float64 if re.dtype == torch.float64 else torch.float32
    return torch.complex(re.to(dtype), im.to(dtype))


def head_major(x: torch.Tensor, n_head: int) -> torch.Tensor:
    """``(B, T, D)`` -> contiguous ``(B, H, T, D_h)``: the phases of each head's coordinates."""
    B, T, D = x.shape
    return x.reshape(B, T, n_head, D // n_head).transpose(1, 2).contiguous()


class PhaseEmbedding(nn.Module):
    """Token -> phases (§3.2, OQ-3), in one of three parameterisations of the same angle table ``E (V, D)``:

    * ``angle``: the angles themselves, ``E ~ U(-pi, pi)`` (the spec's default);
    * ``tanh``: ``E = pi tanh(W)``, ``W ~ N(0, 1)``;
    * ``vector``: ``E = atan2(W_y, W_x)`` of a learned 2-D vector per (token, coordinate), initialised on
      the circle of radius ``r`` at a ``U(-pi, pi)`` angle. The loss landscape in ``W`` has no periodic
      copies of each minimum (spec §13, "unit vectors avoid the periodic landscape"), and an Adam step
      of size ``lr`` turns the angle by about ``lr / |W|``: a small ``r`` trains the angles fast at first,
      and the rate anneals itself as ``|W|`` grows. The table is in the ``angle`` group: never decayed.
    """

    param_kinds = {"weight": "angle"}
    param_components = {"weight": "embedding"}

    def __init__(self, vocab_size: int, d_phase: int, form: str = "angle", radius: float = 1.0):
        super().__init__()
        self.form = form
        if form == "angle":
            self.weight = nn.Parameter(torch.empty(vocab_size, d_phase).uniform_(-math.pi, math.pi))
        elif form == "tanh":
            self.weight = nn.Parameter(torch.randn(vocab_size, d_phase))
        else:
            angle = torch.empty(vocab_size, d_phase).uniform_(-math.pi, math.pi)
            self.weight = nn.Parameter(radius * torch.stack([torch.cos(angle), torch.sin(angle)], -1))

    def phases(self) -> torch.Tensor:
        """The embedding phases ``E (V, D)``."""
        if self.form == "angle":
            return self.weight
        if self.form == "tanh":
            return math.pi * torch.tanh(self.weight)
        return torch.atan2(self.weight[..., 1], self.weight[..., 0])

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        if self.form == "vector":
            w = F.embedding(idx, self.weight.flatten(1)).unflatten(-1, (-1, 2))
            return torch.atan2(w[..., 1], w[..., 0])
        return F.embedding(idx, self.phases())


# -- the attention step's parts -------------------------------------------------------------------


class PhaseScoreMap:
    """The score map of §3.3 (a mixin of an attention module): ``q . k = beta sum_i g_i cos(theta_t -
    theta_u + omega_i (t - u) + phi_i)``, with the learned metric ``g`` (OQ-4), temperature ``beta``
    (OQ-6), score offset ``phi`` (OQ-4) and rotary drift ``omega`` (OQ-5)."""

    param_kinds = {"score_offset": "angle"}
    param_components = {name: "score_map" for name in ("gate_raw", "gate_proj", "log_beta", "score_offset", "offset_proj")}

    def _build_score_map(self, config: FSNConfig) -> None:
        D, H = config.d_phase, config.n_head
        if config.gate == "static":
            self.gate_raw = nn.Parameter(torch.full((D,), _softplus_inverse(1.0)))  # g = softplus = 1
        else:
            self.gate_proj = nn.Linear(2 * D, D)  # g_t = sigmoid(W [cos; sin] + b), OQ-4
        beta0 = config.temperature_init if config.temperature_init is not None else 1 / math.sqrt(config.head_dim)
        self.log_beta = nn.Parameter(torch.full((H,), math.log(beta0)))
        self.score_offset = nn.Parameter(torch.zeros(D)) if config.score_offset else None
        # phi_t = W_phi [cos; sin] theta_t + b_phi (OQ-4); std-0.02 weights and a zero bias: near zero at init
        self.offset_proj = nn.Linear(2 * D, D) if config.query_offset else None
        self.register_buffer("rope_omega", phase_rope_frequencies(D, H, config.rope_base), persistent=False)

    def temperature(self) -> torch.Tensor:
        """``beta (H,)``, the softmax inverse temperature per head (OQ-6)."""
        return self.log_beta.exp()

    def gate(self, theta: torch.Tensor | None = None) -> torch.Tensor:
        """The learned metric ``g`` (OQ-4): ``(D,)`` for a static gate; ``(B, T, D)`` for a query gate,
        which needs the phases ``theta``."""
        if self.config.gate == "static":
            return F.softplus(self.gate_raw)
        if theta is None:
            raise ValueError("a query-conditioned gate needs the phases theta")
        return torch.sigmoid(self.gate_proj(phase_features(theta)).to(theta.dtype))

    def offset(self, theta: torch.Tensor) -> torch.Tensor | None:
        """The score offset ``phi``: ``(D,)`` when static, ``(B, T, D)`` when query-conditioned, else ``None``."""
        if self.offset_proj is not None:
            dynamic = self.offset_proj(phase_features(theta)).to(theta.dtype)
            return dynamic if self.score_offset is None else dynamic + self.score_offset
        return self.score_offset

    def queries_keys(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Score features (§3.3): ``q = beta g [cos; sin](theta + omega t + phi)``, ``k = [cos; sin](theta + omega t)``.

        Returns ``q, k (B, H, T, 2 D_h)`` so that ``q . k = beta sum_i g_i cos(theta_t - theta_u + omega (t - u) + phi_i)``.
        ``phi`` is the learned score offset (``score_offset=True``, zero otherwise): a head can then match a
        token to those whose phases are its own rotated by ``-phi`` rather than to look-alikes only. With
        ``query_offset=True`` the offset is a function of the query's own phases,
        ``phi_t = W_phi [cos; sin] theta_t + b_phi``: each token chooses what to look for, the phase-space
        counterpart of a transformer's query map (OQ-4). The keys, and so the value pathway, are unchanged.
        """
        H = self.config.n_head
        T = theta.shape[1]
        pos = torch.arange(T, device=theta.device, dtype=theta.dtype)
        drifted = theta + pos[:, None] * self.rope_omega
        cos, sin = torch.cos(drifted), torch.sin(drifted)
        # beta_h g_i in one factor per coordinate: one product with the features, one saved tensor
        scale = self.gate(theta) * self.temperature().repeat_interleave(self.config.head_dim)
        k = torch.stack([cos, sin], -1)  # (B, T, D, 2)
        offset = self.offset(theta)
        if offset is not None:
            shifted = drifted + offset
            q = torch.stack([torch.cos(shifted), torch.sin(shifted)], -1) * scale.unsqueeze(-1)
        else:
            q = k * scale.unsqueeze(-1)
        return split_heads(q, H), split_heads(k, H)


class KuramotoCoupling:
    """The value pathway of §3.4 and the Euler step of §3.5 (a mixin of an attention module).

    The kernel couples each receiver to the Daido order parameters of what it attends to,
    ``F_t = sum_n Im(e^{-i n theta_t} [c_n Z0_{t,n} + d_n Z1_{t,n}])``, and the step is
    ``theta + eta F (+ Omega)`` with the coupling strength ``eta`` (OQ-11) and, optionally, a natural
    frequency ``Omega`` (OQ-12).
    """

    param_kinds = {"natural_frequency": "no_decay"}
    param_components = {"eta_raw": "kernel", "natural_frequency": "kernel", "kernel": "kernel", "network": "kernel"}

    def _build_value_pathway(self, config: FSNConfig) -> None:
        D, H = config.d_phase, config.n_head
        self.eta_raw = nn.Parameter(torch.full((D,), _softplus_inverse(config.step_size_init)))
        self.natural_frequency = nn.Parameter(torch.zeros(D)) if config.natural_frequency else None
        groups = H if config.kernel_sharing == "head" else D
        self.kernel = CouplingKernel(self.spec, groups, config.delay_init_scale, config.delay_init_angle)
        # the network reading of OQ-9: a cross-coupling matrix within each head (network_kernel.py)
        self.network = NetworkCoupling(config) if config.kernel_form != "diagonal" else None

    def step_size(self) -> torch.Tensor:
        """``eta (D,)``, the coupling strength per coordinate (OQ-11)."""
        return F.softplus(self.eta_raw)

    def sender_phases(self, theta: torch.Tensor) -> torch.Tensor:
        """The phases a token broadcasts to the value pathway: in the spec's layer, ``theta`` itself
        (the very object; :class:`fsnlab.models.diagnostics.ValueOffsetAttention` returns others)."""
        return theta

    def coordinate_coefficients(self) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor] | None]:
        """Kernel coefficients expanded to one per coordinate: ``c, d`` as (re, im) pairs ``(D, N)``."""
        reps = self.config.head_dim if self.config.kernel_sharing == "head" else 1
        c = tuple(x.repeat_interleave(reps, 0) for x in self.kernel.coefficients())
        d_pair = self.kernel.delay_coefficients()
        d = tuple(x.repeat_interleave(reps, 0) for x in d_pair) if d_pair is not None else None
        return c, d  # type: ignore[return-value]

    def head_coefficients(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The kernel's ``c, d`` as complex tensors shaped ``(H, 1, D_h, N)``, to broadcast in head layout."""
        H, Dh = self.config.n_head, self.config.head_dim
        c, d = self.coordinate_coefficients()
        shape = lambda pair: torch.complex(*pair).reshape(H, 1, Dh, -1)  # noqa: E731
        return shape(c), (shape(d) if d is not None else None)

    def coupling_matrices(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The kernel as complex matrices ``K^(delta) (H, N, D_h, D_h)`` within each head (receiver ``i``, sender
        ``j``): ``diag(c), diag(d)`` for the diagonal form, plus the cross-coupling ``W`` of the network forms
        (OQ-9). Detached: for the probe and the readers."""
        c, d = self.head_coefficients()  # (H, 1, D_h, N)
        diag = lambda x: torch.diag_embed(x[:, 0].detach().transpose(-1, -2).to(torch.complex64))  # noqa: E731
        K0, K1 = diag(c), (diag(d) if d is not None else None)
        if self.network is not None:
            K0 = self.network.with_cross(K0, 0)
            K1 = self.network.with_cross(K1, 1) if K1 is not None else None
        return K0, K1

    def kuramoto_force(self, theta: torch.Tensor, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """The force ``F (B, T, D)`` of §3.4 on the phases ``theta (B, T, D)`` under the scores ``q, k``.

        Everything runs in head layout ``(B, H, T, D_h, ...)``, so the attention's values are contiguous
        as built. The values are the raw harmonics ``e^{i n theta_u}``; the kernel's coefficients are
        applied to the order parameters afterwards (linearity, §3.4); a network kernel (OQ-9) adds its
        cross-coupling ``sum_j W_ij Z_j`` to the pull. With a diagonal delay kernel on the torch
        backend the whole force is one autograd function that keeps neither the values nor ``Z0, Z1``
        (:mod:`fsnlab.models.fused_force`); a probe's order parameters then come from a second, separate
        pass, so listening never changes the output.
        """
        cfg = self.config
        H, N = cfg.n_head, self.spec.n_harmonics
        theta_h = head_major(theta, H)  # (B, H, T, D_h)
        broadcast = self.sender_phases(theta)
        sender = None if broadcast is theta else head_major(broadcast, H)
        c, d = self.head_coefficients()
        hooked = self.hook_Z0.active or self.hook_Z1.active or self.hook_attn.active
        if d is not None and self.network is None and attention_backend(theta.device) == "torch":
            force = fused_delay_force(theta_h, sender, q, k, c, d, N, cfg.delay_mask)
            if hooked:
                sent = harmonic_phasors(theta_h if sender is None else sender, N)
                self._emit_order_parameters(q, k, *self._order_parameters(q, k, sent, True))
            return merge_heads(force, cfg.d_phase).squeeze(-1)
        receiver = harmonic_phasors(theta_h, N)  # e^{i n theta_t}: (B, H, T, D_h, N, 2)
        sent = receiver if sender is None else harmonic_phasors(sender, N)
        z0, z1 = self._order_parameters(q, k, sent, d is not None)
        pull = c * z0
        if z1 is not None:
            pull = pull + d * z1
        if self.network is not None:
            pull = self.network.add_cross(pull, z0, z1)
        if hooked:
            self._emit_order_parameters(q, k, z0, z1)
        # the tangent projection sum_n Im(e^{-i n theta_t} pull_n) (§3.5), back to (B, T, D)
        return merge_heads(tangent_force(theta_h, receiver, pull), cfg.d_phase).squeeze(-1)

    def _order_parameters(self, q, k, sent: torch.Tensor, has_delay: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The raw order parameters ``Z0, Z1`` (kernel not applied) as complex ``(B, H, T, D_h, N)`` views,
        from the senders' phasors ``sent (B, H, T, D_h, N, 2)`` (§3.4). The successors' values are
        ``e`` shifted by one position (``s_u = e_{u+1}``); the diagonal's own, ``e_t``."""
        N = sent.shape[-2]
        e = sent.flatten(3)  # (B, H, T, D_h N 2): contiguous values
        if has_delay:
            z0, z1 = delay_attention(q, k, e, None, e, self.config.delay_mask, separate=True)
        else:
            z0, z1 = causal_attention(q, k, e), None
        as_complex_view = lambda z: torch.view_as_complex(z.unflatten(-1, (-1, N, 2)))  # noqa: E731
        return as_complex_view(z0), (as_complex_view(z1) if z1 is not None else None)

    def _emit_order_parameters(self, q, k, z0: torch.Tensor, z1: torch.Tensor | None) -> None:
        """Probe path: the raw order parameters Z0, Z1 (kernel not applied), ``(B, T, D, N)`` complex, and
        the dense weights A. They are the very order parameters the force was made from."""
        D = self.config.d_phase
        as_tokens = lambda z: merge_heads(z, D)  # noqa: E731  (B, H, T, D_h, N) -> (B, T, D, N)
        if z1 is not None:
            self.hook_Z1(as_tokens(z1))
        self.hook_Z0(as_tokens(z0))
        if self.hook_attn.active:
            self.hook_attn(attention_weights(q, k))

    def euler_step(self, theta: torch.Tensor, force: torch.Tensor) -> torch.Tensor:
        """The Euler step ``theta + eta F (+ Omega)`` (§3.5) of a force ``(B, T, D)``."""
        force = self.hook_force(force)
        step = self.step_size() * force
        if self.natural_frequency is not None:
            step = step + self.natural_frequency  # Kuramoto natural frequency, OQ-12
        return self.hook_theta_out(theta + step)


def _build_attention_hooks(module: nn.Module) -> None:
    """The attention step's hook points (shapes in the module docstring)."""
    for name in ("hook_theta_in", "hook_attn", "hook_Z0", "hook_Z1", "hook_force", "hook_theta_out"):
        setattr(module, name, HookPoint())


class FSNAttention(PhaseScoreMap, KuramotoCoupling, nn.Module):
    """Frustrated synchronization attention, the spec's layer: one Euler step ``theta + eta * F`` (§3.3-§3.5).

    ``theta -> (q, k)`` by the score map, ``F`` by the Kuramoto value pathway, then the step.
    """

    def __init__(self, config: FSNConfig):
        super().__init__()
        self.config = config
        self.spec = config.kernel_spec
        self._build_score_map(config)
        self._build_value_pathway(config)
        _build_attention_hooks(self)

    def forward(self, theta: torch.Tensor) -> torch.Tensor:
        theta = self.hook_theta_in(theta)
        q, k = self.queries_keys(theta)
        return self.euler_step(theta, self.kuramoto_force(theta, q, k))


def build_attention(config: FSNConfig) -> nn.Module:
    """The attention step of one block: :class:`FSNAttention`, or the diagnostic form the config names
    (``attention != "kuramoto"`` or ``value_offset``; :mod:`fsnlab.models.diagnostics`, which builds on
    this module's parts and so is imported only when asked for)."""
    if not config.diagnostic_switches():
        return FSNAttention(config)
    from fsnlab.models.diagnostics import diagnostic_attention

    return diagnostic_attention(config)


# -- the feed-forward, the mode coupling, the network ---------------------------------------------


class PhaseFeedForward(nn.Module):
    """SwiGLU phase increment ``theta + W2 (SiLU(W1 phi) * W3 phi)``, ``phi = [cos; sin] theta`` (§3.6, OQ-14)."""

    param_components = {"mlp": "feed_forward"}

    def __init__(self, config: FSNConfig):
        super().__init__()
        self.mlp = SwiGLU(2 * config.d_phase, config.ffn_hidden, config.d_phase, norm_hidden=config.ffn_norm)
        self.hook_theta_out = HookPoint()

    def forward(self, theta: torch.Tensor) -> torch.Tensor:
        return self.hook_theta_out(theta + self.mlp(phase_features(theta)).to(theta.dtype))


class ModeCoupling(nn.Module):
    """FSN-MF: mean-field coupling to ``M`` learned collective modes, replacing the MLP (§5, OQ-17/18).

    ``softmax`` selection: ``B_{t,m} = softmax_m(beta' sum_i g'_i cos(theta_{t,i} - Phi_{m,i}))`` per head,
    ``theta <- theta + eta' sum_n Im(e^{-i n theta} kappa_n sum_m B_{t,m} e^{i n Phi_m})``.
    ``uniform``: ``theta <- theta + eta' sum_n Im(e^{-i n theta} sum_m w_{m} e^{i n Phi_m})`` with
    learned complex mode weights ``w_m = K_m e^{-i alpha_m}`` (the literal mean field, no softmax).
    """

    param_kinds = {"mode_phases": "angle", "kappa_re": "no_decay", "kappa_im": "no_decay",
                   "mode_weight_re": "no_decay", "mode_weight_im": "no_decay"}
    param_components = {name: "modes" for name in ("mode_phases", "eta_raw", "gate_raw", "log_beta", "kappa_re",
                                                  "kappa_im", "mode_weight_re", "mode_weight_im")}

    def __init__(self, config: FSNConfig):
        super().__init__()
        D, H, M, N = config.d_phase, config.n_head, config.n_modes, config.mf_harmonics
        self.config = config
        self.mode_phases = nn.Parameter(torch.empty(M, D).uniform_(-math.pi, math.pi))
        self.eta_raw = nn.Parameter(torch.full((D,), _softplus_inverse(config.step_size_init)))
        if config.mf_select == "softmax":
            self.gate_raw = nn.Parameter(torch.full((D,), _softplus_inverse(1.0)))
            beta0 = config.temperature_init if config.temperature_init is not None else 1 / math.sqrt(config.head_dim)
            self.log_beta = nn.Parameter(torch.full((H,), math.log(beta0)))
            kappa = torch.zeros(H, N)
            kappa[:, 0] = 1.0
            self.kappa_re = nn.Parameter(kappa)
            self.kappa_im = nn.Parameter(torch.zeros(H, N))
        else:
            self.mode_weight_re = nn.Parameter(torch.full((M,), 1.0 / M))
            self.mode_weight_im = nn.Parameter(torch.zeros(M))
        self.hook_mode_weights = HookPoint()
        self.hook_Z = HookPoint()
        self.hook_force = HookPoint()
        self.hook_theta_out = HookPoint()

    def step_size(self) -> torch.Tensor:
        """``eta' (D,)``, the coupling strength to the modes."""
        return F.softplus(self.eta_raw)

    def gate(self) -> torch.Tensor:
        """``g' (D,)``, the learned metric of the mode selection (softmax selection only)."""
        return F.softplus(self.gate_raw)

    def temperature(self) -> torch.Tensor:
        """``beta' (H,)``, the inverse temperature of the mode selection (softmax selection only)."""
        return self.log_beta.exp()

    def forward(self, theta: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        H, N, D = cfg.n_head, cfg.mf_harmonics, cfg.d_phase
        cos_n, sin_n = harmonic_features(theta, N)
        mode_cos, mode_sin = harmonic_features(self.mode_phases, N)  # (M, D, N)
        if cfg.mf_select == "softmax":
            feats = torch.stack([torch.cos(theta), torch.sin(theta)], -1)  # (B, T, D, 2)
            q = split_heads(feats * self.gate()[:, None], H) * self.temperature()[None, :, None, None]
            mode_feats = torch.stack([torch.cos(self.mode_phases), torch.sin(self.mode_phases)], -1)[None]
            k = split_heads(mode_feats, H)  # (1, H, M, 2 D_h): the same modes for every sequence
            values = split_heads(torch.stack([mode_cos, mode_sin], -1)[None], H)
            # the keys do not depend on the sequence: every token of the batch is one query of one call
            B, T = theta.shape[:2]
            flat_q = q.transpose(0, 1).reshape(1, H, B * T, q.shape[-1])
            z = attend(flat_q, k, values).reshape(H, B, T, -1).transpose(0, 1)  # (B, H, T, D_h N 2)
            z = merge_heads(z, D).unflatten(-1, (N, 2))
            reps = cfg.head_dim
            kappa = (self.kappa_re.repeat_interleave(reps, 0), self.kappa_im.repeat_interleave(reps, 0))
            z = (z[..., 0], z[..., 1])
            pull = complex_mul(kappa, z)
            if self.hook_mode_weights.active:
                self.hook_mode_weights(attention_weights_full(q, k.expand(B, -1, -1, -1)))
        else:
            w = (self.mode_weight_re[:, None, None], self.mode_weight_im[:, None, None])
            field = complex_mul(w, (mode_cos, mode_sin))
            z = (field[0].sum(0).expand_as(cos_n), field[1].sum(0).expand_as(cos_n))
            pull = z
        if self.hook_Z.active:
            self.hook_Z(as_complex(z[0], z[1]))
        force = self.hook_force(tangent_projection(cos_n, sin_n, pull))
        return self.hook_theta_out(theta + self.step_size() * force)


def attention_weights_full(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Dense, unmasked softmax weights ``(B, H, T, M)`` (mode selection has no causal structure)."""
    return (full_precision(q) @ full_precision(k).transpose(-1, -2)).softmax(-1)


class FSNBlock(nn.Module):
    """One block: ``attn_steps`` Euler steps of the same coupling (§3.5; 1 by default), then the feed-forward.

    ``attn_steps > 1`` integrates the coupling further with tied weights, as AKOrN does (spec §13, OQ-15):
    more dynamics per parameter, at that many times the attention cost. The attention hooks then report
    the last of those steps.
    """

    def __init__(self, config: FSNConfig):
        super().__init__()
        self.attn = build_attention(config)
        self.ffn = PhaseFeedForward(config) if config.ffn == "swiglu" else ModeCoupling(config)
        self.attn_steps = config.attn_steps

    def forward(self, theta: torch.Tensor) -> torch.Tensor:
        for _ in range(self.attn_steps):
            theta = self.attn(theta)
        return self.ffn(theta)


class PhaseReadout(nn.Module):
    """Phases -> logits (§3.7, OQ-16).

    ``linear``: ``W_o [cos; sin] theta + b`` (a gated coherence with learned prototype phases, [D]).
    ``tied``: ``l_v = sum_i kappa_i cos(theta_i - E_{v,i}) + b_v``, coherence with the embedding phases.
    """

    param_components = {"proj": "readout", "kappa": "readout", "bias": "readout"}

    def __init__(self, config: FSNConfig, embedding: PhaseEmbedding):
        super().__init__()
        self.form = config.readout
        if self.form == "linear":
            self.proj = nn.Linear(2 * config.d_phase, config.vocab_size)
        else:
            self.embedding = [embedding]  # a plain list keeps the shared module out of this one's parameters
            self.kappa = nn.Parameter(torch.ones(config.d_phase))
            self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, theta: torch.Tensor) -> torch.Tensor:
        phi = phase_features(theta)
        if self.form == "linear":
            return self.proj(phi)
        protos = phase_features(self.embedding[0].phases()) * self.kappa.repeat(2)
        return phi @ protos.t() + self.bias


class FSN(nn.Module):
    """Byte ids ``(B, T)`` -> logits ``(B, T, vocab_size)`` through ``n_layer`` phase-oscillator blocks."""

    param_components = {"embed": "embedding", "readout": "readout"}

    def __init__(self, config: FSNConfig):
        super().__init__()
        self.config = config.validate()
        self.embed = PhaseEmbedding(config.vocab_size, config.d_phase, config.embedding, config.vector_init_radius)
        self.blocks = nn.ModuleList(FSNBlock(config) for _ in range(config.n_layer))
        self.readout = PhaseReadout(config, self.embed)
        self.hook_embed = HookPoint()
        self.hook_theta_final = HookPoint()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        std = self.config.init_std
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear):
                scale = 1 / math.sqrt(2 * self.config.n_layer) if name.endswith("w2") else 1.0
                nn.init.normal_(module.weight, mean=0.0, std=std * scale)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        theta = self.embed(idx)
        if theta.dtype in (torch.float16, torch.bfloat16):
            theta = theta.float()  # phases and trig stay in full precision (OQ-27)
        theta = self.hook_embed(theta)
        for block in self.blocks:
            theta = block(theta)
        theta = self.hook_theta_final(theta)
        return self.readout(theta)
