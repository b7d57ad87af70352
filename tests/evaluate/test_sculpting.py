"""Mass sculpting: 1/JSD of the background mass before/after a score cut, Spearman with mass."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lgae_hep.metrics import jensen_shannon, mass_sculpting


def test_jsd_known_values():
    assert jensen_shannon([1, 2, 3], [2, 4, 6]) == 0.0  # same shape
    assert jensen_shannon([1, 0], [0, 5]) == 1.0  # disjoint: the base-2 maximum
    # one bin shared half-half: p = (1, 0), q = (1/2, 1/2), m = (3/4, 1/4)
    ref = 0.5 * math.log2(4 / 3) + 0.5 * (0.5 * math.log2(2 / 3) + 0.5 * math.log2(2))
    # a few float64 operations on numbers of order 1
    assert jensen_shannon([2, 0], [1, 1]) == pytest.approx(ref, rel=1e-14)
    with pytest.raises(ValueError, match="non-negative"):
        jensen_shannon([1, -1], [1, 1])


def test_a_mass_cut_sculpts_exactly_as_computed_by_hand():
    # masses at the 30 bin centres (0-300 GeV), 100 jets each; score = mass: the top 10 % are
    # exactly the three highest bins. P uniform over 30 bins, Q uniform over 3 of them.
    mass = np.repeat(5.0 + 10.0 * np.arange(30), 100)
    out = mass_sculpting(mass, mass)
    kl_p = 27 / 30 * math.log2(2) + 3 / 30 * math.log2((1 / 30) / (11 / 60))
    kl_q = math.log2((1 / 3) / (11 / 60))
    jsd = 0.5 * kl_p + 0.5 * kl_q
    assert out["n_selected"]["0.1"] == 300 and out["n"] == 3000
    assert out["jsd"]["0.1"] == pytest.approx(jsd, rel=1e-13)
    assert out["inv_jsd"]["0.1"] == pytest.approx(1 / jsd, rel=1e-13)
    assert out["spearman"] == pytest.approx(1.0, abs=1e-12)  # a monotonic function of mass
    assert mass_sculpting(-mass, mass)["spearman"] == pytest.approx(-1.0, abs=1e-12)


def test_a_score_independent_of_mass_does_not_sculpt():
    rng = np.random.default_rng(0)
    mass = rng.gamma(3.0, 30.0, 200_000)
    score = rng.normal(size=mass.size)  # independent of the mass
    out = mass_sculpting(score, mass)
    # with k selected jets, 2 ln2 * JSD is ~ chi2/(4k) with (bins-1) dof: 1/JSD ~ 8 ln2 k / 29
    # ~ 3800 at k = 20,000; a fluctuation of a few sigma stays far above 100
    assert out["inv_jsd"]["0.1"] > 100
    assert abs(out["spearman"]) < 0.01  # 1/sqrt(n) ~ 2e-3: 5 sigma
    # a mass cut on the same jets: strong sculpting
    assert mass_sculpting(mass, mass)["inv_jsd"]["0.1"] < 2


def test_non_finite_are_left_out_and_bad_input():
    s = np.array([1.0, np.nan, 3.0, 4.0])
    m = np.array([10.0, 20.0, np.inf, 40.0])
    out = mass_sculpting(s, m, eps_b=(0.5,))
    assert out["n"] == 2 and out["n_invalid"] == 2 and out["n_selected"]["0.5"] == 1
    with pytest.raises(ValueError, match="masses"):
        mass_sculpting([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="eps_b"):
        mass_sculpting([1.0, 2.0], [1.0, 2.0], eps_b=(0.0,))


def test_yardsticks_beside_the_model_in_an_evaluation():
    """evaluate() reports the one-observable scores on the same jets, each with its sculpting;
    the jet-mass yardstick sculpts the mass maximally (Spearman 1)."""
    import awkward as ak
    import vector

    from lgae_hep import evaluate as ev
    from lgae_hep.metrics import YARDSTICKS, yardstick_scores

    vector.register_awkward()
    pytest.importorskip("fastjet")

    def jets(n, seed, prongs):
        rng = np.random.default_rng(seed)
        out = []
        for _ in range(n):
            axes = [(rng.normal(0, 0.3), rng.normal(0, 0.3)) for _ in range(prongs)]
            parts = []
            for a in axes:
                k = int(rng.integers(3, 8))
                parts += [{"pt": float(rng.exponential(50) + 1),
                           "eta": a[0] + float(rng.normal(0, 0.03)),
                           "phi": a[1] + float(rng.normal(0, 0.03)), "mass": 0.0}
                          for _ in range(k)]
            out.append(parts)
        return ak.Array(out, with_name="Momentum4D")

    qcd, two = jets(150, 1, 1), jets(150, 2, 2)
    flat = yardstick_scores(qcd)
    assert list(flat) == list(YARDSTICKS) and all(v.shape == (150,) for v in flat.values())
    res = ev.evaluate(ev.jet_masses, qcd, {"2p": two}, progress=False)
    yard = res.anomaly["yardsticks"]
    assert list(yard) == list(YARDSTICKS)
    assert yard["jet mass"]["sculpting"]["spearman"] == pytest.approx(1.0)
    # the model here IS the jet mass: identical AUC to the mass yardstick
    assert res.anomaly["signals"]["2p"]["auc"] == pytest.approx(yard["jet mass"]["signals"]
                                                                ["2p"]["auc"], abs=1e-12)
    # two prongs vs one: tau21 and D2 separate them. Bound from statistics, not from a run:
    # without separation the AUC of 150 vs 150 jets is 0.5 with the Hanley-McNeil standard
    # error auc_standard_error(0.5, 150, 150) = 0.033; above 0.5 + 4 SE excludes that at
    # one-sided p = 3e-5, and a sign or direction error (AUC < 0.5) fails it
    from lgae_hep.metrics import auc_standard_error

    floor = 0.5 + 4 * auc_standard_error(0.5, len(qcd), len(two))
    assert yard["1 - tau21"]["signals"]["2p"]["auc"] > floor
    assert yard["-log D2"]["signals"]["2p"]["auc"] > floor
    table = res.comparison_table()
    assert "1 - tau21" in table and "Spearman" in table


def test_density_yardstick_fits_on_the_reference_and_flags_other_shapes():
    """A Gaussian mixture on (log m, tau21, tau32) of QCD-like reference jets: reproducible
    (seeded), -log p higher for two-prong jets, NaN where a feature is undefined; reported by
    evaluate() only when a reference sample is given."""
    import awkward as ak
    import vector

    from lgae_hep import evaluate as ev
    from lgae_hep.metrics import DENSITY_YARDSTICK, DensityYardstick

    vector.register_awkward()
    pytest.importorskip("fastjet")
    rng = np.random.default_rng(3)

    def cloud(n, prongs):
        out = []
        for _ in range(n):
            parts = []
            for _ in range(prongs):
                a = rng.normal(0, 0.3, 2)
                parts += [{"pt": float(rng.exponential(50) + 1),
                           "eta": float(a[0] + rng.normal(0, 0.05)),
                           "phi": float(a[1] + rng.normal(0, 0.05)), "mass": 0.0}
                          for _ in range(int(rng.integers(3, 8)))]
            out.append(parts)
        return ak.Array(out, with_name="Momentum4D")

    reference, qcd, two = cloud(300, 1), cloud(200, 1), cloud(200, 2)
    a = DensityYardstick().fit(reference).score(two)
    b = DensityYardstick().fit(reference).score(two)
    np.testing.assert_array_equal(a, b)  # seeded fit, same machine: bitwise
    single = ak.Array([[{"pt": 10.0, "eta": 0.0, "phi": 0.0, "mass": 0.0}]],
                      with_name="Momentum4D")
    assert np.isnan(DensityYardstick().fit(reference).score(single)[0])  # tau21 undefined
    res = ev.evaluate(ev.jet_masses, qcd, {"2p": two}, reference=reference, progress=False)
    gmm = res.anomaly["yardsticks"][DENSITY_YARDSTICK]
    # separation, from statistics: no separation gives AUC 0.5 with the Hanley-McNeil error
    # of 200 vs 200 jets (0.029); 0.5 + 4 SE excludes it at one-sided p = 3e-5, and a sign
    # error (AUC < 0.5) fails it
    from lgae_hep.metrics import auc_standard_error

    assert gmm["signals"]["2p"]["auc"] > 0.5 + 4 * auc_standard_error(0.5, len(qcd), len(two))
    assert DENSITY_YARDSTICK not in ev.evaluate(ev.jet_masses, qcd, {"2p": two},
                                                progress=False).anomaly["yardsticks"]
    with pytest.raises(ValueError, match="reference jets"):
        DensityYardstick().fit(reference[:5])
    with pytest.raises(ValueError, match="fit"):
        DensityYardstick().score(two)


def test_decorrelation_point_by_hand():
    """Signal scores 1..10 at eps_s = 0.5: threshold 6 (the 5 highest pass); background scores
    equal to their masses 10, 20, ..., 100 GeV: those >= 6 pass (all), so eps_b = 1 and the mass
    shape is unchanged (JSD 0, 1/JSD inf). A mass-like background score 0.1 m keeps m >= 60."""
    from lgae_hep.metrics.sculpting import decorrelation_point, jensen_shannon

    sig = np.arange(1.0, 11.0)
    mass = np.arange(10.0, 101.0, 10.0)
    p = decorrelation_point(mass, sig, mass)
    assert p["threshold"] == 6.0 and p["eps_s"] == 0.5
    assert p["eps_b"] == 1.0 and p["rejection"] == 1.0 and p["inv_jsd"] == float("inf")
    p = decorrelation_point(0.1 * mass, sig, mass)
    assert p["eps_b"] == 0.5 and p["rejection"] == 2.0
    edges = np.linspace(0, 300, 31)
    want = 1 / jensen_shannon(np.histogram(mass, edges)[0], np.histogram(mass[5:], edges)[0])
    assert p["inv_jsd"] == want
    with pytest.raises(ValueError, match="eps_s"):
        decorrelation_point(mass, sig, mass, eps_s=0.0)
