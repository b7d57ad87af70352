"""Four-vector helpers shared by the readers, the writer and the tensor conversion.

Everything here is vectorised over flat numpy buffers or awkward arrays (no Python loop per
jet or particle). Units are GeV; Cartesian components are ordered ``(E, px, py, pz)`` as in the
rest of the project.

Relative coordinates follow JetNet (DESIGN.md section 4)::

    eta_rel = eta - eta_jet
    phi_rel = phi - phi_jet   wrapped to [-pi, pi)
    pt_rel  = pt / pt_jet
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import awkward as ak
import numpy as np
import vector

vector.register_awkward()

__all__ = [
    "MOMENTUM_FIELDS",
    "cartesian_components",
    "eta_rel",
    "jet_p4",
    "momentum4d",
    "phi_rel",
    "pt_eta_phi_mass",
    "pt_rel",
    "relative_coordinates",
    "wrap_phi",
]

#: Field names of the Momentum4D records produced by the readers.
MOMENTUM_FIELDS = ("pt", "eta", "phi", "mass")

# Names `vector` understands for each kind of coordinate (subset used for the fast paths).
_E_NAMES = ("E", "e", "energy", "t")
_MASS_NAMES = ("mass", "M", "m", "tau")


def wrap_phi(phi: Any) -> Any:
    """Wrap azimuthal angles to ``[-pi, pi)``.

    Parameters
    ----------
    phi : array_like or ak.Array
        Angles in radians (any shape, numpy or awkward).

    Returns
    -------
    Same type as ``phi``, each value mapped to ``[-pi, pi)``.
    """
    return (phi + np.pi) % (2 * np.pi) - np.pi


def _field(rec: Any, names: tuple[str, ...]) -> str | None:
    fields = set(ak.fields(rec)) if not isinstance(rec, Mapping) else set(rec)
    for name in names:
        if name in fields:
            return name
    return None


def cartesian_components(particles: ak.Array) -> tuple[np.ndarray, ...]:
    """Return flat ``(E, px, py, pz)`` numpy arrays for an awkward array of Lorentz vectors.

    The input may have any number of list levels; the returned arrays follow
    ``ak.flatten(particles, axis=None)`` order. Common coordinate systems (pt/eta/phi/mass,
    pt/eta/phi/energy, px/py/pz/E) are converted in numpy directly; anything else that `vector`
    understands goes through `vector`'s awkward behaviour.

    Parameters
    ----------
    particles : ak.Array
        Records with Lorentz-vector fields.

    Returns
    -------
    tuple of np.ndarray
        ``(E, px, py, pz)``, float64 whatever the input precision (computed in float64).
    """
    fields = set(ak.fields(particles))
    if not fields:
        raise ValueError(
            "expected records with Lorentz-vector fields (pt/eta/phi/mass, px/py/pz/E, ...), "
            f"got an array of type {particles.type}"
        )

    def flat(name: str) -> np.ndarray:
        # float64 whatever the stored precision: the conversion to (E, px, py, pz) must not
        # round (a float32 conversion moves nearly massless particles' E^2 - p^2 by ~1e-7 E^2,
        # which the Lorentz invariants a network forms then amplify; docs/RELIABILITY.md 5)
        return np.asarray(ak.to_numpy(ak.flatten(particles[name], axis=None)), dtype=np.float64)

    e_name = _field(particles, _E_NAMES)
    m_name = _field(particles, _MASS_NAMES[:3])
    if {"pt", "eta", "phi"} <= fields and (e_name or m_name):
        pt, eta, phi = flat("pt"), flat("eta"), flat("phi")
        # non-finite or huge inputs (inf phi, |eta| beyond float32 sinh range, ...) give
        # non-finite components, which the validity checks of ``to_tensors`` flag per jet;
        # numpy's floating-point warnings would only add noise for the user
        with np.errstate(invalid="ignore", over="ignore"):
            px = pt * np.cos(phi)
            py = pt * np.sin(phi)
            pz = pt * np.sinh(eta)
            if e_name is not None:
                energy = flat(e_name)
            else:
                mass = flat(m_name)
                # sign-preserving like `vector` (a negative mass is flagged by the validity
                # checks)
                energy = np.sqrt(px * px + py * py + pz * pz + mass * np.abs(mass))
        return energy, px, py, pz
    if {"px", "py", "pz"} <= fields and e_name:
        return flat(e_name), flat("px"), flat("py"), flat("pz")
    if {"x", "y", "z"} <= fields and e_name:
        return flat(e_name), flat("x"), flat("y"), flat("z")

    # Generic path through `vector` (e.g. rho/phi/theta/tau, x/y/z/mass, px/py/pz/mass ...).
    flat_records = particles
    while flat_records.ndim > 1:
        flat_records = ak.flatten(flat_records, axis=1)
    vec_fields = {
        name: ak.without_parameters(flat_records[name]) for name in ak.fields(flat_records)
    }
    try:
        vec = ak.zip(vec_fields, with_name="Momentum4D", behavior=vector.backends.awkward.behavior)
        with np.errstate(invalid="ignore", over="ignore"):
            comps = (vec.E, vec.px, vec.py, vec.pz)
    except Exception as err:  # vector raises several types for unknown coordinate sets
        raise ValueError(
            f"cannot interpret record fields {sorted(fields)} as a Lorentz vector; expected e.g. "
            "pt/eta/phi/mass, pt/eta/phi/energy, px/py/pz/E or E/px/py/pz"
        ) from err
    return tuple(np.asarray(ak.to_numpy(c), dtype=np.float64) for c in comps)


def pt_eta_phi_mass(
    energy: np.ndarray, px: np.ndarray, py: np.ndarray, pz: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Convert Cartesian components to ``(pt, eta, phi, mass)``.

    Degenerate directions stay finite: the zero vector (e.g. an empty jet) gets ``eta = 0`` and a
    vector along the beam (``pt == 0``, ``pz != 0``) gets ``eta = sign(pz) * 20``. A negative mass
    squared (spacelike, or rounding) gives ``mass = -sqrt(-m2)`` (sign-preserving, like `vector`).
    """
    pt = np.hypot(px, py)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.where(
            pt > 0, np.arcsinh(np.divide(pz, pt, where=pt > 0, out=np.zeros_like(pt))), 0.0
        )
    eta = np.where((pt == 0) & (pz != 0), np.sign(pz) * 20.0, eta)
    phi = np.arctan2(py, px)
    with np.errstate(invalid="ignore", over="ignore"):
        m2 = energy * energy - (px * px + py * py + pz * pz)
        mass = np.sign(m2) * np.sqrt(np.abs(m2))
    return pt, eta, phi, mass


def momentum4d(fields: Mapping[str, Any], *, behavior: Mapping | None = None) -> ak.Array:
    """Zip ``fields`` (which must contain pt, eta, phi, mass) into a ``Momentum4D`` array."""
    missing = [name for name in MOMENTUM_FIELDS if name not in fields]
    if missing:
        raise ValueError(f"momentum4d needs fields {MOMENTUM_FIELDS}, missing {missing}")
    return ak.zip(dict(fields), with_name="Momentum4D", behavior=behavior)


def jet_p4(particles: ak.Array) -> ak.Array:
    """Sum the constituents of each jet: ``[..][jet][particle] -> [..][jet]`` Momentum4D.

    Empty jets give the zero vector (pt = eta = phi = mass = 0).
    """
    if particles.ndim < 2:
        raise ValueError(f"jet_p4 expects at least [jet][particle], got type {particles.type}")
    energy, px, py, pz = cartesian_components(particles)
    counts = ak.num(particles, axis=-1)
    flat_counts = np.asarray(ak.to_numpy(ak.flatten(counts, axis=None)))
    jet_id = np.repeat(np.arange(len(flat_counts)), flat_counts)
    sums = [
        np.bincount(jet_id, weights=c, minlength=len(flat_counts)) for c in (energy, px, py, pz)
    ]
    pt, eta, phi, mass = pt_eta_phi_mass(*sums)
    out = momentum4d({"pt": pt, "eta": eta, "phi": phi, "mass": mass})
    # restore the outer structure of `counts`
    for n in reversed(_outer_counts(counts)):
        out = ak.unflatten(out, n)
    return out


def _outer_counts(counts: ak.Array) -> list[np.ndarray]:
    """Counts of each outer list level of ``counts`` (outermost first)."""
    result: list[np.ndarray] = []
    arr = counts
    while arr.ndim > 1:
        result.append(np.asarray(ak.to_numpy(ak.num(arr, axis=1))))
        arr = ak.flatten(arr, axis=1)
    return result


def eta_rel(particles: ak.Array, jets: ak.Array) -> ak.Array:
    """``eta - eta_jet`` for ``[..][jet][particle]`` particles and ``[..][jet]`` jets."""
    return particles.eta - jets.eta


def phi_rel(particles: ak.Array, jets: ak.Array) -> ak.Array:
    """``phi - phi_jet`` wrapped to ``[-pi, pi)``."""
    return wrap_phi(particles.phi - jets.phi)


def pt_rel(particles: ak.Array, jets: ak.Array) -> ak.Array:
    """``pt / pt_jet``."""
    return particles.pt / jets.pt


def relative_coordinates(particles: ak.Array, jets: ak.Array | None = None) -> ak.Array:
    """JetNet relative coordinates of each particle.

    Parameters
    ----------
    particles : ak.Array
        ``[..][jet][particle]`` Lorentz vectors (anything `vector` understands).
    jets : ak.Array, optional
        ``[..][jet]`` jet vectors with pt/eta/phi. Default: the sum of the constituents.

    Returns
    -------
    ak.Array
        Records ``{eta_rel, phi_rel, pt_rel}`` with the structure of ``particles``.
    """
    particles = _as_vectors(particles)
    if jets is None:
        jets = jet_p4(particles)
    else:
        jets = _as_vectors(jets)
    return ak.zip(
        {
            "eta_rel": eta_rel(particles, jets),
            "phi_rel": phi_rel(particles, jets),
            "pt_rel": pt_rel(particles, jets),
        }
    )


def _as_vectors(arr: ak.Array) -> ak.Array:
    """Give records `vector`'s Momentum4D behaviour (keeps other fields)."""
    if {"pt", "eta", "phi"} <= set(ak.fields(arr)):
        return (
            arr
            if ak.parameters(arr).get("__record__") == "Momentum4D"
            else ak.with_name(
                ak.Array(arr, behavior=vector.backends.awkward.behavior), "Momentum4D"
            )
        )
    energy, px, py, pz = cartesian_components(arr)
    pt, eta, phi, mass = pt_eta_phi_mass(energy, px, py, pz)
    flat = momentum4d({"pt": pt, "eta": eta, "phi": phi, "mass": mass})
    counts = ak.num(arr, axis=-1)
    out = ak.unflatten(flat, np.asarray(ak.to_numpy(ak.flatten(counts, axis=None))))
    for n in reversed(_outer_counts(counts)):
        out = ak.unflatten(out, n)
    return out
