"""The jet-mass and jet 4-momentum terms of the training loss (fit(mass_weight=...,
momentum_weight=...), objectives.jet_mass_term / jet_momentum_term).

What can fail: the term is the squared relative jet-mass error of known jets (decays of a known
mass, boosted), padded slots never count, near-massless and spacelike jets stay finite, the
gradient is finite, ``mass_weight=0`` is the loss without the term, and fit's validation loss
is the loss with it (and records the weight).
"""

from __future__ import annotations

import copy
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _jets import make_jets  # noqa: E402
from lgae_hep.models import build_model  # noqa: E402

from lgae_hep.checkpoint import load_checkpoint  # noqa: E402
from lgae_hep.lorentz.group import boost  # noqa: E402
from lgae_hep.objectives import (  # noqa: E402
    MASS_FLOOR,
    forward_model,
    jet_mass_term,
    jet_momentum_term,
    per_jet_loss,
)
from lgae_hep.train import fit  # noqa: E402

U64 = 2.0 ** -53
LGAE = {"architecture": "lgae", "num_particles": 8, "tau_v": 2, "aggregation": "mix",
        "encoder_channels": [2], "decoder_channels": [2], "mlp_hidden": 4, "num_basis": 3}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _decay(mass: float, rapidity: float, n_pad: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """A two-body decay of ``mass`` at rest into massless daughters along x, boosted along z
    (rapidity ``rapidity``) and rotated into a generic direction by a boost along y; padded
    with ``n_pad`` slots of garbage that the mask excludes."""
    rest = np.array([[mass / 2, mass / 2, 0.0, 0.0], [mass / 2, -mass / 2, 0.0, 0.0]])
    lam = boost([0.0, 0.3, rapidity])
    p = rest @ lam.T
    pad = np.full((n_pad, 4), 1e3)  # anything: a real slot this large would move the mass
    p4 = torch.from_numpy(np.concatenate([p, pad]))[None]
    mask = torch.tensor([[True, True] + [False] * n_pad])
    return p4, mask


@pytest.mark.parametrize("rapidity", [0.0, 1.5, 3.0])
@pytest.mark.parametrize("delta", [-0.2, -1e-3, 0.01, 0.3])
def test_term_is_the_relative_mass_error_of_known_jets(rapidity, delta):
    m = 80.0
    p4, mask = _decay(m, rapidity)
    reco, mask_r = _decay(m * (1 + delta), rapidity, n_pad=2)
    got = float(jet_mass_term(reco, p4, mask_r, mask)[0])
    # (m'^2 - m^2) / (2 m^2) = delta (1 + delta / 2) exactly
    want = (delta * (1 + delta / 2)) ** 2
    # float64 rounding: each m^2 = E^2 - |p|^2 is exact to ~16 u E^2 (the boost, the squares
    # and the sums; E^2 / m^2 <= cosh^2 of the total rapidity), the difference of two of them
    # is relative to m'^2 - m^2 ~ 2 |delta| m^2, and the term squares that relative error
    cosh2 = math.cosh(abs(rapidity) + 0.3) ** 2
    rel = 2 * (2 * 16 * U64 * cosh2) / (2 * abs(delta) * (1 + delta / 2))
    assert got == pytest.approx(want, rel=rel, abs=0)
    assert float(jet_mass_term(p4, p4, mask, mask)[0]) == 0.0


def test_padded_slots_never_count():
    p4, mask = make_jets(16, 0)
    p4 = p4.double()
    reco = p4 * 1.01
    a = jet_mass_term(reco, p4, mask, mask)
    junk_in, junk_out = p4.clone(), reco.clone()
    junk_in[~mask] = 7e5
    junk_out[~mask] = -3e4
    assert torch.equal(jet_mass_term(junk_out, junk_in, mask, mask), a)
    assert bool((a > 0).all())


def test_near_massless_and_spacelike_jets_stay_finite():
    # all particles collinear: m = 0, the floor MASS_FLOOR E^2 takes over
    e = torch.tensor([300.0, 120.0, 5.0], dtype=torch.float64)
    p4 = torch.stack([e, e * 0.6, e * 0.8, 0 * e], -1)[None]
    mask = torch.ones(1, 3, dtype=torch.bool)
    reco = p4.clone()
    reco[0, 0, 0] += 1.0  # the reconstructed jet gets a small mass
    e_jet = float(e.sum())
    m2_out = (e_jet + 1.0) ** 2 - e_jet ** 2
    got = float(jet_mass_term(reco, p4, mask, mask)[0])
    assert got == pytest.approx((m2_out / (2 * MASS_FLOOR * e_jet ** 2)) ** 2, rel=1e-12)
    # a spacelike reconstructed jet (a free decoder's output) gives a finite, large term
    spacelike = p4.clone()
    spacelike[..., 0] *= 0.9
    t = jet_mass_term(spacelike, p4, mask, mask)
    assert bool(torch.isfinite(t).all()) and float(t[0]) > 1.0


def test_gradient_is_finite_and_vanishes_at_the_input():
    p4, mask = make_jets(8, 1)
    p4 = p4.double()
    reco = p4.clone().requires_grad_(True)
    jet_mass_term(reco, p4, mask, mask).sum().backward()
    assert bool(torch.isfinite(reco.grad).all())
    assert float(reco.grad.abs().max()) == 0.0
    reco2 = (p4 * 1.02).requires_grad_(True)
    jet_mass_term(reco2, p4, mask, mask).sum().backward()
    assert bool(torch.isfinite(reco2.grad).all()) and float(reco2.grad.abs().max()) > 0
    assert bool((reco2.grad[~mask] == 0).all())  # padding gets nothing


def test_per_jet_loss_adds_the_weighted_term():
    model = build_model(dict(LGAE))
    p4, mask = make_jets(12, 2)
    with torch.no_grad():
        out = forward_model(model, p4, mask, None)
        base = per_jet_loss(model, out, p4, mask, "mse")
        assert torch.equal(per_jet_loss(model, out, p4, mask, "mse", 0.0), base)
        with_term = per_jet_loss(model, out, p4, mask, "mse", 0.25)
        term = jet_mass_term(out.p4, p4, out.mask, mask)
    assert torch.equal(with_term, base + 0.25 * term)


def test_momentum_term_is_the_relative_jet_four_momentum_error():
    p4, mask = make_jets(6, 6)
    p4 = p4.double()
    reco = p4.clone()
    reco[:, 0, 1] += 3.0  # one particle's px off by 3 GeV: |dP|^2 = 9
    reco[~mask] = 1e4  # padding never counts
    e = p4.sum(1)[:, 0]
    # exact up to the float64 rounding of the sums (a few u relative)
    np.testing.assert_allclose(jet_momentum_term(reco, p4, mask, mask).numpy(),
                               (9.0 / e ** 2).numpy(), rtol=64 * U64)
    model = build_model(dict(LGAE))
    q4, qmask = make_jets(10, 7)
    with torch.no_grad():
        out = forward_model(model, q4, qmask, None)
        base = per_jet_loss(model, out, q4, qmask, "mse")
        both = per_jet_loss(model, out, q4, qmask, "mse", 0.5, 2.0)
        want = (base + 0.5 * jet_mass_term(out.p4, q4, out.mask, qmask)
                + 2.0 * jet_momentum_term(out.p4, q4, out.mask, qmask))
    assert torch.equal(both, want)


def test_fit_validates_on_the_loss_with_the_term_and_records_it(tmp_path):
    train, val = make_jets(64, 3), make_jets(24, 4)
    kw = dict(epochs=1, batch_size=32, lr=1e-3, device="cpu", progress=False,
              log=lambda m: None, loss="mse", seed=0)
    res = fit(dict(LGAE), train, val, out_dir=tmp_path / "w", mass_weight=0.5, **kw)
    ckpt = load_checkpoint(tmp_path / "w" / "best.pt")
    assert ckpt["extra"]["mass_weight"] == 0.5 and "momentum_weight" not in ckpt["extra"]
    model = res.model.eval()
    with torch.no_grad():
        out = forward_model(model, *val, None)
        per = (per_jet_loss(model, out, *val, "mse")
               + 0.5 * jet_mass_term(out.p4, val[0], out.mask, val[1]))
    # the same float32 per-jet values (one batch, same ops), summed in float64 both times
    assert res.best_val_loss == pytest.approx(float(per.double().mean()), rel=1e-12)
    # without the option nothing is recorded
    fit(dict(LGAE), train, val, out_dir=tmp_path / "n", **kw)
    assert "mass_weight" not in load_checkpoint(tmp_path / "n" / "best.pt")["extra"]
    with pytest.raises(ValueError, match="mass_weight"):
        fit(dict(LGAE), train, val, out_dir=tmp_path / "bad", mass_weight=-1.0, **kw)
    with pytest.raises(ValueError, match="momentum_weight"):
        fit(dict(LGAE), train, val, out_dir=tmp_path / "bad2", momentum_weight=-1.0, **kw)
    res = fit(dict(LGAE), train, val, out_dir=tmp_path / "p", momentum_weight=2.0, **kw)
    assert load_checkpoint(tmp_path / "p" / "best.pt")["extra"]["momentum_weight"] == 2.0
    with torch.no_grad():
        out = forward_model(res.model.eval(), *val, None)
        per = (per_jet_loss(res.model, out, *val, "mse")
               + 2.0 * jet_momentum_term(out.p4, val[0], out.mask, val[1]))
    assert res.best_val_loss == pytest.approx(float(per.double().mean()), rel=1e-12)


def test_fit_refuses_a_frozen_model_with_a_hint(tmp_path):
    model = build_model(dict(LGAE)).requires_grad_(False)  # as load_model returns them
    with pytest.raises(ValueError, match="no trainable parameter.*deepcopy"):
        fit(model, make_jets(32, 5), None, epochs=1, out_dir=tmp_path, device="cpu",
            progress=False, log=lambda m: None)
    fit(copy.deepcopy(model).requires_grad_(True), make_jets(32, 5), None, epochs=1,
        out_dir=tmp_path / "copy", device="cpu", progress=False, log=lambda m: None)
