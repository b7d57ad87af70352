"""The packed LMP layer and LGAE agree with the straightforward per-irrep reference
(``reference_lmp.py``: the layer as computed before the packed rewrite) on the same weights.

Bound: the two are different orders of the same sums over <= 120 terms per stage (one layer:
a few stages), each within ``n u`` (Higham) of the exact value relative to the largest entry,
so they differ by at most ``2 L n u`` with ``L n <= OUTPUT_AMPLIFICATION`` (lgae_hep/precision):
``2 * 2**11 u``; the inputs here are O(1), so the bound is relative to max(1, largest entry).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lgae_hep.lorentz import FOURVEC_TO_IRREP, irrep_dim, irreps_up_to
from lgae_hep.nn import LMPLayer, RadialBasis, pair_invariant
from lgae_hep.precision import OUTPUT_AMPLIFICATION, unit_roundoff

from .reference_lmp import reference_lmp


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("maxdim", [2, 3, 4])
def test_packed_layer_matches_reference(maxdim, dtype):
    rng = np.random.default_rng(maxdim)
    torch.manual_seed(maxdim)
    cdt = torch.complex128 if dtype == torch.float64 else torch.complex64
    b, n = 3, 7
    reps = irreps_up_to(maxdim)
    layer = LMPLayer({r: 3 for r in reps}, 2, maxdim, num_functions=5, dtype=dtype)
    basis_fn = RadialBasis(4, dtype=dtype)
    mask = torch.ones(b, n, dtype=torch.bool)
    mask[1, 4:] = False
    mask[2, 1:] = False  # a one-particle jet: no neighbours
    p = rng.normal(size=(b, n, 4))
    p[..., 0] = np.abs(p[..., 0]) + np.linalg.norm(p[..., 1:], axis=-1)
    p = torch.as_tensor(p * mask.numpy()[..., None], dtype=dtype)
    u = torch.tensor(np.array(FOURVEC_TO_IRREP), dtype=cdt)
    pos = (p.to(cdt) @ u.T).unsqueeze(2)
    feats = {r: torch.as_tensor(rng.normal(size=(b, n, 3, irrep_dim(r)))
                                + 1j * rng.normal(size=(b, n, 3, irrep_dim(r))), dtype=cdt)
             * mask[:, :, None, None] for r in reps}
    basis = basis_fn(pair_invariant(p), mask)
    tol = 2 * OUTPUT_AMPLIFICATION * unit_roundoff(dtype)
    with torch.no_grad():
        ref = reference_lmp(layer, feats, pos, basis, mask)
        got = layer(feats, pos, basis, mask)
        # the models' path: the unmasked pair basis (PairBasis)
        got_raw = layer(feats, pos, basis_fn.pairs(pair_invariant(p), mask), mask)
    for out in (got, got_raw):
        assert set(out) == set(ref)
        for r in ref:
            scale = max(1.0, float(ref[r].abs().max()))
            assert float((out[r] - ref[r]).abs().max()) / scale <= tol, r
            assert torch.all(out[r][~mask] == 0)
