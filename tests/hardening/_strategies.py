"""Hypothesis strategies for hostile-but-legal jets, shared by the hardening tests.

Hypothesis draws the *structure* (outer nesting, list lengths, which special cases occur) and a
seed; the kinematics are then filled in with numpy from that seed. Shrinking therefore works on
what matters for structural bugs (fewer levels, shorter lists, fewer particles) while an example
with thousands of particles stays cheap to generate.

Every drawn example is a :class:`JetCase` holding the awkward array and the flat per-particle
float64 ground truth (E, px, py, pz computed in float64 from the drawn coordinates, then read
back from the stored dtype) so tests can compare without trusting the code under test.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import awkward as ak
import numpy as np
import vector
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

vector.register_awkward()

#: Multiply every example budget by this (``LGAE_HYPOTHESIS_SCALE=10 pytest tests/hardening``
#: for a deeper local search); CI uses 1.
SCALE = float(os.environ.get("LGAE_HYPOTHESIS_SCALE", "1"))
#: ``LGAE_HYPOTHESIS_RANDOM=1`` explores new examples; by default runs are derandomised, so CI
#: sees exactly the same examples every time.
RANDOM = os.environ.get("LGAE_HYPOTHESIS_RANDOM", "0") == "1"


def bounded(max_examples: int) -> settings:
    """CI settings: a fixed example budget, no deadline (shared machine), reproducible."""
    return settings(
        max_examples=max(1, int(max_examples * SCALE)),
        deadline=None,
        derandomize=not RANDOM,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,
        ],
        print_blob=True,
    )


#: Momentum range of the drawn particles (|p| in GeV), "extreme but finite".
P_MIN, P_MAX = 1e-3, 1e5
#: Maximum particles per jet.
MAX_PARTICLES = 200


@dataclass
class JetCase:
    """One drawn example.

    Attributes
    ----------
    jets : ak.Array
        ``[...][jet][particle]`` Momentum4D records (1 to 3 list levels above the particles).
    depth : int
        Number of list levels above ``[particle]`` (1 means ``[jet][particle]``).
    counts : np.ndarray
        Particles per jet in flattened jet order.
    structure : tuple of np.ndarray
        Counts of each level above ``[jet]`` (outermost first).
    p4 : np.ndarray
        (total, 4) float64 ground truth ``(E, px, py, pz)`` of each particle as stored (i.e.
        computed from the stored, possibly float32, coordinates in float64).
    dtype : np.dtype
        Storage dtype of the coordinates.
    coords : str
        ``"ptetaphimass"`` or ``"cartesian"``.
    """

    jets: ak.Array
    depth: int
    counts: np.ndarray
    structure: tuple[np.ndarray, ...]
    p4: np.ndarray
    dtype: np.dtype
    coords: str

    @property
    def n_jets(self) -> int:
        return len(self.counts)

    def jet_slices(self) -> list[slice]:
        starts = np.concatenate([[0], np.cumsum(self.counts)])
        return [slice(int(a), int(b)) for a, b in zip(starts[:-1], starts[1:])]


def _particles(
    rng: np.random.Generator,
    counts: np.ndarray,
    *,
    massless: bool,
    collinear: bool,
    duplicates: bool,
    log_p_range: tuple[float, float],
) -> dict[str, np.ndarray]:
    """float64 pt/eta/phi/mass for jets of the given multiplicities."""
    n_jets = len(counts)
    total = int(counts.sum())
    jet_of = np.repeat(np.arange(n_jets), counts)
    lo, hi = log_p_range
    # jet axis, then particles spread around it (or exactly on it: collinear)
    axis_eta = rng.uniform(-3.0, 3.0, n_jets)[jet_of]
    axis_phi = rng.uniform(-np.pi, np.pi, n_jets)[jet_of]
    spread = 0.0 if collinear else 0.4
    eta = axis_eta + rng.normal(0.0, 1.0, total) * spread
    phi = axis_phi + rng.normal(0.0, 1.0, total) * spread
    phi = (phi + np.pi) % (2 * np.pi) - np.pi
    log_p = rng.uniform(lo, hi, total)
    p_abs = 10.0**log_p
    pt = p_abs / np.cosh(eta)
    if massless:
        mass = np.zeros(total)
    else:
        # hadron masses, plus some heavy "particles" (mass up to a few times |p|)
        mass = rng.choice([0.0, 0.000511, 0.13957, 0.49368, 0.93827], total)
        heavy = rng.random(total) < 0.1
        mass[heavy] = p_abs[heavy] * rng.uniform(0.0, 3.0, int(heavy.sum()))
    if duplicates and total:
        # copy some particles exactly onto the previous particle of the same jet
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        first = np.zeros(total, bool)
        first[starts[counts > 0]] = True
        dup = (rng.random(total) < 0.3) & ~first
        for idx in np.flatnonzero(dup):  # sequential: chains of copies are fine
            pt[idx], eta[idx], phi[idx], mass[idx] = pt[idx - 1], eta[idx - 1], phi[idx - 1], mass[
                idx - 1
            ]
    return {"pt": pt, "eta": eta, "phi": phi, "mass": mass}


def _cartesian64(pt, eta, phi, mass) -> np.ndarray:
    pt, eta, phi, mass = (np.asarray(a, dtype=np.float64) for a in (pt, eta, phi, mass))
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    energy = np.sqrt(px * px + py * py + pz * pz + mass * mass)
    return np.stack([energy, px, py, pz], axis=-1)


@st.composite
def outer_structure(draw, *, min_depth: int = 1, max_depth: int = 3, max_len: int = 5):
    """Counts of each list level above ``[jet]`` and the number of jets (empty lists allowed)."""
    depth = draw(st.integers(min_depth, max_depth))
    structure: list[np.ndarray] = []
    n = draw(st.integers(0, max_len))  # length of the outermost list
    for _ in range(depth - 1):
        level = np.asarray(draw(st.lists(st.integers(0, 4), min_size=n, max_size=n)), np.int64)
        structure.append(level)
        n = int(level.sum())
    return depth, tuple(structure), n


@st.composite
def jet_cases(
    draw,
    *,
    min_depth: int = 1,
    max_depth: int = 3,
    max_particles: int = MAX_PARTICLES,
    max_outer: int = 5,
    coords: tuple[str, ...] = ("ptetaphimass", "cartesian"),
    dtypes: tuple[type, ...] = (np.float32, np.float64),
    log_p_range: tuple[float, float] = (np.log10(P_MIN), np.log10(P_MAX)),
) -> JetCase:
    """Random jets: 1-3 outer levels, empty lists anywhere, 0..``max_particles`` per jet,
    float32/float64, |p| log-uniform in [1e-3, 1e5] GeV, massless or massive, optionally
    collinear and with exact duplicates."""
    depth, structure, n_jets = draw(
        outer_structure(min_depth=min_depth, max_depth=max_depth, max_len=max_outer)
    )
    # multiplicities: mostly small, some at the maximum, some empty
    counts = np.asarray(
        draw(
            st.lists(
                st.one_of(
                    st.integers(0, 35),
                    st.just(0),
                    st.just(1),
                    st.integers(max(0, max_particles - 5), max_particles),
                ),
                min_size=n_jets,
                max_size=n_jets,
            )
        ),
        dtype=np.int64,
    )
    seed = draw(st.integers(0, 2**32 - 1))
    massless = draw(st.booleans())
    collinear = draw(st.booleans())
    duplicates = draw(st.booleans())
    coord = draw(st.sampled_from(coords))
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    rng = np.random.default_rng(seed)
    cols = _particles(
        rng,
        counts,
        massless=massless,
        collinear=collinear,
        duplicates=duplicates,
        log_p_range=log_p_range,
    )
    if coord == "ptetaphimass":
        stored = {k: v.astype(dtype) for k, v in cols.items()}
        p4 = _cartesian64(stored["pt"], stored["eta"], stored["phi"], stored["mass"])
        fields = stored
    else:
        p4_64 = _cartesian64(cols["pt"], cols["eta"], cols["phi"], cols["mass"])
        stored = p4_64.astype(dtype)
        p4 = stored.astype(np.float64)
        fields = {"px": stored[:, 1], "py": stored[:, 2], "pz": stored[:, 3], "E": stored[:, 0]}
    jets = ak.unflatten(ak.zip(fields, with_name="Momentum4D"), counts)
    for level in reversed(structure):
        jets = ak.unflatten(jets, level)
    return JetCase(
        jets=jets,
        depth=depth,
        counts=counts,
        structure=structure,
        p4=p4,
        dtype=dtype,
        coords=coord,
    )


def outer_counts(arr: ak.Array, levels: int) -> list[np.ndarray]:
    """Counts of the first ``levels`` list levels of ``arr`` (outermost first)."""
    out = []
    for _ in range(levels):
        out.append(np.asarray(ak.to_numpy(ak.num(arr, axis=1)), np.int64))
        arr = ak.flatten(arr, axis=1)
    return out


def flat_particles(arr: ak.Array, depth: int) -> ak.Array:
    """Flatten ``depth`` list levels (records stay records, unlike ``axis=None``)."""
    for _ in range(depth):
        arr = ak.flatten(arr, axis=1)
    return arr


def same_structure(a: ak.Array, b: ak.Array, levels: int) -> bool:
    """Whether ``a`` and ``b`` have identical list lengths on their first ``levels`` levels."""
    if len(a) != len(b):
        return False
    return all(
        np.array_equal(x, y) for x, y in zip(outer_counts(a, levels), outer_counts(b, levels))
    )


def pt_order(p4: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Flat indices that sort each jet's particles by pT descending (stable)."""
    pt = np.hypot(p4[:, 1], p4[:, 2])
    starts = np.concatenate([[0], np.cumsum(counts)])
    order = [
        a + np.argsort(-pt[a:b], kind="stable") for a, b in zip(starts[:-1], starts[1:])
    ]
    return np.concatenate(order) if order else np.zeros(0, np.int64)
