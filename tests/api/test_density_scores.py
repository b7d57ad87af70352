"""Latent-density scores through the public API: a density stored in a weights-only model
file, scored by lgae_hep.score, Lorentz invariant, and the bad-file / missing-density errors."""

from __future__ import annotations

import warnings

import awkward as ak
import numpy as np
import pytest
import torch
import vector
from lgae_hep.models import LGAE

import lgae_hep
from lgae_hep.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from lgae_hep.density import DENSITY_METRICS, fit_latent_density
from lgae_hep.inference import latent_columns, run_chunks
from lgae_hep.lorentz import lorentz_matrix
from lgae_hep.nn.io import jet_mass
from lgae_hep.observables import jet_mass as jet_mass_of
from lgae_hep.precision import path_rtol

vector.register_awkward()


def _jets(n: int, seed: int) -> ak.Array:
    """[jet][particle]: 2-12 massive particles spread around a random axis."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(2, 13, n)
    tot = int(counts.sum())
    eta0 = np.repeat(rng.uniform(-1.0, 1.0, n), counts)
    phi0 = np.repeat(rng.uniform(-3, 3, n), counts)
    return ak.unflatten(ak.zip({
        "pt": rng.exponential(40.0, tot) + 1.0, "eta": eta0 + rng.normal(0, 0.2, tot),
        "phi": phi0 + rng.normal(0, 0.2, tot), "mass": np.full(tot, 0.1396)},
        with_name="Momentum4D"), counts)


@pytest.fixture(scope="module")
def density_model(tmp_path_factory):
    """A float64 LGAE with a latent density fitted on 400 jets, saved and loaded back."""
    torch.manual_seed(0)
    model = LGAE(num_particles=12, encoder_channels=(2,), decoder_channels=(2,), mlp_hidden=4,
                 num_basis=2, dtype="float64").eval()
    res = run_chunks(_jets(400, 1), model, want_latent=True)
    cols, inv = latent_columns(res.result.latent)
    mass = ak.to_numpy(jet_mass_of(_jets(400, 1)))
    model.latent_density = fit_latent_density(cols, inv, mass, n_components=2)
    model.score_metric = "latent-density-given-mass"
    path = tmp_path_factory.mktemp("density") / "model.pt"
    save_checkpoint(path, model)
    return path, model


def _direct(model, jets, metric):
    """The density score computed outside the inference engine."""
    res = run_chunks(jets, model, want_latent=True)
    cols = latent_columns(res.result.latent).columns
    from lgae_hep.data import to_tensors

    jt = to_tensors(jets, 12, backend="torch", dtype=torch.float64)
    m, _ = jet_mass(jt.p4, jt.mask)
    d = model.latent_density
    return d.score(d.transform(cols, m.numpy()), metric)


def test_model_file_round_trip_and_default_metric(density_model):
    path, model = density_model
    loaded = lgae_hep.load_model(path)
    assert loaded.score_metric == "latent-density-given-mass"
    np.testing.assert_array_equal(loaded.latent_density.mixture.covariances,
                                  model.latent_density.mixture.covariances)
    jets = _jets(50, 2)
    for metric in DENSITY_METRICS:
        np.testing.assert_array_equal(np.asarray(lgae_hep.score(jets, path, metric=metric)),
                                      _direct(model, jets, metric))
    # metric=None: the one the model file records
    np.testing.assert_array_equal(np.asarray(lgae_hep.score(jets, path)),
                                  _direct(model, jets, "latent-density-given-mass"))


def test_density_score_is_lorentz_invariant(density_model):
    """The features are Lorentz invariants (latent scalars, Minkowski squares, the jet mass):
    a boost + rotation changes them by at most path_rtol e^(2|y|) of their scale (the bound of
    tests/api/test_api.py::test_latent_invariants_are_boost_invariant); the score moves by at
    most that times its gradient, measured here by central differences (step 1e-5: error
    O(1e-10) relative, doubled for margin)."""
    _, model = density_model
    jets = _jets(30, 3)
    lam = lorentz_matrix(rapidity=np.array([0.0, 0.0, 0.8]), angle=np.array([0.0, 0.0, -1.3]))
    p = np.stack([ak.to_numpy(ak.flatten(getattr(jets, c))) for c in ("E", "px", "py", "pz")], 1)
    q = p @ lam.T
    boosted = ak.unflatten(ak.zip({"E": q[:, 0], "px": q[:, 1], "py": q[:, 2], "pz": q[:, 3]},
                                  with_name="Momentum4D"), ak.num(jets))
    metric = "latent-density-given-mass"
    a = np.asarray(lgae_hep.score(jets, model, metric=metric))
    b = np.asarray(lgae_hep.score(boosted, model, metric=metric))
    d = model.latent_density
    res = run_chunks(jets, model, want_latent=True)
    cols = latent_columns(res.result.latent).columns
    mass = ak.to_numpy(jet_mass_of(jets))
    c = d.transform(cols, mass)
    rel = path_rtol(torch.float64) * np.exp(2 * 0.8)
    # |dc_f| <= |dz_f| / s_f (asinh' <= 1), |dz_f| <= rel * max|z_f|; log m: rel
    dz = np.array([rel] + [rel * np.abs(cols[f]).max() / s for f, s in zip(
        d.features, d.scales, strict=True)])
    grad = np.zeros_like(c)
    for k in range(c.shape[1]):
        e = np.zeros(c.shape[1])
        e[k] = 1e-5
        grad[:, k] = (d.score(c + e, metric) - d.score(c - e, metric)) / 2e-5
    bound = 2 * (np.abs(grad) * dz).sum(1)
    assert (np.abs(a - b) <= bound).all()


def test_metric_needs_a_density():
    torch.manual_seed(0)
    model = LGAE(num_particles=12, encoder_channels=(2,), decoder_channels=(2,))
    with pytest.raises(ValueError, match="needs a model with a latent density"):
        lgae_hep.score(_jets(5, 4), model, metric="latent-density")
    with pytest.raises(ValueError, match="unknown anomaly-score metric"):
        lgae_hep.score(_jets(5, 4), model, metric="density")


def test_corrupt_or_missing_density_in_the_file(density_model, tmp_path):
    path, _ = density_model
    ckpt = load_checkpoint(path)
    # a corrupt density: a covariance that is not positive definite
    extra = dict(ckpt["extra"])
    dens = dict(extra["latent_density"])
    dens["covariances"] = -dens["covariances"]
    extra["latent_density"] = dens
    bad = tmp_path / "corrupt.pt"
    torch.save(dict(ckpt, extra=extra, config=__import__("json").dumps(ckpt["config"]),
                    metrics="{}"), bad)
    with pytest.raises(CheckpointError, match=r"corrupt\.pt: its latent density is corrupt"):
        lgae_hep.load_model(bad)
    # the file says its score is a density score but holds no density
    extra = dict(ckpt["extra"])
    extra.pop("latent_density")
    missing = tmp_path / "missing.pt"
    torch.save(dict(ckpt, extra=extra, config=__import__("json").dumps(ckpt["config"]),
                    metrics="{}"), missing)
    with pytest.raises(ValueError, match=r"missing\.pt: its default anomaly score "
                                         r"'latent-density-given-mass' needs a latent density"):
        lgae_hep.load_model(missing)


def test_unresolved_mass_jets_are_nan_under_density_scores(density_model):
    """A one-particle massless jet has no log m: NaN and one InvalidJetWarning."""
    _, model = density_model
    good = _jets(1, 5)
    e = (50.0**2 + 10.0**2) ** 0.5
    jets = ak.concatenate([
        ak.zip({"px": [[0.0]], "py": [[50.0]], "pz": [[10.0]], "E": [[e]]},
               with_name="Momentum4D"),
        ak.zip({"px": good.px, "py": good.py, "pz": good.pz, "E": good.E},
               with_name="Momentum4D")])
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        s = np.asarray(lgae_hep.score(jets, model, metric="latent-density"))
    assert np.isnan(s[0]) and np.isfinite(s[1])
    assert sum("mass is not resolved" in str(x.message) for x in w) == 1
