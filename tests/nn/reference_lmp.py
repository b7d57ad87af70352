"""Test-only reference: the LMP layer as the per-irrep code computed it before the
channel-last rewrite (commit 3a1d35c), on the same parameters as :class:`LMPLayer`.

Straightforward on purpose: old layout ``(B, N, tau, d)``, dense CG tables
(:meth:`CGProduct.forward`), messages concatenated per irrep and channel.
"""

from __future__ import annotations

import torch

from lgae_hep.nn.cg_product import cg_pair
from lgae_hep.nn.lmp import VECTOR, LMPLayer
from lgae_hep.nn.mixreps import SCALAR, mask_feats


def _real_flat(t: torch.Tensor) -> torch.Tensor:
    return torch.view_as_real(t).flatten(-2)


def _complex(t: torch.Tensor) -> torch.Tensor:
    return torch.view_as_complex(t.unflatten(-1, (-1, 2)).contiguous())


def reference_lmp(layer: LMPLayer, feats, pos, basis, mask):
    """``layer(feats, pos, basis, mask)`` as computed by the pre-rewrite code."""
    cg = layer.cg
    x_in = {r: feats[r] for r in layer.in_order}
    parts: dict = {r: [x] for r, x in x_in.items()}
    for r, ts in cg_pair(cg, x_in, x_in, symmetric=True).items():
        parts.setdefault(r, []).extend(ts)
    weights = layer.radial(basis)
    b, n = mask.shape
    tau = layer.tau_in
    blocks = []
    for r_in, x in x_in.items():
        g = cg(pos, VECTOR, x, r_in)
        blocks.append([x] + [g[r] for r in layer.msg_outs[r_in]])
    sizes = [[2 * t.shape[-1] for t in blk] for blk in blocks]
    width = max(sum(sz) for sz in sizes)
    h = weights.new_zeros(len(blocks) * tau, b, n, width)
    for k, (blk, sz) in enumerate(zip(blocks, sizes)):
        off = 0
        for t, w in zip(blk, sz):
            h[k * tau:(k + 1) * tau, :, :, off:off + w] = _real_flat(t).permute(2, 0, 1, 3)
            off += w
    agg = torch.matmul(weights, h)
    for k, (r_in, sz) in enumerate(zip(x_in, sizes)):
        pieces = agg[k * tau:(k + 1) * tau, ..., :sum(sz)].permute(1, 2, 0, 3).split(sz, dim=-1)
        pa = cg(pos, VECTOR, _complex(pieces[0]), r_in)
        for r, piece in zip(layer.msg_outs[r_in], pieces[1:]):
            parts.setdefault(r, []).append(pa[r] - _complex(piece))
    cat = {r: torch.cat(ts, dim=2) for r, ts in parts.items()}
    cat[SCALAR] = torch.cat([cat[SCALAR], layer.mlp(cat[SCALAR])], dim=2)
    return mask_feats(layer.mix(cat), mask)
