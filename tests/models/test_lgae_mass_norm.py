"""Mass-normalised LGAE input: exact Lorentz equivariance, exact scale invariance, the
unresolved-mass policy (NaN + one InvalidJetWarning, or ValueError), training drops."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from lgae_hep.models import LGAE, build_model

from lgae_hep.inference import InvalidJetWarning
from lgae_hep.nn.io import MIN_RELATIVE_MASS, jet_mass
from lgae_hep.precision import path_rtol

SMALL = dict(num_particles=8, encoder_channels=(2, 3), decoder_channels=(3, 2))


def _model(dtype="float64", aggregation="mix", seed=0):
    torch.manual_seed(seed)
    return LGAE(aggregation=aggregation, normalization="mass", dtype=dtype, **SMALL)


def test_config_roundtrip_and_old_configs_default_to_none():
    m = _model()
    assert m.config["normalization"] == "mass"
    assert build_model(m.config).config == m.config
    old = dict(LGAE(**SMALL).config)
    old.pop("normalization")  # a config written before the option existed
    assert build_model(old).normalization == "none"
    with pytest.raises(ValueError, match="normalization"):
        LGAE(normalization="pt")


@pytest.mark.parametrize("aggregation", ["mix", "min&max", "mean"])
def test_power_of_two_scaling_is_bitwise_invisible(aggregation, make_jets):
    """p4 -> 4 p4 is exact in binary floating point; so are the float64 jet-mass sum
    (4x each term), its square root (sqrt(16 m^2) = 4 m, correctly rounded) and the division
    p / m: the latent must be bitwise equal and the output exactly 4x."""
    model = _model(aggregation=aggregation)
    p4, mask = make_jets(3, 8, seed=2)
    with torch.no_grad():
        out, out4 = model(p4, mask), model(4 * p4, mask)
    for k in out.latent:
        assert torch.equal(out.latent[k], out4.latent[k])
    assert torch.equal(out4.p4, 4 * out.p4)
    assert torch.equal(out4.features, out.features)


def test_generic_scaling_changes_the_latent_only_by_rounding(make_jets):
    """p4 -> 3.7 p4: one extra rounding per input entry, propagated through the network:
    within path_rtol (lgae_hep/precision.py) of the unscaled latent."""
    model = _model()
    p4, mask = make_jets(3, 8, seed=3)
    with torch.no_grad():
        a, b = model(p4, mask), model(3.7 * p4, mask)
    for k in a.latent:
        dev = float((a.latent[k] - b.latent[k]).abs().max() / a.latent[k].abs().max())
        assert dev <= path_rtol(torch.float64)


def test_lorentz_equivariance(make_jets, random_lorentz):
    """f(L x) = L f(x): the jet mass is invariant, so dividing by it keeps the exact
    equivariance (bound: that of tests/models/test_lgae.py for maxdim 2)."""
    model = _model()
    p4, mask = make_jets(3, 8, seed=4)
    rng = np.random.default_rng(11)
    for max_rap in (1.0, 2.0):
        lam = torch.as_tensor(random_lorentz(rng, max_rap))
        with torch.no_grad():
            out, out_t = model(p4, mask), model(p4 @ lam.T, mask)
        bound = path_rtol(torch.float64) * float(lam[0, 0]) ** 2
        dev = float((out_t.p4 - out.p4 @ lam.T).abs().max() / (out.p4 @ lam.T).abs().max())
        assert dev <= bound
        dev = float((out_t.latent[(0, 0)] - out.latent[(0, 0)]).abs().max()
                    / out.latent[(0, 0)].abs().max())
        assert dev <= bound


def _degenerate_jets():
    """jet 0: one massless particle; jet 1: two collinear massless particles; jet 2: a normal
    two-prong jet; jet 3: empty; jet 4: one massive particle (m / E = 0.1, resolved)."""
    p4 = torch.zeros(5, 8, 4, dtype=torch.float64)
    mask = torch.zeros(5, 8, dtype=torch.bool)
    p4[0, 0] = torch.tensor([100.0, 0.0, 0.0, 100.0])
    p4[1, 0] = torch.tensor([100.0, 60.0, 0.0, 80.0])
    p4[1, 1] = torch.tensor([50.0, 30.0, 0.0, 40.0])
    p4[2, 0] = torch.tensor([100.0, 60.0, 0.0, 80.0])
    p4[2, 1] = torch.tensor([50.0, 0.0, 30.0, 40.0])
    p4[4, 0] = torch.tensor([100.0, 0.0, 0.0, (100.0**2 - 10.0**2) ** 0.5])
    mask[0, 0] = mask[1, :2] = mask[2, :2] = mask[4, 0] = True
    return p4, mask


def test_jet_mass_resolution_flags():
    p4, mask = _degenerate_jets()
    m, ok = jet_mass(p4, mask)
    assert ok.tolist() == [False, False, True, False, True]
    # the threshold itself: a jet with m / E just above / below 2^-10
    e = 1000.0
    for rel, want in ((2.0 * MIN_RELATIVE_MASS, True), (0.5 * MIN_RELATIVE_MASS, False)):
        pz = (e**2 - (rel * e) ** 2) ** 0.5
        q = torch.tensor([[[e, 0.0, 0.0, pz]]], dtype=torch.float64)
        assert bool(jet_mass(q, torch.ones(1, 1, dtype=torch.bool))[1][0]) is want
    assert _model().unnormalizable(p4, mask).tolist() == [True, True, False, False, False]
    assert not LGAE(**SMALL).unnormalizable(p4, mask).any()


def _awkward(p4, mask):
    """(B, N, 4) padded tensors -> [jet][particle] Momentum4D records."""
    import awkward as ak
    import vector

    vector.register_awkward()
    counts = mask.sum(1).numpy()
    flat = p4[mask].numpy()
    fields = {k: ak.unflatten(flat[:, i], counts) for i, k in enumerate(("E", "px", "py", "pz"))}
    return ak.zip(fields, with_name="Momentum4D")


def test_unresolved_jets_score_nan_with_one_warning():
    from lgae_hep.api import score

    p4, mask = _degenerate_jets()
    jets = _awkward(p4, mask)
    model = _model("float32")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        s = np.asarray(score(jets, model, metric="chamfer"))
    assert np.isnan(s[[0, 1]]).all() and np.isfinite(s[[2, 4]]).all() and s[3] == 0.0
    msgs = [str(x.message) for x in w if issubclass(x.category, InvalidJetWarning)]
    assert len(msgs) == 1 and "2 jet(s) whose mass is not resolved" in msgs[0]
    with pytest.raises(ValueError, match="mass is not resolved.*first: jet 0"):
        score(jets, model, on_invalid="raise")


def test_training_drops_unresolved_jets_with_a_warning():
    from lgae_hep.train import prepare_data

    p4, mask = _degenerate_jets()
    with pytest.warns(RuntimeWarning, match="dropped 2 of 5 jets whose mass is not resolved"):
        q, mk, _ = prepare_data((p4, mask), 8, dtype=torch.float64, model=_model())
    assert len(q) == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        q, _, _ = prepare_data((p4, mask), 8, dtype=torch.float64, model=LGAE(**SMALL))
    assert len(q) == 5
