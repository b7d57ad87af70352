"""Irreps, generators and the Cartesian <-> (1,1) map of SO+(3,1)."""

import numpy as np
import pytest

from lgae_hep import lorentz as lz
from lgae_hep.lorentz import check
from lgae_hep.precision import unit_roundoff

# Everything here is numpy float64 (torch's ATEN_CPU_CAPABILITY does not reach it; numpy's BLAS
# may still pick another kernel on another CPU, so each bound is a worst case, not a measurement).
U64 = unit_roundoff("float64")  # 1.1e-16


def test_commutation_relations_all_irreps_up_to_4():
    # generators of dimension d <= 25 with entries <= ~2.5 (spin <= 2): each commutator is two
    # d-term products, Higham 2 d |g|^2 u ~ 300 u = 3e-14 plus the generators' own rounding;
    # 1e-12 is the `lgae-hep check-lorentz` bound (measured 38 u = 4e-15)
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
        # entries |m| <= 2 from a few products and a sqrt each: ~4 u * 2 = 1e-15; atol 1e-14
        np.testing.assert_allclose(ll[2], np.diag(-1j * ms), atol=1e-14)


def test_fourvec_map_matches_cartesian_lambda():
    # relative to |Lambda|: scipy's expm at rapidity <= 5 (Pade + ~3 squarings of 4x4 matrices)
    # loses a factor gamma = cosh 5 = 74 to the cancellation inside the boost (Lambda^T g Lambda
    # = g with entries ~gamma), times ~1e2 u for Pade and squarings: ~1e4 u = 1e-12; bound
    # 5e-12 (the check-lorentz bound; measured 4400 u = 4.9e-13)
    assert check.fourvec_residual(np.random.default_rng(1), trials=50, max_rapidity=5.0) < 5e-12


def test_fourvec_map_unitary_and_roundtrip():
    u = lz.FOURVEC_TO_IRREP
    # 4-term sums of |u_ij|^2 <= 1/2 with rounded entries: (n + 2) u = 6 u worst case (measured 2 u)
    np.testing.assert_allclose(u @ u.conj().T, np.eye(4), atol=16 * U64)
    p = np.random.default_rng(2).normal(size=(7, 3, 4))
    # two 4-term complex products: 2 (4 + 2) u sum_j |p_j| <= 48 u max|p| (measured 4 u)
    np.testing.assert_allclose(lz.irrep_to_fourvec(lz.fourvec_to_irrep(p)).real, p,
                               atol=48 * U64 * np.abs(p).max())  # fmt: skip


def test_minkowski_is_invariant_form_of_11():
    rng = np.random.default_rng(3)
    p, q = rng.normal(size=4), rng.normal(size=4)
    m = lz.invariant_form((1, 1))
    got = lz.fourvec_to_irrep(p) @ m @ lz.fourvec_to_irrep(q)
    # three 4-term products, ~12 u of sum |p_i q_i| = 3.2 |<p, q>| here (cancellation): ~40 u;
    # rel 1e-13 = 450 u (measured 3 u)
    assert got == pytest.approx(p[0] * q[0] - p[1:] @ q[1:], rel=1e-13)
    # relative to |D|_F^2, d <= 25 at rapidity 2: 2 d u from D^T M D plus 2x expm's relative
    # error (~1e2 u): ~3e-14; 1e-12 is the check-lorentz bound (measured 2 u)
    assert check.invariant_form_residual(rng, max_label=4) < 1e-12


def test_boost_and_rotation_semantics():
    m = 2.0
    rest = np.array([m, 0, 0, 0])
    r = np.array([0.3, -0.4, 1.2])
    moving = lz.boost(r) @ rest
    # expm at rapidity 1.3 (gamma = 2): relative error ~ gamma * 1e2 u ~ 2e-14 against sinh/cosh
    # (the default rtol 1e-7 was float32-sized); rtol 1e-13 (measured 4 u = 4e-16)
    np.testing.assert_allclose(moving[1:], m * np.sinh(np.linalg.norm(r)) * r / np.linalg.norm(r),
                               rtol=1e-13)  # fmt: skip
    np.testing.assert_allclose(moving[0], m * np.cosh(np.linalg.norm(r)), rtol=1e-13)
    # right-handed: x -> y under a rotation by +pi/2 about z
    turned = lz.rotation([0, 0, np.pi / 2]) @ [0, 1, 0, 0]
    # unit vector, expm of a norm-pi/2 generator (no squaring): a few u (measured exact 0)
    np.testing.assert_allclose(turned, [0, 0, 1, 0], atol=16 * U64)
    lam = lz.lorentz_matrix(rapidity=r, angle=[0.1, 0.2, -0.3])
    g = lz.MINKOWSKI
    # entries <= gamma ~ 2: 4-term sums of gamma^2-sized products plus expm's error, ~1e2 u =
    # 1e-14; atol 1e-13 (was 1e-12; measured 4 u)
    np.testing.assert_allclose(lam.T @ g @ lam, g, atol=1e-13)
    # LU determinant of a 4x4 with condition number e^(2 * 1.3) = 13: ~ n kappa u ~ 1e-14;
    # rel 1e-12 (pytest's default 1e-6 was float32-sized; measured exact 1.0)
    assert np.linalg.det(lam) == pytest.approx(1.0, rel=1e-12) and lam[0, 0] >= 1.0


def test_irrep_matrix_is_homomorphism_for_higher_irreps():
    rng = np.random.default_rng(4)
    for rep in [(2, 0), (2, 2), (3, 1), (4, 4)]:
        r, a = check.random_group_element(rng, 1.0)
        d = lz.irrep_matrix(rep, rapidity=r, angle=a)
        dinv = lz.irrep_matrix(rep, rapidity=-r, angle=-a)  # exp(-X) is the inverse
        # Higham: |fl(D D^-1) - D D^-1| <= n u |D| |D^-1| (n = dim), plus expm's own relative
        # error (~ a few u) on either factor; x2 for another scipy's expm. |D||D^-1| reaches 442
        # for (4, 4) at rapidity 1, where a fixed atol 1e-12 was below this worst case
        # (2.5e-12; measured 660 u = 1.5e-13, i.e. 1.0-2.3 u |D||D^-1| over the four reps)
        n = lz.irrep_dim(rep)
        bound = 2 * (n + 8) * U64 * (np.abs(d) @ np.abs(dinv)).max()
        np.testing.assert_allclose(d @ dinv, np.eye(n), atol=bound)
        # a rotation by 2 pi is the identity on true (k + n even) representations; unitary, so
        # ~2^s (n + c) u with s ~ 3 squarings: ~3e2 u = 7e-14; 1e-12 (measured <= 45 u = 5e-15)
        full = lz.irrep_matrix(rep, angle=2 * np.pi * a / np.linalg.norm(a))
        np.testing.assert_allclose(full, np.eye(n), atol=1e-12)
