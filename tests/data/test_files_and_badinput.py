"""The data package's single implementations: the file check, the PUPPI resolver and the
bad-input predicate (readers and tensors agree on which particles are flagged)."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import vector

from lgae_hep.data import to_tensors, write_pfnano
from lgae_hep.data.badinput import invalid_candidates
from lgae_hep.data.files import check_input_files
from lgae_hep.data.layout import detect_layout
from lgae_hep.data.nanoaod import resolve_puppi

vector.register_awkward()


def _jets(n_events: int = 3) -> ak.Array:
    rng = np.random.default_rng(1)
    counts = rng.integers(1, 3, n_events)
    n_jets = int(counts.sum())
    parts = rng.integers(2, 6, n_jets)
    total = int(parts.sum())
    rec = ak.zip({"pt": rng.exponential(30.0, total) + 1.0, "eta": rng.normal(0, 0.3, total),
                  "phi": rng.uniform(-3, 3, total), "mass": np.zeros(total)},
                 with_name="Momentum4D")
    return ak.unflatten(ak.unflatten(rec, parts), counts)


@pytest.fixture(scope="module")
def pfnano(tmp_path_factory):
    path = tmp_path_factory.mktemp("files") / "a.root"
    write_pfnano(path, _jets())
    return path


def test_check_input_files_good_and_collected(pfnano, tmp_path):
    good, bad = check_input_files([pfnano])
    assert bad == {} and good[0].num_entries == 3 and good[0].layout.flavour == "pfnano"
    assert {"run", "luminosityBlock", "event"} <= good[0].branches
    junk = tmp_path / "junk.root"
    junk.write_bytes(b"not root at all")
    missing = tmp_path / "missing.root"
    good, bad = check_input_files([(str(pfnano), "Events"), (str(missing), "Events"),
                                   (str(junk), "Events"), (str(pfnano), "Nope")],
                                  errors="collect")
    assert [g.path for g in good] == [str(pfnano)]
    assert "not found" in bad[str(missing)]
    assert "not a readable ROOT file" in bad[str(junk)]
    assert all("\n" not in reason for reason in bad.values())
    with pytest.raises(ValueError, match="has no tree 'Nope'"):
        check_input_files(f"{pfnano}:Nope")
    with pytest.raises(FileNotFoundError, match="missing.root"):
        check_input_files(missing)
    with pytest.raises(ValueError, match=r"\['nope'\] not found.*event keys"):
        check_input_files(pfnano, require=("run", "nope"), require_reason="event keys")
    with pytest.raises(ValueError, match="no input files"):
        check_input_files([])


def test_resolve_puppi():
    layout = detect_layout({"FatJet_pt", "FatJet_eta", "FatJet_phi", "FatJet_mass",
                            "FatJetPFCands_jetIdx", "FatJetPFCands_pFCandsIdx", "PFCands_pt",
                            "PFCands_eta", "PFCands_phi", "PFCands_mass"})
    with_w = {"PFCands_puppiWeight"}
    assert resolve_puppi(with_w, layout, None) == "PFCands_puppiWeight"
    assert resolve_puppi(with_w, layout, True) == "PFCands_puppiWeight"
    assert resolve_puppi(with_w, layout, False) is None
    assert resolve_puppi(set(), layout, None) is None
    assert resolve_puppi(set(), layout, False) is None
    with pytest.raises(ValueError, match="puppi=True but branch 'PFCands_puppiWeight' not found"):
        resolve_puppi(set(), layout, True)
    with pytest.raises(ValueError, match="puppi must be None, True or False"):
        resolve_puppi(with_w, layout, "yes")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_reader_predicate_is_the_tensor_predicate(dtype):
    rng = np.random.default_rng(7)
    n = 400
    cols = {"pt": rng.exponential(50, n), "eta": rng.normal(0, 2, n),
            "phi": rng.uniform(-3, 3, n), "mass": rng.exponential(0.1, n)}
    cols["mass"][:40] = -rng.exponential(1.0, 40)          # spacelike (most) or tolerated
    cols["pt"][40:45] = np.nan
    cols["pt"][45:50] = -1.0
    cols["phi"][50:55] = np.inf
    cols["eta"][55:60] = 800.0                              # |p| overflows
    cols = {k: v.astype(dtype) for k, v in cols.items()}
    bad = invalid_candidates(cols)
    # one particle per jet: the jet's validity is the particle's
    jets = ak.unflatten(ak.zip(cols, with_name="Momentum4D"), np.ones(n, np.int64))
    valid = to_tensors(jets, 1, backend="numpy", dtype=np.float64).valid
    assert np.array_equal(bad, ~valid)
    assert invalid_candidates({k: v[100:] for k, v in cols.items()}) is None
