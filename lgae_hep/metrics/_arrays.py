"""Array and jet helpers shared by the metrics, the evaluation and the plots.

numpy views of numpy / torch / awkward inputs (:func:`to_numpy`), awkward jets
[..][jet][particle] flattened to [jet][particle] (:func:`flat_jets`), their (E, px, py, pz)
components (:func:`jet_components`), padded (B, M, 4) arrays of them (:func:`padded_p4`) and jet
masses (:func:`jet_masses`, :func:`signed_mass`). No torch import: tensors are recognised by
their ``detach``/``cpu`` methods.
"""

from __future__ import annotations

from typing import Any

import awkward as ak
import numpy as np
import vector

__all__ = [
    "flat_jets",
    "is_awkward",
    "jet_components",
    "jet_masses",
    "padded_p4",
    "signed_mass",
    "to_numpy",
]


def is_awkward(x: Any) -> bool:
    """An awkward Array (including behaviour subclasses such as vector's MomentumArray4D)."""
    return isinstance(x, ak.Array)


def to_numpy(x: Any) -> np.ndarray:
    """numpy view of a numpy / torch / awkward / list input (awkward is flattened fully)."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch tensor, without importing torch
        x = x.detach().cpu().numpy()
    elif is_awkward(x):
        x = ak.to_numpy(ak.flatten(x, axis=None))
    return np.asarray(x)


def signed_mass(e: np.ndarray, px: np.ndarray, py: np.ndarray, pz: np.ndarray) -> np.ndarray:
    """Invariant mass, negative for space-like 4-vectors (ROOT's TLorentzVector::M convention)."""
    m2 = e * e - (px * px + py * py + pz * pz)
    return np.sign(m2) * np.sqrt(np.abs(m2))


def flat_jets(jets: Any) -> Any:
    """[..][jet][particle] awkward -> [jet][particle]; other inputs unchanged."""
    if not is_awkward(jets):
        return jets
    while jets.ndim > 2:
        jets = ak.flatten(jets, axis=1)
    return jets


def jet_components(jets: Any) -> tuple[Any, list[Any]]:
    """Flattened [jet][particle] jets and their (E, px, py, pz) awkward arrays.

    ``jets`` holds Lorentz vectors that ``vector`` understands (any coordinate system) or
    records with ``E, px, py, pz`` fields.
    """
    vector.register_awkward()
    jets = flat_jets(jets)
    if jets.ndim != 2:
        raise ValueError(f"jets must be [..][jet][particle], got {jets.ndim} list levels")
    try:
        comps = [jets.E if "E" in jets.fields else jets.t, jets.px, jets.py, jets.pz]
    except AttributeError as exc:
        raise ValueError(
            f"jets have fields {jets.fields}; expected Lorentz vectors (vector's Momentum4D "
            "or E/px/py/pz)"
        ) from exc
    return jets, comps


def jet_masses(jets: Any) -> np.ndarray:
    """Invariant mass of the constituent sum of each jet, flattened to (n_jets,), GeV.

    ``jets`` is an awkward array [..][jet][particle] of Lorentz vectors that ``vector``
    understands (any coordinate system) or of records with ``E, px, py, pz`` fields. Space-like
    sums give a negative mass (ROOT convention).
    """
    if not is_awkward(jets):
        raise ValueError(f"jets must be an awkward array of particles, got {type(jets).__name__}")
    jets, comps = jet_components(jets)
    e, px, py, pz = (ak.to_numpy(ak.sum(c, axis=1)).astype(np.float64) for c in comps)
    return signed_mass(e, px, py, pz)


def padded_p4(jets: Any) -> tuple[np.ndarray, np.ndarray]:
    """[jet][particle] Lorentz vectors -> (B, M, 4) (E, px, py, pz) and mask, M = largest jet.

    Unlike :func:`lgae_hep.data.to_tensors` no physics validation is applied: this is for
    network *outputs* (reconstructions), which are evaluated as they are.
    """
    jets, comps = jet_components(jets)
    comps = [ak.fill_none(c, [], axis=0) for c in comps]  # invalid (None) jets -> no particles
    counts = ak.to_numpy(ak.num(comps[0], axis=1))
    m = max(int(counts.max(initial=0)), 1)
    p4 = np.stack(
        [ak.to_numpy(ak.fill_none(ak.pad_none(c, m, axis=1, clip=True), 0.0)).astype(np.float64)
         for c in comps], axis=-1)
    return p4, np.arange(m)[None, :] < counts[:, None]
