"""Latent densities: the Gaussian-mixture maths (against scikit-learn and quadrature), exact
marginals, storage inside weights-only model files, and the bad-input policy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lgae_hep.density import (
    DENSITY_METRICS,
    GaussianMixtureDensity,
    LatentDensity,
    fit_latent_density,
)

# float64 throughout: log-densities of O(10) built from D <= 4 dimensional quadratic forms and a
# log-sum-exp over K <= 4 components: each of the O(D^2 + K) operations rounds once, so two
# correct implementations agree to ~100 u |log p| ~ 1e-13 * 10; 1e-10 leaves room for the
# Cholesky/solve orderings of numpy and scikit-learn.
RTOL = 1e-10


def _sample(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal([4.0, 0.0, 1.0], [0.3, 1.0, 0.5], size=(n // 2, 3))
    b = rng.normal([5.0, 2.0, -1.0], [0.2, 0.5, 0.3], size=(n - n // 2, 3))
    x = np.concatenate([a, b])
    x[:, 1] += 0.5 * x[:, 0]  # correlated with log m
    return x


def test_log_pdf_matches_scikit_learn():
    from sklearn.mixture import GaussianMixture

    x = _sample()
    gm = GaussianMixture(3, covariance_type="full", random_state=0).fit(x)
    ours = GaussianMixtureDensity(gm.weights_, gm.means_, gm.covariances_)
    np.testing.assert_allclose(ours.log_pdf(x[:500]), gm.score_samples(x[:500]), rtol=RTOL)


def test_marginal_is_the_integral_of_the_joint():
    """p(x0) = integral of p(x0, x1) dx1, by the trapezoidal rule on a fine grid: the grid step
    0.005 over +-12 sigma gives a quadrature error far below 1e-8 for these Gaussians."""
    w = np.array([0.3, 0.7])
    mu = np.array([[0.0, 1.0], [1.0, -1.0]])
    cov = np.array([[[1.0, 0.6], [0.6, 2.0]], [[0.5, -0.2], [-0.2, 0.3]]])
    joint = GaussianMixtureDensity(w, mu, cov)
    grid = np.arange(-20.0, 20.0, 0.005)
    for x0 in (-1.0, 0.3, 2.0):
        pts = np.stack([np.full_like(grid, x0), grid], 1)
        integral = np.trapezoid(np.exp(joint.log_pdf(pts)), grid)
        assert np.log(integral) == pytest.approx(joint.marginal([0]).log_pdf([[x0]])[0],
                                                 abs=1e-8)


def _density(seed=0):
    x = _sample(seed=seed)
    cols = {"a": np.sinh(x[:, 1]) * 2.0, "b": np.sinh(x[:, 2]) * 0.5}
    return fit_latent_density(cols, ["a", "b"], np.exp(x[:, 0]), n_components=3), cols, x


def test_three_scores_are_consistent():
    d, cols, x = _density()
    c = d.transform(cols, np.exp(x[:, 0]))
    joint = d.score(c, "latent-density-joint")
    given = d.score(c, "latent-density-given-mass")
    latent = d.score(c, "latent-density")
    mass_only = -d.mixture.marginal([0]).log_pdf(c[:, :1])
    # -log p(z | m) = -log p(m, z) + log p(m): one subtraction of O(10) numbers
    np.testing.assert_allclose(given, joint - mass_only, rtol=0, atol=1e-12 * np.abs(joint).max())
    assert np.isfinite(latent).all() and not np.allclose(latent, joint)
    with pytest.raises(ValueError, match="unknown density metric"):
        d.score(c, "chamfer")
    assert set(DENSITY_METRICS) == {"latent-density", "latent-density-given-mass",
                                    "latent-density-joint"}


def test_fit_is_reproducible_and_needs_enough_jets():
    a, _, _ = _density()
    b, _, _ = _density()
    np.testing.assert_array_equal(a.mixture.means, b.mixture.means)
    with pytest.raises(ValueError, match="at least 30 jets"):
        fit_latent_density({"a": np.ones(20)}, ["a"], np.ones(20), n_components=3)


def test_undefined_inputs_give_nan():
    d, cols, x = _density()
    m = np.exp(x[:5, 0]).copy()
    m[1] = 0.0
    m[2] = np.nan
    sub = {k: v[:5].copy() for k, v in cols.items()}
    sub["a"][3] = np.inf
    s = d.score(d.transform(sub, m), "latent-density-given-mass")
    assert np.isnan(s[[1, 2, 3]]).all() and np.isfinite(s[[0, 4]]).all()
    with pytest.raises(ValueError, match="no column"):
        d.transform({"a": sub["a"]}, m)


def test_state_round_trip_and_corrupt_states():
    d, cols, x = _density()
    state = d.to_state()
    assert all(isinstance(v, torch.Tensor) for k, v in state.items()
               if k not in ("version", "config"))
    e = LatentDensity.from_state(state)
    c = d.transform(cols, np.exp(x[:, 0]))
    for metric in DENSITY_METRICS:
        np.testing.assert_array_equal(e.score(c, metric), d.score(c, metric))
    bad = dict(state)
    bad.pop("means")
    with pytest.raises(ValueError, match="missing"):
        LatentDensity.from_state(bad)
    with pytest.raises(ValueError, match="version"):
        LatentDensity.from_state(dict(state, version=99))
    cov = state["covariances"].clone()
    cov[0] = -cov[0]
    with pytest.raises(ValueError, match="positive definite"):
        LatentDensity.from_state(dict(state, covariances=cov))
    with pytest.raises(ValueError, match="sum to 1"):
        LatentDensity.from_state(dict(state, weights=state["weights"] * 2))
    with pytest.raises(ValueError, match="config"):
        LatentDensity.from_state(dict(state, config="{not json"))
    with pytest.raises(ValueError, match="must be a tensor"):
        LatentDensity.from_state(dict(state, means=[1.0]))


def test_score_error_bound_covers_random_perturbations():
    """Coordinates moved by at most the given errors change every score by at most
    score_error_bound (first order, factor 2 for curvature): checked on 2000 random moves."""
    d, cols, x = _density()
    c = d.transform(cols, np.exp(x[:, 0]))[:200]
    rng = np.random.default_rng(1)
    err = np.full_like(c, 1e-6)
    for metric in DENSITY_METRICS:
        bound = d.score_error_bound(c, err, metric)
        base = d.score(c, metric)
        for _ in range(10):
            moved = c + err * rng.uniform(-1, 1, size=c.shape)
            assert (np.abs(d.score(moved, metric) - base) <= bound).all()


def test_coordinate_errors_follow_the_latent_scale():
    """A scalar feature is off by rel * A, a Minkowski product by 8 rel A^2 (A: the jet's
    largest latent component), each divided by the feature's asinh scale."""
    cols = {"s0_re": np.array([0.5, 2.0]), "s0_im": np.array([0.1, -0.2])}
    for part in ("re", "im"):
        for k, comp in enumerate(("E", "px", "py", "pz")):
            cols[f"v0_{comp}_{part}"] = np.array([3.0, 1.0]) * (k + 1) / 4
    from lgae_hep.density import gram_columns

    cols.update(gram_columns(cols))
    feats = ["s0_re", "v0_re.v0_im"]
    d = LatentDensity(feats, [2.0, 4.0], GaussianMixtureDensity(
        [1.0], np.zeros((1, 3)), np.eye(3)[None]))
    e = d.coordinate_errors(cols, 1e-3)
    a = np.array([3.0, 2.0])  # largest |component| per jet: v0_pz = 3 (jet 0), s0_re = 2 (jet 1)
    np.testing.assert_array_equal(e[:, 1], 1e-3 * a / 2.0)
    np.testing.assert_array_equal(e[:, 2], 8 * 1e-3 * a**2 / 4.0)
