"""The bad-input predicate: which particles make a jet invalid, and the per-jet status values.

The policy itself (what is flagged, what happens to a flagged jet) is stated once, in
:mod:`lgae_hep.data.tensors`; this module is its one implementation. :func:`invalid_particles`
tests Cartesian components (what :func:`lgae_hep.data.to_tensors` converts), and
:func:`invalid_candidates` the same test on stored ``pt, eta, phi, mass`` columns (what the
readers use to sort flagged candidates first, so that truncation to the N hardest never hides
them). Both give the same answer for the same particles.
"""

from __future__ import annotations

from collections.abc import Mapping

import awkward as ak
import numpy as np

from .vectors import MOMENTUM_FIELDS, cartesian_components

__all__ = ["ABS_TOL", "EMPTY", "ENCODED", "INVALID", "OVERFLOW", "REASONS", "REL_TOL",
           "STATUS_NAMES", "UNRESOLVED", "all_valid", "invalid_candidates", "invalid_particles",
           "particle_flags"]

#: Relative tolerance of the ``E >= |p|`` physicality test.
REL_TOL = 1e-4
#: Absolute tolerance (GeV) of the ``E >= |p|`` physicality test.
ABS_TOL = 1e-6

#: Reason of a flagged particle, by key of :func:`particle_flags`, in increasing precedence (a
#: jet's reason is that of its highest-precedence flag).
REASONS: dict[str, str] = {
    "negative_pt": "negative pt",
    "spacelike": "E < |p| (spacelike / negative mass)",
    "negative_energy": "negative energy",
    "overflow": "component beyond the {dtype} range",
    "non_finite": "non-finite component",
}

#: Per-jet status code -> meaning (the ``lgaeStatus`` of compressed files). ``encoded``: a
#: valid jet with a latent; ``empty``: no particles; ``invalid``: flagged by the predicate;
#: ``unresolved``: its mass is not resolved for the per-jet scale; ``overflow``: non-finite latent.
STATUS_NAMES: dict[int, str] = {0: "encoded", 1: "empty", 2: "invalid", 3: "unresolved",
                                4: "overflow"}
ENCODED, EMPTY, INVALID, UNRESOLVED, OVERFLOW = range(5)


def all_valid(energy: np.ndarray, px: np.ndarray, py: np.ndarray, pz: np.ndarray, *,
              pt: np.ndarray | None = None, max_abs: float | None = None) -> bool:
    """True when no particle is flagged: cheap whole-array tests, no per-particle work.

    ``pt``: the stored ``pt`` field, when the records have one; ``max_abs``: the largest
    magnitude of the output dtype (``None``: no range test).
    """
    with np.errstate(invalid="ignore", over="ignore"):
        p_abs = np.sqrt(px * px + py * py + pz * pz)
        if not bool(np.isfinite(energy + p_abs).all()):  # inf - inf, nan propagate
            return False
        if max_abs is not None and not bool((np.maximum(np.abs(energy), p_abs) <= max_abs).all()):
            return False
        if not bool((energy >= p_abs * (1 - REL_TOL) - ABS_TOL).all()):
            return False
    return pt is None or not bool((pt < 0).any())


def particle_flags(energy: np.ndarray, px: np.ndarray, py: np.ndarray, pz: np.ndarray, *,
                   pt: np.ndarray | None = None,
                   max_abs: float | None = None) -> dict[str, np.ndarray]:
    """Per-particle boolean flags, one array per key of :data:`REASONS` (same order)."""
    with np.errstate(invalid="ignore", over="ignore"):
        p_abs = np.sqrt(px * px + py * py + pz * pz)
        finite = np.isfinite(energy) & np.isfinite(px) & np.isfinite(py) & np.isfinite(pz)
        overflow = (finite & (np.maximum(np.abs(energy), p_abs) > max_abs) if max_abs is not None
                    else np.zeros(len(energy), bool))
        neg_e = finite & (energy < 0)
        spacelike = finite & ~neg_e & (energy < p_abs * (1 - REL_TOL) - ABS_TOL)
        neg_pt = np.zeros(len(energy), bool) if pt is None else pt < 0
    return {"negative_pt": neg_pt, "spacelike": spacelike, "negative_energy": neg_e,
            "overflow": overflow, "non_finite": ~finite}


def invalid_particles(energy: np.ndarray, px: np.ndarray, py: np.ndarray, pz: np.ndarray, *,
                      pt: np.ndarray | None = None,
                      max_abs: float | None = None) -> np.ndarray | None:
    """Flagged particles (bool array), or None when there are none (the common, cheap case)."""
    if all_valid(energy, px, py, pz, pt=pt, max_abs=max_abs):
        return None
    flags = particle_flags(energy, px, py, pz, pt=pt, max_abs=max_abs)
    bad = np.logical_or.reduce(list(flags.values()))
    return bad if bad.any() else None


def invalid_candidates(cols: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """:func:`invalid_particles` of flat ``pt, eta, phi, mass`` columns (None when none).

    The common case is decided on the stored columns alone (finite, ``pt >= 0``, ``mass >= 0``
    and no overflow of ``|p|`` or ``E``: nothing can be flagged); otherwise the Cartesian
    components are computed as :func:`lgae_hep.data.to_tensors` computes them (``vector``'s
    ``E**2 = |p|**2 + m*|m|``) and tested.
    """
    pt, eta, phi, mass = (np.asarray(cols[name]) for name in MOMENTUM_FIELDS)
    if not len(pt):
        return None
    with np.errstate(invalid="ignore", over="ignore"):
        finite = bool(np.isfinite(pt).all() & np.isfinite(eta).all() & np.isfinite(phi).all()
                      & np.isfinite(mass).all())
        if finite and not (pt < 0).any() and not (mass < 0).any():
            p_max = float(np.max(pt)) * float(np.cosh(np.max(np.abs(eta)).astype(np.float64)))
            if np.isfinite(p_max * p_max + float(np.max(mass)) ** 2):
                return None  # one cheap pass, no per-candidate work
    records = ak.zip({name: np.asarray(cols[name]) for name in MOMENTUM_FIELDS})
    energy, px, py, pz = (np.asarray(c, np.float64) for c in cartesian_components(records))
    return invalid_particles(energy, px, py, pz, pt=pt)
