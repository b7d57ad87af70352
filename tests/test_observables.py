"""lgae_hep.observables against slow independent references and known limits."""

from __future__ import annotations

import itertools

import awkward as ak
import numpy as np
import pytest
import vector

from lgae_hep import observables as obs

vector.register_awkward()
fastjet = pytest.importorskip("fastjet", reason="the sim extra (fastjet) is not installed")

#: float64 sums of at most ~10^5 terms of size <= 1 (e3 of a 60-particle jet): Higham's bound
#: n u ~ 1e5 * 1.1e-16 ~ 1e-11 relative; the loops below add in another order
RTOL = 1e-10


def _jets(n_jets: int, seed: int, lo: int = 1, hi: int = 40) -> ak.Array:
    rng = np.random.default_rng(seed)
    counts = rng.integers(lo, hi, n_jets)
    tot = int(counts.sum())
    eta0 = np.repeat(rng.uniform(-2, 2, n_jets), counts)
    phi0 = np.repeat(rng.uniform(-3, 3, n_jets), counts)
    parts = ak.zip({"pt": rng.exponential(30, tot) + 0.5, "eta": eta0 + rng.normal(0, 0.25, tot),
                    "phi": phi0 + rng.normal(0, 0.25, tot), "mass": rng.uniform(0, 0.5, tot)},
                   with_name="Momentum4D")
    return ak.unflatten(parts, counts)


def _arrays(jet):
    p = np.array([[q.px, q.py, q.pz, q.E] for q in jet])
    pt = np.hypot(p[:, 0], p[:, 1])
    y = 0.5 * np.log((p[:, 3] + p[:, 2]) / (p[:, 3] - p[:, 2]))
    phi = np.arctan2(p[:, 1], p[:, 0])
    return p, pt, y, phi


def _dr(y1, phi1, y2, phi2):
    dphi = (phi1 - phi2 + np.pi) % (2 * np.pi) - np.pi
    return np.hypot(y1 - y2, dphi)


def _ecf_loops(jet, beta=1.0):
    _, pt, y, phi = _arrays(jet)
    z = pt / pt.sum()
    n = len(z)
    r = [[_dr(y[i], phi[i], y[j], phi[j]) ** beta for j in range(n)] for i in range(n)]
    e2 = sum(z[i] * z[j] * r[i][j] for i, j in itertools.combinations(range(n), 2))
    e3 = sum(z[i] * z[j] * z[k] * r[i][j] * r[i][k] * r[j][k]
             for i, j, k in itertools.combinations(range(n), 3))
    return e2, e3


def test_jet_mass_is_the_invariant_mass_of_the_sum():
    jets = _jets(20, 1)
    got = ak.to_numpy(obs.jet_mass(jets))
    for i, jet in enumerate(jets):
        p = _arrays(jet)[0].sum(0)
        ref = np.sqrt(max(p[3] ** 2 - p[0] ** 2 - p[1] ** 2 - p[2] ** 2, 0.0))
        # m^2 = E^2 - p^2 cancels: error ~ a few u E^2, i.e. u E^2 / m on m
        assert got[i] == pytest.approx(ref, rel=1e-12, abs=16 * 2.0**-53 * p[3] ** 2 / ref)


def test_known_mass_of_two_back_to_back_particles_boosted():
    # two massless 50 GeV particles back to back: m = 100 GeV, whatever the boost
    a = vector.obj(px=50.0, py=0.0, pz=0.0, E=50.0)
    b = vector.obj(px=-50.0, py=0.0, pz=0.0, E=50.0)
    boost = vector.obj(x=0.3, y=0.2, z=0.9)  # beta, |beta| < 1
    jet = [a.boost_beta3(boost), b.boost_beta3(boost)]
    arr = ak.Array([[{"px": q.px, "py": q.py, "pz": q.pz, "E": q.E} for q in jet]],
                   with_name="Momentum4D")
    # gamma ~ 2.7: the boosted components carry ~gamma^2 u relative error on m^2
    assert ak.to_numpy(obs.jet_mass(arr))[0] == pytest.approx(100.0, rel=1e-13)


def test_energy_correlation_matches_slow_loops_and_fastjet():
    jets = _jets(12, 2, lo=3, hi=25)
    got = obs.energy_correlation(jets)
    for i, jet in enumerate(jets):
        e2, e3 = _ecf_loops(jet)
        assert got.e2[i] == pytest.approx(e2, rel=RTOL)
        assert got.e3[i] == pytest.approx(e3, rel=RTOL)
        assert got.d2[i] == pytest.approx(e3 / e2**3, rel=4 * RTOL)
        assert got.c2[i] == pytest.approx(e3 / e2**2, rel=3 * RTOL)
    # FastJet's own EnergyCorrelator (fjcontrib), pt_R measure: the same numbers
    p4 = ak.zip({"px": jets.px, "py": jets.py, "pz": jets.pz, "E": jets.E})
    cs = fastjet.ClusterSequence(p4, fastjet.JetDefinition(fastjet.kt_algorithm, 10.0))
    fj_d2 = ak.to_numpy(cs.exclusive_jets_energy_correlator(njets=1, func="d2"))
    # FastJet recomputes pt, y, phi from (px, py, pz, E) in its own order of operations
    np.testing.assert_allclose(ak.to_numpy(got.d2), fj_d2, rtol=1e-9)


def test_energy_correlation_limits():
    # two particles: no triplet, e3 = 0 exactly, so C2 = D2 = 0 (a perfect two-prong jet)
    two = ak.Array([[{"pt": 100.0, "eta": 0.0, "phi": 0.0, "mass": 0.0},
                     {"pt": 50.0, "eta": 0.3, "phi": 0.1, "mass": 0.0}]], with_name="Momentum4D")
    r = obs.energy_correlation(two)
    z1, z2 = 100 / 150, 50 / 150
    assert r.e3[0] == 0.0 and r.d2[0] == 0.0 and r.c2[0] == 0.0
    assert r.e2[0] == pytest.approx(z1 * z2 * np.hypot(0.3, 0.1), rel=1e-6)  # y != eta: m = 0
    # one prong (a single particle, or all particles collinear): e2 = 0, ratios undefined
    one = ak.Array([[{"pt": 100.0, "eta": 0.5, "phi": 0.2, "mass": 0.0}] * 3],
                   with_name="Momentum4D")
    r1 = obs.energy_correlation(one)
    assert r1.e2[0] == 0.0 and np.isnan(r1.d2[0]) and np.isnan(r1.c2[0])
    # a soft wide-angle third particle on a two-prong jet: D2 grows with its energy fraction
    d2 = [ak.to_numpy(obs.energy_correlation(ak.Array([[
        {"pt": 100.0, "eta": 0.0, "phi": 0.0, "mass": 0.0},
        {"pt": 100.0, "eta": 0.4, "phi": 0.0, "mass": 0.0},
        {"pt": f, "eta": 0.2, "phi": 0.6, "mass": 0.0}]], with_name="Momentum4D")).d2)[0]
        for f in (1.0, 10.0, 30.0)]
    assert 0 < d2[0] < d2[1] < d2[2]


def _tau_loops(jet, k, beta=1.0, r0=0.8):
    p, pt, y, phi = _arrays(jet)
    if len(pt) <= k:
        return 0.0
    # independent axes: exclusive kT clustering to k subjets, by hand (E-scheme merging)
    objs = [q for q in p]
    while len(objs) > k:
        best = None
        for i, j in itertools.combinations(range(len(objs)), 2):
            a, b = objs[i], objs[j]
            pa, pb = np.hypot(a[0], a[1]), np.hypot(b[0], b[1])
            ya = 0.5 * np.log((a[3] + a[2]) / (a[3] - a[2]))
            yb = 0.5 * np.log((b[3] + b[2]) / (b[3] - b[2]))
            d = min(pa, pb) ** 2 * _dr(ya, np.arctan2(a[1], a[0]), yb, np.arctan2(b[1], b[0])) ** 2
            if best is None or d < best[0]:
                best = (d, i, j)
        _, i, j = best
        merged = objs[i] + objs[j]
        objs = [o for n, o in enumerate(objs) if n not in (i, j)] + [merged]
    ax = np.array(objs)
    ay = 0.5 * np.log((ax[:, 3] + ax[:, 2]) / (ax[:, 3] - ax[:, 2]))
    aphi = np.arctan2(ax[:, 1], ax[:, 0])
    dmin = np.array([min(_dr(y[i], phi[i], ay[a], aphi[a]) for a in range(k))
                     for i in range(len(pt))])
    return float((pt * dmin**beta).sum() / (pt.sum() * r0**beta))


def test_nsubjettiness_matches_slow_reference():
    jets = _jets(8, 3, lo=1, hi=14)
    got = obs.nsubjettiness(jets)
    for i, jet in enumerate(jets):
        for k in (1, 2, 3):
            # same axes up to rounding of the merges; ~20 float64 operations per term
            assert got[f"tau{k}"][i] == pytest.approx(_tau_loops(jet, k), rel=1e-9, abs=1e-12)


def test_nsubjettiness_limits():
    # a perfect two-prong jet (two particles, or two tight clusters): tau2 = 0, tau21 = 0
    two = ak.Array([[{"pt": 300.0, "eta": 0.0, "phi": 0.0, "mass": 0.0},
                     {"pt": 200.0, "eta": 0.5, "phi": 0.2, "mass": 0.0}]], with_name="Momentum4D")
    t = obs.nsubjettiness(two)
    assert t.tau1[0] > 0 and t.tau2[0] == 0.0 and t.tau3[0] == 0.0
    assert ak.to_numpy(obs.tau21(two))[0] == 0.0 and np.isnan(ak.to_numpy(obs.tau32(two))[0])
    prongs = []
    for eta, phi in ((0.0, 0.0), (0.5, 0.2)):
        prongs += [{"pt": 100.0, "eta": eta + d, "phi": phi - d, "mass": 0.0}
                   for d in (0.0, 1e-4, -1e-4)]
    tau21 = ak.to_numpy(obs.tau21(ak.Array([prongs], with_name="Momentum4D")))[0]
    assert 0 < tau21 < 1e-3  # collinear splittings of 1e-4 rad: tau2 ~ 1e-4, tau1 ~ 0.2
    # an empty jet: NaN, never a made-up number
    empty = _jets(1, 9)[:, :0]
    assert np.isnan(obs.nsubjettiness(empty).tau1[0])
    assert ak.to_numpy(obs.jet_mass(empty))[0] == 0.0


def test_softdrop_mass_agrees_with_the_generator_and_grooms():
    pytest.importorskip("pythia8mc")
    from lgae_hep.data.generate import generate

    jets = generate("w", 30, seed=5, fast=True, progress=False, return_info=True)
    consts = ak.flatten(jets.jets, axis=1)
    stored = ak.to_numpy(ak.flatten(jets.jet_fields["msoftdrop"], axis=None))
    msd = ak.to_numpy(obs.softdrop_mass(consts))
    # the same FastJet Soft Drop on the same particles: equal up to float64 rounding
    np.testing.assert_allclose(msd, stored, rtol=1e-10, atol=1e-9)
    assert np.all(msd <= ak.to_numpy(obs.jet_mass(consts)) * (1 + 1e-12))


def test_structure_and_bad_input():
    events = ak.unflatten(_jets(7, 4, lo=0, hi=10), [3, 0, 4])
    for f in (obs.jet_mass, obs.softdrop_mass):
        out = f(events)
        assert ak.num(out, axis=1).tolist() == [3, 0, 4]
    e = obs.energy_correlation(events)
    assert ak.num(e, axis=1).tolist() == [3, 0, 4]
    with pytest.raises(ValueError, match="Lorentz"):
        obs.jet_mass(ak.Array([[1.0, 2.0]]))
    with pytest.raises(ValueError, match="beta"):
        obs.energy_correlation(events, beta=0)
    with pytest.raises(ValueError, match="n must be"):
        obs.nsubjettiness(events, n=(0,))
