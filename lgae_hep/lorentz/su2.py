"""SU(2) Clebsch-Gordan coefficients, computed exactly.

Spins are passed as *doubled* integers internally (``tj = 2 j``) so that half-integer spins are
exact. The coefficients are evaluated with Racah's formula in rational arithmetic
(:class:`fractions.Fraction`): the square of every coefficient is an exact rational number, and
the only rounding is the final square root in float64. Nothing here needs sympy or QuTiP.

Conventions: Condon-Shortley phases; components of spin ``j`` are ordered ``m = -j, ..., j``.
"""

from __future__ import annotations

from fractions import Fraction
from functools import cache
from math import factorial, sqrt

import numpy as np

__all__ = ["cg_squared_signed", "su2_cg", "su2_cg_table", "spin_matrices"]


def _check_doubled(name: str, value: int) -> None:
    if not isinstance(value, int | np.integer) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer (twice the spin), got {value!r}")


@cache
def cg_squared_signed(tj1: int, tm1: int, tj2: int, tm2: int, tj: int, tm: int) -> Fraction:
    """Exact ``sign(C) * C**2`` of <j1 m1; j2 m2 | j m>, all arguments doubled.

    Returning the signed square keeps the result an exact rational number.
    """
    if tm1 + tm2 != tm:
        return Fraction(0)
    if not (abs(tj1 - tj2) <= tj <= tj1 + tj2) or (tj1 + tj2 + tj) % 2:
        return Fraction(0)
    for tjx, tmx in ((tj1, tm1), (tj2, tm2), (tj, tm)):
        if abs(tmx) > tjx or (tjx + tmx) % 2:
            return Fraction(0)
    # Work with integer combinations (all of them are integers by the checks above).
    a = (tj1 + tj2 - tj) // 2
    b = (tj1 - tm1) // 2
    c = (tj2 + tm2) // 2
    d = (tj - tj2 + tm1) // 2
    e = (tj - tj1 - tm2) // 2
    pref = Fraction(
        (tj + 1)
        * factorial((tj + tj1 - tj2) // 2)
        * factorial((tj - tj1 + tj2) // 2)
        * factorial(a),
        factorial((tj1 + tj2 + tj) // 2 + 1),
    )
    pref *= (
        factorial((tj + tm) // 2)
        * factorial((tj - tm) // 2)
        * factorial((tj1 - tm1) // 2)
        * factorial((tj1 + tm1) // 2)
        * factorial((tj2 - tm2) // 2)
        * factorial((tj2 + tm2) // 2)
    )
    total = Fraction(0)
    for k in range(max(0, -d, -e), min(a, b, c) + 1):
        denom = (
            factorial(k)
            * factorial(a - k)
            * factorial(b - k)
            * factorial(c - k)
            * factorial(d + k)
            * factorial(e + k)
        )
        total += Fraction((-1) ** k, denom)
    value = pref * total * total
    return value if total >= 0 else -value


def su2_cg(j1: float, m1: float, j2: float, m2: float, j: float, m: float) -> float:
    """Clebsch-Gordan coefficient <j1 m1; j2 m2 | j m> as float64 (spins may be half-integers)."""
    doubled = []
    for name, v in zip(("j1", "m1", "j2", "m2", "j", "m"), (j1, m1, j2, m2, j, m), strict=True):
        tv = 2 * Fraction(v).limit_denominator(2)
        if tv.denominator != 1 or not np.isfinite(float(v)):
            raise ValueError(f"{name} must be an integer or half-integer, got {v!r}")
        doubled.append(int(tv))
    for name, tv in (("j1", doubled[0]), ("j2", doubled[2]), ("j", doubled[4])):
        _check_doubled(name, tv)
    s = cg_squared_signed(*doubled)
    return float(np.sign(s)) * sqrt(abs(s))


@cache
def su2_cg_table(tj1: int, tj2: int, tj: int) -> np.ndarray:
    """All coefficients <j1 m1; j2 m2 | j m> as an array of shape (2j1+1, 2j2+1, 2j+1).

    Arguments are doubled spins. Indices run over m = -j..j. The returned array is read-only.
    """
    for name, v in (("tj1", tj1), ("tj2", tj2), ("tj", tj)):
        _check_doubled(name, v)
    out = np.zeros((tj1 + 1, tj2 + 1, tj + 1))
    for i1, tm1 in enumerate(range(-tj1, tj1 + 1, 2)):
        for i2, tm2 in enumerate(range(-tj2, tj2 + 1, 2)):
            tm = tm1 + tm2
            if abs(tm) > tj:
                continue
            s = cg_squared_signed(tj1, tm1, tj2, tm2, tj, tm)
            if s:
                out[i1, i2, (tm + tj) // 2] = (1.0 if s > 0 else -1.0) * sqrt(abs(s))
    out.setflags(write=False)
    return out


@cache
def spin_matrices(tj: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hermitian spin matrices (Jx, Jy, Jz) of spin j = tj/2, basis m = -j..j (complex128)."""
    _check_doubled("tj", tj)
    d = tj + 1
    m = (np.arange(d) * 2 - tj) / 2.0  # m = -j..j
    j = tj / 2.0
    jp = np.zeros((d, d), dtype=np.complex128)  # J+ |m> = sqrt(j(j+1) - m(m+1)) |m+1>
    for i in range(d - 1):
        jp[i + 1, i] = sqrt(j * (j + 1) - m[i] * (m[i] + 1))
    jm = jp.conj().T
    jx = (jp + jm) / 2
    jy = (jp - jm) / 2j
    jz = np.diag(m).astype(np.complex128)
    for a in (jx, jy, jz):
        a.setflags(write=False)
    return jx, jy, jz
