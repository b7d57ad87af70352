"""Clebsch-Gordan coefficients of SU(2) and SO+(3,1)."""

import itertools

import numpy as np
import pytest

from lgae_hep import lorentz as lz
from lgae_hep.lorentz import check
from lgae_hep.precision import unit_roundoff

U64 = unit_roundoff("float64")  # everything below is numpy float64 unless stated


def test_cg_equivariance_all_triples_float64():
    # relative to |D1 x| |D2 y| (see check.py): the rhs applies D of output irreps up to (6, 6)
    # at rapidity 3, whose entries reach e^(3 * 3) ~ 8e3 for the spin-3 parts, to C(x, y)
    # carrying ~n u (n <= 256 terms) of |x| |y|: worst case ~8e3 * 256 u / |D1 x||D2 y| ~ 1e5 u
    # = 1e-11 in unlucky directions; 1e-10 is the check-lorentz bound (measured 101 u = 1e-14)
    assert check.cg_equivariance_residual(np.random.default_rng(0), 3, 3.0) < 1e-10


def test_cg_equivariance_float32_tables():
    torch = pytest.importorskip("torch")
    tables = lz.cg_tables(4, torch.complex64)
    res = check.cg_equivariance_residual(np.random.default_rng(5), 3, 3.0, tables=tables)
    # float64 arithmetic on float32-rounded tables: each coefficient off by <= u32 = 6e-8
    # relative, amplified by the same conditioning of D as above (~1e2 in practice, up to ~1e3
    # for unlucky directions): 1e-5 = 170 u32 (check-lorentz bound; measured 1.1 u32)
    assert res < 1e-5


def test_cg_stack_is_unitary():
    # S^H S: sums of n <= 256 products of unit-norm columns (Higham n u = 3e-14) whose entries
    # are products of correctly rounded SU(2) coefficients and three changes of basis (~10 u);
    # 1e-12 is the check-lorentz bound (measured 8 u = 9e-16)
    assert check.cg_unitarity_residual(3) < 1e-12


def test_fourvector_product_to_scalar_is_half_minkowski():
    rng = np.random.default_rng(6)
    p, q = rng.normal(size=4), rng.normal(size=4)
    c = lz.clebsch_gordan((1, 1), (1, 1), (0, 0))
    s = np.einsum("i,j,ijk->k", lz.fourvec_to_irrep(p), lz.fourvec_to_irrep(q), c)[0]
    # a few operations on O(1) numbers: ~2 u (measured 1 u); abs 1e-15 = 9 u
    assert lz.MINKOWSKI_CG_CONSTANT == pytest.approx(0.5, abs=1e-15)
    # 16-term einsum plus the 4x4 maps, ~20 u of sum |p_i q_i| / 2 = 9.9 |s| here
    # (cancellation): ~200 u; rel 1e-13 = 450 u (was 1e-12; measured 3.7 u)
    assert s == pytest.approx(0.5 * (p[0] * q[0] - p[1:] @ q[1:]), rel=1e-13)


def test_scalar_times_vector_is_the_vector():
    c = lz.clebsch_gordan((0, 0), (1, 1), (1, 1))
    # three changes of basis (<= 4 terms of entries ~1/sqrt 2) on exact SU(2) coefficients:
    # (4 + 4 + 2) u worst case, above the former 1e-15 = 4.5 u; 16 u (measured 2 u)
    np.testing.assert_allclose(c[0], np.eye(4), atol=16 * U64)


def test_su2_cg_matches_sympy():
    sympy_cg = pytest.importorskip("sympy.physics.quantum.cg")
    from sympy import Rational, S

    half = [Rational(i, 2) for i in range(5)]
    for j1, j2 in itertools.product(half, repeat=2):
        for j in np.arange(abs(j1 - j2), j1 + j2 + 1):
            j = S(j)
            table = lz.su2_cg_table(int(2 * j1), int(2 * j2), int(2 * j))
            for i1, i2, i3 in itertools.product(*(range(int(2 * x) + 1) for x in (j1, j2, j))):
                m1, m2, m = i1 - j1, i2 - j2, i3 - j
                want = float(sympy_cg.CG(j1, m1, j2, m2, j, m).doit())
                # both sides: sqrt of a correctly rounded exact rational, |CG| <= 1: <= 1.5 u
                # each; abs 1e-15 = 9 u
                assert table[i1, i2, i3] == pytest.approx(want, abs=1e-15)


def test_cg_tables_cover_all_triples_and_cache():
    torch = pytest.importorskip("torch")
    t3 = lz.cg_tables(3)
    assert set(t3) == set(lz.cg_triples(3))
    assert t3[((1, 1), (1, 1), (2, 2))].dtype == torch.complex64
    assert lz.cg_tables(3) is t3
    t64 = lz.cg_tables(4, torch.complex128)
    np.testing.assert_array_equal(
        t64[((3, 1), (1, 3), (2, 2))].numpy(), lz.clebsch_gordan((3, 1), (1, 3), (2, 2))
    )


def test_cg_rejects_forbidden_output():
    with pytest.raises(ValueError, match=r"does not occur"):
        lz.clebsch_gordan((1, 1), (1, 1), (1, 1))
