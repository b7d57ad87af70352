"""The normalised-autoencoder objective (lgae_hep.nae, fit(nae_weight=...)).

The Langevin chains on closed-form energies (descent, relative steps, padding, permutation and
rotation covariance, the seeded noise), the exact value of the term, and the bookkeeping of the
fit option (weight 0 is the training without it, history and checkpoint record it, resume
continues it). Never the network's quality.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _jets import OBJECTIVE_FIT_KW, TINY_LGAE, make_jets  # noqa: E402

from lgae_hep.checkpoint import load_checkpoint  # noqa: E402
from lgae_hep.nae import langevin_negatives, nae_loss  # noqa: E402
from lgae_hep.train import fit  # noqa: E402

LGAE, KW = TINY_LGAE, OBJECTIVE_FIT_KW
EPS64 = torch.finfo(torch.float64).eps

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _jets(n=16, seed=0):
    p4, mask = make_jets(n, seed, 8)
    return p4.double(), mask


def _mass2(x, mask):
    j = (x * mask.unsqueeze(-1)).sum(1)
    return j[:, 0] ** 2 - (j[:, 1:] ** 2).sum(-1)


def _spread(x, mask):
    """A smooth energy, invariant under rotations and permutations: the Euclidean spread of the
    real particles' 4-vectors, sum_ij |x_i - x_j|^2 (a quadratic, so a small enough step
    along minus a positively preconditioned gradient lowers it)."""
    m = mask.unsqueeze(-1).to(x.dtype)
    x = x * m
    d = (x.unsqueeze(2) - x.unsqueeze(1)) * (m.unsqueeze(2) * m.unsqueeze(1))
    return (d * d).sum((1, 2, 3)) * 1e-3


def test_chain_descends_a_smooth_energy_and_keeps_padding_zero():
    p4, mask = _jets(8, 1)
    p4 = p4 + 1.0 * (~mask).unsqueeze(-1)  # garbage on padded slots must not leak in
    start = langevin_negatives(_spread, p4, mask, None, steps=0, step_size=0.01, noise=0.0)
    e0 = _spread(start, mask)
    x = langevin_negatives(_spread, p4, mask, None, steps=5, step_size=0.01, noise=0.0)
    assert bool((x[~mask] == 0).all())
    # on the light cone: E = |p| for every real particle (two ways of summing 3 squares and a
    # sqrt, each within ~2.5 eps: 8 eps)
    e_p = x[..., 1:].norm(dim=-1)
    assert torch.allclose(x[..., 0][mask], e_p[mask], rtol=8 * EPS64, atol=0)
    # a small relative step along minus the gradient lowers a smooth energy on every jet
    assert bool((_spread(x, mask) < e0).all())


def test_step_is_relative_to_each_particle_energy():
    """With one step and no noise, every particle's 3-momentum moves by ``step_size * |p_i| *
    d_i`` with ``d`` of unit root-mean-square over the jet's real components: scaling a jet's
    momenta by ``c`` scales its move by ``c`` (the chain does not depend on units)."""
    p4, mask = _jets(6, 2)
    x1 = langevin_negatives(_mass2, p4, mask, None, 1, 0.1, 0.0)
    # c = 2^10: every rounding commutes with a power-of-two scale (no under- or overflow
    # here), and the normalised direction d does not depend on c, so the chain is exactly
    # homogeneous
    x2 = langevin_negatives(_mass2, 1024.0 * p4, mask, None, 1, 0.1, 0.0)
    assert torch.equal(x2, 1024.0 * x1)
    p0 = p4[..., 1:] * mask.unsqueeze(-1)
    move = (x1[..., 1:] - p0) / (0.1 * p0.norm(dim=-1, keepdim=True).clamp_min(1e-300))
    n_real = mask.sum(1) * 3
    rms = ((move * mask.unsqueeze(-1)) ** 2).sum((1, 2)) / n_real
    # per component: x1 and the subtraction round at |p_i| (eps / 0.1 = 10 eps of the move)
    # plus the move's own few roundings; the mean of <= 24 squares adds ~24 eps: 64 eps
    assert torch.allclose(rms, torch.ones_like(rms), rtol=64 * EPS64, atol=0)


def _bound(p4):
    """Float64 bound of two chains that differ only in the order of their sums (or by one
    rounding of a rotation): the normalised direction changes by ~sqrt(24) x 8 eps per step,
    far below 256 eps of the largest momentum component."""
    return dict(rtol=64 * EPS64, atol=256 * EPS64 * float(p4.abs().max()))


def test_chain_is_permutation_and_rotation_covariant():
    p4, mask = _jets(4, 3)
    perm = torch.tensor([3, 1, 7, 0, 2, 6, 5, 4])
    a = langevin_negatives(_spread, p4, mask, None, 3, 0.02, 0.0)
    b = langevin_negatives(_spread, p4[:, perm], mask[:, perm], None, 3, 0.02, 0.0)
    assert torch.allclose(a[:, perm], b, **_bound(p4))
    # a rotation keeps energies (the relative scale) and the invariant energy, so it commutes
    c, s = math.cos(0.7), math.sin(0.7)
    rot = torch.tensor([[1, 0, 0, 0], [0, c, -s, 0], [0, s, c, 0], [0, 0, 0, 1.0]],
                       dtype=torch.float64)
    r = langevin_negatives(_spread, p4 @ rot.T, mask, None, 3, 0.02, 0.0)
    assert torch.allclose(r, a @ rot.T, **_bound(p4))


def test_noise_is_seeded_and_zero_steps_return_the_start():
    p4, mask = _jets(4, 4)
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    a = langevin_negatives(_spread, p4, mask, g(), 2, 0.01, 0.05)
    b = langevin_negatives(_spread, p4, mask, g(), 2, 0.01, 0.05)
    assert torch.equal(a, b)
    assert not torch.equal(a, langevin_negatives(_spread, p4, mask, g(), 2, 0.01, 0.0))
    # no step: the start on the light cone, (|p|, p)
    p = p4[..., 1:] * mask.unsqueeze(-1)
    want = torch.cat([p.norm(dim=-1, keepdim=True), p], -1)
    assert torch.allclose(langevin_negatives(_spread, p4, mask, g(), 0, 0.01, 0.05), want,
                          rtol=8 * EPS64, atol=0)  # as for the light cone above
    with pytest.raises(ValueError, match=">= 0"):
        langevin_negatives(_spread, p4, mask, None, -1, 0.01, 0.0)


def test_chain_leaves_parameter_gradients_alone():
    w = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    p4, mask = _jets(4, 6)
    langevin_negatives(lambda x, m: w * _spread(x, m), p4, mask, None, 2, 0.01, 0.0)
    assert w.grad is None


def test_nae_loss_value_and_minimum():
    e_pos = torch.tensor([0.1, 0.3], dtype=torch.float64)
    e_neg = torch.tensor([0.5, 1.5], dtype=torch.float64)
    want = 0.2 - 1.0 + 0.5 * ((0.01 + 0.09) / 2 + (0.25 + 2.25) / 2)
    assert nae_loss(e_pos, e_neg, 0.5).item() == pytest.approx(want, rel=8 * EPS64)
    # in the negatives' energy the term is lowest at 1 / (2 gamma)
    grid = torch.linspace(0.0, 3.0, 3001, dtype=torch.float64)
    vals = torch.stack([nae_loss(e_pos, g.view(1), 0.5) for g in grid])
    assert grid[int(vals.argmin())].item() == pytest.approx(1.0, abs=1e-3)
    with pytest.raises(ValueError, match="gamma"):
        nae_loss(e_pos, e_neg, -1.0)


def test_fit_with_nae_term_records_and_resumes(tmp_path):
    p4, mask = make_jets(64, 21)
    nae = dict(nae_weight=1.0, nae_steps=2)
    res = fit(dict(LGAE), (p4, mask), epochs=2, out_dir=tmp_path / "a", **nae, **KW)
    assert all(math.isfinite(h["train_nae_negative_energy"]) and h["train_nae_negative_energy"]
               > 0 for h in res.history)
    assert all(h["nae_nonfinite_negatives"] == 0 for h in res.history)
    extra = load_checkpoint(tmp_path / "a" / "last.pt")["extra"]
    assert extra["nae"] == {"weight": 1.0, "steps": 2.0, "step_size": 0.02, "noise": 0.005,
                            "gamma": 1.0, "keep_mass": False}
    # resume continues to the same weights as one uninterrupted run (the chains are seeded)
    fit(dict(LGAE), (p4, mask), epochs=3, out_dir=tmp_path / "a", resume=True, **nae, **KW)
    fit(dict(LGAE), (p4, mask), epochs=3, out_dir=tmp_path / "b", **nae, **KW)
    a = load_checkpoint(tmp_path / "a" / "last.pt")["state_dict"]
    b = load_checkpoint(tmp_path / "b" / "last.pt")["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_fit_nae_weight_zero_is_training_without_the_option(tmp_path):
    p4, mask = make_jets(48, 22)
    a = fit(dict(LGAE), (p4, mask), epochs=1, out_dir=tmp_path / "a", **KW)
    b = fit(dict(LGAE), (p4, mask), epochs=1, out_dir=tmp_path / "b", nae_weight=0.0,
            nae_steps=5, **KW)
    assert "train_nae_negative_energy" not in b.history[-1]
    assert "nae_nonfinite_negatives" not in b.history[-1]
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_fit_nae_refuses_bad_options_and_models(tmp_path):
    from _jets import TINY_GNNAE

    p4, mask = make_jets(32, 23)
    with pytest.raises(ValueError, match="needs an LGAE"):
        fit(dict(TINY_GNNAE), (p4, mask), epochs=1, out_dir=tmp_path / "g", nae_weight=1.0,
            **dict(KW, loss="chamfer"))
    for bad in ({"nae_weight": -1.0}, {"nae_steps": -2}, {"nae_step_size": -0.1},
                {"nae_gamma": -1.0}, {"nae_keep_mass": "yes"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            fit(dict(LGAE), (p4, mask), epochs=1, out_dir=tmp_path / "n", **bad, **KW)


def test_fit_nae_keep_mass_changes_the_negatives_only(tmp_path):
    """The option is recorded; it changes the training (other negatives), and its first
    epoch's negatives start from jets at the batch jets' own masses (tested on the view in
    test_contrastive.py)."""
    p4, mask = make_jets(48, 24)
    nae = dict(nae_weight=1.0, nae_steps=1)
    a = fit(dict(LGAE), (p4, mask), epochs=1, out_dir=tmp_path / "a", **nae, **KW)
    b = fit(dict(LGAE), (p4, mask), epochs=1, out_dir=tmp_path / "b", nae_keep_mass=True,
            **nae, **KW)
    assert load_checkpoint(tmp_path / "b" / "last.pt")["extra"]["nae"]["keep_mass"] is True
    assert b.history[-1]["nae_nonfinite_negatives"] == 0
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert any(not torch.equal(sa[k], sb[k]) for k in sa)
