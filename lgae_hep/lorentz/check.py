"""Numerical self-checks of the Lorentz-group algebra (``lgae-hep check-lorentz``).

Each check returns the largest residual of its family over random group elements. The same
functions back the test suite (tests/lorentz) and the command, so the numbers printed by the
command are exactly the quantities the tests bound.

Relative residuals of the CG identity are normalised by ``|D1 x| |D2 y|``: the size of the
terms that are summed (and cancel) when the transformed inputs are coupled. At rapidity 3 the
matrices of the (3, 3) irrep have entries ~ e^{4.5} ~ 90 per SU(2) factor, so any float64
evaluation of the left-hand side carries an error of order eps * |D1 x| |D2 y| however exact the
tables are; normalising by ``|rhs|`` instead would measure that cancellation, not the tables.
"""

from __future__ import annotations

import itertools

import numpy as np

from .cg import allowed_products, cg_tables, clebsch_gordan, invariant_form
from .group import (
    FOURVEC_TO_IRREP,
    MINKOWSKI,
    irrep_generators,
    irrep_matrix,
    irreps_up_to,
    lorentz_matrix,
)

__all__ = [
    "random_group_element",
    "commutator_residual",
    "fourvec_residual",
    "cg_equivariance_residual",
    "cg_unitarity_residual",
    "invariant_form_residual",
    "residual_table",
]


def random_group_element(
    rng: np.random.Generator, max_rapidity: float, max_angle: float = np.pi
) -> tuple[np.ndarray, np.ndarray]:
    """A rapidity 3-vector along a random axis with |eta| = max_rapidity (exactly, the hardest
    case) and an axis-angle 3-vector with a uniform random angle in [0, max_angle)."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    ang_axis = rng.normal(size=3)
    ang_axis /= np.linalg.norm(ang_axis)
    return max_rapidity * axis, rng.uniform(0, max_angle) * ang_axis


def commutator_residual(max_label: int = 4) -> float:
    """Max deviation from the so(3,1) relations in every irrep with k, n <= max_label.

    With real generators K (boosts) and L (rotations):
    ``[L_i, L_j] = eps_ijk L_k``, ``[L_i, K_j] = eps_ijk K_k``, ``[K_i, K_j] = -eps_ijk L_k``.
    """
    worst = 0.0
    for k, n in itertools.product(range(max_label + 1), repeat=2):
        if (k + n) % 2:
            continue
        kk, ll = irrep_generators((k, n))
        for i, j in itertools.product(range(3), repeat=2):
            eps = np.zeros(3)
            for m in range(3):
                eps[m] = (i - j) * (j - m) * (m - i) / 2
            exp_ll = np.einsum("m,mab->ab", eps, ll)
            exp_kk = np.einsum("m,mab->ab", eps, kk)
            for got, want in (
                (ll[i] @ ll[j] - ll[j] @ ll[i], exp_ll),
                (ll[i] @ kk[j] - kk[j] @ ll[i], exp_kk),
                (kk[i] @ kk[j] - kk[j] @ kk[i], -exp_ll),
            ):
                worst = max(worst, float(np.abs(got - want).max()))
    return worst


def fourvec_residual(
    rng: np.random.Generator, trials: int = 50, max_rapidity: float = 5.0
) -> float:
    """Max relative |U Lambda - D(1,1) U| / |Lambda| over random elements (rapidity <= max)."""
    worst = 0.0
    u = FOURVEC_TO_IRREP
    for _ in range(trials):
        r, a = random_group_element(rng, rng.uniform(0, max_rapidity))
        lam = lorentz_matrix(rapidity=r, angle=a)
        d = irrep_matrix((1, 1), rapidity=r, angle=a)
        worst = max(worst, float(np.abs(u @ lam - d @ u).max() / np.abs(lam).max()))
    return worst


def cg_equivariance_residual(
    rng: np.random.Generator,
    max_label: int = 3,
    max_rapidity: float = 3.0,
    tables: dict | None = None,
) -> float:
    """Max relative residual of ``C(D1 x, D2 y) = D C(x, y)`` over all triples with inputs
    k, n <= max_label (outputs unrestricted). ``tables`` may supply (e.g. float32) tensors.

    Normalised by ``|D1 x| |D2 y|`` (see the module docstring). The arithmetic is float64 even
    for float32 tables, so a float32 run measures the tables' own precision.
    """
    worst = 0.0
    reps = irreps_up_to(max_label + 1)
    for r1, r2 in itertools.product(reps, repeat=2):
        for r in allowed_products(r1, r2):
            if tables is not None:
                if (r1, r2, r) not in tables:  # truncated away at the tables' maxdim
                    continue
                c = np.asarray(tables[(r1, r2, r)].cpu().numpy(), dtype=np.complex128)
            else:
                c = clebsch_gordan(r1, r2, r)
            rap, ang = random_group_element(rng, max_rapidity)
            d1, d2, d = (irrep_matrix(x, rapidity=rap, angle=ang) for x in (r1, r2, r))
            x = rng.normal(size=c.shape[0]) + 1j * rng.normal(size=c.shape[0])
            y = rng.normal(size=c.shape[1]) + 1j * rng.normal(size=c.shape[1])
            lhs = np.einsum("i,j,ijk->k", d1 @ x, d2 @ y, c)
            rhs = d @ np.einsum("i,j,ijk->k", x, y, c)
            scale = np.linalg.norm(d1 @ x) * np.linalg.norm(d2 @ y)
            worst = max(worst, float(np.abs(lhs - rhs).max() / scale))
    return worst


def cg_unitarity_residual(max_label: int = 3) -> float:
    """Max |S^H S - 1| where S stacks C(rep1, rep2, rep) over all rep, for inputs k, n <= max."""
    worst = 0.0
    reps = irreps_up_to(max_label + 1)
    for r1, r2 in itertools.product(reps, repeat=2):
        blocks = [clebsch_gordan(r1, r2, r) for r in allowed_products(r1, r2)]
        s = np.concatenate([b.reshape(-1, b.shape[-1]) for b in blocks], axis=1)
        if s.shape[0] != s.shape[1]:
            return float("inf")
        worst = max(worst, float(np.abs(s.conj().T @ s - np.eye(s.shape[0])).max()))
    return worst


def invariant_form_residual(rng: np.random.Generator, max_label: int = 4) -> float:
    """Max relative |D^T M D - M| over irreps with k, n <= max_label, plus the check that the
    (1, 1) form is the Minkowski metric in Cartesian coordinates."""
    worst = 0.0
    for rep in irreps_up_to(max_label + 1):
        m = invariant_form(rep)
        rap, ang = random_group_element(rng, 2.0)
        d = irrep_matrix(rep, rapidity=rap, angle=ang)
        scale = np.linalg.norm(d) ** 2
        worst = max(worst, float(np.abs(d.T @ m @ d - m).max() / scale))
    u = FOURVEC_TO_IRREP
    worst = max(worst, float(np.abs(u.T @ invariant_form((1, 1)) @ u - MINKOWSKI).max()))
    return worst


def residual_table(seed: int = 0) -> list[tuple[str, str, float, float]]:
    """Rows (family, dtype, largest residual, bound) computed fresh from ``seed``."""
    import torch

    rng = np.random.default_rng(seed)
    rows = [
        ("so(3,1) commutators, k,n <= 4", "float64", commutator_residual(4), 1e-12),
        ("(1,1) vs Cartesian Lambda, |eta| <= 5", "float64", fourvec_residual(rng), 5e-12),
        ("CG equivariance, k,n <= 3, |eta| <= 3", "float64", cg_equivariance_residual(rng), 1e-10),
        ("CG stack unitarity, k,n <= 3", "float64", cg_unitarity_residual(3), 1e-12),
        ("invariant forms, k,n <= 4", "float64", invariant_form_residual(rng), 1e-12),
        (
            "CG equivariance, k,n <= 3, |eta| <= 3",
            "float32",
            cg_equivariance_residual(rng, tables=cg_tables(4, torch.complex64)),
            1e-5,
        ),
    ]
    return rows
