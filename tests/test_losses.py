"""Tests of lgae_hep.losses against brute-force references."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from lgae_hep.losses import chamfer, hungarian_match, hungarian_mse, mse


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
    np.testing.assert_allclose(got, ref, rtol=1e-12)


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
        assert one.item() == pytest.approx(full[b].item(), rel=1e-14)
    assert chamfer(x, y, mx, my).shape == (len(x),)  # numpy in, numpy out
    assert isinstance(chamfer(x, y, mx, my), np.ndarray)
    assert chamfer(xt, yt, mxt, myt, reduction="mean").item() == pytest.approx(full.mean().item())


def test_chamfer_empty_clouds_and_float32_large_momenta():
    x = torch.zeros(3, 4, 4)
    m_empty = torch.zeros(3, 4, dtype=torch.bool)
    m_full = torch.ones(3, 4, dtype=torch.bool)
    assert torch.all(chamfer(x, x, m_empty, m_empty) == 0)
    assert torch.all(torch.isinf(chamfer(x, x, m_full, m_empty)))
    # TeV-scale float32: no cancellation, a 1 GeV shift in E gives exactly 1 per particle
    p = torch.full((1, 2, 4), 1500.0)
    p[0, 1] = 3000.0
    q = p.clone()
    q[..., 0] += 1.0
    assert chamfer(p, q).item() == pytest.approx(4.0, rel=1e-6)


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
    assert np.all(h < 1e-4)
    # brute force over permutations of a small jet
    x1, y1 = rng.normal(size=(1, 4, 4)), rng.normal(size=(1, 4, 4))
    best = min(((x1[0] - y1[0][list(p)]) ** 2).sum() for p in itertools.permutations(range(4)))
    assert hungarian_mse(x1, y1, point_reduction="sum")[0] == pytest.approx(best)
    # mse is order-preserving and masked
    e = mse(torch.from_numpy(x), torch.from_numpy(x + 1.0), torch.from_numpy(mask))
    assert torch.allclose(e, torch.full((b,), 4.0, dtype=torch.float64))


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
