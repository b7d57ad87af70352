"""The ``exposure`` score (lgae_hep.scoring.exposure, lgae_hep.exposure): a classifier head on
the latent invariants and log m, fitted on QCD jets and their synthetic anomalies.

What can fail, not the head's quality: the score is Lorentz and permutation invariant within
the propagated latent bound; the fit is deterministic in its seed and leaves the global RNG
alone; a model file carries the head as plain float64 data and the engine scores with it;
bad heads and models without one fail with clear errors.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _jets import TINY_LGAE, make_jets, perturbed_latents  # noqa: E402
from lgae_hep.models import build_model  # noqa: E402

from lgae_hep.checkpoint import CheckpointError, load_model_file, save_checkpoint  # noqa: E402
from lgae_hep.contrastive import exposure_views  # noqa: E402
from lgae_hep.exposure import (  # noqa: E402
    attach_exposure_head,
    distance_correlation,
    fit_exposure_head,
    flat_mass_weights,
)
from lgae_hep.inference import latent_columns  # noqa: E402
from lgae_hep.nn.io import jet_mass  # noqa: E402
from lgae_hep.precision import path_rtol  # noqa: E402
from lgae_hep.scoring.engine import forward_batches  # noqa: E402
from lgae_hep.scoring.exposure import (  # noqa: E402
    ExposureHead,
    exposure_errors,
    exposure_scores,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CFG = dict(TINY_LGAE, tau_v=2, dtype="float64")


def _model(seed: int = 0):
    torch.manual_seed(seed)
    return build_model(dict(CFG)).eval()


def _fitted(model, n: int = 64, seed: int = 0) -> ExposureHead:
    p4, mask = make_jets(n, 21)
    return fit_exposure_head(model, p4, mask, seed=seed, epochs=3, hidden=8, n_quantiles=16,
                             batch_size=16, progress=False)


def _latent(model, p4, mask):
    with torch.no_grad():
        lat = model(p4.double(), mask).latent
    return latent_columns({k: v.numpy() for k, v in lat.items()})


def test_views_are_drawn_from_the_generator_only():
    p4, mask = make_jets(16, 3)
    a = exposure_views(p4, mask, torch.Generator().manual_seed(5))
    b = exposure_views(p4, mask, torch.Generator().manual_seed(5))
    c = exposure_views(p4, mask, torch.Generator().manual_seed(6))
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)
    assert not torch.equal(a[2], c[2])
    # both classes keep the input's shapes (one view per jet)
    assert a[0].shape == a[2].shape == p4.shape and a[1].shape == a[3].shape == mask.shape


def test_fit_is_deterministic_in_its_seed_and_leaves_the_global_rng():
    model = _model()
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    h1 = _fitted(model, seed=0)
    assert torch.equal(torch.random.get_rng_state(), before)
    h2 = _fitted(model, seed=0)
    h3 = _fitted(model, seed=1)
    s1, s2, s3 = (h.state_dict() for h in (h1, h2, h3))
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    assert any(not torch.equal(s1[k], s3[k]) for k in s1)
    knots = h1.knots.numpy()
    assert knots.shape == (h1.config["n_in"], 16) and (np.diff(knots, axis=1) > 0).all()
    assert h1.config["names"][-1] == "log_mass"
    assert h1.config["fit"]["seed"] == 0 and np.isfinite(h1.config["fit"]["best_val_loss"])


def test_prong_ranges_are_recorded_change_the_fit_and_are_checked():
    model = _model()
    p4, mask = make_jets(64, 21)
    kw = dict(seed=0, epochs=2, hidden=8, n_quantiles=16, batch_size=16, progress=False)
    base = fit_exposure_head(model, p4, mask, **kw)
    soft = fit_exposure_head(model, p4, mask, prong_share=(0.05, 0.35), **kw)
    assert base.config["fit"]["prong_share"] == [0.15, 0.35]
    assert soft.config["fit"]["prong_share"] == [0.05, 0.35]
    assert base.config["fit"]["prong_angle"] == [0.2, 0.6]
    assert not torch.equal(base.mlp[0].weight, soft.mlp[0].weight)
    # the default ranges are the views' defaults: the same draws, the same head
    same = fit_exposure_head(model, p4, mask, prong_share=(0.15, 0.35), **kw)
    assert all(torch.equal(v, same.state_dict()[k]) for k, v in base.state_dict().items())
    for bad in ({"prong_share": (0.2, 0.5)}, {"prong_share": (0.3, 0.2)},
                {"prong_angle": (0.0, 0.4)}, {"prong_angle": (0.2, 1.6)}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            fit_exposure_head(model, p4, mask, **bad, **kw)


def test_prong_spread_is_recorded_changes_the_fit_and_is_checked():
    model = _model()
    p4, mask = make_jets(64, 21)
    kw = dict(seed=0, epochs=2, hidden=8, n_quantiles=16, batch_size=16, progress=False)
    base = fit_exposure_head(model, p4, mask, **kw)
    none = fit_exposure_head(model, p4, mask, prong_spread=None, **kw)
    wide = fit_exposure_head(model, p4, mask, prong_spread=(0.02, 0.1), **kw)
    assert base.config["fit"]["prong_spread"] is None
    assert wide.config["fit"]["prong_spread"] == [0.02, 0.1]
    # None is the single-particle fit, bit for bit; wide prongs move the fit
    assert all(torch.equal(v, none.state_dict()[k]) for k, v in base.state_dict().items())
    assert not torch.equal(base.mlp[0].weight, wide.mlp[0].weight)
    for bad in ((0.0, 0.1), (0.1, 0.05), (0.1, 0.6)):
        with pytest.raises(ValueError, match="prong_spread"):
            fit_exposure_head(model, p4, mask, prong_spread=bad, **kw)


def test_distance_correlation_identities():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(50, generator=g, dtype=torch.float64)
    y = torch.randn(50, generator=g, dtype=torch.float64)
    # float64 means over n^2 = 2500 terms: a relative rounding of a few 1e-13
    tol = 50 * 50 * torch.finfo(torch.float64).eps * 4
    # 1 for an affine relation of either sign; invariant under shifts and positive scales;
    # symmetric; 0 against a constant
    for z in (x, 2.5 * x + 3.0, -0.5 * x):
        assert abs(float(distance_correlation(x, z)) - 1.0) < tol
    d = float(distance_correlation(x, y))
    assert abs(float(distance_correlation(3.0 * x - 1.0, 0.2 * y + 7.0)) - d) < tol
    assert abs(float(distance_correlation(y, x)) - d) < tol
    assert float(distance_correlation(x, torch.full_like(x, 2.0))) == 0.0
    # a dependence that the linear correlation misses: y = x^2 of a symmetric sample
    s = torch.linspace(-1.0, 1.0, 41, dtype=torch.float64)
    assert abs(float(torch.corrcoef(torch.stack([s, s * s]))[0, 1])) < 1e-12
    assert float(distance_correlation(s, s * s)) > 0.1
    assert 0.0 <= d < 1.0
    # differentiable (the fit's penalty): analytic against numerical gradients
    xs, ys = x[:8].clone().requires_grad_(True), y[:8].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(distance_correlation, (xs, ys))
    with pytest.raises(ValueError, match="two"):
        distance_correlation(x, y[:10])


def test_disco_weight_is_recorded_changes_the_fit_and_is_checked():
    model = _model()
    p4, mask = make_jets(64, 21)
    kw = dict(seed=0, epochs=2, hidden=8, n_quantiles=16, batch_size=16, progress=False)
    base = fit_exposure_head(model, p4, mask, **kw)
    zero = fit_exposure_head(model, p4, mask, disco_weight=0.0, **kw)
    disco = fit_exposure_head(model, p4, mask, disco_weight=1.0, **kw)
    assert base.config["fit"]["disco_weight"] == 0.0 and disco.config["fit"]["disco_weight"] == 1.0
    # weight 0 is the plain fit, bit for bit; a weight moves the weights
    assert all(torch.equal(v, zero.state_dict()[k]) for k, v in base.state_dict().items())
    assert not torch.equal(base.mlp[0].weight, disco.mlp[0].weight)
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="disco_weight"):
            fit_exposure_head(model, p4, mask, disco_weight=bad, **kw)


def test_flat_mass_weights_flatten_the_mass_and_cap_the_tail():
    rng = np.random.default_rng(3)
    # a falling spectrum like QCD's: most jets light, a sparse heavy tail
    logm = np.log(20.0 + rng.exponential(40.0, size=5000))
    n_bins = 20
    lo, hi = np.quantile(logm, [0.005, 0.995])
    b = np.clip(np.floor((logm - lo) / (hi - lo) * n_bins), 0, n_bins - 1).astype(int)
    counts = np.bincount(b, minlength=n_bins)
    # uncapped: every non-empty bin carries the same total weight and the mean is 1; each
    # total is a sum of <= 5000 weights, so its relative rounding is < 5000 float64 eps
    w = flat_mass_weights(logm, n_bins=n_bins, max_weight=float("inf"))
    totals = np.bincount(b, weights=w, minlength=n_bins)[counts > 0]
    tol = 5000 * np.finfo(np.float64).eps
    assert np.allclose(totals, totals[0], rtol=tol, atol=0)
    assert abs(w.mean() - 1.0) < tol
    assert w.max() / w.min() > 10.0  # the tail was sparse: the cap below has work to do
    # capped: proportional to min(w, cap), mean 1, and the same jet order of weights
    c = flat_mass_weights(logm, n_bins=n_bins, max_weight=5.0)
    ref = np.minimum(w, 5.0)
    assert np.allclose(c * ref.mean(), ref, rtol=tol, atol=0)
    assert abs(c.mean() - 1.0) < tol
    # one mass: one bin, all weights 1
    assert np.array_equal(flat_mass_weights(np.full(7, 4.0)), np.ones(7))
    for bad in (np.array([]), np.array([1.0, np.nan]), np.ones((2, 2))):
        with pytest.raises(ValueError, match="finite log masses"):
            flat_mass_weights(bad)
    with pytest.raises(ValueError, match="n_bins"):
        flat_mass_weights(logm, n_bins=0)
    with pytest.raises(ValueError, match="max_weight"):
        flat_mass_weights(logm, max_weight=1.0)


def test_mass_weighting_is_recorded_changes_the_fit_and_is_checked():
    model = _model()
    p4, mask = make_jets(64, 21)
    kw = dict(seed=0, epochs=2, hidden=8, n_quantiles=16, batch_size=16, progress=False)
    base = fit_exposure_head(model, p4, mask, **kw)
    none = fit_exposure_head(model, p4, mask, mass_weighting="none", **kw)
    flat = fit_exposure_head(model, p4, mask, mass_weighting="flat", **kw)
    assert base.config["fit"]["mass_weighting"] == "none"
    assert flat.config["fit"]["mass_weighting"] == "flat"
    # "none" is the plain fit, bit for bit; the weights move the fit
    assert all(torch.equal(v, none.state_dict()[k]) for k, v in base.state_dict().items())
    assert not torch.equal(base.mlp[0].weight, flat.mlp[0].weight)
    with pytest.raises(ValueError, match="mass_weighting"):
        fit_exposure_head(model, p4, mask, mass_weighting="uniform", **kw)


def test_score_is_lorentz_and_permutation_invariant_within_the_latent_bound(random_lorentz):
    model = _model(1)
    head = _fitted(model)
    p4, mask = make_jets(12, 9)
    p4 = p4.double()
    mass = jet_mass(p4, mask)[0].numpy()
    cols, inv = _latent(model, p4, mask)
    ref = exposure_scores(head, cols, inv, mass)
    rel0 = path_rtol(torch.float64)
    base = exposure_errors(head, cols, inv, mass, rel0)
    # not trivially constant: the jets' scores differ by far more than the bound
    assert np.ptp(ref) > 1e3 * base.max()
    rng = np.random.default_rng(4)
    for max_rap in (0.5, 1.5):
        lam = torch.as_tensor(random_lorentz(rng, max_rap))
        gamma = float(lam[0, 0])
        cols_t, _ = _latent(model, p4 @ lam.T, mask)
        # the same exact mass for both (the latent's invariance is tested here); each latent
        # is within its path bound of the exact one, the boosted one within path_rtol gamma^2
        got = exposure_scores(head, cols_t, inv, mass)
        bound = base + exposure_errors(head, cols_t, inv, mass, rel0 * gamma ** 2)
        assert (np.abs(got - ref) <= bound).all(), np.max(np.abs(got - ref) / bound)



def test_score_is_permutation_invariant_with_a_symmetric_aggregation():
    """With a permutation-invariant aggregation (mean) the score is too, within the latent's
    path bound; ``mix`` mixes the pT-ordered slots and is not (the engine feeds pT order)."""
    torch.manual_seed(5)
    model = build_model(dict(CFG, aggregation="mean")).eval()
    head = _fitted(model)
    p4, mask = make_jets(12, 9)
    mass = jet_mass(p4.double(), mask)[0].numpy()
    cols, inv = _latent(model, p4, mask)
    ref = exposure_scores(head, cols, inv, mass)
    perm = torch.from_numpy(np.random.default_rng(4).permutation(p4.shape[1]))
    cols_p, _ = _latent(model, p4[:, perm], mask[:, perm])
    got = exposure_scores(head, cols_p, inv, mass)
    rel0 = path_rtol(torch.float64)
    bound = (exposure_errors(head, cols, inv, mass, rel0)
             + exposure_errors(head, cols_p, inv, mass, rel0))
    assert (np.abs(got - ref) <= bound).all()
    assert np.ptp(ref) > 1e3 * bound.max()


def test_error_bound_covers_perturbed_latents_and_is_not_vacuous():
    model = _model(2)
    head = _fitted(model)
    p4, mask = make_jets(32, 16)
    mass = jet_mass(p4.double(), mask)[0].numpy()
    cols, inv = _latent(model, p4, mask)
    rel = 1e-6
    bound = exposure_errors(head, cols, inv, mass, rel, mass_rel=rel)
    ref = exposure_scores(head, cols, inv, mass)
    rng = np.random.default_rng(1)
    worst = 0.0
    for moved in perturbed_latents(cols, rel):
        m = mass * np.exp(rng.uniform(-1, 1, len(mass)) * rel)
        dev = np.abs(exposure_scores(head, moved, inv, m) - ref)
        assert (dev <= bound).all()
        worst = max(worst, float(np.max(dev / bound)))
    assert worst > 1e-4


def test_model_file_carries_the_head_and_the_engine_scores_with_it(tmp_path):
    import awkward as ak
    import vector

    import lgae_hep

    model = _model(3)
    head = _fitted(model)
    attach_exposure_head(model, head)
    assert "exposure_head" not in dict(model.named_children())
    model.score_metric = "exposure"
    save_checkpoint(tmp_path / "m.pt", model, rng_state=False)
    again = load_model_file(tmp_path / "m.pt")
    assert set(again.state_dict()) == set(build_model(dict(CFG)).state_dict())
    assert again.exposure_head.knots.dtype == torch.float64
    assert all(torch.equal(v, head.state_dict()[k])
               for k, v in again.exposure_head.state_dict().items())
    p4, mask = make_jets(20, 30)
    vector.register_awkward()
    jets = ak.Array([[dict(zip(("E", "px", "py", "pz"), map(float, v), strict=True))
                      for v, m in zip(p4[j], mask[j], strict=True) if m]
                     for j in range(len(p4))], with_name="Momentum4D")
    s = np.asarray(lgae_hep.score(jets, again, progress=False, batch_size=8))
    # the engine's own float64 latent, the same batches: the same arithmetic, bit for bit
    res = forward_batches(again, p4.double(), mask, batch_size=8, want_latent=True,
                          want_reco=False, encode_only=True)
    mass = jet_mass(p4.double(), mask)[0].numpy()
    # and the head on the same 8-jet batches as the engine: a matrix product over another
    # number of rows may take another kernel (AVX2 does), which is rounding, not a bug
    want = []
    for i in range(0, len(p4), 8):
        cols, inv = latent_columns({k: v[i:i + 8] for k, v in res.latent.items()})
        want.append(exposure_scores(again.exposure_head, cols, inv, mass[i:i + 8]))
    np.testing.assert_array_equal(s, np.concatenate(want))
    # a corrupt stored head names the file
    ck = torch.load(tmp_path / "m.pt", weights_only=True)
    ck["extra"]["exposure_head"]["state_dict"]["knots"][0] = 0.0
    torch.save(ck, tmp_path / "corrupt.pt")
    with pytest.raises(CheckpointError, match="corrupt.pt.*exposure head"):
        load_model_file(tmp_path / "corrupt.pt")


def test_bad_input_is_refused_with_clear_errors():
    import lgae_hep
    from lgae_hep.scoring.engine import model_exposure

    model = _model(4)
    with pytest.raises(ValueError, match="exposure head"):
        model_exposure(model, "exposure")
    with pytest.raises(ValueError, match="exposure head"):
        model_exposure(model, "exposure-decorrelated")
    assert model_exposure(model, "chamfer-dr") is None
    with pytest.raises(TypeError, match="ExposureHead"):
        attach_exposure_head(model, torch.nn.Linear(2, 1))
    p4, mask = make_jets(10, 1)
    with pytest.raises(ValueError, match="at least 20 jets"):
        fit_exposure_head(model, p4, mask, progress=False)
    with pytest.raises(TypeError, match="seed"):
        fit_exposure_head(model, p4, mask, seed=1.5, progress=False)
    # a head fitted on another latent (another tau_v) is refused by name
    other = build_model(dict(CFG, tau_v=1)).eval()
    head = _fitted(other)
    cols, inv = _latent(model, *make_jets(4, 2))
    with pytest.raises(ValueError, match="another model"):
        exposure_scores(head, cols, inv, np.ones(4))
    with pytest.raises(ValueError, match="n_quantiles"):
        ExposureHead(3, n_quantiles=1)
    assert "exposure" in lgae_hep.scoring.registry.score_names("exposure")
