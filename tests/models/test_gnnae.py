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


def test_relative_coordinates_roundtrip(make_jets):
    p4, mask = make_jets(4, 6, seed=1)
    feats, axis = relative_coordinates(p4, mask)
    # pT_rel of real particles sums to ~1 for collinear jets and phi_rel is wrapped
    assert torch.all(feats[..., 1].abs() <= math.pi)
    assert torch.all(feats[~mask] == 0)
    back = relative_to_p4(feats, axis)
    pt = torch.hypot(p4[..., 1], p4[..., 2])
    torch.testing.assert_close(torch.hypot(back[..., 1], back[..., 2])[mask], pt[mask])
    torch.testing.assert_close(back[..., 1:][mask], p4[..., 1:][mask])  # massless: same 3-mom.


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
    torch.testing.assert_close(a.p4, b.p4, rtol=0, atol=0)
    assert torch.equal(a.mask.sum(1), mask.sum(1))
    key = encoding
    assert a.latent[key].shape == ((3, 18) if encoding == "jet" else (3, 8, 2))
    # massless outputs
    m2 = a.p4[..., 0] ** 2 - (a.p4[..., 1:] ** 2).sum(-1)
    assert m2.abs().max() <= 1e-8 * a.p4[..., 0].max() ** 2
    cfg = model.config
    assert json.loads(json.dumps(cfg)) == cfg
    assert build_model(cfg).config == cfg


def test_jet_latent_permutation_invariant(make_jets):
    torch.manual_seed(0)
    model = GNNAE(encoding="jet", num_particles=8, dtype="float64")
    p4, mask = make_jets(3, 8, seed=3, fill=1.0)
    perm = torch.randperm(8)
    with torch.no_grad():
        torch.testing.assert_close(model(p4, mask).latent["jet"],
                                   model(p4[:, perm], mask[:, perm]).latent["jet"])


@pytest.mark.parametrize("encoding", ["jet", "particle"])
def test_overfits_64_jets(encoding, make_jets):
    torch.manual_seed(0)
    model = GNNAE(encoding=encoding, num_particles=8, latent_dim=18 if encoding == "jet" else 3)
    p4, mask = make_jets(64, 8, seed=9, dtype=torch.float32)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2 if encoding == "jet" else 2e-2)
    losses = []
    for _ in range(200):
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
    assert min(losses[-10:]) < losses[0] / 10


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
    assert GNNAE().compression_rate["paper"] == pytest.approx(18 / 90)
