"""GNNAE-JL / GNNAE-PL baselines: shapes, masking, relative coordinates, learning, bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from lgae_hep.models import GNNAE, build_model
from lgae_hep.models.gnnae import relative_coordinates, relative_to_p4

from lgae_hep.losses import chamfer
from lgae_hep.precision import path_rtol, unit_roundoff

U64 = unit_roundoff("float64")


def test_relative_coordinates_roundtrip(make_jets):
    p4, mask = make_jets(4, 6, seed=1)
    feats, axis = relative_coordinates(p4, mask)
    # pT_rel of real particles sums to ~1 for collinear jets and phi_rel is wrapped
    assert torch.all(feats[..., 1].abs() <= math.pi)
    assert torch.all(feats[~mask] == 0)
    back = relative_to_p4(feats, axis)
    pt = torch.hypot(p4[..., 1], p4[..., 2])
    # float64: pT -> pT / pT_jet -> x pT_jet -> cos/sin -> hypot, ~6 u (measured 1.8 u); 32 u.
    # Components: eta and phi go through a difference and back (|eta| <= 0.7), each component
    # ~6 u of E (measured 2 u E; relative to a small component it can be larger); 32 u E_max.
    # (assert_close's float64 default, rtol 1e-7, was float32-sized.)
    torch.testing.assert_close(torch.hypot(back[..., 1], back[..., 2])[mask], pt[mask],
                               rtol=32 * U64, atol=0)  # fmt: skip
    atol = 32 * U64 * p4[..., 0].max().item()
    # massless: same 3-momentum
    torch.testing.assert_close(back[..., 1:][mask], p4[..., 1:][mask], rtol=0, atol=atol)


@pytest.mark.parametrize("encoding", ["jet", "particle"])
def test_shapes_padding_and_config(encoding, make_jets):
    torch.manual_seed(0)
    model = GNNAE(encoding=encoding, num_particles=8, num_scalars=1, dtype="float64")
    p4, mask = make_jets(3, 5, seed=2)
    sc = torch.randn(3, 5, 1, dtype=torch.float64)
    big = torch.cat([p4, torch.full((3, 3, 4), 1e12, dtype=torch.float64)], 1)
    big[:, :5][~mask] = 7e8
    mbig = torch.cat([mask, torch.zeros(3, 3, dtype=torch.bool)], 1)
    scb = torch.cat([sc, torch.full((3, 3, 1), -1e9, dtype=torch.float64)], 1)
    with torch.no_grad():
        a = model(p4, mask, sc)
        b = model(big, mbig, scb)
    assert a.p4.shape == (3, 8, 4) and a.features.shape == (3, 8, 4)
    # bitwise: inputs are zeroed where masked and padded to num_particles before any
    # arithmetic, so both calls run the same kernels on the same numbers
    torch.testing.assert_close(a.p4, b.p4, rtol=0, atol=0)
    assert torch.equal(a.mask.sum(1), mask.sum(1))
    key = encoding
    assert a.latent[key].shape == ((3, 18) if encoding == "jet" else (3, 8, 2))
    # massless outputs
    m2 = a.p4[..., 0] ** 2 - (a.p4[..., 1:] ** 2).sum(-1)
    # float64 E = pT cosh, p = pT (cos, sin, sinh): ~2 u each, so E^2 - p^2 is ~12 u E^2
    # (measured <= 4.7 u E^2); 64 u (was 1e-8, float32-sized)
    assert m2.abs().max() <= 64 * U64 * a.p4[..., 0].max() ** 2
    cfg = model.config
    assert json.loads(json.dumps(cfg)) == cfg
    assert build_model(cfg).config == cfg


def test_jet_latent_permutation_invariant(make_jets):
    torch.manual_seed(0)
    model = GNNAE(encoding="jet", num_particles=8, dtype="float64")
    p4, mask = make_jets(3, 8, seed=3, fill=1.0)
    perm = torch.randperm(8)
    with torch.no_grad():
        a = model(p4, mask).latent["jet"]
        b = model(p4[:, perm], mask[:, perm]).latent["jet"]
    # only the order of the <= 8-particle sums changes: within the two evaluations' budget
    # path_rtol (3.6e-12) of the latent's scale (was assert_close's float64 default 1e-7;
    # measured 2.3 u)
    torch.testing.assert_close(a, b, rtol=0, atol=path_rtol(torch.float64) * a.abs().max().item())


# Learning, not rounding: min(last 10) / first loss. A kernel change (another CPU,
# ATEN_CPU_CAPABILITY=avx2) perturbs the trajectory at rounding level and the optimisation
# amplifies it, so the result on another machine is a draw from the same distribution as
# another seed's. Measured over torch seeds 0-9, default and AVX2 kernels (20 draws), and for
# this seed under 10 perturbations of the initial weights by 1 ulp:
#   jet, 300 steps:      seeds 0.014 .. 0.053; this seed 0.016 / 0.017 (AVX2), 0.011 .. 0.021
#   particle, 300 steps: seeds 0.000 .. 0.112; this seed 0.043 / 0.013 (AVX2), 0.005 .. 0.030
# With the former 200 steps the worst seeds were 0.130 (jet) and 0.163 (particle) against a
# 1/10 threshold; the particle variant at its former lr 2e-2 diverged (loss x 1e5 .. 1e9) for 2
# of 10 seeds and for this seed with AVX2 kernels (loss 2.63 -> 1.5e8), hence lr 1e-2 (max loss
# <= 1.12 x the first over all 20 draws). Thresholds 1/8 (jet) and 1/4 (particle) pass the
# worst draw with >= 2.2x margin. A network whose decoder sees nothing of the input (latent
# zeroed) still learns the best input-independent cloud and stops at 0.357 (jet) / 0.335
# (particle) for this seed's initial loss, above both thresholds; one that does not learn
# stays at 1.
_OVERFIT = {"jet": dict(latent_dim=18, lr=1e-2, steps=300, ratio=1 / 8),
            "particle": dict(latent_dim=3, lr=1e-2, steps=300, ratio=1 / 4)}


@pytest.mark.parametrize("encoding", ["jet", "particle"])
def test_overfits_64_jets(encoding, make_jets):
    cfg = _OVERFIT[encoding]
    torch.manual_seed(0)
    model = GNNAE(encoding=encoding, num_particles=8, latent_dim=cfg["latent_dim"])
    p4, mask = make_jets(64, 8, seed=9, dtype=torch.float32)
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    losses = []
    for _ in range(cfg["steps"]):
        out = model(p4, mask)
        # Chamfer in (eta_rel, phi_rel, pT_rel), padded to the 4 components chamfer expects
        pad = torch.nn.functional.pad
        loss = chamfer(pad(out.features, (0, 1)), pad(out.input_features, (0, 1)),
                       out.mask, mask).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all()
    assert min(losses[-10:]) < losses[0] * cfg["ratio"]


def test_bad_input(make_jets):
    model = GNNAE(num_particles=8)
    p4, mask = make_jets(2, 8, dtype=torch.float32)
    with pytest.raises(ValueError, match="shape"):
        model(p4[0], mask)
    with pytest.raises(ValueError, match="bool"):
        model(p4, mask.int())
    with pytest.raises(ValueError, match="num_particles=8"):
        model(torch.zeros(1, 10, 4), torch.ones(1, 10, dtype=torch.bool))
    bad = p4.clone()
    bad[1, 0, 2] = float("inf")
    with pytest.raises(ValueError, match="non-finite"):
        model(bad, mask)
    with pytest.raises(ValueError, match="encoding"):
        GNNAE(encoding="graph")
    assert GNNAE().compression_rate["paper"] == pytest.approx(18 / 90, rel=1e-12)  # 1 rounding
