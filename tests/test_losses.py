"""Tests of lgae_hep.losses against brute-force references."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from lgae_hep.lorentz import lorentz_matrix
from lgae_hep.losses import (
    chamfer,
    chamfer_dr,
    hungarian_match,
    hungarian_mse,
    mse,
)

# Losses are elementwise differences, small reductions (4 components, <= ~20 particles) and, for
# chamfer_dr, asinh/atan2/hypot: no matrix products, so a float64 result is within a few tens of
# u = 1.1e-16 of another evaluation order (torch's AVX2 / AVX-512 reductions, numpy's loops),
# times the conditioning noted at each check.


def _clouds(rng, b=6, n=7, m=5, p_keep=0.7):
    x = rng.normal(size=(b, n, 4)) * 100
    y = rng.normal(size=(b, m, 4)) * 100
    mx = rng.random((b, n)) < p_keep
    my = rng.random((b, m)) < p_keep
    mx[:, 0] = True
    my[:, 0] = True
    return x, y, mx, my


def _brute_chamfer(x, y, mean=False):
    if len(x) == 0 and len(y) == 0:
        return 0.0
    if len(x) == 0 or len(y) == 0:
        return np.inf
    a = sum(min(((xi - yj) ** 2).sum() for yj in y) for xi in x)
    b = sum(min(((xi - yj) ** 2).sum() for xi in x) for yj in y)
    if mean:
        return a / len(x) + b / len(y)
    return a + b


@pytest.mark.parametrize("point_reduction", ["sum", "mean"])
def test_chamfer_matches_brute_force(point_reduction):
    rng = np.random.default_rng(1)
    x, y, mx, my = _clouds(rng)
    got = chamfer(torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(mx),
                  torch.from_numpy(my), point_reduction=point_reduction).numpy()
    ref = [_brute_chamfer(x[b][mx[b]], y[b][my[b]], point_reduction == "mean")
           for b in range(len(x))]
    # same differences; 4-term squared distances and <= 12-particle sums in another order:
    # ~16 u = 2e-15; rtol 1e-13 (was 1e-12; measured 2.7 u)
    np.testing.assert_allclose(got, ref, rtol=1e-13)


def test_chamfer_zero_symmetric_and_batch_independent():
    rng = np.random.default_rng(2)
    x, y, mx, my = _clouds(rng, m=7)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    mxt, myt = torch.from_numpy(mx), torch.from_numpy(my)
    assert torch.all(chamfer(xt, xt, mxt, mxt) == 0)
    # identical real particles, different (garbage) padding: still zero
    x2 = xt.clone()
    x2[~mxt] = 1e6
    assert torch.all(chamfer(xt, x2, mxt, mxt) == 0)
    assert torch.equal(chamfer(xt, yt, mxt, myt), chamfer(yt, xt, myt, mxt))
    # the value of a jet does not depend on its batch mates
    full = chamfer(xt, yt, mxt, myt)
    for b in range(len(x)):
        one = chamfer(xt[b:b + 1], yt[b:b + 1], mxt[b:b + 1], myt[b:b + 1])
        # another batch shape may vectorise the same sums differently: ~16 u (measured equal)
        assert one.item() == pytest.approx(full[b].item(), rel=1e-14)
    assert chamfer(x, y, mx, my).shape == (len(x),)  # numpy in, numpy out
    assert isinstance(chamfer(x, y, mx, my), np.ndarray)
    # a mean of 6 values: ~6 u (measured equal); pytest's default rel 1e-6 was float32-sized
    assert chamfer(xt, yt, mxt, myt, reduction="mean").item() == pytest.approx(
        full.mean().item(), rel=1e-14)


def test_chamfer_empty_clouds_and_float32_large_momenta():
    x = torch.zeros(3, 4, 4)
    m_empty = torch.zeros(3, 4, dtype=torch.bool)
    m_full = torch.ones(3, 4, dtype=torch.bool)
    assert torch.all(chamfer(x, x, m_empty, m_empty) == 0)
    assert torch.all(torch.isinf(chamfer(x, x, m_full, m_empty)))
    # TeV-scale float32: no cancellation, a 1 GeV shift in E gives exactly 1 per particle
    # (integers < 2^24 are exact; the |p|^2 - 2 p.q + |q|^2 form would be off by
    # ~u32 (3 TeV)^2 = 0.5 per particle)
    p = torch.full((1, 2, 4), 1500.0)
    p[0, 1] = 3000.0
    q = p.clone()
    q[..., 0] += 1.0
    assert chamfer(p, q).item() == 4.0


def test_chamfer_gradient_finite_with_padding():
    rng = np.random.default_rng(3)
    x, y, mx, my = _clouds(rng)
    xt = torch.from_numpy(x).requires_grad_()
    chamfer(xt, torch.from_numpy(y), torch.from_numpy(mx), torch.from_numpy(my)).sum().backward()
    assert torch.isfinite(xt.grad).all()
    assert torch.all(xt.grad[~torch.from_numpy(mx)] == 0)


def test_mse_and_hungarian():
    rng = np.random.default_rng(4)
    b, n = 4, 5
    x = rng.normal(size=(b, n, 4))
    mask = np.ones((b, n), dtype=bool)
    mask[1, 3:] = False
    perm_true = np.stack([rng.permutation(n) for _ in range(b)])
    y = np.take_along_axis(x, perm_true[..., None], axis=1) + 1e-3 * rng.normal(size=(b, n, 4))
    my = np.take_along_axis(mask, perm_true, axis=1)
    perm = hungarian_match(x, y, mask, my)
    for j in range(b):
        for i in range(n):
            if mask[j, i]:
                assert perm_true[j, perm[j, i]] == i
            else:
                assert perm[j, i] == -1
    h = hungarian_mse(x, y, mask, my)
    # statistics, not rounding: the 1e-3 noise gives E[h] = 4e-6 per particle (measured
    # 2.4-3.9e-6); 1e-4 is 25x that, and a wrong match costs ~O(1)
    assert np.all(h < 1e-4)
    # brute force over permutations of a small jet
    x1, y1 = rng.normal(size=(1, 4, 4)), rng.normal(size=(1, 4, 4))
    best = min(((x1[0] - y1[0][list(p)]) ** 2).sum() for p in itertools.permutations(range(4)))
    # the same 16 squares summed in another order: 16 u; rel 1e-13 (default 1e-6; measured equal)
    assert hungarian_mse(x1, y1, point_reduction="sum")[0] == pytest.approx(best, rel=1e-13)
    # mse is order-preserving and masked; (x + 1) - x = 1 within u |x| <= 3 u: ~40 u on 4.0
    e = mse(torch.from_numpy(x), torch.from_numpy(x + 1.0), torch.from_numpy(mask))
    assert torch.allclose(e, torch.full((b,), 4.0, dtype=torch.float64), rtol=1e-13, atol=0)


def test_bad_input():
    x = torch.zeros(2, 3, 4)
    with pytest.raises(ValueError, match="shape"):
        chamfer(torch.zeros(2, 3, 3), x)
    with pytest.raises(ValueError, match="boolean"):
        chamfer(x, x, torch.ones(2, 3), None)
    with pytest.raises(ValueError, match="batch"):
        chamfer(x, torch.zeros(3, 3, 4))
    with pytest.raises(ValueError, match="reduction"):
        chamfer(x, x, reduction="avg")


# ----------------------------------------------------------------------------- chamfer_dr
def _dr_brute(x, y, mx, my):
    """Reference chamfer_dr, particle loops in plain Python/numpy."""
    out = []
    for b in range(x.shape[0]):
        xs = [p for p, keep in zip(x[b], mx[b]) if keep]
        ys = [p for p, keep in zip(y[b], my[b]) if keep]

        def pep(p):
            pt = np.hypot(p[1], p[2])
            return pt, np.arcsinh(p[3] / pt), np.arctan2(p[2], p[1])

        def dr(a, c):
            _, ea, fa = pep(a)
            _, ec, fc = pep(c)
            dphi = (fa - fc + np.pi) % (2 * np.pi) - np.pi
            return np.hypot(ea - ec, dphi)

        total = sum(pep(p)[0] for p in xs)
        s = sum(pep(p)[0] * min(dr(p, q) for q in ys) for p in xs)
        s += sum(pep(q)[0] * min(dr(p, q) for p in xs) for q in ys)
        out.append(s / total)
    return np.array(out)


def test_chamfer_dr_matches_brute_force(make_jets):
    x, mx = make_jets(6, 9, seed=11)
    y, my = make_jets(6, 7, seed=12)
    my[:, 0] = True
    got = chamfer_dr(x, y, mx, my).numpy()
    # eta/phi differences carry ~u |eta, phi| <= 3 u absolute; relative to the nearest-neighbour
    # distances (>~ 0.01) that is <= ~300 u, plus the <= 16-particle sums; rtol 1e-12 = 4500 u
    # (measured 3 u)
    np.testing.assert_allclose(got, _dr_brute(x.numpy(), y.numpy(), mx.numpy(), my.numpy()),
                               rtol=1e-12)
    # numpy in, numpy out; per-jet values do not depend on the batch (another batch shape may
    # vectorise the particle sums differently: ~16 u; measured bitwise equal)
    alone = chamfer_dr(x[2:3].numpy(), y[2:3].numpy(), mx[2:3].numpy(), my[2:3].numpy())
    assert isinstance(alone, np.ndarray)
    assert alone[0] == pytest.approx(got[2], rel=1e-14)


def test_chamfer_dr_zero_padding_and_permutation(make_jets):
    x, mx = make_jets(4, 10, seed=13)
    assert torch.equal(chamfer_dr(x, x, mx, mx), torch.zeros(4, dtype=x.dtype))
    y, my = make_jets(4, 10, seed=14)
    ref = chamfer_dr(x, y, mx, my)
    # garbage in padded slots changes nothing
    xg = torch.where(mx[..., None], x, torch.full_like(x, 1e12))
    assert torch.equal(chamfer_dr(xg, y, mx, my), ref)
    # particle order does not matter
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(0))
    # only the order of the <= 20-term sums changes: ~20 u = 2e-15; rtol 1e-13 (measured 2 u)
    np.testing.assert_allclose(chamfer_dr(x[:, perm], y, mx[:, perm], my), ref, rtol=1e-13)


def test_chamfer_dr_symmetries(make_jets):
    """Invariant under beam-axis boosts (massless particles: pseudorapidity differences are
    then boost invariant), rotations about the beam and a common rescaling; a transverse boost
    changes it (it is not a Lorentz invariant)."""
    x, mx = make_jets(5, 12, seed=15)
    y, my = make_jets(5, 12, seed=16)
    for p in (x, y):
        p[..., 0] = p[..., 1:].norm(dim=-1)
    ref = chamfer_dr(x, y, mx, my)
    for lam in (lorentz_matrix(rapidity=np.array([0.0, 0.0, 1.7])),
                lorentz_matrix(angle=np.array([0.0, 0.0, 2.4])),
                lorentz_matrix(rapidity=np.array([0.0, 0.0, -0.9]),
                               angle=np.array([0.0, 0.0, -1.1]))):
        t = torch.from_numpy(lam)
        # x @ t.T (an MKL product: AVX2 and AVX-512 round differently, measured 2-17 u either
        # way) rounds pz' at ~u gamma (|pz| + E) with gamma <= cosh 1.7 = 2.8: eta' moves by
        # ~5 gamma u = 15 u absolute (and the rounded massless particles' eta - rapidity
        # difference ~u cosh^2 eta is of the same order), i.e. <= ~2e3 u relative to the
        # nearest-neighbour distances (>~ 0.01); rtol 1e-12 (was 1e-10)
        np.testing.assert_allclose(chamfer_dr(x @ t.T, y @ t.T, mx, my), ref, rtol=1e-12)
    # scaling rounds each component (u): directions move by ~u (measured 3 u)
    np.testing.assert_allclose(chamfer_dr(x * 37.0, y * 37.0, mx, my), ref, rtol=1e-12)
    t = torch.from_numpy(lorentz_matrix(rapidity=np.array([0.8, 0.0, 0.0])))
    # a transverse boost changes every jet by >= 50 % (measured): 1e-3 is far above rounding
    assert not torch.allclose(chamfer_dr(x @ t.T, y @ t.T, mx, my), ref, rtol=1e-3)


def test_chamfer_dr_prong_sensitivity():
    """Missing a hard prong costs its pT fraction times the angle; a soft particle little."""
    def jet(parts):
        p = []
        for pt, eta, phi in parts:
            p.append([pt * np.cosh(eta), pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)])
        return torch.tensor([p], dtype=torch.float64)

    two_prong = jet([(500.0, 0.0, 0.0), (500.0, 0.4, 0.0)])
    one_prong = jet([(500.0, 0.0, 0.0), (500.0, 0.0, 0.0)])
    # each input prong: prong 2 at 0.4 from its nearest reco particle with weight 1/2;
    # reco particles sit on prong 1: distance 0
    # eta = asinh(sinh(0.4)) and the pT fractions: a few u each (measured exact); rtol 1e-14
    np.testing.assert_allclose(chamfer_dr(two_prong, one_prong).item(), 0.5 * 0.4, rtol=1e-14)
    soft = jet([(990.0, 0.0, 0.0), (10.0, 0.4, 0.0)])
    soft_reco = jet([(990.0, 0.0, 0.0), (10.0, 0.0, 0.0)])
    np.testing.assert_allclose(chamfer_dr(soft, soft_reco).item(), 0.01 * 0.4, rtol=1e-14)


def test_chamfer_dr_edge_cases():
    x = torch.zeros(3, 2, 4, dtype=torch.float64)
    x[:, :, 0] = 10.0
    x[:, 0, 1] = 10.0
    x[:, 1, 2] = 10.0
    m = torch.tensor([[False, False], [True, True], [True, True]])
    my = torch.tensor([[False, False], [False, False], [True, True]])
    out = chamfer_dr(x, x, m, my)
    assert out[0] == 0.0 and out[1] == float("inf") and out[2] == 0.0
    # all input particles along the beam: no pT to weight with -> NaN, never a silent number
    beam = torch.tensor([[[10.0, 0.0, 0.0, 10.0]]], dtype=torch.float64)
    assert torch.isnan(chamfer_dr(beam, beam))
    with pytest.raises(ValueError, match="shape"):
        chamfer_dr(torch.zeros(2, 3), torch.zeros(2, 3))


def test_registry_dispatches_the_reconstruction_scores(make_jets):
    from lgae_hep.scoring.registry import SCORES, check_score, score_names

    x, mx = make_jets(3, 6, seed=17)
    y, my = make_jets(3, 6, seed=18)
    assert torch.equal(SCORES["chamfer"].compute(x, y, mx, my), chamfer(x, y, mx, my))
    assert torch.equal(SCORES["chamfer-dr"].compute(x, y, mx, my), chamfer_dr(x, y, mx, my))
    assert set(score_names("reconstruction")) == {"chamfer", "chamfer-dr"}
    with pytest.raises(ValueError, match="chamfer-dr"):
        check_score("emd")


def test_chamfer_dr_uses_the_direction_of_flight(make_jets):
    """A negative-energy output -p is measured along +p (velocity p/E), not at the antipode."""
    x, mx = make_jets(3, 8, seed=19)
    y = x.clone()
    y[:, 1] = -y[:, 1]  # one particle with its sign flipped: E < 0, p reversed
    # exact: (-p) / (-E) is bitwise p / E, so every distance is exactly 0
    np.testing.assert_array_equal(chamfer_dr(x, y, mx, mx), 0.0)
    assert (chamfer(x, y, mx, mx)[mx[:, 1]] > 0).all()  # the Cartesian metric sees the sign
