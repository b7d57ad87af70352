"""Irreps, generators and the Cartesian <-> (1,1) map of SO+(3,1)."""

import numpy as np
import pytest

from lgae_hep import lorentz as lz
from lgae_hep.lorentz import check


def test_commutation_relations_all_irreps_up_to_4():
    assert check.commutator_residual(max_label=4) < 1e-12


def test_irreps_up_to_convention():
    assert lz.irreps_up_to(2) == [(0, 0), (1, 1)]
    assert set(lz.irreps_up_to(3)) == {(0, 0), (1, 1), (0, 2), (2, 0), (2, 2)}
    assert all(k < 5 and n < 5 and (k + n) % 2 == 0 for k, n in lz.irreps_up_to(5))
    assert lz.irrep_dim((3, 1)) == 8


def test_rotation_generators_are_canonical_spin_blocks():
    # In the canonical basis, the rotation generator L_z = -i J_z is diagonal with -i m, ordered
    # by l then m = -l..l.
    for rep in lz.irreps_up_to(5):
        _, ll = lz.irrep_generators(rep)
        ms = np.array([tm / 2 for _, tm in lz.irrep_spins(rep)])
        np.testing.assert_allclose(ll[2], np.diag(-1j * ms), atol=1e-14)


def test_fourvec_map_matches_cartesian_lambda():
    assert check.fourvec_residual(np.random.default_rng(1), trials=50, max_rapidity=5.0) < 5e-12


def test_fourvec_map_unitary_and_roundtrip():
    u = lz.FOURVEC_TO_IRREP
    np.testing.assert_allclose(u @ u.conj().T, np.eye(4), atol=1e-15)
    p = np.random.default_rng(2).normal(size=(7, 3, 4))
    np.testing.assert_allclose(lz.irrep_to_fourvec(lz.fourvec_to_irrep(p)).real, p, atol=1e-14)


def test_minkowski_is_invariant_form_of_11():
    rng = np.random.default_rng(3)
    p, q = rng.normal(size=4), rng.normal(size=4)
    m = lz.invariant_form((1, 1))
    got = lz.fourvec_to_irrep(p) @ m @ lz.fourvec_to_irrep(q)
    assert got == pytest.approx(p[0] * q[0] - p[1:] @ q[1:], rel=1e-13)
    assert check.invariant_form_residual(rng, max_label=4) < 1e-12


def test_boost_and_rotation_semantics():
    m = 2.0
    rest = np.array([m, 0, 0, 0])
    r = np.array([0.3, -0.4, 1.2])
    moving = lz.boost(r) @ rest
    np.testing.assert_allclose(moving[1:], m * np.sinh(np.linalg.norm(r)) * r / np.linalg.norm(r))
    np.testing.assert_allclose(moving[0], m * np.cosh(np.linalg.norm(r)))
    # right-handed: x -> y under a rotation by +pi/2 about z
    turned = lz.rotation([0, 0, np.pi / 2]) @ [0, 1, 0, 0]
    np.testing.assert_allclose(turned, [0, 0, 1, 0], atol=1e-15)
    lam = lz.lorentz_matrix(rapidity=r, angle=[0.1, 0.2, -0.3])
    g = lz.MINKOWSKI
    np.testing.assert_allclose(lam.T @ g @ lam, g, atol=1e-12)
    assert np.linalg.det(lam) == pytest.approx(1.0) and lam[0, 0] >= 1.0


def test_irrep_matrix_is_homomorphism_for_higher_irreps():
    rng = np.random.default_rng(4)
    for rep in [(2, 0), (2, 2), (3, 1), (4, 4)]:
        r, a = check.random_group_element(rng, 1.0)
        d = lz.irrep_matrix(rep, rapidity=r, angle=a)
        dinv = lz.irrep_matrix(rep, rapidity=-r, angle=-a)  # exp(-X) is the inverse
        np.testing.assert_allclose(d @ dinv, np.eye(lz.irrep_dim(rep)), atol=1e-12)
        # a rotation by 2 pi is the identity on true (k + n even) representations
        full = lz.irrep_matrix(rep, angle=2 * np.pi * a / np.linalg.norm(a))
        np.testing.assert_allclose(full, np.eye(lz.irrep_dim(rep)), atol=1e-12)
