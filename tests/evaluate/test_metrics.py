"""Anomaly and reconstruction metrics of lgae_hep.evaluate against hand-computed cases."""

from __future__ import annotations

import json
import math
import warnings

import awkward as ak
import numpy as np
import pytest
import vector
from scipy.stats import norm

from lgae_hep import evaluate as ev
from lgae_hep.precision import unit_roundoff

vector.register_awkward()

# Everything in lgae_hep.evaluate is numpy/sklearn float64 (no torch kernels): the tolerances
# below are float64 rounding bounds, or sampling (binomial) bounds for the statistical checks.
U64 = unit_roundoff("float64")


def _same_auc(a: float, b: float) -> bool:
    """Two AUCs of the same scores via sklearn (roc_auc_score vs auc(roc_curve)): trapezoid
    sums of <= ~1e4 float64 terms in [0, 1], so at most n u = 1e-12 apart (pairwise summation
    keeps it ~log2(n) u in practice; measured bitwise equal)."""
    return a == pytest.approx(b, abs=1e-12)


# ------------------------------------------------------------------------------------ anomaly


def test_perfect_separation_gives_auc_one_and_full_efficiency():
    bkg = np.linspace(0.0, 1.0, 1000)
    sig = np.linspace(2.0, 3.0, 500)
    assert ev.auc(bkg, sig) == 1.0
    assert ev.signal_efficiency_at(bkg, sig) == {0.1: 1.0, 0.01: 1.0, 0.001: 1.0}
    # the reversed score is perfectly wrong
    assert ev.auc(-bkg, -sig) == 0.0


def test_identical_distributions_give_the_diagonal():
    x = np.random.default_rng(1).exponential(size=1000)
    # trapezoid over ~1000 ROC points of size ~1/1000: n u = 1e-13 worst case (measured 0)
    assert ev.auc(x, x.copy()) == pytest.approx(0.5, abs=1e-12)
    eff = ev.signal_efficiency_at(x, x.copy())
    for eps_b, eps_s in eff.items():
        # one np.interp on the diagonal: a few u (measured <= 0.02 u)
        assert eps_s == pytest.approx(eps_b, abs=1e-12)


def test_known_roc_interpolation_and_small_background_policy():
    # hand-computed ROC (eps_b, eps_s): (0, .5) (.25, .75) (.5, 1) ...
    bkg = np.array([0.0, 1.0, 2.0, 3.0])
    sig = np.array([1.5, 2.5, 3.5, 4.5])
    # multiples of 1/16 and one interpolation: exact or a few u (measured exact); rel 1e-14
    # instead of pytest's float32-sized default 1e-6
    assert ev.auc(bkg, sig) == pytest.approx(13 / 16, rel=1e-14)
    eff = ev.signal_efficiency_at(bkg, sig, eps_b=(0.25, 0.375, 0.5))
    assert eff == pytest.approx({0.25: 0.75, 0.375: 0.875, 0.5: 1.0}, rel=1e-14)
    # eps_b * n_bkg = 0.4 < 1 background jet: NaN with a warning, not an extrapolation
    with pytest.warns(RuntimeWarning, match="returning NaN"):
        eff = ev.signal_efficiency_at(bkg, sig, eps_b=(0.1,))
    assert math.isnan(eff[0.1])
    # the policy threshold is adjustable; then it interpolates between (0, .5) and (.25, .75)
    eff = ev.signal_efficiency_at(bkg, sig, eps_b=(0.1,), min_background=0.0)
    assert eff[0.1] == pytest.approx(0.6, rel=1e-14)  # 0.1 is inexact: a few u


def test_gaussian_shift_matches_analytic_roc():
    rng = np.random.default_rng(7)
    n0, n1 = 200_000, 100_000
    bkg, sig = rng.normal(0, 1, n0), rng.normal(1, 1, n1)
    # sampling: the Hanley-McNeil standard error of the AUC (0.76) is 1e-3 (7e-4 over 30
    # seeds), so abs 0.005 is 5 sigma
    assert ev.auc(bkg, sig) == pytest.approx(norm.cdf(1 / math.sqrt(2)), abs=0.005)
    for eps_b, eps_s in ev.signal_efficiency_at(bkg, sig).items():
        expected = norm.sf(norm.isf(eps_b) - 1.0)
        # sampling: binomial noise of the signal count plus that of the threshold (a quantile
        # of n0 background jets) times the likelihood ratio f1/f0 = e^(t - 1/2) at the cut t:
        # sigma = 0.55 %, 1.8 %, 5.6 % of eps_s at eps_b = 0.1, 0.01, 0.001 (30 seeds: 0.52,
        # 1.8, 5.2 %). 5 sigma; the former rel 0.03 at eps_b = 0.01 was 1.7 sigma, i.e. tuned
        # to this seed.
        t = norm.isf(eps_b)
        var = expected * (1 - expected) / n1 + math.exp(2 * t - 1) * eps_b * (1 - eps_b) / n0
        assert eps_s == pytest.approx(expected, abs=5 * math.sqrt(var))


def test_anomaly_metrics_combined_is_the_pooled_signal():
    rng = np.random.default_rng(3)
    bkg = rng.exponential(1.0, 5000)
    sigs = {"t": rng.exponential(3.0, 2000), "W": rng.exponential(2.0, 1000)}
    m = ev.anomaly_metrics(bkg, sigs)
    pooled = np.concatenate(list(sigs.values()))
    comb = m["signals"]["combined"]
    assert _same_auc(comb["auc"], ev.auc(bkg, pooled))
    assert comb["n_signal"] == 3000 and comb["n_background"] == 5000
    for name, s in sigs.items():
        assert _same_auc(m["signals"][name]["auc"], ev.auc(bkg, s))
        direct = ev.signal_efficiency_at(bkg, s)
        expected = {f"{k:g}": v for k, v in direct.items()}
        # the same np.interp on the same sklearn ROC: equal (measured bitwise); 1e-12 abs
        assert m["signals"][name]["eps_s"] == pytest.approx(expected, abs=1e-12)
    # a harder signal is better separated; combined lies between its parts
    assert m["signals"]["t"]["auc"] > comb["auc"] > m["signals"]["W"]["auc"] > 0.5
    # the stored ROC is monotone and reproduces the working points
    roc = m["signals"]["t"]["roc"]
    assert np.all(np.diff(roc["eps_s"]) >= 0)
    # the stored ROC is resampled on a log grid (201 points); between two grid points both the
    # exact eps_s(0.1) and the interpolated one lie in [eps_s(g_i), eps_s(g_i+1)] (monotone ROC),
    # so they differ by at most that step (here 4.5e-3; measured 3e-4; the former abs 2e-3 was
    # ~2 sigma of the in-interval fluctuation of a 2000-jet signal)
    i = int(np.searchsorted(roc["eps_b"], 0.1))
    step = roc["eps_s"][i] - roc["eps_s"][i - 1]
    assert np.interp(0.1, roc["eps_b"], roc["eps_s"]) == pytest.approx(
        m["signals"]["t"]["eps_s"]["0.1"], abs=step + 1e-12)
    with pytest.raises(ValueError, match="reserved"):
        ev.anomaly_metrics(bkg, {"combined": bkg})
    with pytest.raises(ValueError, match="non-empty mapping"):
        ev.anomaly_metrics(bkg, {})


def test_nan_scores_are_excluded_with_one_counting_warning():
    rng = np.random.default_rng(5)
    bkg, sig = rng.normal(0, 1, 3000), rng.normal(1, 1, 1000)
    sig_bad = sig.copy()
    sig_bad[[3, 10, 500]] = np.nan
    with pytest.warns(RuntimeWarning, match=r"3 of 1000 signal jets .*3 NaN") as rec:
        a = ev.auc(bkg, sig_bad)
    assert len([w for w in rec if "non-finite" in str(w.message)]) == 1
    assert _same_auc(a, ev.auc(bkg, np.delete(sig, [3, 10, 500])))
    with pytest.warns(RuntimeWarning, match="non-finite"):
        m = ev.anomaly_metrics(bkg, {"t": sig_bad})
    assert m["signals"]["t"]["n_invalid"] == 3
    assert m["signals"]["t"]["n_signal"] == 997
    bkg_bad = bkg.copy()
    bkg_bad[0] = np.nan
    with pytest.warns(RuntimeWarning, match="1 of 3000 background"):
        m = ev.anomaly_metrics(bkg_bad, {"t": sig})
    assert m["background"] == {"n": 3000, "n_invalid": 1}
    with pytest.raises(ValueError, match="no jets with a finite score"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ev.auc(bkg, np.full(10, np.nan))
    with pytest.raises(ValueError, match="1D"):
        ev.auc(bkg, np.zeros((10, 2)))


def test_awkward_scores_are_flattened():
    bkg = ak.Array([[0.1, 0.2], [], [0.3]])
    sig = ak.Array([[1.0], [2.0, 3.0]])
    assert ev.auc(bkg, sig) == 1.0


# ------------------------------------------------------------------------------ reconstruction


def _massless(pt, eta, phi):
    pt, eta, phi = map(np.asarray, (pt, eta, phi))
    return np.stack([pt * np.cosh(eta), pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)], -1)


def _random_jets(rng, b=25, n=12):
    pt = rng.exponential(50.0, (b, n)) + 1.0
    eta = rng.normal(0.5, 0.3, (b, n))
    phi = rng.normal(1.0, 0.3, (b, n))
    p4 = _massless(pt, eta, phi)
    mask = np.arange(n)[None, :] < rng.integers(2, n + 1, b)[:, None]
    return np.where(mask[..., None], p4, 0.0), mask


def test_permuted_copy_has_zero_errors():
    rng = np.random.default_rng(11)
    p4, mask = _random_jets(rng)
    # reconstruction: same particles in a random order, padded to a different length
    reco = np.zeros((p4.shape[0], 15, 4))
    rmask = np.zeros((p4.shape[0], 15), bool)
    for b in range(p4.shape[0]):
        slots = rng.permutation(15)[: mask[b].sum()]
        reco[b, slots] = p4[b, mask[b]]
        rmask[b, slots] = True
    r = ev.reconstruction_metrics(p4, mask, reco, rmask)
    assert r["n_unmatched"] == 0 and r["n_matched"] == mask.sum()
    # Only the order of the <= 12-term jet sums changes. Relative errors: n u for pT, eta, phi;
    # the jet mass from E^2 - p^2 cancels, n u (E/m)^2 <= 12 * 40 u = 5e-14 for these jets
    # (measured <= 13 u). W1 is absolute (GeV for jet mass and pT): n u E^2 / m <= 12 * 3.2e3
    # GeV u = 4e-12 GeV (measured 1.2e-13); bound 1e-10 (was 1e-9).
    for level in ("particle", "jet"):
        for f, s in r[level].items():
            assert abs(s["median"]) < 1e-12 and s["iqr"] < 1e-12, (level, f, s)
            assert s["w1"] < 1e-10, (level, f)
    assert r["jet"]["mass"]["n"] == p4.shape[0]


def test_symmetric_pair_known_errors():
    # two massless particles with pT = 100 GeV at eta = 0, phi = +-0.1, reconstructed at +-0.15
    true = np.repeat(_massless([100, 100], [0, 0], [0.1, -0.1])[None], 4, axis=0)
    reco = np.repeat(_massless([100, 100], [0, 0], [0.15, -0.15])[None], 4, axis=0)
    mask = np.ones((4, 2), bool)
    r = ev.reconstruction_metrics(true, mask, reco, mask)
    p, j = r["particle"], r["jet"]
    # float64, ~10 operations per quantity, but two cancellations: the jet mass of a pair at
    # dphi = 0.2 from E^2 - p^2 loses (E/m)^2 = 1 / sin^2(0.1) = 100, and "ratio - 1" divides
    # by the small result (pT_rel: 6e-3, a factor 160): ~1e3 u = 1e-13 relative; rel 1e-11
    # (was 1e-9; measured <= 181 u = 2e-14). Angles (~0.15, a few u each): abs 1e-14.
    rel, ang = 1e-11, 1e-14
    # pT_rel = pT / pT_jet = 1 / (2 cos phi): relative error cos(.1)/cos(.15) - 1
    assert p["pt_rel"]["median"] == pytest.approx(math.cos(0.1) / math.cos(0.15) - 1, rel=rel)
    assert p["pt_rel"]["iqr"] == 0.0  # four identical jets, two identical particles each
    # phi_rel = +-0.1 -> +-0.15: absolute errors +0.05 and -0.05 (four of each): median 0,
    # quartiles -0.05 and +0.05
    assert p["phi_rel"]["median"] == pytest.approx(0.0, abs=ang)
    assert p["phi_rel"]["iqr"] == pytest.approx(0.1, abs=ang)
    assert p["eta_rel"]["median"] == pytest.approx(0.0, abs=ang)
    # m = 2 pT sin(dphi / 2) for a massless pair at equal eta
    assert j["mass"]["median"] == pytest.approx(math.sin(0.15) / math.sin(0.1) - 1, rel=rel)
    assert j["pt"]["median"] == pytest.approx(math.cos(0.15) / math.cos(0.1) - 1, rel=rel)
    assert j["eta"]["median"] == pytest.approx(0.0, abs=ang)
    # the paper-code convention divides angles too: (0.15 - 0.1) / 0.1 = 0.5 for both particles
    # (relative error of 0.05 / 0.1 from angles ~0.15: ~10 u; measured 40 u of 0.5)
    rr = ev.reconstruction_metrics(true, mask, reco, mask, angle_error="relative")
    assert rr["particle"]["phi_rel"]["median"] == pytest.approx(0.5, rel=1e-12)
    assert rr["particle"]["phi_rel"]["iqr"] == pytest.approx(0.0, abs=1e-12)
    # W1 of the jet-mass distributions: all masses shift by 200 (sin .15 - sin .1); mass
    # cancellation as above, difference of 30 and 20 GeV masses (measured 84 u)
    assert j["mass"]["w1"] == pytest.approx(200 * (math.sin(0.15) - math.sin(0.1)), rel=rel)


def test_scaled_and_boosted_copies():
    rng = np.random.default_rng(2)
    p4, mask = _random_jets(rng)
    # every 4-vector scaled by 1.1: relative coordinates unchanged, jet mass and pT +10 %
    r = ev.reconstruction_metrics(p4, mask, 1.1 * p4, mask)
    # float64: scaling rounds each component (u); the jet mass from E^2 - p^2 amplifies the n u
    # (n <= 12 particles) sum error by (E/m)^2, ~12 for the median jet here (up to 373 for one
    # near-collinear jet, which the median and quartiles ignore): ~(n + 2) 30 u = 5e-14 in
    # units of the ratio, i.e. 5e-13 of 0.1. Bounds 1e-11 relative and 1e-12 absolute (were
    # 1e-9; measured <= 33 u relative, iqr 21 u = 2e-15).
    assert r["jet"]["mass"]["median"] == pytest.approx(0.1, rel=1e-11)
    assert r["jet"]["pt"]["median"] == pytest.approx(0.1, rel=1e-11)
    assert r["jet"]["mass"]["iqr"] < 1e-12
    # relative coordinates are scale-free: a few u of O(1) values (measured <= 1.2 u)
    for f in ("pt_rel", "eta_rel", "phi_rel"):
        assert abs(r["particle"][f]["median"]) < 1e-13 and r["particle"][f]["iqr"] < 1e-13
    # a boost along z (rapidity 0.7): the jet mass is invariant, pT unchanged, eta of massless
    # particles shifts by 0.7
    y = 0.7
    boosted = p4.copy()
    boosted[..., 0] = np.cosh(y) * p4[..., 0] + np.sinh(y) * p4[..., 3]
    boosted[..., 3] = np.sinh(y) * p4[..., 0] + np.cosh(y) * p4[..., 3]
    r = ev.reconstruction_metrics(p4, mask, boosted, mask)
    # the boost doubles E (e^0.7) so the mass cancellation is ~4 (E/m)^2 ~ 50 for the median
    # jet: ~(n + 4) 50 u = 1e-13 for the median and quartiles; 1e-12 (was 1e-9; measured 8 u and
    # 56 u)
    assert abs(r["jet"]["mass"]["median"]) < 1e-12 and r["jet"]["mass"]["iqr"] < 1e-12
    # px, py are untouched by a boost along z: pT errors are exactly 0 (bound kept loose)
    assert abs(r["jet"]["pt"]["median"]) < 1e-12
    assert abs(r["particle"]["pt_rel"]["median"]) < 1e-12
    pin, jin = ev.particle_jet_features(p4, mask)
    pbo, _ = ev.particle_jet_features(boosted, mask)
    # eta = asinh(pz / pT) of |eta| <= 1.4 after a boost of 0.7: pz rounded relative to E
    # cosh 0.7 + |pz| sinh 0.7, i.e. ~(cosh + sinh)(0.7) u = 2 u in eta, plus asinh and the
    # eta - rapidity difference of rounded massless particles (~u cosh^2 eta): ~10 u = 1e-15;
    # atol 1e-13 (was 1e-9; measured 3 u)
    np.testing.assert_allclose((pbo["eta"] - pin["eta"])[mask], y, rtol=0, atol=1e-13)
    assert np.all(np.abs(pin["phi_rel"][mask]) <= np.pi)


def test_multiplicity_mismatch_and_bad_shapes():
    p4 = _massless([100, 50, 20], [0, 0.1, -0.1], [0, 0.1, 0.2])[None]
    mask = np.ones((1, 3), bool)
    r = ev.reconstruction_metrics(p4, mask, p4[:, :2], mask[:, :2])
    assert r["n_matched"] == 2 and r["n_unmatched"] == 1
    assert r["particle"]["pt_rel"]["n"] == 2
    with pytest.raises(ValueError, match=r"\(B, N, 4\)"):
        ev.reconstruction_metrics(p4[..., :3], None, p4, None)
    with pytest.raises(ValueError, match="same jets"):
        ev.reconstruction_metrics(p4, None, np.concatenate([p4, p4]), None)
    with pytest.raises(ValueError, match="angle_error"):
        ev.reconstruction_metrics(p4, None, p4, None, angle_error="degrees")


# ---------------------------------------------------------------------------- results and JSON


def test_evaluation_result_json_round_trip(tmp_path):
    rng = np.random.default_rng(4)
    with pytest.warns(RuntimeWarning, match="NaN"):
        anomaly = ev.anomaly_metrics(rng.normal(size=500), {"t": rng.normal(1, 1, 300)})
    assert math.isnan(anomaly["signals"]["t"]["eps_s"]["0.001"])
    p4, mask = _random_jets(rng, b=5)
    res = ev.EvaluationResult(anomaly=anomaly,
                              reconstruction=ev.reconstruction_metrics(p4, mask, p4 * 1.05, mask),
                              compression_rate=0.5, model="fake", metadata={"seed": 4})
    path = res.to_json(tmp_path / "sub" / "metrics.json")
    text = path.read_text()

    def reject(c):
        raise AssertionError(f"non-standard JSON constant {c}")

    json.loads(text, parse_constant=reject)  # strict JSON: NaN written as null
    back = ev.EvaluationResult.from_json(path)
    assert math.isnan(back.anomaly["signals"]["t"]["eps_s"]["0.001"])
    assert back.to_dict() == res.to_dict()
    # scaling by 1.05 as in test_scaled_and_boosted_copies: (n + 2) (E/m)^2 u with (E/m)^2 <= 16
    # for these 5 jets, divided by 0.05: ~5e-13; rel 1e-11 (measured 68 u = 7.5e-15)
    assert back.reconstruction["jet"]["mass"]["median"] == pytest.approx(0.05, rel=1e-11)
    assert "| t |" in back.summary_table()
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        ev.EvaluationResult.from_json(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="does not exist"):
        ev.EvaluationResult.from_json(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="unknown EvaluationResult fields"):
        ev.EvaluationResult.from_dict({"anomaly": {}, "auc": 1})


# -------------------------------------------------------------------------------- orchestration


def _ak_jets(rng, n_events, mass_scale):
    """[event][jet][particle] Momentum4D jets; heavier jets for larger mass_scale."""
    events = []
    for _ in range(n_events):
        jets = []
        for _ in range(rng.integers(0, 3)):
            k = int(rng.integers(2, 8))
            pt = rng.exponential(100.0, k) + 5
            eta = rng.normal(0, mass_scale, k)
            phi = rng.normal(0, mass_scale, k)
            jets.append([{"pt": a, "eta": b, "phi": c, "mass": 0.0}
                         for a, b, c in zip(pt, eta, phi)])
        events.append(jets)
    return ak.Array(events, with_name="Momentum4D")


def _pad(jets, n=8):
    flat = ev.flat_jets(jets)
    p4 = np.zeros((len(flat), n, 4))
    mask = np.zeros((len(flat), n), bool)
    for b, jet in enumerate(flat):
        for i, p in enumerate(jet[:n]):
            p4[b, i] = (p.E, p.px, p.py, p.pz)
            mask[b, i] = True
    return p4, mask


def test_evaluate_orchestration_with_fake_callables(tmp_path):
    rng = np.random.default_rng(8)
    qcd = _ak_jets(rng, 60, 0.05)
    signals = {"t": _ak_jets(rng, 40, 0.3), "W": _ak_jets(rng, 40, 0.15)}
    calls = []

    def score_fn(jets):  # the trivial jet-mass score, with one invalid jet
        calls.append(len(jets))
        s = ev.jet_masses(jets)
        s[0] = np.nan
        return s

    def reconstruct_fn(jets):  # a reconstruction that is 2 % too hard
        p4, mask = _pad(jets)
        return p4, mask, 1.02 * p4, mask

    with pytest.warns(RuntimeWarning) as rec:
        res = ev.evaluate(score_fn, qcd, signals, reconstruct_fn=reconstruct_fn,
                          latent_fn=lambda j: np.stack([ev.jet_masses(j), np.ones(len(j))], 1),
                          outdir=tmp_path, formats=("png",), progress=False, max_jets=50,
                          mass_cut_eps_b=(0.5, 0.25),
                          compression_rate=0.25, model_name="fake")
    messages = [str(w.message) for w in rec]
    assert any("1 of 50 background jets have non-finite" in m for m in messages), messages
    # 49 background jets cannot measure eps_b = 1e-2 or 1e-3: NaN, announced
    assert any("reported as NaN" in m for m in messages), messages
    assert math.isnan(res.anomaly["signals"]["t"]["eps_s"]["0.01"])
    n_qcd = len(ev.flat_jets(qcd))
    assert calls[0] == min(n_qcd, 50)
    assert res.metadata["n_jets"]["QCD"] == calls[0]
    m = res.anomaly["signals"]
    assert set(m) == {"t", "W", "combined"}
    # wide jets are heavy: the jet-mass score separates t > W > QCD
    assert m["t"]["auc"] > m["W"]["auc"] > 0.6
    assert res.anomaly["background"]["n_invalid"] == 1
    # scaling by 1.02: (n + 2) (E/m)^2 u / 0.02 with QCD jets of angular spread 0.05, i.e.
    # (E/m)^2 ~ 1 / 0.05^2 = 400 and n <= 8: ~2e-11 relative; rel 1e-9
    assert res.reconstruction["jet"]["mass"]["median"] == pytest.approx(0.02, rel=1e-9)
    assert res.compression_rate == 0.25
    back = ev.EvaluationResult.from_json(tmp_path / "metrics.json")
    assert back.anomaly["signals"]["t"]["auc"] == m["t"]["auc"]  # JSON writes repr(float)
    saved = np.load(tmp_path / "scores.npz")
    assert set(saved.files) == {"QCD", "t", "W"}
    for stem in ("roc", "scores", "reconstruction", "latent_invariants", "mass_sculpting"):
        png = tmp_path / f"{stem}.png"
        assert png.stat().st_size > 5000, stem
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    warnings.simplefilter("ignore", RuntimeWarning)  # small-sample notes below are expected
    with pytest.raises(ValueError, match="expected one per jet"):
        ev.evaluate(lambda j: np.zeros(3), qcd, signals, progress=False)
    with pytest.raises(ValueError, match="reconstruct_fn must return"):
        ev.evaluate(lambda j: np.arange(len(j), dtype=float), qcd, signals,
                    reconstruct_fn=lambda j: (1, 2), progress=False)
    with pytest.raises(ValueError, match="has no jets"):
        ev.evaluate(score_fn, qcd[:0], signals, progress=False)



def test_evaluate_matches_once_and_writes_metadata_once(tmp_path, monkeypatch):
    from lgae_hep.metrics import EvaluationResult as MetricsResult
    from lgae_hep.metrics import reconstruction as reco_mod

    rng = np.random.default_rng(9)
    qcd = _ak_jets(rng, 40, 0.05)
    signals = {"t": _ak_jets(rng, 30, 0.3)}
    matchings, writes = [], []
    real_hungarian, real_to_json = reco_mod._hungarian, MetricsResult.to_json

    def counting_hungarian(*args, **kwargs):
        matchings.append(1)
        return real_hungarian(*args, **kwargs)

    def counting_to_json(self, path):
        writes.append(dict(self.metadata))
        return real_to_json(self, path)

    monkeypatch.setattr(reco_mod, "_hungarian", counting_hungarian)
    monkeypatch.setattr(MetricsResult, "to_json", counting_to_json)

    def reconstruct_fn(jets):
        p4, mask = _pad(jets)
        return p4, mask, 1.02 * p4, mask

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = ev.evaluate(ev.jet_masses, qcd, signals, reconstruct_fn=reconstruct_fn,
                          outdir=tmp_path, formats=("png",), progress=False,
                          metadata={"files": {"background": "q.root"}, "score_metric": "m"})
    assert len(matchings) == 1  # the metrics and the reconstruction plot share one matching
    assert len(writes) == 1 and writes[0]["score_metric"] == "m"
    saved = json.loads((tmp_path / "metrics.json").read_text())["metadata"]
    assert saved["files"] == {"background": "q.root"} and saved["score_metric"] == "m"
    assert res.metadata["files"] == saved["files"]
    assert "reconstruction.png" in saved["plots"]
    with pytest.raises(ValueError, match="angle_error"):
        ev.evaluate(ev.jet_masses, qcd, signals, reconstruct_fn=reconstruct_fn,
                    angle_error="degrees", progress=False)


def test_one_json_sanitiser():
    from lgae_hep.jsonio import jsonable

    obj = {1: (np.float32(1.5), np.int64(2), np.bool_(True), math.nan, -math.inf),
           "a": np.arange(2.0), "s": {np.float64(3.0)}}
    assert jsonable(obj) == {"1": [1.5, 2, True, None, None], "a": [0.0, 1.0], "s": [3.0]}
    json.dumps(jsonable(obj), allow_nan=False)

def test_cli_arguments_and_raw_reconstruction_padding():
    from lgae_hep.cli import build_parser

    parser, _ = build_parser("evaluate")
    args = parser.parse_args(["--model", "lgae-minmax", "--background", "qcd.root", "--signal",
                              "t.root", "w.root", "z.root", "-o", "out", "--max-jets", "100"])
    assert args.signal == ["t.root", "w.root", "z.root"] and args.max_jets == 100
    assert args.eps_b == [0.1, 0.01, 0.001] and args.output == "out"
    # network outputs are padded as they are: no physics validation, None (invalid) -> empty
    rec = ak.Array([[{"pt": 10.0, "eta": 1.0, "phi": 0.0, "mass": 1.0}] * 2, None, [],
                    [{"pt": 5.0, "eta": 0.0, "phi": 0.5, "mass": 0.0}]], with_name="Momentum4D")
    p4, mask = ev.padded_p4(rec)
    assert p4.shape == (4, 2, 4)
    np.testing.assert_array_equal(mask, [[1, 1], [0, 0], [0, 0], [1, 0]])
    # `vector`'s pt/eta/phi/mass -> E, px, py, pz: a few float64 operations (cosh, sqrt) each,
    # ~5 u relative; rtol 1e-14 (the default 1e-7 was float32-sized; measured <= 1 u). The zero
    # components are exact (sin 0 = sinh 0 = 0).
    np.testing.assert_allclose(p4[0, 0], [np.sqrt((10 * np.cosh(1)) ** 2 + 1), 10, 0,
                                          10 * np.sinh(1)], rtol=1e-14)
    np.testing.assert_allclose(p4[3, 0], [5, 5 * np.cos(0.5), 5 * np.sin(0.5), 0], rtol=1e-14)


def test_importing_evaluate_and_plotting_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys, lgae_hep.evaluate, lgae_hep.plotting; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0
