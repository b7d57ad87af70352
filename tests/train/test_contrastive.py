"""The contrastive objective (lgae_hep.contrastive, fit(contrastive_weight=...)).

Physics of the augmentations (collinear splittings conserve 4-momentum and keep directions,
soft smearing keeps pT and mass, the anomalous view adds hard wide-angle prongs and keeps the
jet direction), the exact value of the InfoNCE loss where it is known in closed form, and the
bookkeeping of the fit option (weight 0 is the training without it, resume continues the head,
the head sees only invariants). Never the network's quality.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _jets import OBJECTIVE_FIT_KW, TINY_LGAE, make_jets  # noqa: E402
from lgae_hep.models import build_model  # noqa: E402

from lgae_hep.checkpoint import CheckpointError, load_checkpoint  # noqa: E402
from lgae_hep.contrastive import (  # noqa: E402
    ContrastiveHead,
    _wide_prongs,
    collinear_split,
    contrastive_loss,
    hard_prongs,
    keep_hardest,
    narrow_to_mass,
    soft_smear,
)
from lgae_hep.lorentz import lorentz_matrix  # noqa: E402
from lgae_hep.objectives import latent_invariants  # noqa: E402
from lgae_hep.train import fit  # noqa: E402

LGAE, KW = TINY_LGAE, OBJECTIVE_FIT_KW
EPS64 = torch.finfo(torch.float64).eps

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _jets(n=64, seed=0, num_particles=8):
    p4, mask = make_jets(n, seed, num_particles)
    return p4.double(), mask


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _mass(p4):
    j = p4.sum(1)
    return torch.sqrt((j[:, 0] ** 2 - (j[:, 1:] ** 2).sum(-1)).clamp_min(0))


def test_keep_hardest_orders_by_energy_and_pads_with_zeros():
    p4 = torch.tensor([[[1.0, 1, 0, 0], [3.0, 3, 0, 0], [2.0, 2, 0, 0], [9.0, 9, 0, 0]]]).double()
    mask = torch.tensor([[True, True, True, False]])
    out, keep = keep_hardest(p4, mask, 3)
    assert out[0, :, 0].tolist() == [3.0, 2.0, 1.0]  # the padded 9 GeV slot never enters
    assert keep.tolist() == [[True, True, True]]
    out, keep = keep_hardest(p4, mask, 4)
    assert keep.tolist() == [[True, True, True, False]] and out[0, 3].abs().sum() == 0


def test_collinear_split_conserves_momentum_when_slots_are_free():
    p4, mask = _jets(64, 1, 8)
    wide = torch.cat([p4, torch.zeros_like(p4)], 1)  # 8 free slots: nothing is dropped
    wmask = torch.cat([mask, torch.zeros_like(mask)], 1)
    out, om = collinear_split(wide, wmask, _gen(), prob=0.5)
    assert int(om.sum()) > int(mask.sum())  # something was split
    assert (om.sum(1) - mask.sum(1)).max() <= 8
    # each daughter pair adds up to its parent exactly (p - z p), so the jet sum agrees to the
    # rounding of a re-ordered sum of <= 16 terms of size <= E_jet
    jet_in, jet_out = wide.sum(1), out.sum(1)
    tol = 16 * EPS64 * jet_in[:, 0].abs()
    assert ((jet_out - jet_in).abs().amax(-1) <= tol).all()
    # every output particle is parallel to an input particle: zero cross product
    for b in range(4):
        for q in out[b][om[b]]:
            cross = torch.linalg.cross(wide[b, :, 1:], q[1:].expand(16, 3)).norm(dim=-1)
            rel = cross / (wide[b, :, 1:].norm(dim=-1) * q[1:].norm() + 1e-300)
            assert bool(((rel < 8 * EPS64) & wmask[b]).any())


def test_collinear_split_full_jets_drop_only_the_softest():
    p4, mask = _jets(32, 2, 8)
    out, om = collinear_split(p4, mask, _gen(3), prob=0.5)
    assert out.shape == p4.shape and om.shape == mask.shape
    e_in = torch.where(mask, p4[..., 0], torch.zeros(())).sum(1)
    e_out = torch.where(om, out[..., 0], torch.zeros(())).sum(1)
    assert (e_out <= e_in * (1 + 16 * EPS64)).all()
    # what is dropped is never harder than what is kept: at most one candidate per split
    # (<= n of them), each no harder than the softest kept particle
    lost = e_in - e_out
    softest_kept = torch.where(om, out[..., 0], torch.full_like(out[..., 0], math.inf)).amin(1)
    assert (lost <= mask.sum(1) * softest_kept + 16 * EPS64 * e_in).all()
    assert bool((lost > 0).any())  # some full jet did drop its softest energy


def test_soft_smear_keeps_pt_and_mass_and_moves_hard_particles_little():
    p4, mask = _jets(64, 4, 8)
    out, om = soft_smear(p4, mask, _gen(5), soft_scale=0.1)
    assert torch.equal(om, mask)
    pt_in, pt_out = torch.hypot(p4[..., 1], p4[..., 2]), torch.hypot(out[..., 1], out[..., 2])
    assert torch.allclose(pt_out[mask], pt_in[mask], rtol=8 * EPS64, atol=0)
    m2 = lambda x: x[..., 0] ** 2 - (x[..., 1:] ** 2).sum(-1)  # noqa: E731
    # the mass is kept (m^2 < 0 from float32 input rounding counts as 0), to the rounding of
    # E^2 - |p|^2 in float64
    diff = (m2(out) - m2(p4).clamp_min(0))[mask].abs()
    assert (diff <= 64 * EPS64 * out[..., 0][mask] ** 2).all()
    d_eta = torch.asinh(out[..., 3] / pt_out) - torch.asinh(p4[..., 3] / pt_in)
    hard = mask & (pt_in > 100)
    assert d_eta[hard].abs().max() < 0.01  # sigma = 0.1 GeV / pT <= 1e-3 there
    assert torch.equal(out[~mask], p4[~mask])


def test_hard_prongs_keep_direction_and_add_mass():
    p4, mask = _jets(64, 6, 8)
    out, om = hard_prongs(p4, mask, _gen(7))
    jin, jout = p4.sum(1), out.sum(1)
    cosang = (jin[:, 1:] * jout[:, 1:]).sum(-1) / (jin[:, 1:].norm(dim=-1)
                                                   * jout[:, 1:].norm(dim=-1))
    # the direction is kept, up to the soft particles that make room for the prongs
    assert (cosang > 0.99).all()
    assert (_mass(out) > _mass(p4)).float().mean() > 0.9
    # every particle on or inside its light cone
    assert (out[..., 0][om] >= out[..., 1:].norm(dim=-1)[om] * (1 - 8 * EPS64)).all()


def test_hard_prongs_keep_mass_gives_more_prongs_at_the_jet_mass():
    p4, mask = _jets(64, 6, 8)
    heavy, hm = hard_prongs(p4, mask, _gen(7))
    out, om = hard_prongs(p4, mask, _gen(7), keep_mass=True)
    assert torch.equal(om, hm)  # the same draws: the same particles, only narrowed
    # a view the prongs made heavier (nearly all) is back at the original jet mass, to the
    # bisection's 2^-60 in the factor and the rounding of m^2 = E^2 - |p|^2 (relative
    # 64 eps E^2 / m^2 for 8 particles); a lighter one is kept as it is
    m_in = _mass(p4)
    heavier = _mass(heavy) > m_in
    assert heavier.float().mean() > 0.9
    tol = 64 * EPS64 * (out.sum(1)[:, 0] ** 2 / m_in ** 2)
    assert ((_mass(out) - m_in).abs() / m_in <= tol + 2.0 ** -50)[heavier].all()
    assert torch.equal(out[~heavier], heavy[~heavier])
    # the 3-momentum of the view is that of the heavy view: only the spread about the axis
    # shrank; each particle keeps its own mass (massless prongs stay massless)
    assert torch.allclose(out.sum(1)[:, 1:], heavy.sum(1)[:, 1:], rtol=0,
                          atol=64 * EPS64 * float(heavy[..., 0].sum(1).max()))
    own = lambda x: x[..., 0] ** 2 - (x[..., 1:] ** 2).sum(-1)  # noqa: E731
    e2 = heavy[..., 0] ** 2
    assert ((own(out) - own(heavy)).abs()[om] <= 64 * EPS64 * e2[om]).all()
    assert torch.equal(out[~om], torch.zeros_like(out[~om]))


def _padded(p4, mask, slots):
    """The jets with ``slots`` free (zero) particle slots appended."""
    b = p4.shape[0]
    return (torch.cat([p4, p4.new_zeros(b, slots, 4)], 1),
            torch.cat([mask, mask.new_zeros(b, slots)], 1))


def test_wide_prong_particles_are_massless_share_the_prong_energy_and_spread_as_asked():
    gen = _gen(11)
    b, k, sigma = 2000, 4, 0.05
    direction = torch.randn(b, 2, 3, generator=gen, dtype=torch.float64)
    direction = direction / direction.norm(dim=-1, keepdim=True)
    energy = 1 + 99 * torch.rand(b, 2, generator=gen, dtype=torch.float64)
    parts = _wide_prongs(direction, energy, gen, (sigma, sigma), k).view(b, 2, k, 4)
    e, p = parts[..., 0], parts[..., 1:]
    # massless to the rounding of one normalised direction (a few eps of E)
    assert ((e - p.norm(dim=-1)).abs() <= 8 * EPS64 * e).all()
    # the fractions add up to one: the energies to the prong's, to k roundings
    assert ((e.sum(-1) - energy).abs() <= 4 * k * EPS64 * energy).all()
    # every particle near its prong: a 2D Gaussian offset of width sigma passes 8 sigma with
    # probability exp(-32) ~ 1e-14, never among these 16,000
    cos = (p * direction.unsqueeze(2)).sum(-1) / p.norm(dim=-1)
    assert (cos > math.cos(8 * sigma)).all()
    # the prong's own mass: m^2 = sum_ij E_i E_j (1 - cos theta_ij), E[theta_ij^2] = 4 sigma^2
    # (small angles) and E[f_i f_j] = 1 / (k (k + 1)) on the simplex, so
    # E[m^2 / E^2] = k (k - 1) / 2 * 4 sigma^2 / (k (k + 1)) = 2 (k - 1) sigma^2 / (k + 1);
    # the mean of 4,000 prongs to 10 %: the ratio spreads by about its own size from prong to
    # prong, so the mean's standard error is about 1/sqrt(4000) ~ 1.6 %, and the small-angle
    # terms dropped above are O(sigma^2) ~ 0.3 %
    tot = parts.sum(2)
    m2 = tot[..., 0] ** 2 - (tot[..., 1:] ** 2).sum(-1)
    expect = 2 * (k - 1) * sigma ** 2 / (k + 1)
    ratio = (m2 / energy ** 2).mean() / expect
    assert 0.9 < float(ratio) < 1.1


def test_hard_prongs_spread_makes_k_particles_per_prong_from_the_same_draws():
    p4, mask = _padded(*_jets(64, 6, 8), 2 * 4)
    one, om1 = hard_prongs(p4, mask, _gen(7))
    wide, omw = hard_prongs(p4, mask, _gen(7), spread=(0.02, 0.10), spread_particles=4)
    n_in = mask.sum(1)
    # with free slots nothing is dropped: one or two prongs, k particles each, and the same
    # one-or-two draw as the single-particle view
    n_prongs = om1.sum(1) - n_in
    assert set(n_prongs.tolist()) == {1, 2}
    assert torch.equal(omw.sum(1) - n_in, 4 * n_prongs)
    # spread=None is the view of before, bit for bit
    again, oma = hard_prongs(p4, mask, _gen(7), spread=None)
    assert torch.equal(again, one) and torch.equal(oma, om1)
    # the jet direction is kept, and the view keeps the original jet mass with keep_mass
    jin, jout = p4.sum(1), wide.sum(1)
    cosang = (jin[:, 1:] * jout[:, 1:]).sum(-1) / (jin[:, 1:].norm(dim=-1)
                                                   * jout[:, 1:].norm(dim=-1))
    assert (cosang > 0.99).all()
    heavy = _mass(wide) > _mass(p4)
    assert heavy.float().mean() > 0.9
    kept, km = hard_prongs(p4, mask, _gen(7), keep_mass=True, spread=(0.02, 0.10))
    assert torch.equal(km, omw)
    m_in = _mass(p4)
    n_max = int(km.sum(1).max())
    tol = 8 * n_max * EPS64 * (kept.sum(1)[:, 0] ** 2 / m_in ** 2)
    assert ((_mass(kept) - m_in).abs() / m_in <= tol + 2.0 ** -50)[heavy].all()
    assert (kept[..., 0][km] >= kept[..., 1:].norm(dim=-1)[km] * (1 - 8 * EPS64)).all()


def test_narrow_to_mass_leaves_lighter_jets_and_is_permutation_covariant():
    p4, mask = _jets(32, 8, 8)
    m = _mass(p4)
    assert torch.equal(narrow_to_mass(p4, mask, m * 1.5), p4)  # lighter than asked: as it was
    half = narrow_to_mass(p4, mask, m * 0.5)
    assert torch.allclose(_mass(half), m * 0.5, rtol=1e-9)
    perm = torch.randperm(8, generator=_gen(3))
    moved = narrow_to_mass(p4[:, perm], mask[:, perm], m * 0.5)
    assert torch.allclose(moved, half[:, perm], rtol=0,
                          atol=64 * EPS64 * float(p4[..., 0].sum(1).max()))


def test_augmentations_refuse_bad_input():
    p4, mask = _jets(4, 0, 8)
    with pytest.raises(ValueError, match="boolean"):
        collinear_split(p4, mask.int(), _gen())
    with pytest.raises(ValueError, match=r"\(B, N, 4\)"):
        hard_prongs(p4[..., :3], mask, _gen())
    for bad in ((0.0, 0.1), (0.1, 0.05), (0.1, 0.5)):
        with pytest.raises(ValueError, match="spread"):
            hard_prongs(p4, mask, _gen(), spread=bad)
    with pytest.raises(ValueError, match="spread_particles"):
        hard_prongs(p4, mask, _gen(), spread=(0.02, 0.1), spread_particles=1)


def test_contrastive_loss_closed_form():
    # orthonormal embeddings with the positive equal to the anchor: for anchor i the logits
    # are 1/T for its positive and 0 for the 2B - 2 other jets (and for the orthogonal
    # negative view), so the loss is log(1 + (2B - 2) e^{-1/T}) (+ e^{-1/T} with z_neg)
    b, t = 4, 0.5
    z = torch.eye(8, dtype=torch.float64)[:b]
    zn = torch.eye(8, dtype=torch.float64)[b:2 * b]
    got = contrastive_loss(z, z.clone(), temperature=t)
    want = math.log(1 + (2 * b - 2) * math.exp(-1 / t))
    assert torch.allclose(got, torch.full((b,), want, dtype=torch.float64), rtol=16 * EPS64)
    got = contrastive_loss(z, z.clone(), zn, temperature=t)
    want = math.log(1 + (2 * b - 1) * math.exp(-1 / t))
    assert torch.allclose(got, torch.full((b,), want, dtype=torch.float64), rtol=16 * EPS64)
    # the negative view at the anchor's place makes it worse: log(1 + ... + e^{0})
    worse = contrastive_loss(z, z.clone(), z.clone(), temperature=t)
    assert (worse > got).all()
    with pytest.raises(ValueError, match="two jets"):
        contrastive_loss(z[:1], z[:1])


def test_contrastive_loss_is_permutation_equivariant():
    g = _gen(1)
    z = torch.nn.functional.normalize(torch.randn(6, 5, generator=g, dtype=torch.float64), dim=1)
    zp = torch.nn.functional.normalize(torch.randn(6, 5, generator=g, dtype=torch.float64), dim=1)
    zn = torch.nn.functional.normalize(torch.randn(6, 5, generator=g, dtype=torch.float64), dim=1)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    a = contrastive_loss(z, zp, zn)[perm]
    b = contrastive_loss(z[perm], zp[perm], zn[perm])
    # the same terms summed in another order: a few ulps of the log-sum-exp
    assert torch.allclose(a, b, rtol=64 * EPS64, atol=64 * EPS64 * 10)


def test_head_embedding_is_lorentz_invariant():
    torch.manual_seed(0)
    model = build_model(dict(LGAE, dtype="float64")).eval()
    p4, mask = _jets(8, 9, 8)
    lam = torch.as_tensor(lorentz_matrix([0.3, -0.2, 0.5], [0.2, 0.1, -0.4]), dtype=torch.float64)
    head = ContrastiveHead(latent_invariants(model.encode(p4, mask)[0]).shape[1]).double()
    with torch.no_grad():
        a = head(latent_invariants(model.encode(p4, mask)[0]))
        b = head(latent_invariants(model.encode(p4 @ lam.T, mask)[0]))
    # float64 through a 1-layer LGAE and a 2-layer MLP: far below 1e-8
    assert torch.allclose(a, b, atol=1e-8)


def test_fit_with_contrastive_term_records_and_resumes(tmp_path):
    p4, mask = make_jets(96, 11)
    res = fit(dict(LGAE), (p4, mask), epochs=2, out_dir=tmp_path / "a",
              contrastive_weight=0.05, **KW)
    assert res.contrastive_head is not None
    assert all(math.isfinite(h["train_contrastive_loss"]) for h in res.history)
    extra = load_checkpoint(tmp_path / "a" / "last.pt")["extra"]
    assert extra["contrastive_weight"] == 0.05 and "contrastive_head" in extra
    # resume continues to the same weights as one uninterrupted run of 3 epochs
    fit(dict(LGAE), (p4, mask), epochs=3, out_dir=tmp_path / "a", resume=True,
        contrastive_weight=0.05, **KW)
    whole = fit(dict(LGAE), (p4, mask), epochs=3, out_dir=tmp_path / "b",
                contrastive_weight=0.05, **KW)
    a = load_checkpoint(tmp_path / "a" / "last.pt")["state_dict"]
    b = load_checkpoint(tmp_path / "b" / "last.pt")["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert whole.history[-1]["train_contrastive_loss"] > 0
    # a run without the head cannot resume one with it (and the reverse)
    with pytest.raises(CheckpointError, match="contrastive head"):
        fit(dict(LGAE), (p4, mask), epochs=4, out_dir=tmp_path / "a", resume=True, **KW)


def test_fit_weight_zero_is_training_without_the_option(tmp_path):
    p4, mask = make_jets(64, 12)
    a = fit(dict(LGAE), (p4, mask), epochs=1, out_dir=tmp_path / "a", **KW)
    b = fit(dict(LGAE), (p4, mask), epochs=1, out_dir=tmp_path / "b", contrastive_weight=0.0,
            **KW)
    assert b.contrastive_head is None
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_fit_contrastive_refuses_models_it_cannot_augment(tmp_path):
    from _jets import TINY_GNNAE

    p4, mask = make_jets(32, 13)
    with pytest.raises(ValueError, match="needs an LGAE"):
        fit(dict(TINY_GNNAE), (p4, mask), epochs=1, out_dir=tmp_path / "g",
            contrastive_weight=0.1, **dict(KW, loss="chamfer"))
    with pytest.raises(ValueError, match="contrastive_weight"):
        fit(dict(LGAE), (p4, mask), epochs=1, out_dir=tmp_path / "n", contrastive_weight=-1.0,
            **KW)
