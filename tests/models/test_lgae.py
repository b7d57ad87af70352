"""LGAE: exact Lorentz equivariance, permutation behaviour, masking, gradients, learning."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from lgae_hep.models import LGAE, build_model

from lgae_hep.losses import chamfer
from lgae_hep.precision import path_rtol

SMALL = dict(num_particles=8, encoder_channels=(2, 3), decoder_channels=(3, 2))


def _rel_dev(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def _equivariance_bound(dtype, lam, maxdim: int) -> float:
    """Bound on _rel_dev between f(Lambda x) and Lambda f(x).

    Each evaluation is within the project's per-evaluation budget SCORE_AMPLIFICATION u of the
    exact network (lgae_hep/precision.py; L ~ 10 stages of <= 120-term sums, with room for an
    untrained network: this one reaches ~550 u gamma^2 in float64), so the two are within
    path_rtol = 2 SCORE_AMPLIFICATION u. In the boosted frame the entries grow by gamma while the
    invariants that the network forms (Minkowski products, CG couplings) do not: the rounding of
    each product is amplified by gamma^2 per 4-vector factor, gamma^(2 (maxdim - 1)) for irreps
    up to (maxdim - 1, maxdim - 1). Measured over 20 model seeds for every aggregation and
    maxdim, rapidity <= 3, float64, AVX-512 and AVX2: at most 1/30 of this bound.
    """
    gamma = float(lam[0, 0])
    return path_rtol(dtype) * gamma ** (2 * (maxdim - 1))


def _transform(model, p4, mask, lam, scalars=None):
    lam_t = torch.as_tensor(lam, dtype=p4.dtype)
    with torch.no_grad():
        out = model(p4, mask, scalars)
        out_t = model(p4 @ lam_t.T, mask, scalars)
    return out, out_t, lam_t


@pytest.mark.parametrize("aggregation", ["mean", "sum", "min", "max", "mix", "min&max"])
@pytest.mark.parametrize("maxdim", [2, 3])
def test_equivariance_float64(aggregation, maxdim, make_jets, random_lorentz):
    # (was hash((aggregation, maxdim)) % 1000: str hashes are salted per process, so the model
    # changed from run to run)
    torch.manual_seed(sum(map(ord, aggregation)) + maxdim)
    nsc = 1 if aggregation in ("mix", "max") else 0
    model = LGAE(aggregation=aggregation, maxdim=maxdim, num_scalars=nsc, dtype="float64",
                 **SMALL)
    p4, mask = make_jets(3, 8, seed=1)
    sc = torch.randn(3, 8, 1, dtype=torch.float64) if nsc else None
    rng = np.random.default_rng(7)
    # bounds: _equivariance_bound, 4.8e-12 .. 3.8e-11 here (were a fixed 1e-9); measured
    # <= 733 u = 8e-14
    for max_rap in (1.0, 2.0):
        out, out_t, lam = _transform(model, p4, mask, random_lorentz(rng, max_rap), sc)
        bound = _equivariance_bound(torch.float64, lam, maxdim)
        assert _rel_dev(out_t.p4, out.p4 @ lam.T) <= bound
        # latent scalars are invariant, latent 4-vectors covariant (Cartesian read-out)
        assert _rel_dev(out_t.latent[(0, 0)], out.latent[(0, 0)]) <= bound
        if nsc:
            assert _rel_dev(out_t.scalars, out.scalars) <= bound
    # rapidity up to 3 (gamma = 9.9): bound 3.5e-10 (maxdim 2) / 3.5e-8 (maxdim 3), was 1e-7;
    # measured <= 1.1e-11: still far below float32 resolution
    out, out_t, lam = _transform(model, p4, mask, random_lorentz(rng, 3.0), sc)
    assert _rel_dev(out_t.p4, out.p4 @ lam.T) <= _equivariance_bound(torch.float64, lam, maxdim)


def test_equivariance_float32_bound(make_jets, random_lorentz):
    """float32: relative deviation <= path_rtol(float32) gamma^2 = 2e-3 gamma^2 up to rapidity 2
    (gamma <= 1.9 here; see _equivariance_bound); measured 0.6 .. 4e-6 (<= 26 u32 gamma^2) with
    AVX-512 and AVX2 kernels alike."""
    torch.manual_seed(3)
    model = LGAE(aggregation="mix", **SMALL)
    p4, mask = make_jets(4, 8, seed=2, dtype=torch.float32)
    rng = np.random.default_rng(3)
    for max_rap in (0.5, 1.0, 2.0):
        out, out_t, lam = _transform(model, p4, mask, random_lorentz(rng, max_rap))
        bound = _equivariance_bound(torch.float32, lam, model.maxdim)
        assert _rel_dev(out_t.p4, out.p4 @ lam.T) <= bound


@pytest.mark.parametrize("aggregation", ["mean", "sum", "min", "max", "min&max"])
def test_latent_permutation_invariant(aggregation, make_jets):
    torch.manual_seed(0)
    model = LGAE(aggregation=aggregation, dtype="float64", **SMALL)
    p4, mask = make_jets(3, 8, seed=4, fill=1.0)
    perm = torch.randperm(8)
    with torch.no_grad():
        a = model(p4, mask).latent
        b = model(p4[:, perm], mask[:, perm]).latent
    for r in a:
        # only the order of the <= 8-particle sums changes: within the two evaluations' budget
        # path_rtol (3.6e-12) of the latent's scale (was rtol 1e-10 + atol 1e-12; measured 2 u)
        scale = a[r].abs().max().item()
        torch.testing.assert_close(a[r], b[r], rtol=0, atol=path_rtol(torch.float64) * scale)


def test_mix_latent_not_permutation_invariant(make_jets):
    torch.manual_seed(0)
    model = LGAE(aggregation="mix", dtype="float64", **SMALL)
    p4, mask = make_jets(3, 8, seed=4, fill=1.0)
    perm = torch.arange(8).flip(0)
    with torch.no_grad():
        a = model(p4, mask).latent[(1, 1)]
        b = model(p4[:, perm], mask[:, perm]).latent[(1, 1)]
    # a real change (measured 0.8 of the scale), far above rounding (path_rtol = 3.6e-12)
    assert (a - b).abs().max() > 1e-3 * a.abs().max()


@pytest.mark.parametrize("aggregation", ["mean", "min&max", "mix"])
def test_padding_changes_nothing(aggregation, make_jets):
    torch.manual_seed(1)
    model = LGAE(aggregation=aggregation, num_scalars=1, dtype="float64", **SMALL)
    p4, mask = make_jets(3, 5, seed=5)
    sc = torch.randn(3, 5, 1, dtype=torch.float64)
    big = torch.cat([p4, torch.full((3, 3, 4), 1e12, dtype=torch.float64)], 1)
    big[:, :5][~mask] = -3e9  # garbage in padded slots as well
    mbig = torch.cat([mask, torch.zeros(3, 3, dtype=torch.bool)], 1)
    scbig = torch.cat([sc, torch.full((3, 3, 1), 1e9, dtype=torch.float64)], 1)
    with torch.no_grad():
        a = model(p4, mask, sc)
        b = model(big, mbig, scbig)
    # bitwise: inputs are zeroed where masked and padded to num_particles before any
    # arithmetic, so both calls run the same kernels on the same numbers
    torch.testing.assert_close(a.p4, b.p4, rtol=0, atol=0)
    torch.testing.assert_close(a.scalars, b.scalars, rtol=0, atol=0)
    assert torch.equal(a.mask, b.mask)
    assert torch.equal(a.mask.sum(1), mask.sum(1))


def test_decoder_depends_on_latent_scalars(make_jets):
    torch.manual_seed(2)
    model = LGAE(**SMALL)
    p4, mask = make_jets(2, 8, seed=6, dtype=torch.float32)
    latent = {r: v.detach().clone() for r, v in model.encode(p4, mask)[0].items()}
    latent[(0, 0)].requires_grad_(True)
    model.decode(latent)["p4"].pow(2).sum().backward()
    assert latent[(0, 0)].grad.abs().max() > 0


def test_config_roundtrip_and_compression():
    model = LGAE(aggregation="min&max", tau_v=4, maxdim=3, num_scalars=2)
    cfg = model.config
    assert json.loads(json.dumps(cfg)) == cfg and cfg["architecture"] == "lgae"
    clone = build_model(cfg)
    assert isinstance(clone, LGAE) and clone.config == cfg
    assert sum(p.numel() for p in clone.parameters()) == sum(
        p.numel() for p in model.parameters())
    # paper default: 1 complex scalar + 2 complex 4-vectors = 18 reals over 90
    # ratios of small integers: one rounding each (rel 1e-12 instead of pytest's default 1e-6)
    assert LGAE().compression_rate == {"paper": pytest.approx(0.2, rel=1e-12),
                                       "p4": pytest.approx(0.15, rel=1e-12)}
    assert model.compression_rate["paper"] == pytest.approx(2 * (2 + 4 * 8) / 90, rel=1e-12)


def test_bad_input(make_jets):
    model = LGAE(**SMALL)
    p4, mask = make_jets(2, 8, seed=0, dtype=torch.float32)
    with pytest.raises(ValueError, match=r"\(B, N, 4\)"):
        model(p4[..., :3], mask)
    with pytest.raises(ValueError, match="bool"):
        model(p4, mask.float())
    with pytest.raises(ValueError, match="num_particles=8"):
        model(torch.zeros(2, 9, 4), torch.ones(2, 9, dtype=torch.bool))
    bad = p4.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        model(bad, mask)
    with pytest.raises(ValueError, match="scalars"):
        model(p4, mask, torch.zeros(2, 8, 1))
    with pytest.raises(ValueError, match="aggregation"):
        LGAE(aggregation="median")
    with pytest.raises(ValueError, match="maxdim"):
        LGAE(maxdim=5)
    with pytest.raises(ValueError, match="architecture"):
        build_model({"architecture": "transformer"})


def test_overfits_64_jets(make_jets):
    """Learning, not rounding. A kernel change (another CPU, ATEN_CPU_CAPABILITY=avx2) perturbs
    the trajectory at rounding level, which a chaotic optimisation may amplify: the result is
    then a draw from the same distribution as another seed's. Measured min(last 10) / first loss
    after 150 steps over torch seeds 0-9: 0.024 .. 0.091 (seed 3), the same to 3 digits under
    AVX2; this seed 0.063, also under 10 perturbations of the initial weights by 1 ulp (the LGAE
    is not chaotic over 150 steps). The loss drops ~10x in the first 50 steps and then slowly,
    so the former threshold 1/10 sat on that plateau (worst seed 0.091). 1/5 passes the worst
    seed with 2.2x margin (this seed 3.2x); a network whose latent carries nothing (encoder
    output zeroed) stays at 1.0, one that does not learn at 1.
    """
    torch.manual_seed(0)
    model = LGAE(aggregation="mix", tau_v=4, **SMALL)
    p4, mask = make_jets(64, 8, seed=9, dtype=torch.float32)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(150):
        out = model(p4, mask)
        loss = chamfer(out.p4, p4, out.mask, mask, scale=model.p4_scale).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all()
    assert min(losses[-10:]) < losses[0] / 5
