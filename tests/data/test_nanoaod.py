"""NanoAOD / PFNano: writer, readers (file, plain uproot, coffea NanoEvents), real CMS fixture,
official Run-3 names, and every bad input of issue 4."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import uproot

from lgae_hep.data import (
    constituents_from_events,
    jet_p4,
    read_metadata,
    read_nanoaod,
    to_tensors,
    write_pfnano,
)
from lgae_hep.precision import unit_roundoff

# PFNano files written here store float32 (u32 = 2^-24): rounding to nearest keeps every stored
# value within u32 of its float64 source, relative; the float64 arithmetic around it is ~1e-13
# relative at most, so 2 u32 bounds a read-back value (all measured <= 0.98 u32).
U32 = unit_roundoff("float32")

BRANCHES = [
    "FatJet_pt", "FatJet_eta", "FatJet_phi", "FatJet_mass",
    "FatJetPFCands_jetIdx", "FatJetPFCands_pFCandsIdx",
    "PFCands_pt", "PFCands_eta", "PFCands_phi", "PFCands_mass", "PFCands_charge", "PFCands_pdgId",
]  # fmt: skip


def _nanoevents(path, mode="eager"):
    from coffea.nanoevents import NanoEventsFactory, PFNanoAODSchema

    return NanoEventsFactory.from_root(
        {str(path): "Events"}, schemaclass=PFNanoAODSchema, mode=mode
    ).events()


def _assert_same(a: ak.Array, b: ak.Array, fields=("pt", "eta", "phi", "mass")) -> None:
    assert ak.to_list(ak.num(a, axis=-1)) == ak.to_list(ak.num(b, axis=-1))
    for f in fields:
        np.testing.assert_array_equal(
            ak.to_numpy(ak.flatten(a[f], axis=None)), ak.to_numpy(ak.flatten(b[f], axis=None))
        )


def _write_tree(path, branches: dict) -> None:
    with uproot.recreate(path) as f:
        tree = f.mktree(
            "Events",
            {k: (v.dtype if isinstance(v, np.ndarray) else v.type) for k, v in branches.items()},
        )
        tree.extend(branches)


@pytest.fixture
def written(tmp_path, jets_factory):
    jets = jets_factory(seed=1, n_events=25)
    labels = ak.unflatten(np.arange(int(ak.sum(ak.num(jets, axis=1)))) % 5, ak.num(jets, axis=1))
    path = write_pfnano(
        tmp_path / "gen.root",
        jets,
        jet_fields={"label": labels, "msoftdrop": jet_p4(jets).mass * 0.9},
        metadata={"process": "qcd", "seed": 1},
    )
    return path, jets, labels


# --------------------------------------------------------------------------------------------
# writer -> readers
# --------------------------------------------------------------------------------------------


def test_writer_layout_types_and_metadata(written):
    path, jets, _ = written
    tree = uproot.open(path)["Events"]
    keys = set(tree.keys())
    for name in BRANCHES + ["run", "luminosityBlock", "event", "nFatJet", "nPFCands",
                            "nFatJetPFCands", "FatJet_nConstituents", "FatJet_label",
                            "FatJet_msoftdrop"]:  # fmt: skip
        assert name in keys, name
    assert tree["PFCands_pt"].interpretation.content.from_dtype == np.dtype(">f4")
    assert tree["event"].array(library="np").tolist() == list(range(1, len(jets) + 1))
    assert set(tree["run"].array(library="np").tolist()) == {1}
    assert read_metadata(path) == {"process": "qcd", "seed": 1}
    # FatJet kinematics are those of the summed constituents (float32 storage)
    fj = tree.arrays(["FatJet_pt", "FatJet_mass", "FatJet_nConstituents"])
    ref = jet_p4(jets)
    # The writer sums in float64 and stores float32: 2 u32 (were 2e-6 and 1e-4). Empty jets are
    # exact zeros; a 1-particle massless jet's mass is rounding noise of E^2 - p^2,
    # |m| <~ E sqrt(4 u64) = 2e-5 GeV at E = 1 TeV, hence atol 1e-4 GeV for the mass.
    np.testing.assert_allclose(ak.flatten(fj.FatJet_pt), ak.flatten(ref.pt), rtol=2 * U32)
    np.testing.assert_allclose(ak.flatten(fj.FatJet_mass), ak.flatten(ref.mass), rtol=2 * U32,
                               atol=1e-4)  # fmt: skip
    assert ak.to_list(fj.FatJet_nConstituents) == ak.to_list(ak.num(jets, axis=2))


@pytest.mark.parametrize("mode", ["eager", "virtual"])
def test_coffea_constituents_equal_read_nanoaod_and_uproot(written, mode, quiet_coffea,
                                                           reference_sort):  # fmt: skip
    path, jets, labels = written
    events = _nanoevents(path, mode)
    pf = events.FatJet.constituents.pf  # coffea's own PFNano cross-reference
    via_coffea = pf[ak.argsort(pf.pt, axis=-1, ascending=False, stable=True)]
    via_reader = read_nanoaod(path, max_particles=None)
    via_uproot = constituents_from_events(
        uproot.open(path)["Events"].arrays(BRANCHES), max_particles=None
    )
    via_events = constituents_from_events(events, max_particles=None)
    _assert_same(via_coffea, via_reader)
    _assert_same(via_uproot, via_reader, ("pt", "eta", "phi", "mass", "charge", "pdgId"))
    _assert_same(via_events, via_reader, ("pt", "eta", "phi", "mass", "charge", "pdgId"))
    # and the same physics as what was written (float32 storage)
    ref = reference_sort(jets, None)
    assert ak.to_list(ak.num(via_reader, axis=2)) == ak.to_list(ak.num(ref, axis=2))
    for f in ("pt", "eta", "phi"):  # float32 storage: 2 u32 relative (was 1e-6 + 1e-6 abs)
        np.testing.assert_allclose(ak.flatten(via_reader[f], axis=None),
                                   ak.flatten(ref[f], axis=None), rtol=2 * U32)  # fmt: skip
    assert ak.to_list(events.FatJet.label) == ak.to_list(labels)


def test_truncation_sorting_counts_and_jet_records(written, reference_sort):
    path, jets, labels = written
    consts, fatjets = read_nanoaod(path, max_particles=30, with_jets=True)
    n_all = ak.num(jets, axis=2)
    assert ak.to_list(ak.num(consts, axis=2)) == ak.to_list(np.minimum(n_all, 30))
    assert ak.to_list(fatjets.nConstituents) == ak.to_list(n_all)
    assert ak.to_list(fatjets.label) == ak.to_list(labels)
    assert ak.all(ak.num(fatjets, axis=1) == ak.num(consts, axis=1))
    # sorted by pT descending, and the kept ones are the hardest
    d = consts.pt[..., 1:] - consts.pt[..., :-1]
    assert ak.all(d <= 0)
    ref = reference_sort(jets, 30)
    # float32 storage: 2 u32 (was 1e-6)
    np.testing.assert_allclose(ak.flatten(consts.pt, axis=None), ak.flatten(ref.pt, axis=None),
                               rtol=2 * U32)  # fmt: skip
    # jets with 0, 1 and > 30 constituents and events with no jets are all present
    counts = ak.flatten(n_all).to_numpy()
    assert (counts == 0).any() and (counts > 30).any()
    assert (ak.num(consts, axis=1).to_numpy() == 0).any()
    # charge / pdgId carried; Momentum4D behaviour works (summed 4-vector of a jet)
    assert {"charge", "pdgId"} <= set(consts.fields)
    assert consts.layout.purelist_depth == 3


def test_one_constituent_jet_and_flat_option(tmp_path):
    one = ak.Array([[[{"pt": 50.0, "eta": 0.5, "phi": 1.0, "mass": 0.0}]], []])
    one = ak.with_name(one, "Momentum4D")
    path = write_pfnano(tmp_path / "one.root", one)
    flat, fj = read_nanoaod(path, flat=True, with_jets=True)
    assert ak.to_list(ak.num(flat, axis=1)) == [1]
    assert flat.ndim == 2 and fj.ndim == 1
    np.testing.assert_allclose(fj.pt, [50.0], rtol=2 * U32)  # float32 storage (measured exact)
    # one massless particle: the mass is rounding noise of E^2 - p^2 in float64,
    # |m| <~ E sqrt(4 u64) = 1.2e-6 GeV at E = 56 GeV (measured -6.7e-7); atol 1e-5 (was 1e-3)
    np.testing.assert_allclose(fj.mass, [0.0], atol=1e-5)


def test_selection_and_streaming_chunks(written):
    path, jets, _ = written
    full, fj = read_nanoaod(path, with_jets=True, flat=True)
    sel, sfj = read_nanoaod(path, with_jets=True, flat=True, pt_min=60.0, eta_max=1.5,
                            mass_range=(5.0, 400.0))  # fmt: skip
    keep = (fj.pt > 60.0) & (abs(fj.eta) < 1.5) & (fj.mass >= 5.0) & (fj.mass < 400.0)
    assert 0 < ak.sum(keep) < len(fj)
    _assert_same(full[keep], sel)
    np.testing.assert_array_equal(fj.pt[keep], sfj.pt)
    # tiny chunks and a list of two files: same content, concatenated
    chunked = read_nanoaod([path, path], step_size=3)
    assert len(chunked) == 2 * len(jets)
    whole = read_nanoaod(path)
    _assert_same(chunked[: len(jets)], whole)
    _assert_same(chunked[len(jets) :], whole)


# --------------------------------------------------------------------------------------------
# official Run-3 names, shuffled table
# --------------------------------------------------------------------------------------------


def test_run3_names_with_shuffled_index_table(tmp_path, reference_sort):
    rng = np.random.default_rng(7)
    pt = [rng.uniform(1, 100, 7), rng.uniform(1, 100, 4)]
    # event 0: jet 0 <- cands {5, 0, 3}, jet 1 <- {6, 2}; cand 1 and 4 belong to no jet
    # event 1: jet 0 <- {3, 1}; the table is not jet-ordered
    jet_idx = [np.array([1, 0, 0, 1, 0], np.int32), np.array([0, 0], np.int32)]
    cand_idx = [np.array([2, 5, 0, 6, 3], np.int32), np.array([3, 1], np.int32)]
    eta = [rng.uniform(-1, 1, 7), rng.uniform(-1, 1, 4)]
    phi = [rng.uniform(-3, 3, 7), rng.uniform(-3, 3, 4)]
    branches = {
        "run": np.ones(2, np.uint32),
        "luminosityBlock": np.ones(2, np.uint32),
        "event": np.arange(1, 3, dtype=np.uint64),
        "FatJet": ak.zip({k: ak.Array(v) for k, v in {
            "pt": [[100.0, 90.0], [80.0]], "eta": [[0.1, 0.2], [0.3]],
            "phi": [[0.0, 1.0], [2.0]], "mass": [[10.0, 20.0], [30.0]]}.items()}),
        "FatJetPFCand": ak.zip({"jetIdx": ak.Array(jet_idx), "pfCandIdx": ak.Array(cand_idx)}),
        "PFCand": ak.zip({"pt": ak.Array(pt), "eta": ak.Array(eta), "phi": ak.Array(phi),
                          "mass": ak.Array([np.zeros(7), np.zeros(4)]),
                          "pdgId": ak.Array([np.full(7, 22, np.int32), np.full(4, 22, np.int32)])}),
    }  # fmt: skip
    path = tmp_path / "run3.root"
    _write_tree(path, branches)
    got = read_nanoaod(path, max_particles=None)
    assert "charge" not in got.fields and "pdgId" in got.fields
    expected = {(0, 0): [5, 0, 3], (0, 1): [6, 2], (1, 0): [3, 1]}
    for (e, j), cands in expected.items():
        np.testing.assert_array_equal(
            np.sort(got[e][j].pt.to_numpy())[::-1], np.sort(pt[e][cands])[::-1]
        )
        assert got[e][j].pt.to_numpy().tolist() == sorted(pt[e][cands].tolist(), reverse=True)
    assert ak.to_list(ak.num(got, axis=2)) == [[3, 2], [2]]
    # plain uproot arrays of the same file give the same
    arrays = uproot.open(path)["Events"].arrays()
    _assert_same(constituents_from_events(arrays, max_particles=None), got)


# --------------------------------------------------------------------------------------------
# the real CMS PFNano fixture
# --------------------------------------------------------------------------------------------


def test_real_pfnano_fixture(pfnano_fixture, quiet_coffea):
    """10 events, 24 AK8 jets; every jet's constituents are found; summed constituents vs FatJet.

    The stored FatJet pt/mass are JEC-corrected PUPPI jets, the constituents (``puppi=False``)
    unweighted PF candidates. Weighting each candidate 4-vector by ``PFCands_puppiWeight`` and
    undoing the JEC with ``FatJet_rawFactor`` (raw = (1 - rawFactor) * corrected) reproduces pT
    and mass to the storage precision of PFNano (5e-3, derived below). The unweighted sums are
    bounded by physics, per jet, not by a measured range: PUPPI only removes momentum
    (0 <= w <= 1), so the unweighted jet is the weighted one plus the future-pointing 4-vectors
    (1 - w) p_i, all within |dphi| < pi/2 of the jet axis (R = 0.8): its pT lies between the
    weighted pT plus cos(max dphi) sum (1 - w) pT_i and the weighted pT plus sum (1 - w) pT_i,
    and its mass is at least the weighted mass (reverse triangle inequality of causal vectors).
    """
    path = pfnano_fixture
    consts, fj = read_nanoaod(path, max_particles=None, with_jets=True, puppi=False,
                              pf_fields=("charge", "pdgId", "puppiWeight"))  # fmt: skip
    assert len(consts) == 10
    assert int(ak.sum(ak.num(consts, axis=1))) == 24
    tree = uproot.open(path)["Events"]
    n_table = ak.to_numpy(tree["nFatJetPFCands"].array())
    # every table entry is used and every jet has constituents
    assert ak.to_list(ak.sum(ak.num(consts, axis=2), axis=1)) == n_table.tolist()
    assert ak.all(ak.num(consts, axis=2) > 0)
    assert ak.all(fj.nConstituents == ak.num(consts, axis=2))

    summed = jet_p4(consts)
    w = consts.puppiWeight
    assert ak.all((w >= 0) & (w <= 1))
    weighted = ak.zip({"pt": consts.pt * w, "eta": consts.eta, "phi": consts.phi,
                       "mass": consts.mass * w}, with_name="Momentum4D")  # fmt: skip
    raw = 1.0 - tree["FatJet_rawFactor"].array()
    wsum = jet_p4(weighted)

    # the physics bounds of the docstring, per jet. Rounding: float64 sums of <= 200 terms and
    # m^2 = E^2 - p^2 (relative error ~u E^2/m^2 < 1e-11 for these jets, m > 10 GeV): 1e-9
    def flat(x):
        return ak.to_numpy(ak.flatten(x, axis=None)).astype(np.float64)

    dphi = np.abs(flat((consts.phi - wsum.phi + np.pi) % (2 * np.pi) - np.pi))
    assert dphi.max() < np.pi / 2
    pu = flat(ak.sum((1 - w) * consts.pt, axis=-1))  # pT the weights removed
    pt_u, pt_w, m_u, m_w = flat(summed.pt), flat(wsum.pt), flat(summed.mass), flat(wsum.mass)
    assert (pu > 0).all()  # every jet has some pileup weight: puppi=False is visibly unweighted
    assert np.all(pt_u >= (pt_w + np.cos(dphi.max()) * pu) * (1 - 1e-9)), pt_u - pt_w
    assert np.all(pt_u <= (pt_w + pu) * (1 + 1e-9)), pt_u - pt_w - pu
    assert np.all(m_u >= m_w * (1 - 1e-9)), m_u - m_w
    # PFNano storage precision (mantissa bits used in this file): candidate pT, mass and
    # puppiWeight 10 bits (2^-11 = 4.9e-4 each), eta/phi 12 bits (~3e-4 absolute), FatJet pT and
    # mass 10 bits, rawFactor 6 bits (~4e-4 of raw). Worst case ~2e-3 for pT; the mass,
    # ~pT x angle, also takes the relative angle error of the narrowest pairs: a few 1e-3.
    # rtol 5e-3 (measured <= 3e-3)
    np.testing.assert_allclose(ak.flatten(wsum.pt), ak.flatten(fj.pt * raw), rtol=5e-3)
    np.testing.assert_allclose(ak.flatten(wsum.mass), ak.flatten(fj.mass * raw), rtol=5e-3)
    # the default (puppi=None: weight when PFCands_puppiWeight exists) is exactly that
    # weighting (same float products, so bitwise), sorted by the weighted pT
    by_default = read_nanoaod(path, max_particles=None, pf_fields=("puppiWeight",))
    assert ak.all(by_default.puppiWeight > 0)  # no weight-0 candidates in this file
    ref_w = weighted[ak.argsort(weighted.pt, axis=-1, ascending=False, stable=True)]
    got_sum, ref_sum = jet_p4(by_default), jet_p4(ref_w)
    assert ak.to_list(ak.num(by_default, axis=2)) == ak.to_list(ak.num(consts, axis=2))
    np.testing.assert_array_equal(ak.flatten(ak.sort(by_default.pt, axis=-1), axis=None),
                                  ak.flatten(ak.sort(ak.values_astype(consts.pt * w,
                                                                      np.float32), axis=-1),
                                             axis=None))
    np.testing.assert_allclose(ak.flatten(got_sum.pt), ak.flatten(fj.pt * raw), rtol=5e-3)
    np.testing.assert_allclose(ak.flatten(ref_sum.mass), ak.flatten(got_sum.mass), rtol=5e-3)

    # coffea's FatJet.constituents cannot be used on this file (no FatJet_nConstituents) ...
    # (virtual mode: eager NanoEvents of this ~1000-branch file costs ~10 s; eager mode is
    # covered on the generated file)
    events = _nanoevents(path, "virtual")
    with pytest.raises(RuntimeError, match="only available for PFNano"):
        events.FatJet.constituents  # noqa: B018
    # ... but grouping through the table works on NanoEvents
    got = constituents_from_events(events, max_particles=None, puppi=False)
    _assert_same(got, consts, ("pt", "eta", "phi", "mass", "charge", "pdgId"))
    # top-30 truncation on real data: the hardest are kept
    top = read_nanoaod(path, puppi=False)
    assert ak.all(ak.num(top, axis=2) == np.minimum(ak.num(consts, axis=2), 30))
    np.testing.assert_array_equal(ak.flatten(top.pt[..., :5], axis=None),
                                  ak.flatten(consts.pt[..., :5], axis=None))  # fmt: skip


# --------------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------------


def test_missing_branch_names_it_and_the_layout(tmp_path, written):
    path, *_ = written
    arrays = uproot.open(path)["Events"].arrays()
    branches = {
        "run": arrays.run.to_numpy(),
        "FatJet": ak.zip({k: arrays[f"FatJet_{k}"] for k in ("pt", "eta", "phi", "mass")}),
        "FatJetPFCands": ak.zip({k: arrays[f"FatJetPFCands_{k}"]
                                 for k in ("jetIdx", "pFCandsIdx")}),
        "PFCands": ak.zip({k: arrays[f"PFCands_{k}"] for k in ("pt", "eta", "phi")}),
    }  # fmt: skip
    bad = tmp_path / "nomass.root"
    _write_tree(bad, branches)
    with pytest.raises(ValueError, match=r"'PFCands_mass' not found.*PFNano layout"):
        read_nanoaod(bad)
    nojets = tmp_path / "nojets.root"
    _write_tree(nojets, {"run": arrays.run.to_numpy()})
    with pytest.raises(ValueError, match=r"FatJetPFCands_jetIdx.*FatJetPFCand_jetIdx.*expected"):
        read_nanoaod(nojets)
    with pytest.raises(ValueError, match="'PFCands_puppiWeight' not found"):
        read_nanoaod(path, pf_fields=("puppiWeight",))
    with pytest.raises(ValueError, match="has no tree 'Nope'"):
        read_nanoaod(path, tree="Nope")


def test_not_root_missing_file_and_empty_tree(tmp_path):
    text = tmp_path / "notes.root"
    text.write_text("this is not a ROOT file\n" * 10)
    with pytest.raises(ValueError, match="not a readable ROOT file"):
        read_nanoaod(text)
    with pytest.raises(FileNotFoundError):
        read_nanoaod(tmp_path / "absent.root")
    empty = ak.with_name(ak.Array([[[{"pt": 1.0, "eta": 0.0, "phi": 0.0, "mass": 0.0}]]]),
                         "Momentum4D")[:0]  # fmt: skip
    path = write_pfnano(tmp_path / "empty.root", empty)
    assert uproot.open(path)["Events"].num_entries == 0
    with pytest.raises(ValueError, match="empty tree"):
        read_nanoaod(path)
    with pytest.raises(ValueError, match="source must be"):
        read_nanoaod(42)


def _table_file(tmp_path, name, jet_idx, cand_idx, separate_counters=False):
    base = {
        "run": np.ones(1, np.uint32),
        "FatJet": ak.zip({k: ak.Array([[100.0, 50.0]]) for k in ("pt", "eta", "phi", "mass")}),
        "PFCands": ak.zip({k: ak.Array([[10.0, 5.0, 1.0]]) for k in ("pt", "eta", "phi", "mass")}),
    }
    if separate_counters:  # two counters -> the columns may differ in length
        base["FatJetPFCands_jetIdx"] = ak.Array([np.array(jet_idx, np.int32)])
        base["FatJetPFCands_pFCandsIdx"] = ak.Array([np.array(cand_idx, np.int32)])
    else:
        base["FatJetPFCands"] = ak.zip({
            "jetIdx": ak.Array([np.array(jet_idx, np.int32)]),
            "pFCandsIdx": ak.Array([np.array(cand_idx, np.int32)]),
        })  # fmt: skip
    path = tmp_path / name
    _write_tree(path, base)
    return path


def test_inconsistent_index_tables(tmp_path):
    ok = _table_file(tmp_path, "ok.root", [0, 0, 1], [0, 1, 2])
    assert ak.to_list(ak.num(read_nanoaod(ok), axis=2)) == [[2, 1]]
    with pytest.raises(ValueError, match=r"FatJetPFCands_jetIdx out of range: value 2"):
        read_nanoaod(_table_file(tmp_path, "j.root", [0, 2, 1], [0, 1, 2]))
    with pytest.raises(ValueError, match=r"FatJetPFCands_pFCandsIdx out of range: value 3"):
        read_nanoaod(_table_file(tmp_path, "c.root", [0, 0, 1], [0, 3, 2]))
    with pytest.raises(ValueError, match=r"FatJetPFCands_pFCandsIdx out of range: value -1"):
        read_nanoaod(_table_file(tmp_path, "n.root", [0, 0, 1], [0, -1, 2]))
    with pytest.raises(ValueError, match="index table lengths mismatch"):
        read_nanoaod(_table_file(tmp_path, "m.root", [0, 0, 1], [0, 1], separate_counters=True))


def test_non_finite_and_negative_energy_are_flagged_not_hidden(tmp_path):
    """NaN/inf pass through the reader sorted *first* (so truncation cannot hide them) and
    to_tensors flags those jets (valid=False, zeroed, masked), never a silent NaN."""
    good = [{"pt": float(40 - i), "eta": 0.1 * i, "phi": 0.0, "mass": 0.0} for i in range(35)]
    nan_jet = [dict(p) for p in good]
    nan_jet[34]["pt"] = float("nan")  # softest by position, would be truncated away
    inf_jet = [dict(p) for p in good[:5]]
    inf_jet[2]["eta"] = float("inf")
    neg_m = [dict(p) for p in good[:5]]
    neg_m[0]["mass"] = -30.0  # spacelike: E < |p|
    jets = ak.with_name(ak.Array([[good, nan_jet], [inf_jet, neg_m]]), "Momentum4D")
    path = write_pfnano(tmp_path / "bad.root", jets, float_dtype=np.float64, sort_by_pt=False)
    consts = read_nanoaod(path)
    assert np.isnan(consts[0][1][0].pt)  # kept, first
    jt = to_tensors(consts, 30, backend="numpy")
    assert jt.valid.tolist() == [True, False, False, False]
    assert np.isfinite(jt.p4).all()
    assert not jt.mask[1:].any() and (jt.p4[1:] == 0).all()
    assert "non-finite" in jt.invalid_reason[1] and "E < |p|" in jt.invalid_reason[3]
    with pytest.raises(ValueError, match="3 invalid jet"):
        to_tensors(consts, 30, backend="numpy", on_invalid="raise")
