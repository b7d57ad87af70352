"""The Lorentz message-passing (LMP) layer."""

from __future__ import annotations

import torch
from torch import nn

from lgae_hep.lorentz import irrep_dim, irreps_up_to

from .cg_product import CGProduct, Feats, cg_pair
from .mixreps import SCALAR, InvariantMLP, MixReps, mask_feats
from .radial import RadialFilter

__all__ = ["LMPLayer", "VECTOR"]

VECTOR = (1, 1)


def _real_flat(t: torch.Tensor) -> torch.Tensor:
    return torch.view_as_real(t).flatten(-2)


def _complex(t: torch.Tensor) -> torch.Tensor:
    return torch.view_as_complex(t.unflatten(-1, (-1, 2)).contiguous())


class LMPLayer(nn.Module):
    r"""One LMP layer: messages over all ordered pairs, self-interaction, CG, mixing.

    For node features :math:`F_i` (dict irrep -> (B, N, tau, d)), node positions :math:`p_i`
    (a single (1, 1) channel) and a shared basis of pair functions
    (:class:`~lgae_hep.nn.radial.RadialBasis`):

    * messages :math:`\sum_{j \ne i} f_c(p_{ij}^2)\, (p_i - p_j) \otimes F_{jc}`, one learnable
      function :math:`f_c` per input channel; by linearity this equals
      :math:`p_i \otimes (\sum_j w_{ij} F_j) - \sum_j w_{ij} (p_j \otimes F_j)`, so the layer
      needs only per-node CG products and one batched ``(N x N) @ (N x D)`` matmul per input
      irrep, never a (B, N, N, ...) tensor of products;
    * self-interaction :math:`F_{ic} \otimes F_{ic}` (channel-wise, all irrep pairs);
    * an MLP on the invariant (0, 0) channels of all of the above, appended as extra scalars
      (the only nonlinearity);
    * every product truncated to irreps with k, n < ``maxdim``; the direct sum of
      :math:`F_i`, self products, messages and MLP output is mixed (:class:`MixReps`, complex,
      bias only on (0, 0)) to ``tau_out`` channels per irrep, and padded nodes are zeroed.

    Padded nodes send nothing (their basis weights are zero) and receive nothing (zeroed).

    Parameters
    ----------
    tau_in : dict
        Input channels per irrep; all present irreps must have the same number of channels.
    tau_out : int
        Output channels for every irrep up to ``maxdim``.
    maxdim : int
    num_functions : int
        Size of the shared pair-function basis.
    mlp_hidden : int
        Hidden width of the invariant MLP.
    """

    def __init__(self, tau_in: dict, tau_out: int, maxdim: int, num_functions: int,
                 mlp_hidden: int = 16, dtype=torch.float32):
        super().__init__()
        self.maxdim = maxdim
        reps = irreps_up_to(maxdim)
        self.in_order = [r for r in reps if tau_in.get(r, 0) > 0]
        taus = {tau_in[r] for r in self.in_order}
        if len(taus) != 1:
            raise ValueError(f"LMPLayer needs equal channel counts for all irreps, got {tau_in}")
        tau = taus.pop()
        self.tau_in = tau
        self.cg = CGProduct(maxdim, dtype)
        # channel bookkeeping (order must match forward)
        count = {r: 0 for r in reps}
        for r in self.in_order:
            count[r] += tau
        for i, r1 in enumerate(self.in_order):
            for r2 in self.in_order[i:]:
                for r in self.cg.outputs(r1, r2):
                    count[r] += tau
        self.msg_outs = {r_in: self.cg.outputs(VECTOR, r_in) for r_in in self.in_order}
        for r_in in self.in_order:
            for r in self.msg_outs[r_in]:
                count[r] += tau
        self.mlp_in = count[SCALAR]
        self.mlp = InvariantMLP(self.mlp_in, tau_out, mlp_hidden, dtype)
        count[SCALAR] += tau_out
        self.radial = RadialFilter(num_functions, tau * len(self.in_order), dtype)
        self.mix = MixReps({r: c for r, c in count.items() if c}, {r: tau_out for r in reps},
                           dtype=dtype)
        self.tau_out = {r: tau_out for r in reps}

    def forward(self, feats: Feats, pos: torch.Tensor, basis: torch.Tensor,
                mask: torch.Tensor) -> Feats:
        """Apply the layer.

        Parameters
        ----------
        feats : dict
            irrep -> complex (B, N, tau, d); padded nodes must be zero.
        pos : torch.Tensor
            Complex (B, N, 1, 4): node positions in the (1, 1) canonical basis.
        basis : torch.Tensor
            Real (K, B, N, N) masked pair functions of ``p_ij^2``.
        mask : torch.Tensor
            bool (B, N).
        """
        cg = self.cg
        x_in = {r: feats[r] for r in self.in_order}
        parts: dict[tuple[int, int], list[torch.Tensor]] = {r: [x] for r, x in x_in.items()}
        for r, ts in cg_pair(cg, x_in, x_in, symmetric=True).items():
            parts.setdefault(r, []).extend(ts)
        # Messages by linearity: one batched matmul of the per-channel pair weights with the
        # real-flattened operands [F_j, p_j (x) F_j] of all input irreps and channels at once.
        weights = self.radial(basis)  # (C, B, N, N), C = tau * len(in_order)
        b, n = mask.shape
        tau = self.tau_in
        blocks = []
        for r_in, x in x_in.items():
            g = cg(pos, VECTOR, x, r_in)  # p_j (x) F_j
            blocks.append([x] + [g[r] for r in self.msg_outs[r_in]])
        sizes = [[2 * t.shape[-1] for t in blk] for blk in blocks]
        width = max(sum(sz) for sz in sizes)
        h = weights.new_zeros(len(blocks) * tau, b, n, width)
        for k, (blk, sz) in enumerate(zip(blocks, sizes)):
            off = 0
            for t, w in zip(blk, sz):
                # (B, N, tau, d) complex -> (tau, B, N, 2d) real, written into its slot
                h[k * tau:(k + 1) * tau, :, :, off:off + w] = _real_flat(t).permute(2, 0, 1, 3)
                off += w
        # sum_j w_ij [F_j, p_j (x) F_j] -> (C, B, N, width). Computed as (h^T W^T)^T: the same
        # products, but MKL's batched GEMM is ~2x faster with the long (N x N) operand on the right
        agg = torch.matmul(h.transpose(-1, -2), weights.transpose(-1, -2)).transpose(-1, -2)
        for k, (r_in, sz) in enumerate(zip(x_in, sizes)):
            pieces = agg[k * tau:(k + 1) * tau, ..., :sum(sz)].permute(1, 2, 0, 3).split(sz, dim=-1)
            pa = cg(pos, VECTOR, _complex(pieces[0]), r_in)  # p_i (x) sum_j w_ij F_j
            for r, piece in zip(self.msg_outs[r_in], pieces[1:]):
                parts.setdefault(r, []).append(pa[r] - _complex(piece))
        cat = {r: torch.cat(ts, dim=2) for r, ts in parts.items()}
        cat[SCALAR] = torch.cat([cat[SCALAR], self.mlp(cat[SCALAR])], dim=2)
        return mask_feats(self.mix(cat), mask)


def irrep_feature_dims(maxdim: int) -> dict:
    """``irrep -> d`` for the irreps up to ``maxdim``."""
    return {r: irrep_dim(r) for r in irreps_up_to(maxdim)}
