"""Explicit regression tests for the failures the property tests found (docs/RELIABILITY.md).

Each test is the shrunk falsifying example, written out so CI checks it on every run whatever
examples hypothesis happens to draw.
"""

from __future__ import annotations

import warnings

import awkward as ak
import numpy as np
import pytest
import vector

from lgae_hep.data import read_nanoaod, to_tensors, write_pfnano

vector.register_awkward()


def _event(pt, eta, phi, mass, dtype=np.float32) -> ak.Array:
    """One event with one jet of the given particles (pt/eta/phi/mass)."""
    fields = {k: np.asarray(v, dtype) for k, v in zip(("pt", "eta", "phi", "mass"),
                                                      (pt, eta, phi, mass))}
    particles = ak.zip(fields, with_name="Momentum4D")
    return ak.unflatten(ak.unflatten(particles, [len(pt)]), [1])


@pytest.mark.parametrize(
    "field, value",
    [("pt", -2e-3), ("mass", np.nan), ("mass", -1.0), ("eta", np.inf), ("phi", np.nan)],
)
def test_truncation_in_the_reader_never_hides_a_bad_soft_particle(tmp_path, field, value):
    # found: a jet whose softest particle had a negative pt was read with max_particles=3,
    # the reader sorted that particle last (pt < 0), truncated it away, and the jet was scored
    # as valid. Now every candidate to_tensors would flag is sorted first.
    pt = [2050.0, 7.2, 3.3, 2e-3]
    eta, phi, mass = [0.5, 0.5, 0.6, 0.4], [1.0, 1.1, 0.9, 1.0], [0.0, 0.14, 0.0, 0.0]
    cols = {"pt": pt, "eta": eta, "phi": phi, "mass": mass}
    cols[field] = list(cols[field])
    cols[field][3] = value
    path = write_pfnano(tmp_path / "bad.root", _event(**cols))
    jets = read_nanoaod(path, max_particles=3)
    assert ak.num(jets, axis=2).tolist() == [[3]]
    jt = to_tensors(jets, 3, backend="numpy")
    assert not jt.valid[0]


def test_reader_keeps_pt_order_for_slightly_negative_rounding_masses(tmp_path):
    # the fix must not move legal particles: a -1e-3 GeV mass on a 50 GeV particle is float
    # rounding (E >= |p| within the documented tolerance) and keeps its pT rank
    path = write_pfnano(
        tmp_path / "ok.root",
        _event([100.0, 50.0, 20.0, 1.0], [0.1] * 4, [0.2] * 4, [0.0, -1e-3, 0.0, 0.0]),
    )
    jets = read_nanoaod(path, max_particles=2)
    # float32 storage holds 100 and 50 exactly
    np.testing.assert_array_equal(ak.to_list(jets.pt[0, 0]), [100.0, 50.0])
    assert to_tensors(jets, 2, backend="numpy").valid.all()


def test_write_pfnano_refuses_negative_energy(tmp_path):
    # found: E < 0 in px/py/pz/E input was written as mass = sqrt(E^2 - p^2) > 0, i.e. as a
    # physical particle, so the bad input vanished without a trace
    jets = ak.Array(
        [[[{"px": 10.0, "py": 0.0, "pz": 0.0, "E": 11.0}, {"px": 1.0, "py": 0.0, "pz": 0.0,
                                                          "E": -2.0}]]],
        with_name="Momentum4D",
    )
    with pytest.raises(ValueError, match=r"negative energy .*E = -2\.0"):
        write_pfnano(tmp_path / "neg.root", jets)
    assert not (tmp_path / "neg.root").exists()


@pytest.mark.parametrize("eta, phi", [(95.0, 0.3), (0.1, np.inf), (-np.inf, 0.2)])
def test_no_numpy_warnings_for_overflowing_inputs(eta, phi):
    # found: float32 |eta| = 95 overflows sinh, inf phi gives NaN: numpy printed
    # RuntimeWarnings next to the one documented warning; the jet is simply flagged
    jets = _event([30.0, 5.0], [0.2, eta], [0.1, phi], [0.0, 0.0])[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        jt = to_tensors(jets, 30, backend="numpy")
    assert jt.valid.tolist() == [False]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_components_beyond_float32_are_flagged_not_inf(dtype):
    # found: a finite float64 jet with |eta| = 95 (|p| ~ 1e41 GeV) became inf in the float32
    # tensors (and numpy warned "overflow encountered in cast"): a non-finite value reached the
    # network. The validity test now includes the range of the output dtype.
    jets = _event([30.0, 5.0], [0.2, 95.0], [0.1, 0.3], [0.0, 0.0], dtype=np.float64)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        jt = to_tensors(jets, 30, dtype=dtype, backend="numpy")
    assert np.isfinite(jt.p4).all()
    if dtype == np.float32:
        assert jt.valid.tolist() == [False]
        assert "float32 range" in jt.invalid_reason[0]
        with pytest.raises(ValueError, match="float32 range"):
            to_tensors(jets, 30, dtype=dtype, backend="numpy", on_invalid="raise")
    else:  # representable in float64: a (very strange but) valid jet
        assert jt.valid.tolist() == [True]
