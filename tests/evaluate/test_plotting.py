"""lgae_hep.plotting: every plot writes a non-empty PNG from hist objects and from arrays."""

from __future__ import annotations

import hist
import numpy as np
import pytest

from lgae_hep import evaluate as ev
from lgae_hep import plotting as pl

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, path
    assert len(data) > 5000, (path, len(data))


def _texts(fig):
    return {t.get_text() for ax in fig.axes for t in ax.texts}


@pytest.fixture(scope="module")
def scores():
    rng = np.random.default_rng(0)
    return {
        "QCD": rng.lognormal(0.0, 1.0, 4000),
        "t": rng.lognormal(1.2, 1.0, 1000),
        "W": rng.lognormal(0.6, 1.0, 1000),
    }


def test_score_histogram_axes_and_counts(scores):
    s = dict(scores)
    s["t"] = np.append(s["t"], [np.nan, 0.0])  # invalid jet (not filled), empty jet (underflow)
    with pytest.warns(RuntimeWarning, match="1 non-finite t scores"):
        h = pl.score_histogram(s, bins=40)
    assert [a.name for a in h.axes] == ["process", "score"]
    assert isinstance(h.axes["process"], hist.axis.StrCategory)
    assert list(h.axes["process"]) == ["QCD", "t", "W"]
    edges = h.axes["score"].edges
    # log bins: float64 edges exp(a + i h) with |log edge| <= 4.2 carry ~10 u relative, so the
    # log differences (~0.2) are off by ~2 * 10 u / 0.2 = 100 u; rtol 1e-12 (the default 1e-7
    # was float32-sized; measured 23 u)
    np.testing.assert_allclose(np.diff(np.log(edges)), np.log(edges[1] / edges[0]), rtol=1e-12)
    assert h[{"process": "t"}].values(flow=True).sum() == 1001  # 0.0 kept in the underflow
    assert h[{"process": "QCD"}].values().sum() == 4000
    with pytest.raises(ValueError, match="reserved"):
        pl.score_histogram(scores, category="sample")
    with pytest.raises(ValueError, match="positive range"):
        pl.score_histogram(scores, range=(0.0, 10.0))


def test_roc_from_hist_matches_unbinned_auc(scores):
    h = pl.score_histogram(scores, bins=400)
    rocs = pl.roc_from_hist(h, "QCD")
    assert set(rocs) == {"t", "W"}
    for name, r in rocs.items():
        # binning: the histogram counts every background-signal pair inside one bin as a tie
        # (1/2) where the unbinned AUC counts 0 or 1, so they differ by at most
        # 1/2 sum_i b_i s_i (bin fractions b_i, s_i): 1.9e-3 (t) and 2.6e-3 (W) here, where the
        # former abs 2e-3 was below the W bound (measured 1e-5 and 4e-5)
        b, sg = (h[{"process": p}].values(flow=True) for p in ("QCD", name))
        ties = 0.5 * np.sum(b / b.sum() * sg / sg.sum())
        assert r["auc"] == pytest.approx(ev.auc(scores["QCD"], scores[name]), abs=ties + 1e-12)
        # cumulative sum of ~400 bin fractions: n u = 4e-14 at most (measured exact)
        assert r["eps_b"][0] == 0.0 and r["eps_b"][-1] == pytest.approx(1.0, abs=1e-12)
        assert np.all(np.diff(r["eps_b"]) >= 0) and np.all(np.diff(r["eps_s"]) >= 0)
    # perfectly separated classes in a histogram
    hp = pl.score_histogram({"QCD": np.full(10, 1.0), "X": np.full(10, 100.0)}, bins=10)
    assert pl.roc_from_hist(hp, "QCD")["X"]["auc"] == pytest.approx(1.0, abs=1e-12)  # n u
    with pytest.raises(ValueError, match="not in the 'process' axis"):
        pl.roc_from_hist(h, "ttbar")


def test_plot_roc_from_metrics_hist_and_curves(tmp_path, scores):
    metrics = ev.anomaly_metrics(scores["QCD"], {"t": scores["t"], "W": scores["W"]})
    fig = pl.plot_roc(metrics, path=tmp_path / "roc_metrics")
    _assert_png(tmp_path / "roc_metrics.png")
    assert {"CMS", "Simulation", "(13 TeV)"} <= _texts(fig)
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert f"combined (AUC = {metrics['signals']['combined']['auc']:.3f})" in legend

    h = pl.score_histogram(scores)
    fig = pl.plot_roc(h, background="QCD", style="efficiency", data_label=True,
                      path=tmp_path / "roc_hist.png")
    _assert_png(tmp_path / "roc_hist.png")
    assert "Simulation" not in _texts(fig)

    eb, es, _ = ev.roc_curve(scores["QCD"], scores["t"])
    pl.plot_roc({"t": (eb, es)}, path=tmp_path / "roc_curves", formats=("png", "pdf"))
    _assert_png(tmp_path / "roc_curves.png")
    assert (tmp_path / "roc_curves.pdf").read_bytes()[:4] == b"%PDF"
    with pytest.raises(ValueError, match="background"):
        pl.plot_roc(h)
    with pytest.raises(ValueError, match="style"):
        pl.plot_roc(metrics, style="banana")


def test_plot_score_distributions(tmp_path, scores):
    pl.plot_score_distributions(scores, path=tmp_path / "arrays.png")
    _assert_png(tmp_path / "arrays.png")
    # a processor-like histogram: (dataset, score, jet mass); the mass axis is summed over
    h = hist.Hist(
        hist.axis.StrCategory([], name="dataset", growth=True),
        hist.axis.Regular(30, 1e-2, 1e3, name="score", label="LGAE score",
                          transform=hist.axis.transform.log),
        hist.axis.Regular(20, 0, 300, name="mass", label="Jet mass [GeV]"),
    )
    rng = np.random.default_rng(1)
    for name, s in scores.items():
        h.fill(dataset=name, score=s, mass=rng.uniform(0, 300, s.size))
    fig = pl.plot_score_distributions(h, path=tmp_path / "hist.png")
    _assert_png(tmp_path / "hist.png")
    assert fig.axes[0].get_xscale() == "log"
    assert fig.axes[0].get_xlabel() == "LGAE score"


def test_plot_feature_comparison_arrays_and_hists(tmp_path):
    rng = np.random.default_rng(2)
    p4 = np.zeros((40, 10, 4))
    pt = rng.exponential(30, (40, 10)) + 1
    eta, phi = rng.normal(0, 0.2, (2, 40, 10))
    p4[..., 0], p4[..., 1], p4[..., 2], p4[..., 3] = (
        pt * np.cosh(eta), pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta))
    mask = np.ones((40, 10), bool)
    feats = ev.reconstruction_features(p4, mask, p4 * 1.05, mask)
    fi, fr = pl.features_for_plot(feats, "input"), pl.features_for_plot(feats, "reco")
    assert set(fi) == set(pl.FEATURE_LABELS)
    fig = pl.plot_feature_comparison(fi, fr, path=tmp_path / "arrays.png")
    _assert_png(tmp_path / "arrays.png")
    assert len([a for a in fig.axes if a.get_visible()]) == 6

    hists = {}
    for f in ("pt_rel", "jet_mass"):
        edges = np.linspace(np.min(fi[f]), np.max(fi[f]) * 1.1, 30)
        h = hist.Hist(hist.axis.StrCategory(["input", "reconstructed"], name="kind"),
                      hist.axis.Variable(edges, name="x", label=pl.FEATURE_LABELS[f]))
        h.fill(kind="input", x=fi[f])
        h.fill(kind="reconstructed", x=fr[f])
        hists[f] = h
    fig = pl.plot_feature_comparison(hists, path=tmp_path / "hists.png")
    _assert_png(tmp_path / "hists.png")
    assert len([a for a in fig.axes if a.get_visible()]) == 2
    with pytest.raises(ValueError, match="not in reconstructed"):
        pl.plot_feature_comparison(fi, {"pt_rel": fr["pt_rel"]})


def test_plot_latent_invariants_arrays_and_hist(tmp_path):
    rng = np.random.default_rng(3)
    data = {"QCD": rng.normal(0, 1, (500, 3)), "t": rng.normal(1, 1, (300, 3))}
    fig = pl.plot_latent_invariants(data, path=tmp_path / "arrays.png")
    _assert_png(tmp_path / "arrays.png")
    assert len([a for a in fig.axes if a.get_visible()]) == 3
    h = hist.Hist(
        hist.axis.StrCategory([], name="process", growth=True),
        hist.axis.IntCategory([0, 1], name="channel", label="Latent 4-vector"),
        hist.axis.Regular(40, -5, 5, name="norm", label=r"Minkowski norm $z^2$"),
    )
    for name, arr in data.items():
        for c in (0, 1):
            h.fill(process=name, channel=c, norm=arr[:, c])
    fig = pl.plot_latent_invariants(h, path=tmp_path / "hist.png")
    _assert_png(tmp_path / "hist.png")
    assert len([a for a in fig.axes if a.get_visible()]) == 2


def test_plot_mass_sculpting_arrays_and_hist(tmp_path):
    rng = np.random.default_rng(4)
    mass = rng.uniform(0, 300, 5000)
    score = mass / 100 + rng.exponential(1.0, 5000)  # a score correlated with mass: sculpts
    fig = pl.plot_mass_sculpting(mass, score, eps_b=(0.1, 0.01), path=tmp_path / "arrays.png")
    _assert_png(tmp_path / "arrays.png")
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert len(labels) == 3 and "0.1" in labels[1] and "0.01" in labels[2]
    h = hist.Hist(
        hist.axis.StrCategory([], name="process", growth=True),
        hist.axis.Regular(30, 0, 300, name="mass", label="Jet mass [GeV]"),
        hist.axis.Regular(50, 0, 10, name="score"),
    )
    h.fill(process="QCD", mass=mass, score=score)
    h.fill(process="t", mass=rng.uniform(150, 200, 100), score=rng.uniform(5, 10, 100))
    fig = pl.plot_mass_sculpting(h, eps_b=(0.1,), background="QCD", path=tmp_path / "hist.png")
    _assert_png(tmp_path / "hist.png")
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    kept = float(labels[1].split("=")[1].split()[0])
    # the bin edge closest to eps_b = 0.1: the kept fraction moves in steps of one 0.2-wide
    # score bin's share of the 5000 QCD jets, 1.2-2 % near the cut, so the closest edge is
    # within half a step, <= 0.01, plus the legend's rounding; abs 0.03 (measured 0.093)
    assert kept == pytest.approx(0.1, abs=0.03)
    with pytest.raises(ValueError, match="needs scores"):
        pl.plot_mass_sculpting(mass)
    with pytest.raises(ValueError, match="background 'ttbar' not in"):
        pl.plot_mass_sculpting(h, background="ttbar")


def test_no_pyplot_state_and_save_errors(tmp_path, scores):
    import matplotlib.pyplot as plt

    n_before = len(plt.get_fignums())
    fig = pl.plot_score_distributions(scores)
    assert len(plt.get_fignums()) == n_before  # figures never enter pyplot
    with pytest.raises(ValueError, match="unknown figure format"):
        pl.save_figure(fig, tmp_path / "x", formats=("bmpx",))
    written = pl.save_figure(fig, tmp_path / "x.v2", formats=("png",))
    assert written == [tmp_path / "x.v2.png"]
    _assert_png(written[0])


def test_log_binned_scores_are_drawn_on_a_log_axis():
    """Log-spaced bins need a log x axis even when the scores span under two decades
    (the dimensionless chamfer-dr scores of trained models: ~0.004-0.3)."""
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    scores = {"QCD": rng.uniform(0.004, 0.1, 500), "t": rng.uniform(0.02, 0.3, 500)}
    fig = pl.plot_score_distributions(scores)
    assert fig.axes[0].get_xscale() == "log"
    plt.close(fig)
    lin = pl.score_histogram(scores, log=False)
    fig = pl.plot_score_distributions(lin, category_axis="process")
    assert fig.axes[0].get_xscale() == "linear"
    plt.close(fig)
