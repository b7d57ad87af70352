"""The in-place Gaussian pair basis (``lgae_hep.nn.radial._Gaussians``): the same numbers as the
plain formula bit for bit, and a hand-written backward that equals autograd's.

Bounds. The forward runs the same elementwise operations in the same order (in place), so the
values are identical. The backward is another arrangement of the same products
(``grad * g * z / sigma`` and its sums over ``B N N`` entries, here <= 2 * 5 * 5 = 50 terms):
each sum within ``n u`` of its exact value relative to the sum of the magnitudes, so the two
gradients differ by at most ``2 n u`` times that sum.
"""

from __future__ import annotations

import pytest
import torch

from lgae_hep.nn.radial import RadialBasis, _Gaussians, pair_invariant
from lgae_hep.precision import unit_roundoff


def _reference(u, mu, sig):
    g = torch.exp(-0.5 * ((u - mu[:, None, None, None]) / sig[:, None, None, None]) ** 2)
    eye = torch.eye(u.shape[-1], dtype=torch.bool)
    return torch.where(eye, torch.zeros((), dtype=g.dtype), g)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_forward_is_the_formula_bit_for_bit(dtype):
    torch.manual_seed(0)
    u = torch.randn(1, 4, 9, 9, dtype=dtype) * 4
    u = u + u.transpose(-1, -2)
    mu = torch.linspace(-6, 6, 6, dtype=dtype)
    sig = torch.rand(6, dtype=dtype) + 2.0
    assert torch.equal(_Gaussians.apply(u, mu, sig), _reference(u, mu, sig))
    # with the constant plane phi_0 = 1 - delta_ij in front (the models' PairBasis)
    full = _Gaussians.apply(u, mu, sig, True)
    assert torch.equal(full[1:], _reference(u, mu, sig))
    assert torch.equal(full[0], (1 - torch.eye(9, dtype=dtype)).expand(4, 9, 9))


def test_backward_matches_autograd():
    torch.manual_seed(1)
    u = (torch.randn(1, 2, 5, 5, dtype=torch.float64) * 3).requires_grad_()
    mu = torch.linspace(-3, 3, 3, dtype=torch.float64).requires_grad_()
    sig = (torch.rand(3, dtype=torch.float64) + 1).requires_grad_()
    assert torch.autograd.gradcheck(_Gaussians.apply, (u, mu, sig))
    assert torch.autograd.gradcheck(lambda *a: _Gaussians.apply(*a, True), (u, mu, sig))
    w = torch.randn(3, 2, 5, 5, dtype=torch.float64)
    got = torch.autograd.grad((_Gaussians.apply(u, mu, sig) * w).sum(), (u, mu, sig))
    want = torch.autograd.grad((_reference(u, mu, sig) * w).sum(), (u, mu, sig))
    n = 2 * 5 * 5
    for a, b in zip(got, want):
        assert float((a - b).abs().max()) <= 2 * n * unit_roundoff(torch.float64) * (
            float(b.abs().sum()) + 1.0)
    # the diagonal (i == j) gets exactly zero gradient, as through the where it replaces
    assert torch.all(got[0][..., torch.arange(5), torch.arange(5)] == 0)


def test_pairs_of_a_model_basis_are_symmetric_with_zero_diagonal(make_jets):
    p4, mask = make_jets(3, 7, seed=2)
    basis = RadialBasis(4, dtype=torch.float64).pairs(pair_invariant(p4), mask)
    g = basis.gauss
    assert torch.equal(g, g.transpose(-1, -2))
    assert torch.all(g.diagonal(dim1=-2, dim2=-1) == 0)
