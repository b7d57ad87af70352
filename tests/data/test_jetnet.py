"""read_jetnet on JetNet-format HDF5 files written by the test (no jetnet, no network)."""

from __future__ import annotations

import builtins
import sys

import awkward as ak
import h5py
import numpy as np
import pytest

from lgae_hep.data import jet_p4, read_jetnet
from lgae_hep.data.jetnet import _import_jetnet, jetnet_split_indices
from lgae_hep.precision import unit_roundoff

# JetNet files store float32; the reader and jet_p4 compute in float64, so every comparison
# below is bounded by the float32 storage rounding (u32 = 6e-8 relative per stored number).
U32 = unit_roundoff("float32")


def _write_jetnet_file(path, n_jets: int, seed: int, num_slots: int = 30) -> dict:
    """A JetNet-format file built from massless particles around a jet axis.

    Jet features are the summed constituents (as in JetNet), relative coordinates are taken
    w.r.t. that jet; returns the absolute particle kinematics for checks.
    """
    rng = np.random.default_rng(seed)
    n_part = rng.integers(1, num_slots + 1, n_jets)
    n_part[0] = num_slots
    pf = np.zeros((n_jets, num_slots, 4), np.float32)
    jf = np.zeros((n_jets, 4), np.float32)
    truth = []
    for i, n in enumerate(n_part):  # test data construction, not library code
        pt = np.sort(rng.exponential(50.0, n) + 1.0)[::-1]
        eta = rng.uniform(-1.5, 1.5) + rng.normal(0, 0.2, n)
        phi = rng.uniform(-np.pi, np.pi) + rng.normal(0, 0.2, n)
        px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
        e = pt * np.cosh(eta)
        jpt = np.hypot(px.sum(), py.sum())
        jeta = np.arcsinh(pz.sum() / jpt)
        jphi = np.arctan2(py.sum(), px.sum())
        jm = np.sqrt(max(e.sum() ** 2 - px.sum() ** 2 - py.sum() ** 2 - pz.sum() ** 2, 0.0))
        pf[i, :n, 0] = eta - jeta
        pf[i, :n, 1] = (phi - jphi + np.pi) % (2 * np.pi) - np.pi
        pf[i, :n, 2] = pt / jpt
        pf[i, :n, 3] = 1.0
        jf[i] = (jpt, jeta, jm, n)
        truth.append((pt, eta))
    with h5py.File(path, "w") as f:
        f["particle_features"] = pf
        f["jet_features"] = jf
    return {"pf": pf, "jf": jf, "truth": truth}


@pytest.fixture
def jetnet_dir(tmp_path):
    data = {
        "g": _write_jetnet_file(tmp_path / "g.hdf5", 200, seed=1),
        "t": _write_jetnet_file(tmp_path / "t.hdf5", 120, seed=2),
    }
    return tmp_path, data


def test_split_matches_jetnet_algorithm(jetnet_dir):
    path, data = jetnet_dir
    # jetnet 0.2.x getData: np.random.seed(seed); perm = np.random.permutation(length);
    # cuts = (cumsum([0, *fractions]) * length).astype(int)  (reimplemented here independently)
    state = np.random.get_state()  # noqa: NPY002 (jetnet uses the legacy global RNG)
    np.random.seed(42)  # noqa: NPY002
    perm = np.random.permutation(200)  # noqa: NPY002
    np.random.set_state(state)  # noqa: NPY002
    cuts = (np.cumsum(np.insert([0.7, 0.15, 0.15], 0, 0)) * 200).astype(int)
    assert cuts.tolist() == [0, 140, 170, 200]
    sizes = {}
    for k, split in enumerate(["train", "valid", "test"]):
        jets, info = read_jetnet(path, "g", split, with_jets=True)
        sizes[split] = len(jets)
        expected = data["g"]["jf"][perm[cuts[k] : cuts[k + 1]]]
        np.testing.assert_array_equal(info.pt, expected[:, 0])  # the stored float32, widened
        np.testing.assert_array_equal(ak.num(jets, axis=1).to_numpy(), expected[:, 3])
    assert sizes == {"train": 140, "valid": 30, "test": 30}
    # the global numpy RNG state is not touched
    before = np.random.get_state()[1].copy()  # noqa: NPY002
    read_jetnet(path, "g", "train")
    np.testing.assert_array_equal(np.random.get_state()[1], before)  # noqa: NPY002
    # all = every jet once; other seeds / fractions give other splits
    everything = jetnet_split_indices(200, "all")
    assert sorted(everything.tolist()) == list(range(200))
    other = jetnet_split_indices(200, "train", seed=1, split_fractions=(0.5, 0.25, 0.25))
    assert len(other) == 100 and not np.array_equal(np.sort(other), np.sort(perm[:140])[:100])


def test_four_vectors_reproduce_jet_features(jetnet_dir):
    path, data = jetnet_dir
    jets, info = read_jetnet(path, "t", "all", with_jets=True)
    assert jets.ndim == 2 and set(jets.fields) == {"pt", "eta", "phi", "mass"}
    assert ak.all(jets.mass == 0.0)  # massless by construction of the reader
    # summed constituents reproduce the stored jet pT, eta and mass (phi_jet = 0 by choice)
    s = jet_p4(jets)
    # Each particle is rebuilt from float32 pT_rel, eta_rel, phi_rel and jet pT, eta: <= u32/2
    # relative each, and the angles are rounded relative to their own size (~ the jet's opening
    # angle), so the summed jet's pT, mass (~ pT x angle) and direction inherit a few u32, not
    # the (E/m)^2 of an E^2 - p^2 cancellation; the stored jet features add u32/2. Bounds
    # 32 u32 = 1.9e-6 relative, 16 u32 absolute for eta, phi (|eta| <= 2), were 1e-4 .. 1e-3
    # (measured <= 1.6 u32). The mass atol covers a 1-particle jet, whose float64 "mass" is
    # rounding noise, E sqrt(u64) ~ 1e-6 GeV.
    np.testing.assert_allclose(s.pt, info.pt, rtol=32 * U32)
    np.testing.assert_allclose(s.eta, info.eta, rtol=0, atol=16 * U32)
    np.testing.assert_allclose(s.mass, info.mass, rtol=32 * U32, atol=1e-4)
    np.testing.assert_allclose(s.phi, 0.0, atol=16 * U32)
    # pt_rel of the unmasked particles sums to >= 1; pt = pt_rel * jet pt
    perm = jetnet_split_indices(120, "all")
    pf = data["t"]["pf"][perm]
    # float32 sum of <= 30 pT_rel: n u32 = 1.8e-6 worst case (measured 3 u32); 64 u32 = 3.8e-6
    np.testing.assert_allclose(ak.sum(jets.pt, axis=1) / info.pt, pf[..., 2].sum(1),
                               rtol=64 * U32)  # fmt: skip
    # scalar sum >= vector sum exactly; the float32 storage and sum lose <= ~32 u32
    assert np.all(pf[..., 2].sum(1) >= 1.0 - 32 * U32)
    # absolute particle eta recovered
    first = int(np.flatnonzero(perm == 0)[0])
    # float64 truth vs float32 pT_rel x jet pT (~2 u32) and eta_rel + jet eta (~u32 |eta| <= 2
    # u32 absolute): 16 u32 (were 1e-4; measured 0.8 and 1.1 u32)
    np.testing.assert_allclose(jets[first].pt, data["t"]["truth"][0][0], rtol=16 * U32)
    np.testing.assert_allclose(jets[first].eta, data["t"]["truth"][0][1], rtol=0, atol=16 * U32)
    assert ak.all((jets.phi >= -np.pi) & (jets.phi < np.pi))


def test_several_types_single_file_and_num_particles(jetnet_dir):
    path, data = jetnet_dir
    both, info = read_jetnet(path, ["t", "g"], "all", with_jets=True)
    assert len(both) == 320
    # canonical class order g, q, t, w, z before the shuffle
    perm = jetnet_split_indices(320, "all")
    np.testing.assert_array_equal(info.jet_type.to_numpy(), np.where(perm < 200, 0, 2))
    single = read_jetnet(path / "g.hdf5", "g", "test")
    assert len(single) == 30
    few = read_jetnet(path, "g", "train", num_particles=10)
    assert ak.max(ak.num(few, axis=1)) == 10
    with pytest.raises(FileNotFoundError, match="jet type 'q'"):
        read_jetnet(path, "all")


def test_bad_input(tmp_path, jetnet_dir):
    path, _ = jetnet_dir
    with pytest.raises(ValueError, match="jet_type must be one of"):
        read_jetnet(path, "b")
    with pytest.raises(ValueError, match="split must be one of"):
        read_jetnet(path, "g", "training")
    with pytest.raises(ValueError, match="split_fractions"):
        read_jetnet(path, "g", split_fractions=(0.8, 0.3, 0.1))
    with pytest.raises(ValueError, match="fewer than num_particles=40"):
        read_jetnet(path, "g", num_particles=40)
    with pytest.raises(ValueError, match="single file"):
        read_jetnet(path / "g.hdf5", ["g", "t"])
    with pytest.raises(FileNotFoundError):
        read_jetnet(tmp_path / "nowhere", "g")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "g.hdf5").write_text("not hdf5")
    with pytest.raises(ValueError, match="not a readable HDF5"):
        read_jetnet(bad, "g")
    with h5py.File(bad / "q.hdf5", "w") as f:
        f["particle_features"] = np.zeros((3, 30, 4), np.float32)
    with pytest.raises(ValueError, match="'jet_features' missing"):
        read_jetnet(bad, "q")


def test_import_jetnet_messages(monkeypatch):
    real_import = builtins.__import__

    def broken(name, *args, **kwargs):
        if name == "jetnet":
            raise ValueError("numpy.dtype size changed, may indicate binary incompatibility")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "jetnet", raising=False)
    monkeypatch.setattr(builtins, "__import__", broken)
    with pytest.raises(ImportError, match="force-reinstall Wasserstein==1.0.1"):
        _import_jetnet()

    def missing(name, *args, **kwargs):
        if name == "jetnet":
            raise ModuleNotFoundError("No module named 'jetnet'", name="jetnet")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", missing)
    with pytest.raises(ImportError, match=r"pip install lgae-hep\[jetnet\]"):
        _import_jetnet()
