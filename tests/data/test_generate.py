"""Pythia 8 + FastJet generator: physics of the jets, the PFNano file, reproducibility, CLI.

The CI samples use ``fast=True`` (MPI off, ~1.5 s per 300 jets); one small default (MPI on)
sample checks the default path, and a slow test repeats the physics checks with MPI on and more
jets. Seeds are fixed, so every statistical assertion is deterministic.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
import vector

pytest.importorskip("pythia8mc")
fastjet = pytest.importorskip("fastjet")

from lgae_hep.data.generate import (  # noqa: E402
    GeneratedJets,
    generate,
    pythia_settings,
    worker_seed,
)
from lgae_hep.data.pfnano import read_metadata  # noqa: E402
from lgae_hep.data.truth import LABELS, PROCESSES  # noqa: E402

vector.register_awkward()
pytestmark = pytest.mark.sim

N_CI = 300
PT_LO, PT_HI = 800.0, 1600.0


def _generate(process: str, n: int, path: Path, **kw) -> GeneratedJets:
    kw.setdefault("fast", True)
    kw.setdefault("seed", 2024)
    out = generate(process, n, output=path, progress=False, return_info=True, **kw)
    assert isinstance(out, GeneratedJets)
    return out


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> dict[str, tuple[Path, GeneratedJets]]:
    """300 fast-mode jets of each of t, w, z, qcd, generated once for the module."""
    base = tmp_path_factory.mktemp("gen")
    return {
        p: (base / f"{p}.root", _generate(p, N_CI, base / f"{p}.root")) for p in "t w z qcd".split()
    }


def _tree(path: Path) -> ak.Array:
    with uproot.open(path) as f:
        return f["Events"].arrays()


def _events(path: Path):
    from coffea.nanoevents import NanoEventsFactory, PFNanoAODSchema

    with warnings.catch_warnings():
        # coffea warns about every NanoAOD cross-reference absent from a PFNano-only file
        warnings.filterwarnings("ignore", "Missing cross-reference", RuntimeWarning)
        return NanoEventsFactory.from_root(
            {str(path): "Events"}, schemaclass=PFNanoAODSchema, mode="eager"
        ).events()


def _p4(rec: ak.Array) -> ak.Array:
    return ak.zip(
        {"pt": rec.pt, "eta": rec.eta, "phi": rec.phi, "mass": rec.mass}, with_name="Momentum4D"
    )


def _file_jets(path: Path) -> ak.Array:
    t = _tree(path)
    return ak.zip(
        {
            "pt": t.FatJet_pt,
            "eta": t.FatJet_eta,
            "phi": t.FatJet_phi,
            "mass": t.FatJet_mass,
            "msoftdrop": t.FatJet_msoftdrop,
            "label": t.FatJet_label,
        },
        with_name="Momentum4D",
    )


# ------------------------------------------------------------------------------------------------
# physics
# ------------------------------------------------------------------------------------------------


def _mass_checks(masses: dict[str, np.ndarray], msd: dict[str, np.ndarray]) -> None:
    med = {p: float(np.median(m)) for p, m in masses.items()}
    med_sd = {p: float(np.median(m)) for p, m in msd.items()}
    assert 150 < med["t"] < 200, med
    assert 70 < med["w"] < 110, med
    assert 70 < med["z"] < 110, med
    assert med["qcd"] < med["t"], med
    # soft drop removes the soft wide-angle radiation: peaks at the resonance masses, and
    # grooms QCD jets (which have no mass scale) far below them
    assert 160 < med_sd["t"] < 185, med_sd
    assert 72 < med_sd["w"] < 88, med_sd
    assert 83 < med_sd["z"] < 98, med_sd
    assert med_sd["z"] > med_sd["w"], med_sd
    assert med_sd["qcd"] < 50, med_sd


def test_mass_medians(samples):
    jets = {p: _file_jets(path) for p, (path, _) in samples.items()}
    _mass_checks(
        {p: ak.to_numpy(ak.flatten(j.mass)) for p, j in jets.items()},
        {p: ak.to_numpy(ak.flatten(j.msoftdrop)) for p, j in jets.items()},
    )


def test_groomed_mass_below_jet_mass(samples):
    for path, _ in samples.values():
        j = _file_jets(path)
        assert ak.all(j.msoftdrop <= j.mass * (1 + 1e-5) + 1e-3)
        assert ak.all(j.msoftdrop >= 0)


def test_substructure_branches_as_nanoaod(samples):
    """FatJet_tau1..3 and FatJet_d2b1 are written like NanoAOD's, read back by read_nanoaod,
    equal lgae_hep.observables on the stored constituents, and separate the prong counts."""
    from lgae_hep import observables as obs
    from lgae_hep.data import read_nanoaod

    tau21, tau32, d2 = {}, {}, {}
    for process, (path, gen) in samples.items():
        t = _tree(path)
        assert {"FatJet_tau1", "FatJet_tau2", "FatJet_tau3", "FatJet_d2b1"} <= set(t.fields)
        consts, fat = read_nanoaod(path, max_particles=None, flat=True, with_jets=True)
        assert {"tau1", "tau2", "tau3", "d2b1", "msoftdrop"} <= set(fat.fields)
        # in memory (float64, before storage) they are the observables of the constituents
        flat_gen = ak.flatten(gen.jets, axis=1)
        np.testing.assert_array_equal(ak.to_numpy(ak.flatten(gen.jet_fields["tau2"])),
                                      ak.to_numpy(obs.nsubjettiness(flat_gen).tau2))
        # from the file: float32 particles and float32 branches; tau_N and D2 are sums of
        # pT-weighted angles, stable to ~1e-5 relative under 1e-7 input rounding
        again = obs.energy_correlation(consts)
        np.testing.assert_allclose(ak.to_numpy(again.d2), ak.to_numpy(fat.d2b1), rtol=1e-4)
        tau21[process] = np.median(ak.to_numpy(fat.tau2 / fat.tau1))
        tau32[process] = np.median(ak.to_numpy(fat.tau3 / fat.tau2))
        d2[process] = np.median(ak.to_numpy(fat.d2b1))
    # two-prong W/Z below QCD in tau21 and D2; three-prong top below QCD in tau32
    assert max(tau21["w"], tau21["z"]) < tau21["qcd"], tau21
    assert max(d2["w"], d2["z"]) < d2["qcd"], d2
    assert tau32["t"] < tau32["qcd"], tau32


def test_labels_and_counts(samples):
    for process, (path, gen) in samples.items():
        labels = ak.to_numpy(ak.flatten(_tree(path).FatJet_label))
        assert labels.size == N_CI == ak.sum(ak.num(gen.jets, axis=1))
        assert set(np.unique(labels)) <= set(PROCESSES[process])
        if process == "qcd":
            frac_g = np.mean(labels == LABELS["g"])
            assert 0.25 < frac_g < 0.75, frac_g  # both gluon and quark jets at ~1 TeV
        else:
            assert np.all(labels == LABELS[process])


def test_pt_eta_window(samples):
    for path, gen in samples.values():
        # float64 in memory: strictly inside the window
        mem = ak.flatten(ak.sum(gen.jets, axis=2))
        assert ak.all((mem.pt > PT_LO) & (mem.pt < PT_HI) & (abs(mem.eta) < 2.5))
        # float32 in the file: inside up to rounding
        j = ak.flatten(_file_jets(path))
        assert ak.all((j.pt > PT_LO * (1 - 1e-6)) & (j.pt < PT_HI * (1 + 1e-6)))
        assert ak.all(abs(j.eta) < 2.5 + 1e-6)
        # jets sorted by pT within each event
        fj = _file_jets(path)
        assert ak.all(fj.pt[:, :-1] >= fj.pt[:, 1:])


def test_visible_stable_final_state(samples):
    path, gen = samples["t"]
    pdg = np.abs(ak.to_numpy(ak.flatten(_tree(path).PFCands_pdgId)))
    assert not np.isin(pdg, [12, 14, 16]).any()  # no neutrinos
    # c*tau > 10 mm is stable: pi+-, K+-, K0L and K0S (c*tau = 26.8 mm) are final-state
    # particles; pi0 (25 nm), eta, rho and of course partons and resonances are not
    assert np.isin([211, 321, 130, 310, 22], pdg).all()
    assert not np.isin([111, 221, 113, 6, 24, 21], pdg).any()
    charge = ak.to_numpy(ak.flatten(_tree(path).PFCands_charge))
    assert set(np.unique(charge)) <= {-1, 0, 1}
    assert np.all(charge[pdg == 22] == 0) and np.all(np.abs(charge[pdg == 211]) == 1)


def test_constituents_sorted_and_sum_to_jet(samples):
    for path, gen in samples.values():
        events = _events(path)
        pf = events.FatJet.constituents.pf
        assert ak.all(ak.num(pf, axis=2) == events.FatJet.nConstituents)
        assert ak.all(pf.pt[..., :-1] >= pf.pt[..., 1:])
        total = ak.flatten(ak.sum(_p4(pf), axis=2))
        jet = ak.flatten(events.FatJet)
        # the file stores float32 particles and jets; the sum adds up to n ~ 150 float32
        # components: Higham's worst case n u = 150 * 6e-8 = 9e-6 of the jet's momentum
        np.testing.assert_allclose(total.pt, jet.pt, rtol=1e-5)
        np.testing.assert_allclose(total.eta, jet.eta, atol=1e-5)
        np.testing.assert_allclose(total.phi, jet.phi, atol=1e-5)
        # float32 particles: m^2 = E^2 - p^2 cancels; its rounding error, ~sqrt(n) u E^2 for
        # a random-walk sum of n ~ 150 terms, is ~1e-3 relative on m for E/m ~ 30 (TeV jets)
        np.testing.assert_allclose(total.mass, jet.mass, rtol=2e-3, atol=0.05)
        # in memory (float64) the constituents sorted as well
        assert ak.all(gen.jets.pt[..., :-1] >= gen.jets.pt[..., 1:])


def test_stored_constituents_are_antikt_jets(samples):
    """Re-clustering each event's stored particles with anti-kT R=0.8 gives back its FatJets."""
    for path, _ in samples.values():
        t = _tree(path)
        pf = _p4(
            ak.zip(
                {
                    "pt": t.PFCands_pt,
                    "eta": t.PFCands_eta,
                    "phi": t.PFCands_phi,
                    "mass": t.PFCands_mass,
                }
            )
        )
        inputs = ak.zip({"px": pf.px, "py": pf.py, "pz": pf.pz, "E": pf.E})
        cs = fastjet.ClusterSequence(inputs, fastjet.JetDefinition(fastjet.antikt_algorithm, 0.8))
        jets = cs.inclusive_jets(min_pt=100.0)
        jets = ak.zip(
            {"px": jets.px, "py": jets.py, "pz": jets.pz, "E": jets.E}, with_name="Momentum4D"
        )
        jets = jets[ak.argsort(jets.pt, axis=1, ascending=False)]
        assert ak.all(ak.num(jets) == t.nFatJet)
        ref = _file_jets(path)
        # re-clustered from float32 particles: the same sum bounds as in the test above
        np.testing.assert_allclose(ak.flatten(jets.pt), ak.flatten(ref.pt), rtol=1e-5)
        np.testing.assert_allclose(
            ak.flatten(jets.mass), ak.flatten(ref.mass), rtol=2e-3, atol=0.05
        )


def test_readers_agree(samples):
    path, gen = samples["w"]
    from lgae_hep.data.nanoaod import read_nanoaod  # a removed reader must fail, not skip

    read = read_nanoaod(path, max_particles=None, progress=False)
    pf = _events(path).FatJet.constituents.pf
    assert ak.all(ak.num(read, axis=2) == ak.num(pf, axis=2))
    for name in ("pt", "eta", "phi"):
        np.testing.assert_array_equal(
            ak.to_numpy(ak.flatten(read[name], axis=None)),
            ak.to_numpy(ak.flatten(pf[name], axis=None)),
        )
    np.testing.assert_array_equal(
        ak.flatten(read.pdgId, axis=None), ak.flatten(gen.jets.pdgId, axis=None)
    )
    # the file holds the in-memory float64 pT rounded to float32 once: relative error <= u32
    np.testing.assert_allclose(
        ak.flatten(read.pt, axis=None), ak.flatten(gen.jets.pt, axis=None), rtol=2.0**-24
    )


def test_file_layout_and_metadata(samples):
    path, gen = samples["z"]
    with uproot.open(path) as f:
        tree = f["Events"]
        assert isinstance(tree, uproot.TTree)
        names = set(tree.keys())
    for b in (
        "run luminosityBlock event FatJet_pt FatJet_eta FatJet_phi FatJet_mass FatJet_msoftdrop "
        "FatJet_nConstituents FatJet_label FatJetPFCands_jetIdx FatJetPFCands_pFCandsIdx "
        "PFCands_pt PFCands_eta PFCands_phi PFCands_mass PFCands_charge PFCands_pdgId"
    ).split():
        assert b in names, b
    meta = read_metadata(path)
    assert meta["process"] == "z" and meta["seed"] == 2024 and meta["workers"] == 1
    assert meta["n_jets"] == N_CI and meta["labels"] == LABELS
    assert meta["pt_range"] == [PT_LO, PT_HI] and meta["eta_max"] == 2.5
    assert meta["pythia_version"] == "8.317" and meta["lgae_hep_version"]
    assert "PartonLevel:MPI = off" in meta["settings"] and "WeakZ0:gmZmode = 2" in meta["settings"]
    assert meta["worker_seeds"] == [worker_seed(2024, 0)]
    t = _tree(path)
    assert ak.all(t.run == 1) and ak.all(t.luminosityBlock == 1)
    assert np.all(np.diff(ak.to_numpy(t.event).astype(np.int64)) > 0)  # unique, increasing
    assert meta["worker_events"][0] >= t.event[-1]


def test_default_mode_has_mpi(samples, tmp_path):
    """Default settings (MPI on): still a top mass peak, and more particles per jet (UE)."""
    gen = _generate("t", 100, tmp_path / "t_mpi.root", fast=False)
    assert "PartonLevel:MPI = on" in gen.metadata["settings"]
    mass = ak.to_numpy(ak.flatten(ak.sum(gen.jets, axis=2).mass))
    assert 150 < np.median(mass) < 200
    n_mpi = np.mean(ak.to_numpy(ak.flatten(ak.num(gen.jets, axis=2))))
    n_fast = np.mean(ak.to_numpy(ak.flatten(ak.num(samples["t"][1].jets, axis=2))))
    assert n_mpi > n_fast + 5, (n_mpi, n_fast)


# ------------------------------------------------------------------------------------------------
# reproducibility and workers
# ------------------------------------------------------------------------------------------------


def _flat_file(path: Path) -> dict[str, np.ndarray]:
    t = _tree(path)
    return {k: ak.to_numpy(ak.flatten(t[k], axis=None)) for k in t.fields}


def test_same_seed_same_file_different_seed_differs(tmp_path):
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        _generate("qcd", 20, tmp_path / f"{name}.root", seed=seed)
    a, b, c = (_flat_file(tmp_path / f"{n}.root") for n in "abc")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert read_metadata(tmp_path / "a.root") == read_metadata(tmp_path / "b.root")
    assert not np.array_equal(a["PFCands_pt"][:50], c["PFCands_pt"][:50])


def test_workers_are_processes_with_distinct_seeds(tmp_path):
    """Worker 0 of 2 continues the single-worker stream; worker 1 is an independent stream."""
    one = _generate("w", 12, tmp_path / "one.root", seed=5)
    two = _generate("w", 12, tmp_path / "two.root", seed=5, workers=2)
    assert two.metadata["worker_seeds"] == [worker_seed(5, 0), worker_seed(5, 1)]
    assert len(set(two.metadata["worker_seeds"])) == 2
    jets1 = ak.flatten(one.jets, axis=1)
    jets2 = ak.flatten(two.jets, axis=1)
    assert len(jets2) == 12
    # first share (6 jets) is exactly worker 0 == the single-worker run's first 6 jets
    assert ak.to_list(jets2[:6].pt) == ak.to_list(jets1[:6].pt)
    assert ak.to_list(jets2[6:].pt) != ak.to_list(jets1[6:].pt)
    lumi = two.event_fields["luminosityBlock"]
    assert lumi[0] == 1 and lumi[-1] == 2 and np.all(np.diff(lumi) >= 0)
    t = _tree(tmp_path / "two.root")
    assert ak.sum(t.nFatJet) == 12 and ak.all(t.FatJet_label == LABELS["w"])


def test_g_and_q_processes_keep_one_label(tmp_path):
    for p in ("g", "q"):
        gen = _generate(p, 15, tmp_path / f"{p}.root", seed=3)
        assert np.all(ak.to_numpy(ak.flatten(gen.jet_fields["label"])) == LABELS[p])


# ------------------------------------------------------------------------------------------------
# API and CLI
# ------------------------------------------------------------------------------------------------


def test_worker_seed_range_and_spread():
    seeds = {worker_seed(s, w) for s in range(20) for w in range(8)}
    assert len(seeds) == 160
    assert all(1 <= s <= 900_000_000 for s in seeds)
    assert worker_seed(3, 1) == worker_seed(3, 1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"process": "higgs"}, "process='higgs'"),
        ({"n_jets": 0}, "n_jets=0"),
        ({"n_jets": 2.5}, "n_jets=2.5"),
        ({"seed": -1}, "seed=-1"),
        ({"workers": 0}, "workers=0"),
        ({"pt_range": (1600, 800)}, "pt_range"),
        ({"pt_range": (800,)}, "pt_range"),
        ({"eta_max": -1.0}, "eta_max=-1.0"),
        ({"pthat_range": (float("nan"), 10)}, "pthat_range"),
        ({"batch_size": 0}, "batch_size=0"),
    ],
)
def test_bad_arguments(kwargs, match):
    args = {"process": "t", "n_jets": 10} | kwargs
    with pytest.raises(ValueError, match=match):
        generate(args.pop("process"), args.pop("n_jets"), progress=False, **args)


def test_pythia_settings_unknown_process():
    with pytest.raises(ValueError, match="expected one of"):
        pythia_settings("susy")


def test_too_tight_selection_gives_up(tmp_path):
    with pytest.raises(RuntimeError, match="too tight"):
        generate("z", 5, fast=True, pt_range=(5000, 6000), max_events=100, progress=False)


def test_worker_failure_is_reported():
    with pytest.raises(RuntimeError, match=r"worker \d failed(.|\n)*too tight"):
        generate("z", 4, workers=2, fast=True, pt_range=(5000, 6000), max_events=50, progress=False)


def test_cli_generate(tmp_path, capsys):
    from lgae_hep.cli import main

    out = tmp_path / "cli.root"
    rc = main(
        [
            "generate",
            "--process",
            "z",
            "--num-jets",
            "8",
            "--seed",
            "9",
            "--fast",
            "--quiet",
            "-o",
            str(out),
        ]
    )
    assert rc == 0
    assert "wrote 8 z jets" in capsys.readouterr().out
    meta = read_metadata(out)
    assert meta["process"] == "z" and meta["seed"] == 9 and meta["fast"] is True
    assert ak.sum(_tree(out).nFatJet) == 8


def test_cli_rejects_bad_value(tmp_path, capsys):
    from lgae_hep.cli import main

    with pytest.raises(SystemExit) as info:  # an argparse error (issue 23: one line, exit 2)
        main(["generate", "--process", "t", "--num-jets", "0", "-o", str(tmp_path / "x.root")])
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and len(err) == 1
    assert "--num-jets: 0 is not a positive integer" in err[0]
    existing = tmp_path / "exists.root"
    existing.write_bytes(b"previous")
    rc = main(["generate", "--process", "t", "-n", "2", "-o", str(existing)])
    assert rc == 2 and "--overwrite" in capsys.readouterr().err
    assert existing.read_bytes() == b"previous"


# ------------------------------------------------------------------------------------------------
# slow: default (MPI on) physics on more jets
# ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_mass_medians_default_mode_large(tmp_path):
    gens = {
        p: _generate(p, 1000, tmp_path / f"{p}.root", fast=False, seed=99)
        for p in "t w z qcd".split()
    }
    jets = {p: ak.flatten(ak.sum(g.jets, axis=2)) for p, g in gens.items()}
    _mass_checks(
        {p: ak.to_numpy(j.mass) for p, j in jets.items()},
        {p: ak.to_numpy(ak.flatten(g.jet_fields["msoftdrop"])) for p, g in gens.items()},
    )


@pytest.mark.parametrize("process,n_prongs", [("hbb", 2), ("h4q", 4)])
def test_higgs_classes_are_merged_125_gev_jets(tmp_path, process, n_prongs):
    """The held-out-style classes: fully merged boosted Higgs jets, labelled as such, whose
    soft-drop mass sits at the Higgs mass (H -> b bbar: two prongs; H -> W W* -> 4q: four,
    less often all groomed in, so its median is lower) and that are more two-prong-like than
    one-prong QCD (tau21 well below 1)."""
    gen = _generate(process, 60, tmp_path / f"{process}.root")
    labels = ak.to_numpy(ak.flatten(gen.jet_fields["label"]))
    assert labels.size == 60 and np.all(labels == LABELS[process])
    msd = np.median(ak.to_numpy(ak.flatten(gen.jet_fields["msoftdrop"])))
    assert (110.0 if n_prongs == 2 else 90.0) < msd < 135.0, msd
    tau21 = np.median(ak.to_numpy(ak.flatten(gen.jet_fields["tau2"] / gen.jet_fields["tau1"])))
    assert tau21 < 0.7, tau21
