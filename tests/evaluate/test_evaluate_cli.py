"""``lgae-hep evaluate`` end to end on small written PFNano files: the score metric it uses."""

from __future__ import annotations

import json
import warnings

import awkward as ak
import numpy as np
import pytest
import torch
import vector

import lgae_hep
from lgae_hep import zoo
from lgae_hep.checkpoint import save_checkpoint
from lgae_hep.cli import main
from lgae_hep.data import write_pfnano

vector.register_awkward()


def _events(n_events: int, seed: int, spread: float):
    rng = np.random.default_rng(seed)
    nj = rng.integers(1, 3, n_events)
    tj = int(nj.sum())
    nc = rng.integers(5, 40, tj)
    tot = int(nc.sum())
    eta0 = np.repeat(rng.uniform(-2, 2, tj), nc)
    phi0 = np.repeat(rng.uniform(-3, 3, tj), nc)
    p = ak.zip({"pt": rng.exponential(40, tot) + 1, "eta": eta0 + rng.normal(0, spread, tot),
                "phi": phi0 + rng.normal(0, spread, tot), "mass": np.full(tot, 0.14)},
               with_name="Momentum4D")
    return ak.unflatten(ak.unflatten(p, nc), nj)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("evalcli")
    files = {"qcd": write_pfnano(d / "qcd.root", _events(40, 1, 0.1)),
             "t": write_pfnano(d / "t.root", _events(40, 2, 0.3))}
    torch.manual_seed(0)
    from lgae_hep.models import LGAE

    model = LGAE(encoder_channels=(2,), decoder_channels=(2,), mlp_hidden=4, num_basis=2)
    save_checkpoint(d / "carded.pt", model)
    (d / "carded.json").write_text(json.dumps({"name": "carded", "score_metric": "chamfer-dr"}))
    return d, files


def _run(argv):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # small-sample eps_s notes
        return main(["evaluate", *argv])


@pytest.mark.parametrize("extra, expected", [([], "chamfer-dr"), (["--metric", "chamfer"],
                                                                    "chamfer")])
def test_evaluate_cli_uses_the_cards_metric(setup, monkeypatch, extra, expected):
    d, files = setup
    monkeypatch.setattr(zoo, "_pretrained_dir", lambda: d)
    monkeypatch.setattr(zoo, "_CACHE", {})
    out = d / f"out_{expected}"
    rc = _run(["--model", "carded", "--background", str(files["qcd"]), "--signal",
               str(files["t"]), "--signal-names", "t", "-o", str(out), "--no-plots",
               "--no-reconstruction", *extra])
    assert rc == 0
    meta = json.loads((out / "metrics.json").read_text())
    assert meta["metadata"]["score_metric"] == expected
    # the mass sculpting of the score is part of every evaluation (background jets' masses)
    sculpting = meta["anomaly"]["sculpting"]
    assert set(sculpting["inv_jsd"]) == {"0.1", "0.01"} and -1 <= sculpting["spearman"] <= 1
    saved = np.load(out / "scores.npz")
    jets = lgae_hep.read_nanoaod(files["t"], flat=True)
    ref = ak.to_numpy(lgae_hep.score(jets, "carded", metric=expected))
    # evaluate scores each file's jets with one lgae_hep.score call, as here: the same code
    # path, batches and thread count, hence the same kernels and identical numbers (the former
    # rtol 1e-12 was no rounding bound for float32 scores; on other kernels the bound would be
    # path_rtol(float32) = 2e-3, lgae_hep/precision.py). The two metrics differ by O(1).
    np.testing.assert_array_equal(saved["t"], ref)


def test_evaluate_reads_as_many_particles_as_the_model_takes(tmp_path):
    """A model built for 50 particles is evaluated on its 50 hardest, not the reader's 30."""
    from lgae_hep.models import LGAE

    rng = np.random.default_rng(5)
    nc = rng.integers(35, 60, 12)
    tot = int(nc.sum())
    eta0 = np.repeat(rng.uniform(-1, 1, 12), nc)
    p = ak.zip({"pt": rng.exponential(40, tot) + 1, "eta": eta0 + rng.normal(0, 0.1, tot),
                "phi": rng.normal(0, 0.1, tot), "mass": np.full(tot, 0.14)},
               with_name="Momentum4D")
    events = ak.unflatten(ak.unflatten(p, nc), np.ones(12, int))
    bkg = write_pfnano(tmp_path / "qcd.root", events)
    sig = write_pfnano(tmp_path / "sig.root", events[::-1])
    torch.manual_seed(0)
    model = LGAE(num_particles=50, encoder_channels=(2,), decoder_channels=(2,), mlp_hidden=4,
                 num_basis=2)
    path = save_checkpoint(tmp_path / "n50.pt", model)
    out = tmp_path / "out"
    rc = _run(["--model", str(path), "--background", str(bkg), "--signal", str(sig),
               "--signal-names", "s", "-o", str(out), "--no-plots", "--no-reconstruction"])
    assert rc == 0
    saved = np.load(out / "scores.npz")
    all_particles = lgae_hep.read_nanoaod(sig, max_particles=None, flat=True)
    cut_to_30 = lgae_hep.read_nanoaod(sig, max_particles=30, flat=True)
    ref = ak.to_numpy(lgae_hep.score(all_particles, str(path)))
    # same code path and batch as evaluate's own call: identical numbers
    np.testing.assert_array_equal(saved["s"], ref)
    # 30 instead of 50 particles changes the scores by O(1), far beyond allclose's 1e-5
    assert not np.allclose(saved["s"], ak.to_numpy(lgae_hep.score(cut_to_30, str(path))))


def test_evaluate_reports_the_density_yardstick_with_a_reference(setup, tmp_path):
    """--reference QCD_VAL.root fits the density yardstick there; it is reported beside the
    model and the one-observable yardsticks."""
    pytest.importorskip("fastjet")
    from lgae_hep.metrics import DENSITY_YARDSTICK

    d, files = setup
    ref = write_pfnano(tmp_path / "qcd_val.root", _events(120, 7, 0.1))
    out = tmp_path / "out"
    rc = _run(["--model", str(d / "carded.pt"), "--background", str(files["qcd"]), "--signal",
               str(files["t"]), "--signal-names", "t", "-o", str(out), "--no-plots",
               "--no-reconstruction", "--reference", str(ref)])
    assert rc == 0
    yard = json.loads((out / "metrics.json").read_text())["anomaly"]["yardsticks"]
    assert DENSITY_YARDSTICK in yard and "jet mass" in yard
    got = yard[DENSITY_YARDSTICK]["signals"]["t"]["auc"]

    # the same yardstick recomputed by hand from the three files: the jets as the CLI reads
    # them (the model's particle count), (log m, tau21, tau32) from lgae_hep.observables, a
    # scikit-learn mixture with the documented settings (8 full-covariance components,
    # random_state 0) fitted on the reference only, -log p, and sklearn's AUC with the QCD
    # file as background. A CLI that fitted on the test background, swapped background and
    # signal, or flipped the score's sign would give another number.
    from sklearn.metrics import roc_auc_score
    from sklearn.mixture import GaussianMixture

    from lgae_hep import observables as obs
    from lgae_hep.zoo import model_num_particles

    n = model_num_particles(lgae_hep.load_model(str(d / "carded.pt")))

    def features(path):
        jets = lgae_hep.read_nanoaod(path, max_particles=n, flat=True, progress=False)
        tau = obs.nsubjettiness(jets, n=(1, 2, 3))
        t1, t2, t3 = (ak.to_numpy(tau[f"tau{k}"]).astype(float) for k in (1, 2, 3))
        with np.errstate(divide="ignore", invalid="ignore"):
            x = np.stack([np.log(ak.to_numpy(obs.jet_mass(jets)).astype(float)), t2 / t1,
                          t3 / t2], axis=1)
        return x[np.isfinite(x).all(1)]

    x_ref, x_b, x_s = features(ref), features(files["qcd"]), features(files["t"])
    gmm = GaussianMixture(8, covariance_type="full", random_state=0).fit(x_ref)
    s_b, s_s = -gmm.score_samples(x_b), -gmm.score_samples(x_s)
    want = roc_auc_score(np.r_[np.zeros(len(s_b)), np.ones(len(s_s))], np.r_[s_b, s_s])
    # the same float64 fit on the same features: the rankings agree unless two jets' scores
    # are within rounding of each other, and each such swapped (background, signal) pair moves
    # the AUC by 1 / (n_b n_s); allow one
    assert got == pytest.approx(want, abs=1.0 / (len(s_b) * len(s_s)))
    # and it is an ordering that physics fixes: the "t" jets are three times wider (spread
    # 0.3 vs 0.1), so heavier and less QCD-like than the reference; AUC 0.5 (no separation)
    # is excluded at 4 Hanley-McNeil standard errors (one-sided p = 3e-5 under no separation)
    from lgae_hep.metrics import auc_standard_error

    assert got > 0.5 + 4 * auc_standard_error(0.5, len(s_b), len(s_s))
