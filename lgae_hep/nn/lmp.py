"""The Lorentz message-passing (LMP) layer."""

from __future__ import annotations

import torch
from torch import nn

from lgae_hep.lorentz import irrep_dim, irreps_up_to

from .cg_product import CGProduct, Feats
from .mixreps import (
    SCALAR,
    InvariantMLP,
    MixReps,
    from_packed,
    mask_feats,
    mask_packed,
    to_packed,
)
from .radial import PairBasis, RadialFilter

__all__ = ["LMPLayer", "VECTOR"]

VECTOR = (1, 1)


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
        # self products F_c (x) F_c over pairs r1 <= r2 (tuple order), in the channel order
        # the trained weights expect
        self.self_pairs = [(r1, r2) for r1 in self.in_order for r2 in self.in_order
                           if not r2 < r1]
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
                mask: torch.Tensor | None) -> Feats:
        """Apply the layer.

        Parameters
        ----------
        feats : dict
            irrep -> complex (B, N, tau, d); padded nodes must be zero.
        pos : torch.Tensor
            Complex (B, N, 1, 4): node positions in the (1, 1) canonical basis.
        basis : torch.Tensor
            Real (K, B, N, N) masked pair functions of ``p_ij^2``.
        mask : torch.Tensor or None
            bool (B, N); None: every node is real.

        Returns irrep -> (B, N, tau_out, d). The work is done in the channel-last layout of
        :meth:`forward_packed` (the models call that directly and never transpose).
        """
        if mask is not None:  # forward_packed wants padded nodes zero, whatever they hold
            feats = mask_feats(feats, mask)
            pos = mask_feats({VECTOR: pos}, mask)[VECTOR]
        feats, pos = to_packed(feats), pos.permute(2, 0, 3, 1)
        return from_packed(self.forward_packed(feats, pos, basis, mask))

    def forward_packed(self, feats: Feats, pos: torch.Tensor,
                       basis: torch.Tensor | PairBasis, mask: torch.Tensor | None) -> Feats:
        """:meth:`forward` in the packed layout: ``feats`` irrep -> (tau, B, d, N), ``pos``
        (1, B, 4, N), both **zero on padded nodes** (the models keep them so; padded nodes then
        send exactly nothing), ``basis`` as in :meth:`forward` or a :class:`PairBasis`;
        returns irrep -> (tau_out, B, d, N), zero on padded nodes.

        Channels outermost and nodes innermost make every step a large GEMM or an elementwise
        operation over contiguous rows of N nodes: the channel mixing is one complex GEMM per
        irrep, the message sums one real batched GEMM per input irrep, the CG products
        gathers of the non-zero CG entries (:meth:`CGProduct.packed`), the concatenations
        copies of whole blocks.
        """
        cg = self.cg
        x_in = {r: feats[r] for r in self.in_order}
        parts: dict[tuple[int, int], list[torch.Tensor]] = {r: [x] for r, x in x_in.items()}
        for r1, r2 in self.self_pairs:
            for r, t in cg.packed(x_in[r1], r1, x_in[r2], r2).items():
                parts.setdefault(r, []).append(t)
        # Messages by linearity: sum_j w_ij [F_j, p_j (x) F_j] with per-channel weights, one
        # real batched GEMM per input irrep: tau * B products (2 width x N) @ (N x N), the
        # operands laid out so that the long (N x N) matrix is on the right (MKL's batched
        # GEMM is ~2.5x faster that way round)
        raw = isinstance(basis, PairBasis)
        b, n = pos.shape[1], pos.shape[3]
        tau = self.tau_in
        # the edge weights of all input irreps in one GEMM ((C, K) @ (K, B N N), C = tau times
        # the number of input irreps): MKL's GEMM with K ~ 6 costs about the same for 4 rows as
        # for 16, so one call for every irrep is ~4x cheaper than one per irrep; ``split``
        # (not slicing) keeps the backward to one concatenation
        ws = self.radial(basis).split(tau, dim=0)  # (tau, B, N, N) per input irrep
        for k, (r_in, x) in enumerate(x_in.items()):
            g = cg.packed(pos, VECTOR, x, r_in)  # p_j (x) F_j
            blk = [x] + [g[r] for r in self.msg_outs[r_in]]
            sizes = [t.shape[2] for t in blk]
            width = sum(sizes)
            # (tau, B, d, N) complex pieces -> one real (tau, B, width, 2, N) tensor (one copy)
            h = torch.cat([torch.view_as_real(t).transpose(-1, -2) for t in blk], dim=2)
            w = ws[k]
            if raw:
                # w_ij = sum_k A_k phi_k(p_ij^2) with zero diagonal; padded h_j are exactly
                # zero (0 * finite), so the sum over all j is the sum over the real
                # neighbours (a lone particle gets exactly zero), divided by their number
                agg = torch.matmul(h.flatten(2, 3), w).unflatten(2, (width, 2))
                agg = agg / basis.norm.view(1, b, 1, 1, n)
            else:  # masked, normalised basis (RadialBasis.forward): w_ij with zero diagonal
                agg = torch.matmul(h.flatten(2, 3), w.transpose(-1, -2)).unflatten(2, (width, 2))
            aggc = torch.complex(*agg.unbind(3))  # (tau, B, width, N)
            pieces = aggc.split(sizes, dim=2)
            pa = cg.packed(pos, VECTOR, pieces[0], r_in)  # p_i (x) sum_j w_ij F_j
            for r, piece in zip(self.msg_outs[r_in], pieces[1:]):
                parts.setdefault(r, []).append(pa[r] - piece)
        cat = {r: torch.cat(ts, dim=0) for r, ts in parts.items()}
        extra = self.mlp.forward_packed(cat[SCALAR])
        return mask_packed(self.mix.forward_packed(cat, extra_scalars=extra), mask)


def irrep_feature_dims(maxdim: int) -> dict:
    """``irrep -> d`` for the irreps up to ``maxdim``."""
    return {r: irrep_dim(r) for r in irreps_up_to(maxdim)}
