"""Irreducible representations of SO+(3,1) in the canonical basis, and Cartesian group elements.

Conventions (see DESIGN.md section 3):

* An irrep is labelled by non-negative integers ``(k, n)``, twice the spins of the two SU(2)
  factors of the complexified Lie algebra; its dimension is ``(k+1)(n+1)``. Only ``k + n`` even
  are representations of SO+(3,1) (the others are double-valued); those are all we accept.
* Canonical basis: under rotations ``(k, n)`` splits into spins ``l = |k-n|/2, ..., (k+n)/2``;
  components are ordered by ``l`` and then ``m = -l..l``. The map from the spinor product basis
  ``|k/2, a> x |n/2, b>`` is the (real, orthogonal) matrix of SU(2) Clebsch-Gordan coefficients.
* Cartesian 4-vectors are columns ``(E, px, py, pz)``. Group elements are *active*:
  ``rotation(a)`` turns vectors right-handedly by ``|a|`` about ``a``; ``boost(r)`` gives a
  particle at rest the 3-momentum ``m sinh|r|`` along ``r``.
* Generators: with ``A = J^(k/2) x 1`` and ``B = 1 x J^(n/2)`` (Hermitian spin matrices), the real
  Lie-algebra elements are ``L_i = -i (A_i + B_i)`` (rotations) and ``K_i = A_i - B_i`` (boosts),
  so that ``irrep_matrix(rep, rapidity=r, angle=a) = expm(r.K + a.L)``; equivalently, with the
  Hermitian boost generator ``K^h = i (A - B)``, ``exp(-i r.K^h)``. The same ``expm(r.K + a.L)``
  with the Cartesian generators is :func:`lorentz_matrix`.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import numpy as np
from scipy.linalg import expm, null_space

from .su2 import spin_matrices, su2_cg_table

__all__ = [
    "Irrep",
    "check_irrep",
    "irrep_dim",
    "irreps_up_to",
    "irrep_spins",
    "irrep_generators",
    "cartesian_generators",
    "lorentz_matrix",
    "boost",
    "rotation",
    "irrep_matrix",
    "spinor_to_canonical",
    "FOURVEC_TO_IRREP",
    "fourvec_to_irrep",
    "irrep_to_fourvec",
    "MINKOWSKI",
]

Irrep = tuple[int, int]

#: Minkowski metric diag(+1, -1, -1, -1) for (E, px, py, pz).
MINKOWSKI = np.diag([1.0, -1.0, -1.0, -1.0])
MINKOWSKI.setflags(write=False)


def check_irrep(rep: object) -> Irrep:
    """Validate an irrep label and return it as a tuple of two Python ints.

    Raises
    ------
    ValueError
        If ``rep`` is not a pair of non-negative integers with ``k + n`` even.
    """
    try:
        k, n = rep  # type: ignore[misc]
    except (TypeError, ValueError):
        raise ValueError(f"an irrep is a pair of integers (k, n), got {rep!r}") from None
    for v in (k, n):
        if isinstance(v, bool) or not isinstance(v, int | np.integer):
            raise ValueError(f"irrep labels must be integers, got {rep!r}")
    k, n = int(k), int(n)
    if k < 0 or n < 0:
        raise ValueError(f"irrep labels must be non-negative, got {rep!r}")
    if (k + n) % 2:
        raise ValueError(
            f"irrep {rep!r} has k + n odd: it is a spinor (double-valued) representation, "
            "not a representation of SO+(3,1); use k + n even"
        )
    return k, n


def irrep_dim(rep: Irrep) -> int:
    """Dimension ``(k+1)(n+1)`` of irrep ``(k, n)``."""
    k, n = check_irrep(rep)
    return (k + 1) * (n + 1)


def irreps_up_to(maxdim: int) -> list[Irrep]:
    """All irreps ``(k, n)`` with ``0 <= k, n < maxdim`` and ``k + n`` even.

    ``maxdim`` is a strict upper bound on ``k`` and ``n`` (the convention of the LGN reference
    code): ``maxdim=2`` gives ``[(0, 0), (1, 1)]`` (scalars and 4-vectors), ``maxdim=3`` adds
    ``(0, 2), (2, 0), (2, 2)``. Sorted by dimension, then by label.
    """
    if isinstance(maxdim, bool) or not isinstance(maxdim, int | np.integer) or maxdim < 1:
        raise ValueError(f"maxdim must be a positive integer, got {maxdim!r}")
    reps = [(k, n) for k in range(maxdim) for n in range(maxdim) if (k + n) % 2 == 0]
    return sorted(reps, key=lambda r: (irrep_dim(r), r))


def irrep_spins(rep: Irrep) -> list[tuple[int, int]]:
    """Rotation content of the canonical basis: list of (doubled l, doubled m) per component."""
    k, n = check_irrep(rep)
    return [(tl, tm) for tl in range(abs(k - n), k + n + 1, 2) for tm in range(-tl, tl + 1, 2)]


@cache
def spinor_to_canonical(rep: Irrep) -> np.ndarray:
    """Real orthogonal matrix T (d, d): canonical components = T @ spinor-product components.

    Spinor components are ordered ``(a, b)`` with ``a = -k/2..k/2`` slow and ``b = -n/2..n/2``
    fast; rows follow :func:`irrep_spins`.
    """
    k, n = check_irrep(rep)
    d = (k + 1) * (n + 1)
    t = np.zeros((d, d))
    row = 0
    for tl in range(abs(k - n), k + n + 1, 2):
        cg = su2_cg_table(k, n, tl)  # (k+1, n+1, tl+1)
        t[row : row + tl + 1, :] = cg.reshape(d, tl + 1).T
        row += tl + 1
    t.setflags(write=False)
    return t


@cache
def irrep_generators(rep: Irrep) -> tuple[np.ndarray, np.ndarray]:
    """Generators ``(K, L)`` of irrep ``rep`` in the canonical basis, each of shape (3, d, d).

    ``K_i = A_i - B_i`` (boosts) and ``L_i = -i (A_i + B_i)`` (rotations), complex128.
    """
    k, n = check_irrep(rep)
    ja, jb = spin_matrices(k), spin_matrices(n)
    ia, ib = np.eye(k + 1), np.eye(n + 1)
    t = spinor_to_canonical((k, n))
    kk, ll = [], []
    for i in range(3):
        a = np.kron(ja[i], ib)
        b = np.kron(ia, jb[i])
        kk.append(t @ (a - b) @ t.T)
        ll.append(t @ (-1j * (a + b)) @ t.T)
    out_k, out_l = np.stack(kk), np.stack(ll)
    out_k.setflags(write=False)
    out_l.setflags(write=False)
    return out_k, out_l


def _cartesian_generators() -> tuple[np.ndarray, np.ndarray]:
    kk = np.zeros((3, 4, 4))
    ll = np.zeros((3, 4, 4))
    for i in range(3):
        kk[i, 0, i + 1] = kk[i, i + 1, 0] = 1.0
        for j in range(3):
            for m in range(3):
                # (L_i)_{jm} = -eps_{ijm}: right-handed active rotation about axis i
                eps = (i - j) * (j - m) * (m - i) / 2
                ll[i, j + 1, m + 1] = -eps
    kk.setflags(write=False)
    ll.setflags(write=False)
    return kk, ll


_CART_K, _CART_L = _cartesian_generators()


def cartesian_generators() -> tuple[np.ndarray, np.ndarray]:
    """Real 4x4 generators ``(K, L)`` (each (3, 4, 4)) acting on column (E, px, py, pz)."""
    return _CART_K, _CART_L


def _as_3vec(name: str, v: object) -> np.ndarray:
    if v is None:
        return np.zeros(3)
    arr = np.asarray(v, dtype=np.float64)
    if arr.shape != (3,):
        raise ValueError(f"{name} must be a 3-vector, got shape {arr.shape} ({v!r})")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {v!r}")
    return arr


def lorentz_matrix(
    rapidity: Sequence[float] | np.ndarray | None = None,
    angle: Sequence[float] | np.ndarray | None = None,
) -> np.ndarray:
    """Cartesian Lorentz transformation ``expm(rapidity.K + angle.L)`` as float64 (4, 4).

    Parameters
    ----------
    rapidity : 3-vector, optional
        Rapidity vector (direction = boost axis, length = rapidity). Default 0.
    angle : 3-vector, optional
        Axis-angle vector (direction = rotation axis, length = angle in radians). Default 0.

    Returns
    -------
    numpy.ndarray
        Lambda acting on column 4-vectors (E, px, py, pz): ``p' = Lambda @ p``. For only a
        rapidity or only an angle this is :func:`boost` or :func:`rotation`; for both it is the
        exponential of the combined generator (not a product of the two).
    """
    r = _as_3vec("rapidity", rapidity)
    a = _as_3vec("angle", angle)
    gen = np.einsum("i,ijk->jk", r, _CART_K) + np.einsum("i,ijk->jk", a, _CART_L)
    return expm(gen)


def boost(rapidity: Sequence[float] | np.ndarray) -> np.ndarray:
    """Active pure boost: gives a particle at rest 3-momentum ``m sinh|r|`` along ``r``."""
    return lorentz_matrix(rapidity=rapidity)


def rotation(angle: Sequence[float] | np.ndarray) -> np.ndarray:
    """Active rotation by ``|angle|`` (radians), right-handed about the axis ``angle``."""
    return lorentz_matrix(angle=angle)


def irrep_matrix(
    rep: Irrep,
    rapidity: Sequence[float] | np.ndarray | None = None,
    angle: Sequence[float] | np.ndarray | None = None,
) -> np.ndarray:
    """The group element of :func:`lorentz_matrix` in irrep ``rep``, canonical basis.

    Returns a complex128 (d, d) matrix acting on column vectors: ``x' = D @ x``.
    """
    rep = check_irrep(rep)
    r = _as_3vec("rapidity", rapidity)
    a = _as_3vec("angle", angle)
    kk, ll = irrep_generators(rep)
    gen = np.einsum("i,ijk->jk", r, kk) + np.einsum("i,ijk->jk", a, ll)
    return expm(gen)


def _fourvec_intertwiner() -> np.ndarray:
    """Unitary U with U @ X_cart = X_(1,1) @ U for all six generators."""
    kc, lc = _CART_K, _CART_L
    ki, li = irrep_generators((1, 1))
    eye = np.eye(4)
    # U X - G U = 0  <=>  (X^T kron I - I kron G) vec(U) = 0 (column-major vec)
    pairs = zip([*kc, *lc], [*ki, *li], strict=True)
    rows = [np.kron(x.T, eye) - np.kron(eye, g) for x, g in pairs]
    ns = null_space(np.concatenate(rows, axis=0))
    if ns.shape[1] != 1:  # pragma: no cover - would be a bug in the generators
        raise RuntimeError("no unique intertwiner between Cartesian and (1,1) bases")
    u = ns[:, 0].reshape(4, 4, order="F")
    u = u / np.sqrt(np.abs(np.linalg.det(u))) ** 0.5  # |det| = 1
    u = u * (np.abs(u[0, 0]) / u[0, 0])  # phase: E maps to the l=0 component with a real + sign
    # The exact entries are 0, +-1 and +-1/sqrt(2) (real or imaginary); snap the ~1e-14
    # round-off of the null-space solve so that U is unitary to machine precision.
    targets = np.array([0.0, 1.0, -1.0, 2**-0.5, -(2**-0.5)])
    parts = []
    for part in (u.real, u.imag):
        idx = np.abs(part[..., None] - targets).argmin(-1)
        snapped = targets[idx]
        if np.abs(snapped - part).max() > 1e-10:  # pragma: no cover
            raise RuntimeError("unexpected entries in the Cartesian -> (1,1) intertwiner")
        parts.append(snapped)
    u = parts[0] + 1j * parts[1]
    u.setflags(write=False)
    return u


#: Unitary change of basis from Cartesian (E, px, py, pz) to the (1,1) canonical basis.
FOURVEC_TO_IRREP: np.ndarray = _fourvec_intertwiner()
_IRREP_TO_FOURVEC: np.ndarray = FOURVEC_TO_IRREP.conj().T.copy()
_IRREP_TO_FOURVEC.setflags(write=False)


def _check_last_dim4(name: str, x: object) -> None:
    shape = tuple(getattr(x, "shape", np.shape(x)))
    if len(shape) == 0 or shape[-1] != 4:
        raise ValueError(f"{name} must have shape (..., 4), got shape {shape}")


def _apply(mat: np.ndarray, x):  # noqa: ANN001, ANN202 - numpy or torch
    if type(x).__module__.startswith("torch"):
        import torch

        double = x.dtype in (torch.float64, torch.complex128)
        cdtype = torch.complex128 if double else torch.complex64
        m = torch.tensor(np.array(mat), dtype=cdtype, device=x.device)
        return torch.einsum("ij,...j->...i", m, x.to(cdtype))
    return np.einsum("ij,...j->...i", mat, np.asarray(x))


def fourvec_to_irrep(p):  # noqa: ANN001, ANN201 - numpy or torch in, same kind out
    """Map Cartesian 4-vectors (..., 4) in (E, px, py, pz) to the (1,1) canonical basis.

    Works on numpy arrays and torch tensors (output complex). The map ``U`` is unitary and
    satisfies ``U @ lorentz_matrix(...) = irrep_matrix((1, 1), ...) @ U``.
    """
    _check_last_dim4("p", p)
    return _apply(FOURVEC_TO_IRREP, p)


def irrep_to_fourvec(z):  # noqa: ANN001, ANN201
    """Inverse of :func:`fourvec_to_irrep` (``U^H``). Real and imaginary parts of the result
    are each Cartesian 4-vectors (Lambda is real)."""
    _check_last_dim4("z", z)
    return _apply(_IRREP_TO_FOURVEC, z)
