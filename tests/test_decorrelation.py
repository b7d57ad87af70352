"""Mass decorrelation (lgae_hep.scoring.decorrelation): the QCD quantile of a score given m."""

from __future__ import annotations

import warnings

import awkward as ak
import numpy as np
import pytest
import torch
from lgae_hep.models import LGAE

import lgae_hep
from lgae_hep.checkpoint import CheckpointError, save_checkpoint
from lgae_hep.inference import MassOutsideMapWarning
from lgae_hep.observables import jet_mass
from lgae_hep.scoring.decorrelation import MassDecorrelation
from lgae_hep.scoring.registry import SCORES, check_score


def _toy(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    m = np.exp(rng.uniform(np.log(20), np.log(400), n))
    return np.log(m) * 2 + rng.normal(size=n), m  # a score strongly correlated with the mass


def test_cut_keeps_the_same_qcd_fraction_at_every_mass():
    """Fit on one sample, cut on an independent one: in each of the 10 fit bins the passing
    fraction is eps within its statistical error. With 40,000 jets over 10 bins, a bin holds
    ~4000 jets; the binomial error of eps = 0.1 is sqrt(0.1 * 0.9 / 4000) = 0.0047 from the
    test sample and the same again from the fit's quantile estimate, so 5 sigma of the sum in
    quadrature is 0.034."""
    dec = MassDecorrelation.fit(*_toy(40_000, 1), n_bins=10)
    s, m = _toy(40_000, 2)
    y, clamped = dec.transform(s, m)
    idx = np.clip(np.searchsorted(dec.edges, m, side="right") - 1, 0, 9)
    cut = -np.log(0.1)
    for b in range(10):
        assert abs((y[idx == b] > cut).mean() - 0.1) < 0.034
    # the raw score would have selected mostly the heaviest jets
    raw = s > np.quantile(s, 0.9)
    assert (raw & (idx == 9)).sum() > 5 * (raw & (idx == 0)).sum()
    assert clamped == int(((m < dec.edges[0]) | (m > dec.edges[-1])).sum())


def test_monotone_in_the_score_within_a_bin_and_beyond_the_fitted_tail():
    dec = MassDecorrelation.fit(*_toy(5_000, 3), n_bins=5)
    s = np.linspace(-10, 40, 2001)  # far below and far above every QCD value
    y, _ = dec.transform(s, np.full(s.size, 100.0))
    assert np.all(np.diff(y) >= 0) and y[-1] > y[-500] > -np.log(0.5 / dec.counts.min())


def test_masses_outside_the_range_are_clamped_and_counted():
    dec = MassDecorrelation.fit(*_toy(5_000, 4), n_bins=5)
    s = np.array([8.0, 8.0, 8.0, np.nan])
    m = np.array([1.0, 100.0, 1e5, 100.0])
    y, clamped = dec.transform(s, m)
    assert clamped == 2 and np.isnan(y[3]) and np.isfinite(y[:3]).all()
    # clamped into the first/last bin: the value of the edge bins
    y_edge, _ = dec.transform(s[:3], np.array([dec.edges[0], 100.0, dec.edges[-1]]))
    np.testing.assert_array_equal(y[:3], y_edge)


def test_state_round_trip_and_corrupt_states():
    dec = MassDecorrelation.fit(*_toy(3_000, 5), n_bins=4, info={"score": "x"})
    back = MassDecorrelation.from_state(dec.to_state())
    s, m = _toy(500, 6)
    np.testing.assert_array_equal(back.transform(s, m)[0], dec.transform(s, m)[0])
    assert back.info["score"] == "x"
    bad = dec.to_state()
    bad["knots"] = bad["knots"].flip(1)  # decreasing quantiles
    with pytest.raises(ValueError, match="knot rows must not decrease"):
        MassDecorrelation.from_state(bad)
    with pytest.raises(ValueError, match="missing"):
        MassDecorrelation.from_state({"version": 1})
    with pytest.raises(ValueError, match="at least"):
        MassDecorrelation.fit([1.0, 2.0], [50.0, 60.0])


def test_every_score_has_a_registered_decorrelated_form():
    for name, spec in SCORES.items():
        if spec.kind != "decorrelated":
            assert check_score(f"{name}-decorrelated").base == name


def _jets(n: int, seed: int) -> ak.Array:
    rng = np.random.default_rng(seed)
    counts = rng.integers(3, 25, n)
    tot = int(counts.sum())
    return ak.unflatten(ak.zip({"pt": rng.exponential(40.0, tot) + 1.0,
                                "eta": rng.normal(0, 0.2, tot), "phi": rng.normal(0, 0.2, tot),
                                "mass": np.full(tot, 0.14)}, with_name="Momentum4D"), counts)


def test_engine_scores_the_decorrelated_form_and_the_model_file_keeps_the_map(tmp_path):
    torch.manual_seed(0)
    model = LGAE(num_particles=30, encoder_channels=(2,), decoder_channels=(2,), mlp_hidden=4,
                 num_basis=2).eval()
    fit_jets, jets = _jets(400, 1), _jets(50, 2)
    raw_fit = ak.to_numpy(lgae_hep.score(fit_jets, model, metric="chamfer-dr"))
    dec = MassDecorrelation.fit(raw_fit, ak.to_numpy(jet_mass(fit_jets)), n_bins=2,
                                min_per_bin=100)
    with pytest.raises(ValueError, match="mass decorrelation map of 'chamfer-dr'"):
        lgae_hep.score(jets, model, metric="chamfer-dr-decorrelated")
    model.decorrelation = {"chamfer-dr": dec}
    got = ak.to_numpy(lgae_hep.score(jets, model, metric="chamfer-dr-decorrelated"))
    raw = ak.to_numpy(lgae_hep.score(jets, model, metric="chamfer-dr"))
    # the engine's mass is the kept particles' in float64: the same as observables.jet_mass
    # up to float64 rounding of a ~25-term sum, far inside a mass bin
    np.testing.assert_allclose(got, dec.transform(raw, ak.to_numpy(jet_mass(jets)))[0],
                               rtol=1e-12)
    path = save_checkpoint(tmp_path / "m.pt", model)
    again = lgae_hep.load_model(path)
    np.testing.assert_array_equal(
        ak.to_numpy(lgae_hep.score(jets, again, metric="chamfer-dr-decorrelated")), got)
    # a jet far heavier than any in the fit is clamped and counted in one warning
    heavy = ak.concatenate([jets[:1], ak.zip({"pt": [[900.0, 900.0]], "eta": [[-1.0, 1.0]],
                                              "phi": [[0.0, 0.0]], "mass": [[0.1, 0.1]]},
                                             with_name="Momentum4D")])
    with pytest.warns(MassOutsideMapWarning, match="1 jet"):
        lgae_hep.score(heavy, model, metric="chamfer-dr-decorrelated")


def test_a_corrupt_map_in_a_model_file_names_the_file(tmp_path):
    from lgae_hep.checkpoint import load_model_file

    torch.manual_seed(0)
    model = LGAE(num_particles=30, encoder_channels=(2,), decoder_channels=(2,), mlp_hidden=4,
                 num_basis=2)
    state = MassDecorrelation.fit(*_toy(1_000, 7), n_bins=2).to_state()
    del state["knots"]
    path = save_checkpoint(tmp_path / "bad.pt", model, extra={"decorrelation": {"chamfer": state}})
    with warnings.catch_warnings(), pytest.raises(CheckpointError, match="bad.pt.*decorrelation"):
        load_model_file(path)
