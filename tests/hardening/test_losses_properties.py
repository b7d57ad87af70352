"""Property-based tests of lgae_hep.losses.chamfer on drawn jets (as the network sees them:
pT-sorted, padded tensors from to_tensors) and drawn "reconstructions".

Invariants: exact symmetry, >= 0, exactly 0 on identical clouds, +inf iff exactly one cloud is
empty, a jet's value does not depend on the batch it is in (bitwise on CPU), invariance under
permutations of the particles within a jet (and of where the padding sits), padded slots never
matter (whatever they hold, NaN included), and the documented ``scale**2`` behaviour.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _strategies import bounded, jet_cases  # noqa: E402

from lgae_hep.data import to_tensors  # noqa: E402
from lgae_hep.losses import chamfer  # noqa: E402
from lgae_hep.precision import unit_roundoff  # noqa: E402

# Permutation / padding changes the order of the per-particle sums: rounding only. The
# pairwise distances are the same float operations (explicit differences), and a float sum of
# n >= 0 terms in any order is within (n - 1) u of the exact sum (Higham), so two orders differ
# by <= 2 (n - 1) u, with n <= 83 particles per cloud (max_particles + 3), plus a few u where a
# padded shape vectorises the 4-term distances differently: ~2 (83 + 4) u = 174 u worst case.
# RTOL = 336 u: 2.0e-5 in float32 (as before), 3.7e-14 in float64 (was 1e-12).
RTOL = {dt: 336 * unit_roundoff(dt) for dt in (torch.float32, torch.float64)}


@st.composite
def cloud_pairs(draw, max_particles: int = 80):
    """(x, mask_x, y, mask_y): drawn jets and a perturbed, re-sized 'reconstruction'."""
    case = draw(jet_cases(max_depth=1, max_particles=max_particles, max_outer=6))
    n = draw(st.sampled_from([1, 4, 30, max_particles]))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    jt = to_tensors(case.jets, n, dtype=dtype)
    x, mx = jt.p4, jt.mask
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    m_out = draw(st.sampled_from([n, max(1, n // 2), n + 3]))
    rel = draw(st.sampled_from([0.0, 1e-3, 0.3]))
    b = x.shape[0]
    y = torch.zeros((b, m_out, 4), dtype=dtype)
    k = min(n, m_out)
    noise = torch.from_numpy(rng.normal(size=(b, k, 4))).to(dtype)
    y[:, :k] = x[:, :k] * (1 + rel * noise)
    # output multiplicity: same as input, or random (0 .. m_out)
    if draw(st.booleans()):
        my = torch.zeros((b, m_out), dtype=torch.bool)
        my[:, :k] = mx[:, :k]
    else:
        my = torch.from_numpy(rng.random((b, m_out)) < 0.7)
    y = torch.where(my[..., None], y, torch.zeros((), dtype=dtype))
    return x, mx, y, my, rng


@bounded(60)
@given(pair=cloud_pairs())
def test_chamfer_symmetric_nonnegative_and_zero_on_identical(pair):
    x, mx, y, my, _ = pair
    d_xy = chamfer(x, y, mx, my)
    d_yx = chamfer(y, x, my, mx)
    assert d_xy.shape == (x.shape[0],)
    assert torch.equal(d_xy, d_yx)  # exactly symmetric
    assert (d_xy >= 0).all()
    empty_x, empty_y = mx.sum(1) == 0, my.sum(1) == 0
    one_empty = empty_x ^ empty_y
    assert torch.isinf(d_xy[one_empty]).all()
    assert torch.isfinite(d_xy[~one_empty]).all()
    assert (chamfer(x, x, mx, mx) == 0).all()  # exactly zero on identical clouds
    assert (d_xy[empty_x & empty_y] == 0).all()


@bounded(40)
@given(pair=cloud_pairs(), data=st.data())
def test_chamfer_jet_alone_equals_jet_in_batch(pair, data):
    x, mx, y, my, _ = pair
    b = x.shape[0]
    if b == 0:
        return
    full = chamfer(x, y, mx, my)
    for j in data.draw(st.lists(st.integers(0, b - 1), min_size=1, max_size=3, unique=True)):
        alone = chamfer(x[j : j + 1], y[j : j + 1], mx[j : j + 1], my[j : j + 1])
        # bitwise on CPU: no term mixes jets and each jet's reduction is the same
        assert torch.equal(alone[0], full[j]), (alone[0].item(), full[j].item())
    # and inside a reversed batch
    rev = chamfer(x.flip(0), y.flip(0), mx.flip(0), my.flip(0)).flip(0)
    assert torch.equal(rev, full)


@bounded(40)
@given(pair=cloud_pairs())
def test_chamfer_permutation_and_padding_invariant(pair):
    x, mx, y, my, rng = pair
    b, n, _ = x.shape
    m = y.shape[1]
    ref = chamfer(x, y, mx, my)
    # permute the slots of every jet independently (real particles and padding alike)
    px = torch.from_numpy(np.argsort(rng.random((b, n)), axis=1))
    py = torch.from_numpy(np.argsort(rng.random((b, m)), axis=1))
    xp = torch.gather(x, 1, px[..., None].expand(-1, -1, 4))
    yp = torch.gather(y, 1, py[..., None].expand(-1, -1, 4))
    mxp, myp = torch.gather(mx, 1, px), torch.gather(my, 1, py)
    got = chamfer(xp, yp, mxp, myp)
    finite = torch.isfinite(ref)
    assert torch.equal(torch.isinf(got), torch.isinf(ref))
    torch.testing.assert_close(got[finite], ref[finite], rtol=RTOL[x.dtype], atol=0)
    # padded slots hold garbage (huge finite values, NaN, inf): they never matter
    for fill in (1e30 if x.dtype == torch.float64 else 1e18, float("nan"), float("inf")):
        xg = torch.where(mx[..., None], x, torch.full_like(x, fill))
        yg = torch.where(my[..., None], y, torch.full_like(y, -fill))
        got = chamfer(xg, yg, mx, my)
        assert torch.equal(torch.isinf(got), torch.isinf(ref))
        assert not torch.isnan(got).any()
        torch.testing.assert_close(got[finite], ref[finite], rtol=0, atol=0)
    # extra padding slots change nothing
    xe = torch.cat([x, torch.zeros((b, 5, 4), dtype=x.dtype)], 1)
    mxe = torch.cat([mx, torch.zeros((b, 5), dtype=torch.bool)], 1)
    got = chamfer(xe, y, mxe, my)
    torch.testing.assert_close(got[finite], ref[finite], rtol=RTOL[x.dtype], atol=0)


@bounded(30)
@given(pair=cloud_pairs(), scale=st.sampled_from([1e-3, 0.01, 7.0]))
def test_chamfer_scale_and_numpy_in_numpy_out(pair, scale):
    x, mx, y, my, _ = pair
    ref = chamfer(x, y, mx, my)
    finite = torch.isfinite(ref)
    got = chamfer(x, y, mx, my, scale=scale)
    # the clouds are scaled before the differences are formed, so rounding of x*scale enters
    # each nearly-cancelling difference: per jet the error is bounded by
    # ~4 eps scale^2 sum(|x|^2 + |y|^2) (relative error alone is unbounded for y ~ x)
    eps = torch.finfo(x.dtype).eps
    norm = ((x * x).sum(-1) * mx).sum(1) + ((y * y).sum(-1) * my).sum(1)
    bound = 8 * eps * scale**2 * norm + RTOL[x.dtype] * ref * scale**2
    assert (torch.abs(got - ref * scale**2)[finite] <= bound[finite]).all()
    npv = chamfer(x.numpy(), y.numpy(), mx.numpy(), my.numpy())
    assert isinstance(npv, np.ndarray)
    np.testing.assert_array_equal(npv, ref.numpy())
