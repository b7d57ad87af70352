"""LGAE: exact Lorentz equivariance, permutation behaviour, masking, gradients, learning."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from lgae_hep.models import LGAE, build_model

from lgae_hep.losses import chamfer

SMALL = dict(num_particles=8, encoder_channels=(2, 3), decoder_channels=(3, 2))


def _rel_dev(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def _transform(model, p4, mask, lam, scalars=None):
    lam_t = torch.as_tensor(lam, dtype=p4.dtype)
    with torch.no_grad():
        out = model(p4, mask, scalars)
        out_t = model(p4 @ lam_t.T, mask, scalars)
    return out, out_t, lam_t


@pytest.mark.parametrize("aggregation", ["mean", "sum", "min", "max", "mix", "min&max"])
@pytest.mark.parametrize("maxdim", [2, 3])
def test_equivariance_float64(aggregation, maxdim, make_jets, random_lorentz):
    torch.manual_seed(hash((aggregation, maxdim)) % 1000)
    nsc = 1 if aggregation in ("mix", "max") else 0
    model = LGAE(aggregation=aggregation, maxdim=maxdim, num_scalars=nsc, dtype="float64",
                 **SMALL)
    p4, mask = make_jets(3, 8, seed=1)
    sc = torch.randn(3, 8, 1, dtype=torch.float64) if nsc else None
    rng = np.random.default_rng(7)
    for max_rap in (1.0, 2.0):
        out, out_t, lam = _transform(model, p4, mask, random_lorentz(rng, max_rap), sc)
        assert _rel_dev(out_t.p4, out.p4 @ lam.T) <= 1e-9
        # latent scalars are invariant, latent 4-vectors covariant (Cartesian read-out)
        assert _rel_dev(out_t.latent[(0, 0)], out.latent[(0, 0)]) <= 1e-9
        if nsc:
            assert _rel_dev(out_t.scalars, out.scalars) <= 1e-9
    # rapidity up to 3: still far below float32 resolution
    out, out_t, lam = _transform(model, p4, mask, random_lorentz(rng, 3.0), sc)
    assert _rel_dev(out_t.p4, out.p4 @ lam.T) <= 1e-7


def test_equivariance_float32_bound(make_jets, random_lorentz):
    """float32: relative deviation <= 2e-3 up to rapidity 2 (measured ~1e-5 .. 5e-4)."""
    torch.manual_seed(3)
    model = LGAE(aggregation="mix", **SMALL)
    p4, mask = make_jets(4, 8, seed=2, dtype=torch.float32)
    rng = np.random.default_rng(3)
    for max_rap in (0.5, 1.0, 2.0):
        out, out_t, lam = _transform(model, p4, mask, random_lorentz(rng, max_rap))
        assert _rel_dev(out_t.p4, out.p4 @ lam.T) <= 2e-3


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
        torch.testing.assert_close(a[r], b[r], rtol=1e-10, atol=1e-12)


def test_mix_latent_not_permutation_invariant(make_jets):
    torch.manual_seed(0)
    model = LGAE(aggregation="mix", dtype="float64", **SMALL)
    p4, mask = make_jets(3, 8, seed=4, fill=1.0)
    perm = torch.arange(8).flip(0)
    with torch.no_grad():
        a = model(p4, mask).latent[(1, 1)]
        b = model(p4[:, perm], mask[:, perm]).latent[(1, 1)]
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
    assert LGAE().compression_rate == {"paper": pytest.approx(0.2), "p4": pytest.approx(0.15)}
    assert model.compression_rate["paper"] == pytest.approx(2 * (2 + 4 * 8) / 90)


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
    assert min(losses[-10:]) < losses[0] / 10
