"""The network form of the coupling kernel (OQ-9): a complex coupling matrix within each head.

"One learned complex coupling kernel" also reads as the network Kuramoto-Sakaguchi model (spec §3.4,
"Alternative reading [G, OQ-9]"): within a head, oscillator ``j`` of the sender couples to oscillator
``i`` of the receiver through a complex matrix per harmonic and delay,

    F_{t,i} = sum_n Im( e^{-i n theta_{t,i}} sum_j [ K0_{n,ij} Z0_{t,j,n} + K1_{n,ij} Z1_{t,j,n} ] ),

each entry a coupling strength ``|K_ij|`` and a static frustration ``alpha_ij = -arg K_ij`` (the sign
convention of :mod:`fsnlab.models.kernel`). Here ``K = diag(c) + W``: the diagonal is the kernel the
layer already has (:class:`~fsnlab.models.kernel.CouplingKernel`, one ``c_n``/``d_n`` per head or
coordinate), and ``W`` is the cross-coupling ``j != i`` (its diagonal is masked, so each entry has one
parameterisation). With ``W = 0`` the layer is the diagonal kernel exactly.

Forms (``FSNConfig.kernel_form``):

* ``diagonal``: no cross-coupling (the presets; the spec's default reading);
* ``network1``: a full ``W`` at harmonic 1 only, for both delays (the form first screened, issue 16);
* ``network``: a full ``W`` at every harmonic and delay;
* ``low_rank``: ``W = U V^H`` of rank ``kernel_rank`` at every harmonic and delay (diagonal masked).

Init: ``W`` entries ``~ N(0, network_init_std^2)`` in real and imaginary part ("identity plus small noise",
since ``c_1 = 1``); low rank: ``U ~ N(0, 1/D_h)`` and ``V`` like ``W``, so ``W = U V^H`` starts as small noise of
the same size and gradients reach both factors.
A real kernel setting (no static Sakaguchi angle, ``KernelSpec.complex_coeffs`` false) keeps ``W`` real.

The cross term is computed as one real matrix product per head and harmonic on the interleaved
``(re, im)`` values (:func:`complex_block`), so its FLOPs are counted like any projection.
"""

from __future__ import annotations

import torch
from torch import nn

from fsnlab.models.config import FSNConfig

KERNEL_FORMS = ("diagonal", "network1", "network", "low_rank")


def complex_block(k_re: torch.Tensor, k_im: torch.Tensor) -> torch.Tensor:
    """The real ``(2J, 2I)`` matrix ``M`` with ``x M = (K z)`` on interleaved ``(re, im)`` rows.

    ``K = k_re + i k_im`` is ``(..., I, J)`` (receiver ``i``, sender ``j``); a row ``x (2J)`` holds
    ``(Re z_j, Im z_j)`` pairs and ``x M`` the pairs of ``sum_j K_ij z_j``:
    ``Re = sum_j (Re K Re z - Im K Im z)``, ``Im = sum_j (Im K Re z + Re K Im z)``.
    """
    kr, ki = k_re.transpose(-1, -2), k_im.transpose(-1, -2)  # (..., J, I)
    from_re = torch.stack([kr, ki], -1)  # (..., J, I, 2): what Re z_j adds to (Re, Im) of row i
    from_im = torch.stack([-ki, kr], -1)  # what Im z_j adds
    M = torch.stack([from_re, from_im], -3)  # (..., J, 2, I, 2)
    *lead, J, _, I, _ = M.shape
    return M.reshape(*lead, 2 * J, 2 * I)


class NetworkCoupling(nn.Module):
    """The cross-coupling ``W^(delta)_{h,n,ij}`` of the network kernel (OQ-9), for ``n_cover`` harmonics.

    Parameters (real tensors; ``_im`` only with complex coefficients): full forms ``w{delta}_re/_im``
    ``(H, n_cover, D_h, D_h)``; low rank ``u{delta}_re/_im`` and ``v{delta}_re/_im`` ``(H, n_cover, D_h, r)``.
    """

    # every parameter is a kernel coefficient: never decayed (OQ-25), as the diagonal's c_n, d_n
    param_kinds = {f"{m}{delay}_{part}": "no_decay" for m in "uvw" for delay in (0, 1) for part in ("re", "im")}

    def __init__(self, config: FSNConfig):
        super().__init__()
        spec = config.kernel_spec
        H, Dh = config.n_head, config.head_dim
        self.form = config.kernel_form
        self.n_cover = 1 if self.form == "network1" else spec.n_harmonics
        self.delays = (0, 1) if spec.delay else (0,)
        self.complex = spec.complex_coeffs
        parts = ("re", "im") if self.complex else ("re",)
        for delay in self.delays:
            for part in parts:
                if self.form == "low_rank":
                    r = config.kernel_rank
                    u = torch.randn(H, self.n_cover, Dh, r) / Dh ** 0.5
                    self.register_parameter(f"u{delay}_{part}", nn.Parameter(u))
                    v = torch.randn(H, self.n_cover, Dh, r) * config.network_init_std
                    self.register_parameter(f"v{delay}_{part}", nn.Parameter(v))
                else:
                    w = torch.randn(H, self.n_cover, Dh, Dh) * config.network_init_std
                    self.register_parameter(f"w{delay}_{part}", nn.Parameter(w))
        self.register_buffer("off_diagonal", 1 - torch.eye(Dh), persistent=False)

    def _part(self, name: str) -> torch.Tensor | None:
        return getattr(self, name, None)

    def cross_matrix(self, delay: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``W^(delay)`` as ``(re, im)``, each ``(H, n_cover, D_h, D_h)`` (receiver ``i``, sender ``j``), diagonal zero."""
        if self.form == "low_rank":
            ur, vr = getattr(self, f"u{delay}_re"), getattr(self, f"v{delay}_re")
            ui, vi = self._part(f"u{delay}_im"), self._part(f"v{delay}_im")
            if ui is None:
                re, im = ur @ vr.transpose(-1, -2), torch.zeros(())
            else:  # U V^H = (ur + i ui)(vr - i vi)^T
                re = ur @ vr.transpose(-1, -2) + ui @ vi.transpose(-1, -2)
                im = ui @ vr.transpose(-1, -2) - ur @ vi.transpose(-1, -2)
        else:
            re = getattr(self, f"w{delay}_re")
            im_part = self._part(f"w{delay}_im")
            im = im_part if im_part is not None else torch.zeros(())
        mask = self.off_diagonal
        return re * mask, (im * mask).expand_as(re)

    def cross_pull(self, z: torch.Tensor, delay: int) -> torch.Tensor:
        """``sum_j W^(delay)_{n,ij} z_{j,n}`` for the raw order parameters ``z`` complex ``(B, H, T, D_h, N)``;
        returns complex ``(B, H, T, D_h, n_cover)`` (harmonics ``1..n_cover``)."""
        B, H, T, Dh, _ = z.shape
        n = self.n_cover
        x = torch.view_as_real(z[..., :n])  # (B, H, T, D_h, n, 2)
        x = x.permute(0, 1, 4, 2, 3, 5).reshape(B, H, n, T, 2 * Dh)  # rows of interleaved (re, im) per sender j
        M = complex_block(*self.cross_matrix(delay)).to(x.dtype)  # (H, n, 2 D_h, 2 D_h)
        y = torch.matmul(x, M)  # (B, H, n, T, 2 D_h)
        y = y.reshape(B, H, n, T, Dh, 2).permute(0, 1, 3, 4, 2, 5).contiguous()
        return torch.view_as_complex(y)

    def add_cross(self, pull: torch.Tensor, z0: torch.Tensor, z1: torch.Tensor | None) -> torch.Tensor:
        """``pull + W0 Z0 (+ W1 Z1)`` on the harmonics the form covers; ``pull (B, H, T, D_h, N)`` complex."""
        cross = self.cross_pull(z0, 0)
        if z1 is not None and 1 in self.delays:
            cross = cross + self.cross_pull(z1, 1)
        N = pull.shape[-1]
        if self.n_cover < N:
            cross = torch.cat([cross, torch.zeros_like(pull[..., self.n_cover:])], -1)
        return pull + cross

    def with_cross(self, K: torch.Tensor, delay: int) -> torch.Tensor:
        """``K + W^(delay)`` on the harmonics the form covers, for the diagonal kernel ``K`` as complex
        ``(H, N, D_h, D_h)`` matrices (detached, for the probe and the readers)."""
        if delay not in self.delays:
            return K
        re, im = self.cross_matrix(delay)
        K = K.clone()
        K[:, : self.n_cover] += torch.complex(re.detach().float(), im.detach().float())
        return K
