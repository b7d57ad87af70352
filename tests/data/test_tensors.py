"""to_tensors / from_tensors / unflatten_like and the relative-coordinate helpers."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import torch
import vector

from lgae_hep.data import (
    JetTensors,
    eta_rel,
    from_tensors,
    jet_p4,
    phi_rel,
    pt_rel,
    relative_coordinates,
    to_tensors,
    unflatten_like,
    wrap_phi,
)
from lgae_hep.precision import unit_roundoff

U64 = unit_roundoff("float64")  # numpy float64 throughout unless a dtype is given


def _cartesian(jets: ak.Array, names=("px", "py", "pz", "E")) -> ak.Array:
    v = vector.Array(jets) if not hasattr(jets, "px") else jets
    return ak.zip(dict(zip(names, (v.px, v.py, v.pz, v.E))), with_name="Momentum4D")


def test_unpacking_shapes_sorting_and_padding(jets_factory, reference_sort):
    jets = jets_factory(seed=3, n_events=30)
    jt = to_tensors(jets, 30, scalars=["charge", "pdgId"], backend="numpy", dtype=np.float64)
    p4, mask, scalars = jt
    n_jets = int(ak.sum(ak.num(jets, axis=1)))
    assert isinstance(jt, JetTensors) and len(jt) == n_jets
    assert p4.shape == (n_jets, 30, 4) and mask.shape == (n_jets, 30) and mask.dtype == bool
    assert scalars.shape == (n_jets, 30, 2)
    counts = ak.flatten(ak.num(jets, axis=2)).to_numpy()
    np.testing.assert_array_equal(jt.counts, counts)  # original multiplicities, even > 30
    np.testing.assert_array_equal(mask.sum(1), np.minimum(counts, 30))
    # mask is a prefix, padding is exactly zero
    assert (mask[:, 1:] <= mask[:, :-1]).all()
    assert (p4[~mask] == 0).all() and (scalars[~mask] == 0).all()
    # pT descending and equal to the reference N hardest
    pt = np.hypot(p4[..., 1], p4[..., 2])
    # sorted by the input pT; hypot(pT cos phi, pT sin phi) is within ~3 u of it, so two
    # near-equal pTs may swap by <= 6 u * 173 GeV = 2e-13 GeV (absolute; measured 0)
    assert (np.diff(np.where(mask, pt, -1), axis=1) <= 1e-12).all()
    ref = ak.flatten(reference_sort(jets, 30), axis=1)
    # cos/sin, two products and hypot: <= ~4 u relative; rtol 1e-14 (was 1e-12; measured 1.9 u)
    np.testing.assert_allclose(pt[mask], ak.flatten(ref.pt).to_numpy(), rtol=1e-14)
    np.testing.assert_array_equal(scalars[mask][:, 0], ak.flatten(ref.charge).to_numpy())
    # E = sqrt(p^2 + m^2) in (E, px, py, pz) order
    m2 = p4[..., 0] ** 2 - (p4[..., 1:] ** 2).sum(-1)
    # E^2 - p^2 cancels: ~6 u E^2 absolute, <= 6 u (657 GeV)^2 = 6e-10 GeV^2 for these jets
    # (measured 2.9 u E^2 = 6e-11); atol 1e-8 GeV^2
    np.testing.assert_allclose(m2[mask], ak.flatten(ref.mass).to_numpy() ** 2, atol=1e-8)
    assert jt.valid.all() and jt.structure[0].tolist() == ak.num(jets, axis=1).tolist()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_is_exact(jets_factory, dtype):
    jets = jets_factory(seed=4, n_events=15)
    jt = to_tensors(jets, 30, scalars=["charge"], backend="numpy", dtype=dtype)
    back = from_tensors(jt.p4, jt.mask, jt, scalars=jt.scalars)
    # outer structure and multiplicities of the original (truncated to 30)
    assert ak.to_list(ak.num(back, axis=1)) == ak.to_list(ak.num(jets, axis=1))
    assert ak.to_list(ak.num(back, axis=2)) == ak.to_list(np.minimum(ak.num(jets, axis=2), 30))
    again = to_tensors(back, 30, scalars=["charge"], backend="numpy", dtype=dtype)
    np.testing.assert_array_equal(again.p4, jt.p4)  # bit-exact
    np.testing.assert_array_equal(again.mask, jt.mask)
    np.testing.assert_array_equal(again.scalars, jt.scalars)
    # torch backend carries the same numbers
    tt = to_tensors(back, 30, backend="torch", dtype=torch.float64)
    assert tt.p4.dtype == torch.float64 and tt.mask.dtype == torch.bool
    np.testing.assert_array_equal(tt.p4.numpy(), again.p4.astype(np.float64))
    # pt/eta/phi/mass output coordinates describe the same vectors
    polar = from_tensors(jt.p4, jt.mask, jt, coordinates="ptetaphimass")
    # both pTs are hypot(px, py) of the same `dtype` numbers, each correctly rounded to ~1 u:
    # <= 2 u apart (measured 2 u in both dtypes); 16 u (= the former 1e-6 in float32)
    np.testing.assert_allclose(ak.flatten(polar.pt, axis=None), ak.flatten(back.pt, axis=None),
                               rtol=16 * unit_roundoff(np.dtype(dtype)))  # fmt: skip


def test_every_coordinate_system_gives_the_same_tensors(jets_factory):
    jets = jets_factory(seed=5, n_events=10)
    ref = to_tensors(jets, 30, backend="numpy", dtype=np.float64).p4
    cart = _cartesian(jets)
    e_first = ak.zip({"E": cart.E, "px": cart.px, "py": cart.py, "pz": cart.pz},
                     with_name="Momentum4D")  # fmt: skip
    energy = ak.zip({"pt": jets.pt, "eta": jets.eta, "phi": jets.phi, "energy": cart.E},
                    with_name="Momentum4D")  # fmt: skip
    xyzt = ak.zip({"x": cart.px, "y": cart.py, "z": cart.pz, "t": cart.E},
                  with_name="Momentum4D")  # fmt: skip
    rho_theta = ak.zip({"rho": jets.pt, "phi": jets.phi, "theta": cart.theta, "tau": jets.mass},
                       with_name="Momentum4D")  # fmt: skip
    # each coordinate system is a few float64 operations from the reference (~4 u of E;
    # measured 3.6 u); the theta round trip pz = rho / tan(atan2(rho, pz)) is conditioned by
    # 1 / (sin theta cos theta) ~ cosh^2(eta), <= ~1e2 at |eta| <= 3 (measured 52 u of E).
    # Bound 1024 u E_max = 5e-11 GeV (was 1e-9 rel + 1e-9 abs)
    atol = 1024 * U64 * ref[..., 0].max()
    for arr in (cart, e_first, energy, xyzt, rho_theta):
        np.testing.assert_allclose(to_tensors(arr, 30, backend="numpy", dtype=np.float64).p4,
                                   ref, rtol=0, atol=atol)  # fmt: skip


def test_known_invariant_masses():
    # two back-to-back massless particles with E = 50 GeV each: m = 100 GeV
    a = {"px": 50.0, "py": 0.0, "pz": 0.0, "E": 50.0}
    b = {"px": -50.0, "py": 0.0, "pz": 0.0, "E": 50.0}
    # two massless particles: m^2 = 2 pt1 pt2 (cosh(d_eta) - cos(d_phi))
    c = {"pt": 300.0, "eta": 0.3, "phi": 0.1, "mass": 0.0}
    d = {"pt": 200.0, "eta": -0.2, "phi": -0.4, "mass": 0.0}
    m_cd = np.sqrt(2 * 300.0 * 200.0 * (np.cosh(0.5) - np.cos(0.5)))
    for jets, expected in (([[a, b]], 100.0), ([[c, d]], m_cd)):
        arr = ak.with_name(ak.Array(jets), "Momentum4D")
        p4 = to_tensors(arr, 30, backend="numpy", dtype=np.float64).p4
        s = p4[0].sum(0)
        # E^2 - p^2 of the pair cancels by (E/m)^2 <= 9, ~4 operations: ~40 u; rtol 1e-13
        # (was 1e-12; measured 3 u)
        np.testing.assert_allclose(np.sqrt(s[0] ** 2 - (s[1:] ** 2).sum()), expected, rtol=1e-13)
        np.testing.assert_allclose(jet_p4(arr).mass, [expected], rtol=1e-13)


def test_zero_one_and_many_particles_and_outer_levels():
    p = {"pt": 10.0, "eta": 0.0, "phi": 0.0, "mass": 0.0}
    many = [dict(p, pt=float(i + 1)) for i in range(40)]
    nested = ak.with_name(ak.Array([[[[], [p]], []], [[many]]]), "Momentum4D")  # 4 levels
    jt = to_tensors(nested, 30, backend="numpy")
    assert jt.counts.tolist() == [0, 1, 40] and jt.valid.tolist() == [True, True, True]
    assert jt.mask.sum(1).tolist() == [0, 1, 30]
    # 30 hardest, sorted; px = pT cos 0 of integer pTs is exact
    np.testing.assert_array_equal(jt.p4[2, :, 1], np.arange(40, 10, -1))
    back = from_tensors(jt.p4, jt.mask, jt)
    assert ak.to_list(ak.num(back, axis=-1)) == [[[0, 1], []], [[30]]]
    scores = unflatten_like(np.array([0.0, 1.0, 2.0]), jt)
    assert scores.to_list() == [[[0.0, 1.0], []], [[2.0]]]
    latent = unflatten_like(torch.arange(6.0).reshape(3, 2), jt)
    assert latent.to_list() == [[[[0.0, 1.0], [2.0, 3.0]], []], [[[4.0, 5.0]]]]
    flat = to_tensors(ak.flatten(ak.flatten(nested)), 30, backend="numpy")
    assert flat.structure == () and unflatten_like(np.ones(3), flat).to_list() == [1.0] * 3
    with pytest.raises(ValueError, match="expected 3 per-jet values"):
        unflatten_like(np.ones(4), jt)


def test_invalid_jets_are_flagged_zeroed_and_masked():
    ok = [{"px": 10.0, "py": 0.0, "pz": 0.0, "E": 10.0}, {"px": 0.0, "py": 5.0, "pz": 1.0,
                                                          "E": 6.0}]  # fmt: skip
    cases = {
        "nan": [{"px": np.nan, "py": 0.0, "pz": 0.0, "E": 1.0}],
        "inf": [{"px": 1.0, "py": 0.0, "pz": np.inf, "E": np.inf}],
        "negative E": [{"px": 0.0, "py": 0.0, "pz": 0.0, "E": -1.0}],
        "spacelike": [{"px": 10.0, "py": 0.0, "pz": 0.0, "E": 9.0}],
    }
    jets = ak.with_name(ak.Array([ok] + [ok + bad for bad in cases.values()] + [[]]), "Momentum4D")
    jt = to_tensors(jets, 30, backend="numpy")
    assert jt.valid.tolist() == [True, False, False, False, False, True]
    assert jt.n_invalid == 4
    assert np.isfinite(jt.p4).all() and (jt.p4[1:5] == 0).all() and not jt.mask[1:].any()
    assert jt.mask[0].sum() == 2 and jt.counts.tolist() == [2, 3, 3, 3, 3, 0]
    for i, word in enumerate(["non-finite", "non-finite", "negative energy", "E < |p|"], 1):
        assert word in jt.invalid_reason[i]
    # float rounding of a massless float32 particle is not flagged
    light = ak.with_name(ak.Array([[{"pt": np.float32(123.4567), "eta": np.float32(1.234),
                                     "phi": np.float32(0.3), "mass": np.float32(0.0)}]]),
                         "Momentum4D")  # fmt: skip
    assert to_tensors(_cartesian(light), 30, backend="numpy").valid.all()
    neg_pt = ak.with_name(ak.Array([[{"pt": -5.0, "eta": 0.0, "phi": 0.0, "mass": 0.0}]]),
                          "Momentum4D")  # fmt: skip
    assert not to_tensors(neg_pt, 30, backend="numpy").valid[0]
    with pytest.raises(ValueError, match="4 invalid jet"):
        to_tensors(jets, 30, on_invalid="raise")


def test_bad_arguments():
    jets = ak.with_name(ak.Array([[{"pt": 1.0, "eta": 0.0, "phi": 0.0, "mass": 0.0}]]),
                        "Momentum4D")  # fmt: skip
    with pytest.raises(ValueError, match="num_particles"):
        to_tensors(jets, 0)
    with pytest.raises(ValueError, match="backend"):
        to_tensors(jets, backend="jax")
    with pytest.raises(ValueError, match="on_invalid"):
        to_tensors(jets, on_invalid="ignore")
    with pytest.raises(ValueError, match="float32 or float64"):
        to_tensors(jets, dtype=np.int32)
    with pytest.raises(ValueError, match="scalar field 'charge'"):
        to_tensors(jets, scalars=["charge"])
    with pytest.raises(ValueError, match="at least two list levels"):
        to_tensors(jets[0])
    with pytest.raises(ValueError, match="cannot interpret"):
        to_tensors(ak.Array([[{"a": 1.0, "b": 2.0}]]))
    with pytest.raises(ValueError, match=r"shape \(B, N, 4\)"):
        from_tensors(np.zeros((2, 3)), np.zeros((2, 3), bool))


def test_relative_coordinates_and_phi_wrap():
    assert wrap_phi(np.pi) == -np.pi  # (pi + pi) % 2 pi is exactly 0
    w = wrap_phi(np.linspace(-10, 10, 1001))
    assert (w >= -np.pi).all() and (w < np.pi).all()
    parts = ak.with_name(ak.Array([[{"pt": 60.0, "eta": 1.0, "phi": 3.1, "mass": 0.0},
                                    {"pt": 40.0, "eta": 1.2, "phi": -3.1, "mass": 0.0}]]),
                         "Momentum4D")  # fmt: skip
    jet = jet_p4(parts)
    rel = relative_coordinates(parts)
    # the jet axis sits across the +-pi boundary; phi_rel is small, not ~2 pi
    assert ak.all(abs(rel.phi_rel) < 0.1)
    # the same float64 formulas (measured bitwise equal); another evaluation order would be a
    # few u of |phi|, |eta| <= pi: atol 1e-14; pT_rel is one division: rtol 1e-14 (the default
    # rtol 1e-7 was float32-sized, and useless for phi_rel ~ 0.03)
    np.testing.assert_allclose(rel.phi_rel.to_list()[0], wrap_phi(np.array([3.1, -3.1])
                                                                  - jet.phi[0]),
                               rtol=0, atol=1e-14)  # fmt: skip
    np.testing.assert_allclose(ak.to_list(eta_rel(parts, jet))[0], [1.0, 1.2] - jet.eta[0],
                               rtol=0, atol=1e-14)  # fmt: skip
    np.testing.assert_allclose(ak.to_list(pt_rel(parts, jet))[0], np.array([60, 40]) / jet.pt[0],
                               rtol=1e-14)  # fmt: skip
    # pT_rel sums to >= 1 (scalar sum >= vector sum), equal for collinear particles
    assert ak.sum(rel.pt_rel) >= 1.0
    assert ak.to_list(phi_rel(parts, jet)) == ak.to_list(rel.phi_rel)
