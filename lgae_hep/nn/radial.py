"""Learnable, masked functions f(p_ij^2) of pair invariants (the LMP edge weights)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["pair_invariant", "PairBasis", "RadialBasis", "RadialFilter"]


def pair_invariant(p: torch.Tensor) -> torch.Tensor:
    """Minkowski squares ``p_ij^2 = (p_i - p_j)^2`` of all pairs, from real Cartesian vectors.

    Parameters
    ----------
    p : torch.Tensor
        Real (B, N, 4), ``(E, px, py, pz)``.

    Returns
    -------
    torch.Tensor
        (B, N, N), formed from explicit differences (no ``p_i^2 + p_j^2 - 2 p_i.p_j``).
    """
    d = p.unsqueeze(2) - p.unsqueeze(1)
    d2 = d * d
    return d2[..., 0] - d2[..., 1] - d2[..., 2] - d2[..., 3]


class _Gaussians(torch.autograd.Function):
    r"""``g_k = exp(-(u - mu_k)^2 / (2 sigma_k^2))`` for ``u`` (1, B, N, N), ``mu`` and
    ``sigma`` (K,), zero on the diagonal ``i == j``: (K, B, N, N); with ``constant=True``
    preceded by the plane ``phi_0 = 1 - delta_ij``: (K + 1, B, N, N).

    The same operations, in the same order, as ``torch.exp(-0.5 * ((u - mu) / sigma) ** 2)``
    followed by zeroing the diagonal (bit for bit the same numbers), but done in place on one
    buffer, with a hand-written backward: autograd would keep five full-size intermediates and
    run about fifteen full-size operations back; this keeps ``g`` and runs six. With
    ``z = (u - mu) / sigma``: ``dg/du = -g z / sigma``, ``dg/dmu = g z / sigma``,
    ``dg/dsigma = g z^2 / sigma``; every term carries the factor ``g``, so the zeroed diagonal
    gets exactly zero gradient, as through the ``where`` it replaces.
    """

    @staticmethod
    def forward(ctx, u, mu, sig, constant=False):
        k = mu.shape[0]
        mu4, sig4 = mu.view(k, 1, 1, 1), sig.view(k, 1, 1, 1)
        off = int(bool(constant))
        out = u.new_empty((k + off, *u.shape[1:]))
        g = out[off:]
        torch.sub(u, mu4, out=g)
        g.div_(sig4).pow_(2).mul_(-0.5).exp_()
        if off:
            out[0].fill_(1.0)
        out.diagonal(dim1=-2, dim2=-1).zero_()
        ctx.off = off
        ctx.save_for_backward(u, mu, sig, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        u, mu, sig, out = ctx.saved_tensors
        g, grad = out[ctx.off:], grad[ctx.off:]
        k = mu.shape[0]
        mu4, sig4 = mu.view(k, 1, 1, 1), sig.view(k, 1, 1, 1)
        z = (u - mu4).div_(sig4)
        t = (grad * g).mul_(z).div_(sig4)  # grad * g z / sigma
        gu = gmu = gsig = None
        if ctx.needs_input_grad[0]:
            gu = -t.sum(0, keepdim=True)
        if ctx.needs_input_grad[1]:
            gmu = t.sum((1, 2, 3))
        if ctx.needs_input_grad[2]:
            gsig = t.mul_(z).sum((1, 2, 3))
        return gu, gmu, gsig, None


@dataclass
class PairBasis:
    """The unmasked form of :class:`RadialBasis` that the models pass to the layers.

    ``gauss`` (K + 1, B, N, N): ``phi_0 = 1`` and the Gaussians ``phi_1 .. phi_K`` of every
    pair, padded pairs included, zero on the diagonal, symmetric in ``(i, j)`` bit for
    bit (``p_ij^2`` is formed from ``p_i - p_j``, whose negation is exact). ``norm`` (B, N, 1, 1)
    the number of real neighbours ``n_i - 1`` (at least 1). A layer then sums ``w_ij h_j`` over
    all ``j`` with ``h`` zero on padded nodes (one GEMM with the weights ``sum_k A_ck phi_k``,
    the constant included) and divides by
    ``norm``: the same
    messages as the masked, normalised :meth:`RadialBasis.forward`, without an (N x N) mask
    and division pass per pair function, and with a symmetric matrix that needs no transpose.
    """

    gauss: torch.Tensor
    norm: torch.Tensor


class RadialBasis(nn.Module):
    """Bounded smooth basis functions of a pair invariant, masked and neighbour-normalised.

    With ``u = asinh(x / s)`` (a signed logarithmic compression of ``x = p_ij^2``; ``s`` a
    learnable scale, softplus-positive), the basis is ``phi_0 = 1`` and Gaussians
    ``phi_k = exp(-(u - mu_k)^2 / (2 sigma_k^2))`` with learnable centres and widths, all in
    [0, 1]. Entries for ``i == j`` and for pairs with a padded particle are zero, and every row is
    divided by the number of real neighbours ``n_i - 1`` (an invariant), so the message sum is a
    mean. Computed once per forward pass and shared by the layers, which mix the basis
    functions with their own learnable coefficients (:class:`RadialFilter`).

    Parameters
    ----------
    num_basis : int
        Number of Gaussians (the output has ``num_basis + 1`` functions including ``phi_0``).
    """

    def __init__(self, num_basis: int = 6, dtype=torch.float32):
        super().__init__()
        if num_basis < 1:
            raise ValueError(f"num_basis must be >= 1, got {num_basis}")
        self.num_basis = num_basis
        self.mu = nn.Parameter(torch.linspace(-6.0, 6.0, num_basis, dtype=dtype))
        width = 12.0 / max(num_basis - 1, 1)
        self.log_sigma = nn.Parameter(torch.full((num_basis,), math.log(width), dtype=dtype))
        self.raw_scale = nn.Parameter(torch.zeros((), dtype=dtype))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x`` (B, N, N) real invariants, ``mask`` (B, N) -> basis (K + 1, B, N, N).

        The function index comes first so that the per-layer filters are one plain GEMM.
        """
        b, n, _ = x.shape
        scale = nn.functional.softplus(self.raw_scale) / math.log(2.0)  # 1 at init
        u = torch.asinh(x / scale).unsqueeze(0)  # (1, B, N, N)
        g = _Gaussians.apply(u, self.mu, self.log_sigma.exp())  # zero on the diagonal
        eye = torch.eye(n, dtype=torch.bool, device=x.device)
        pair = mask.unsqueeze(2) & mask.unsqueeze(1) & ~eye
        norm = pair.sum(2, keepdim=True).clamp(min=1).to(x.dtype)
        w = pair.to(x.dtype) / norm  # (B, N, N)
        return torch.cat([w.unsqueeze(0), g * w], dim=0)

    def pairs(self, x: torch.Tensor, mask: torch.Tensor | None) -> PairBasis:
        """``x`` (B, N, N) real invariants, ``mask`` (B, N) or None (all real) -> the unmasked
        :class:`PairBasis` (the same functions as :meth:`forward`, see there)."""
        b, n, _ = x.shape
        scale = nn.functional.softplus(self.raw_scale) / math.log(2.0)
        u = torch.asinh(x / scale).unsqueeze(0)
        g = _Gaussians.apply(u, self.mu, self.log_sigma.exp(), True)  # phi_0, phi_1 .. phi_K
        if mask is None:
            norm = torch.full((b, n, 1, 1), float(max(n - 1, 1)), dtype=x.dtype,
                              device=x.device)
        else:
            cnt = mask.sum(1, keepdim=True) - mask.long()  # n_b - 1 for real i, n_b for padded
            norm = torch.where(mask, cnt, 0).clamp(min=1).to(x.dtype)[:, :, None, None]
        return PairBasis(g, norm)


class RadialFilter(nn.Module):
    """Per-channel edge weights ``W[c, b, i, j] = sum_k A[c, k] phi_k(p_ij^2)``.

    A learnable linear combination of the shared basis, one function per channel ``c``;
    computed as one GEMM ``A @ phi`` (no per-pair MLP).
    """

    def __init__(self, num_functions: int, num_channels: int, dtype=torch.float32):
        super().__init__()
        self.coef = nn.Parameter(
            torch.randn(num_channels, num_functions, dtype=dtype) / math.sqrt(num_functions)
        )

    def forward(self, basis: torch.Tensor | PairBasis) -> torch.Tensor:
        """``basis`` (K, B, N, N) -> weights (C, B, N, N), all channels in one GEMM.

        A :class:`PairBasis` gives the unmasked, unnormalised weights
        ``sum_k A[c, k] gauss_k`` (zero diagonal, symmetric in ``(i, j)``).
        """
        if isinstance(basis, PairBasis):
            basis = basis.gauss
        k, b, n, _ = basis.shape
        return (self.coef @ basis.reshape(k, -1)).view(-1, b, n, n)
