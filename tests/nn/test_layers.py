"""Equivariance and masking of the building blocks in lgae_hep.nn, layer by layer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lgae_hep.lorentz import FOURVEC_TO_IRREP, irrep_dim, irrep_matrix, irreps_up_to
from lgae_hep.nn import (
    Aggregation,
    CGProduct,
    LMPLayer,
    MixReps,
    RadialBasis,
    pair_invariant,
)

CDT = torch.complex128


def _group_element(rng, max_rap=2.0):
    axis = rng.normal(size=3)
    rap = axis / np.linalg.norm(axis) * max_rap
    ang = rng.normal(size=3)
    return rap, ang


def _d(rep, g):
    return torch.as_tensor(irrep_matrix(rep, rapidity=g[0], angle=g[1]), dtype=CDT)


def _feats(rng, reps, b=2, n=5, tau=3):
    return {r: torch.as_tensor(rng.normal(size=(b, n, tau, irrep_dim(r)))
                               + 1j * rng.normal(size=(b, n, tau, irrep_dim(r))), dtype=CDT)
            for r in reps}


def _act(feats, g):
    return {r: x @ _d(r, g).T for r, x in feats.items()}


def _close(a, b, tol=1e-10):
    for r in b:
        scale = b[r].detach().abs().max().clamp(min=1.0)  # inputs are O(1)
        assert float((a[r] - b[r]).detach().abs().max() / scale) < tol, r


@pytest.mark.parametrize("maxdim", [2, 3])
def test_cg_product_equivariant(maxdim):
    rng = np.random.default_rng(0)
    cg = CGProduct(maxdim, torch.float64)
    reps = irreps_up_to(maxdim)
    f = _feats(rng, reps)
    g = _group_element(rng)
    ft = _act(f, g)
    for r1 in reps:
        for r2 in reps:
            out = cg(f[r1], r1, f[r2], r2)
            out_t = cg(ft[r1], r1, ft[r2], r2)
            assert set(out) == set(cg.outputs(r1, r2))
            _close(out_t, _act(out, g))


def test_mixreps_equivariant_and_bias_only_on_scalars():
    rng = np.random.default_rng(1)
    reps = irreps_up_to(3)
    mix = MixReps({r: 3 for r in reps}, {r: 2 for r in reps}, dtype=torch.float64)
    with torch.no_grad():
        mix.bias.fill_(1.0 + 2.0j)
    f = _feats(rng, reps)
    g = _group_element(rng)
    _close(mix(_act(f, g)), _act(mix(f), g))
    zero = {r: torch.zeros_like(x) for r, x in f.items()}
    out = mix(zero)
    assert torch.all(out[(0, 0)] == 1.0 + 2.0j)
    assert all(torch.all(out[r] == 0) for r in reps if r != (0, 0))


def _positions(rng, b, n):
    p = rng.normal(size=(b, n, 4))
    p[..., 0] = np.abs(p[..., 0]) + np.linalg.norm(p[..., 1:], axis=-1)  # time-like
    return torch.as_tensor(p)


@pytest.mark.parametrize("maxdim", [2, 3])
def test_lmp_layer_equivariant_and_masked(maxdim):
    rng = np.random.default_rng(2)
    torch.manual_seed(2)
    b, n = 2, 6
    reps = irreps_up_to(maxdim)
    layer = LMPLayer({r: 3 for r in reps}, 2, maxdim, num_functions=5, dtype=torch.float64)
    basis_fn = RadialBasis(4, dtype=torch.float64)
    mask = torch.ones(b, n, dtype=torch.bool)
    mask[1, 4:] = False
    p = _positions(rng, b, n)
    u = torch.tensor(np.array(FOURVEC_TO_IRREP), dtype=CDT)
    f = _feats(rng, reps, b, n)
    f = {r: x * mask[:, :, None, None] for r, x in f.items()}
    g = _group_element(rng)
    lam = torch.as_tensor(np.real(np.conj(FOURVEC_TO_IRREP).T @ irrep_matrix(
        (1, 1), rapidity=g[0], angle=g[1]) @ FOURVEC_TO_IRREP))

    def run(feats, pos):
        basis = basis_fn(pair_invariant(pos), mask)
        return layer(feats, (pos.to(CDT) @ u.T).unsqueeze(2), basis, mask)

    out = run(f, p)
    _close(run(_act(f, g), p @ lam.T), _act(out, g), tol=1e-9)
    # padded nodes output zero and do not influence real nodes
    assert all(torch.all(x[1, 4:] == 0) for x in out.values())
    f2 = {r: x.clone() for r, x in f.items()}
    for x in f2.values():
        x[1, 4:] = 1e6
    p2 = p.clone()
    p2[1, 4:] = 1e6
    out2 = run(f2, p2)
    assert all(torch.equal(out2[r], out[r]) for r in out)


def test_radial_basis_learnable_masked_and_bounded():
    torch.manual_seed(0)
    rb = RadialBasis(4, dtype=torch.float64)
    x = torch.randn(2, 5, 5, dtype=torch.float64) * 100
    mask = torch.ones(2, 5, dtype=torch.bool)
    mask[0, 3:] = False
    phi = rb(x, mask)
    assert phi.shape == (5, 2, 5, 5)
    assert torch.all(phi[:, 0, 3:] == 0) and torch.all(phi[:, 0, :, 3:] == 0)
    assert torch.all(phi[:, :, torch.arange(5), torch.arange(5)] == 0)  # no self-messages
    assert 0 <= phi.min() and phi.max() <= 1
    # not a constant filter: depends on x and has gradients w.r.t. its parameters
    assert phi[1:].std() > 0
    phi.sum().backward()
    assert rb.mu.grad.abs().sum() > 0 and rb.log_sigma.grad.abs().sum() > 0


@pytest.mark.parametrize("method", ["mean", "sum", "min", "max", "min&max", "mix"])
def test_aggregation_equivariant(method):
    rng = np.random.default_rng(3)
    torch.manual_seed(3)
    n = 6
    tau = {(0, 0): 2, (1, 1): 3}
    agg = Aggregation(method, n, tau, dtype=torch.float64)
    f = _feats(rng, list(tau), b=3, n=n, tau=2)
    f[(1, 1)] = torch.cat([f[(1, 1)], f[(1, 1)][:, :, :1] * 2], 2)
    mask = torch.ones(3, n, dtype=torch.bool)
    mask[2, 2:] = False
    f = {r: x * mask[:, :, None, None] for r, x in f.items()}
    g = _group_element(rng, 1.5)
    out = agg(f, mask)
    assert out[(1, 1)].shape == (3, 3 * len(method.split("&")), 4)
    _close(agg(_act(f, g), mask), _act(out, g), tol=1e-9)


def test_min_max_select_whole_complex_vector_by_invariant_norm():
    n = 3
    agg = Aggregation("min&max", n, {(1, 1): 1}, dtype=torch.float64)
    u = torch.tensor(np.array(FOURVEC_TO_IRREP), dtype=CDT)
    cart = torch.tensor([[[2.0, 0, 0, 1]], [[5.0, 0, 0, 0]], [[1.0, 0, 0, 0.5]]], dtype=CDT)
    cart = cart + 1j * torch.tensor([[[0.0, 1, 0, 0]], [[0.0, 0, 0, 0]], [[0, 0, 0, 0]]])
    x = (cart @ u.T).unsqueeze(0)  # (1, 3, 1, 4); norms Re(v.v): 3 - 1 = 2, 25, 0.75
    out = agg({(1, 1): x}, torch.ones(1, n, dtype=torch.bool))[(1, 1)]
    torch.testing.assert_close(out[0, 0], x[0, 2, 0])  # min
    torch.testing.assert_close(out[0, 1], x[0, 1, 0])  # max
    # a padded particle with a huge norm is never selected
    mask = torch.tensor([[True, False, True]])
    out = agg({(1, 1): x}, mask)[(1, 1)]
    torch.testing.assert_close(out[0, 1], x[0, 0, 0])
