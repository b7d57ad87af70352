"""Clebsch-Gordan coefficients of SO+(3,1) and the cached tables the network uses.

For ``(k1, n1) x (k2, n2) -> (k, n)`` the two SU(2) factors couple independently: in the spinor
product basis the coefficient is the product of SU(2) coefficients
``<k1/2 a1; k2/2 a2 | k/2 a> <n1/2 b1; n2/2 b2 | n/2 b>``; conjugating with the (real orthogonal)
spinor -> canonical change of basis of each irrep gives the canonical-basis tensor. Because both
factors are orthogonal, stacking the tensors over every allowed output gives an orthogonal
(hence unitary) change of basis of the product space.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from .group import Irrep, check_irrep, irrep_dim, irreps_up_to, spinor_to_canonical
from .su2 import su2_cg_table

__all__ = [
    "allowed_products",
    "clebsch_gordan",
    "cg_triples",
    "cg_tables",
    "invariant_form",
    "MINKOWSKI_CG_CONSTANT",
]


def allowed_products(rep1: Irrep, rep2: Irrep, maxdim: int | None = None) -> list[Irrep]:
    """Irreps in the decomposition of ``rep1 x rep2`` (optionally only those with k, n < maxdim)."""
    k1, n1 = check_irrep(rep1)
    k2, n2 = check_irrep(rep2)
    out = [
        (k, n)
        for k in range(abs(k1 - k2), k1 + k2 + 1, 2)
        for n in range(abs(n1 - n2), n1 + n2 + 1, 2)
    ]
    if maxdim is not None:
        out = [(k, n) for k, n in out if k < maxdim and n < maxdim]
    return out


@cache
def _clebsch_gordan(rep1: Irrep, rep2: Irrep, rep: Irrep) -> np.ndarray:
    (k1, n1), (k2, n2), (k, n) = rep1, rep2, rep
    ck = su2_cg_table(k1, k2, k)  # (k1+1, k2+1, k+1)
    cn = su2_cg_table(n1, n2, n)  # (n1+1, n2+1, n+1)
    # spinor index of (k, n) is a * (n+1) + b
    csp = np.einsum("ace,bdf->abcdef", ck, cn, optimize=True).reshape(
        (k1 + 1) * (n1 + 1), (k2 + 1) * (n2 + 1), (k + 1) * (n + 1)
    )
    t1, t2, t = spinor_to_canonical(rep1), spinor_to_canonical(rep2), spinor_to_canonical(rep)
    c = np.tensordot(t1, csp, axes=(1, 0))  # (i, b, c)
    c = np.tensordot(t2, c, axes=(1, 1)).transpose(1, 0, 2)  # (i, j, c)
    c = np.tensordot(c, t, axes=(2, 1)).astype(np.complex128)  # (i, j, k)
    # The change of basis leaves ~1e-17 round-off where the exact coefficient is 0 (true
    # non-zero coefficients for k, n <= 8 are far above 1e-12): make exact zeros exact.
    c[np.abs(c) < 1e-14] = 0.0
    c.setflags(write=False)
    return c


def clebsch_gordan(rep1: Irrep, rep2: Irrep, rep: Irrep) -> np.ndarray:
    """Clebsch-Gordan tensor C of shape (d1, d2, d), complex128, canonical bases.

    ``einsum('i,j,ijk->k', D1 @ x, D2 @ y, C) == D @ einsum('i,j,ijk->k', x, y, C)`` for every
    group element. Raises ``ValueError`` if ``rep`` does not occur in ``rep1 x rep2``.
    The returned array is cached and read-only.
    """
    rep1, rep2, rep = check_irrep(rep1), check_irrep(rep2), check_irrep(rep)
    if rep not in allowed_products(rep1, rep2):
        raise ValueError(
            f"irrep {rep} does not occur in {rep1} x {rep2}; allowed: "
            f"{allowed_products(rep1, rep2)}"
        )
    return _clebsch_gordan(rep1, rep2, rep)


def cg_triples(maxdim: int) -> list[tuple[Irrep, Irrep, Irrep]]:
    """All ``(rep1, rep2, rep)`` with the three irreps in ``irreps_up_to(maxdim)``."""
    reps = irreps_up_to(maxdim)
    return [(r1, r2, r) for r1 in reps for r2 in reps for r in allowed_products(r1, r2, maxdim)]


@cache
def _cg_tables(maxdim: int, dtype, device):  # noqa: ANN001, ANN202
    import torch

    return {
        tr: torch.tensor(np.array(clebsch_gordan(*tr)), dtype=dtype, device=device)
        for tr in cg_triples(maxdim)
    }


def cg_tables(maxdim: int, dtype=None, device=None) -> dict:  # noqa: ANN001
    """Dense torch CG tensors for every triple of :func:`cg_triples`, cached per (maxdim, dtype,
    device).

    Parameters
    ----------
    maxdim : int
        Strict upper bound on the irrep labels (see :func:`irreps_up_to`).
    dtype : torch.dtype, optional
        Complex dtype, ``torch.complex64`` (default) or ``torch.complex128``.
    device : torch.device or str, optional

    Returns
    -------
    dict
        ``{(rep1, rep2, rep): tensor (d1, d2, d)}``. Shared between callers: do not modify.
    """
    import torch

    dtype = torch.complex64 if dtype is None else dtype
    if dtype not in (torch.complex64, torch.complex128):
        raise ValueError(f"dtype must be torch.complex64 or torch.complex128, got {dtype}")
    irreps_up_to(maxdim)  # validates maxdim
    return _cg_tables(int(maxdim), dtype, torch.device(device) if device is not None else None)


@cache
def _invariant_form(rep: Irrep) -> np.ndarray:
    d = irrep_dim(rep)
    m = np.sqrt(d) * clebsch_gordan(rep, rep, (0, 0))[:, :, 0]
    # Fix the overall sign so that the lowest-spin block has a positive entry on the first
    # component; for (1, 1) this makes the form exactly the Minkowski metric (+,-,-,-).
    nz = m[0][np.abs(m[0]) > 1e-12]
    if nz.size and nz[0].real < 0:
        m = -m
    m.setflags(write=False)
    return m


def invariant_form(rep: Irrep) -> np.ndarray:
    """Invariant symmetric-or-antisymmetric bilinear form M of ``rep`` (canonical basis).

    ``D.T @ M @ D == M`` for every group element (a bilinear form, no complex conjugation).
    Normalised to entries of modulus 1; for ``(1, 1)`` it is the Minkowski metric:
    ``z.T @ M @ w == p . q`` for ``z = fourvec_to_irrep(p)``, ``w = fourvec_to_irrep(q)``.
    """
    return _invariant_form(check_irrep(rep))


def _minkowski_cg_constant() -> float:
    from .group import FOURVEC_TO_IRREP, MINKOWSKI

    c = clebsch_gordan((1, 1), (1, 1), (0, 0))[:, :, 0]
    # einsum(U p, U q, C) = p^T (U^T C U) q must equal c * g
    m = FOURVEC_TO_IRREP.T @ c @ FOURVEC_TO_IRREP
    const = m[0, 0].real
    if not np.allclose(m, const * MINKOWSKI, atol=1e-14):  # pragma: no cover
        raise RuntimeError("(1,1) x (1,1) -> (0,0) is not proportional to the Minkowski product")
    return float(const)


#: ``einsum('i,j,ijk->k', U p, U q, C[(1,1),(1,1),(0,0)])[0] == MINKOWSKI_CG_CONSTANT * p.q``
#: (the constant is 1/2: 1/sqrt(2) from each of the two SU(2) couplings 1/2 x 1/2 -> 0).
MINKOWSKI_CG_CONSTANT: float = _minkowski_cg_constant()
