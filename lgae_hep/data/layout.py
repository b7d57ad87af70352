"""NanoAOD / PFNano branch layouts: which jet collection, index table and PF-candidate
collection a file (or an events object) has, and which PUPPI-weight branch to use.

PFNano (``cms-jet/PFNano``, what :func:`lgae_hep.data.write_pfnano` writes) names them
``FatJet_*``, ``FatJetPFCands_{jetIdx,pFCandsIdx}``, ``PFCands_*``; official Run-3 NanoAOD
(v12+) ``FatJetPFCand_{jetIdx,pfCandIdx}``, ``PFCand_*``. :func:`detect_layout` finds either.
"""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import awkward as ak

from .pfnano import PFNANO_LAYOUT
from .vectors import MOMENTUM_FIELDS

__all__ = ["DEFAULT_JET_FIELDS", "DEFAULT_PF_FIELDS", "PUPPI_FIELD", "NanoLayout",
           "available_names", "detect_layout", "is_dask", "resolve_puppi"]

#: Optional per-candidate fields kept when present.
DEFAULT_PF_FIELDS = ("charge", "pdgId")


#: Optional per-jet fields kept in the jet records (``with_jets=True``) when present.
DEFAULT_JET_FIELDS = ("msoftdrop", "tau1", "tau2", "tau3", "d2b1", "label")


#: Per-candidate PUPPI weight (``PFCands_puppiWeight`` / ``PFCand_puppiWeight``); see the
#: ``puppi`` option of :func:`read_nanoaod`.
PUPPI_FIELD = "puppiWeight"


@dataclass(frozen=True)
class NanoLayout:
    """Branch names of one jet collection and its PF-candidate index table.

    Attributes
    ----------
    jets : str
        Jet collection (``FatJet``).
    table : str
        Index table collection (``FatJetPFCands`` in PFNano, ``FatJetPFCand`` in Run-3 NanoAOD).
    jet_idx, cand_idx : str
        Fields of the table pointing into ``jets`` and ``cands`` (per event, 0-based).
    cands : str
        PF candidate collection (``PFCands`` / ``PFCand``).
    cand_fields : tuple of str
        Candidate fields to read (pt, eta, phi, mass + optional ones present).
    jet_fields : tuple of str
        Jet fields to read (pt, eta, phi, mass + optional ones present).
    flavour : str
        ``"pfnano"`` or ``"run3"``.
    """

    jets: str
    table: str
    jet_idx: str
    cand_idx: str
    cands: str
    cand_fields: tuple[str, ...]
    jet_fields: tuple[str, ...]
    flavour: str

    def branches(self) -> list[str]:
        """Flat branch names this layout reads."""
        return (
            [f"{self.jets}_{f}" for f in self.jet_fields]
            + [f"{self.table}_{self.jet_idx}", f"{self.table}_{self.cand_idx}"]
            + [f"{self.cands}_{f}" for f in self.cand_fields]
        )


def detect_layout(
    available: set[str] | Sequence[str],
    jets: str = "FatJet",
    *,
    pf_fields: Sequence[str] | None = None,
    jet_fields: Sequence[str] | None = None,
    where: str = "input",
) -> NanoLayout:
    """Find the PF-candidate layout of ``jets`` among the ``available`` flat branch names.

    Parameters
    ----------
    available : set of str
        Flat branch names (``FatJet_pt``, ``PFCands_pt``, ...).
    jets : str
        Jet collection name.
    pf_fields, jet_fields : sequence of str, optional
        Extra candidate / jet fields. ``None`` means the defaults
        (:data:`DEFAULT_PF_FIELDS`, :data:`DEFAULT_JET_FIELDS`), kept only when present;
        explicitly requested fields must exist.
    where : str
        Description of the input for error messages.

    Raises
    ------
    ValueError
        If a required branch is missing; the message names it and the expected layouts.
    """
    available = set(available)
    layout_doc = PFNANO_LAYOUT.format(jets=jets)
    candidates = [
        ("pfnano", f"{jets}PFCands", "jetIdx", "pFCandsIdx", "PFCands"),
        ("run3", f"{jets}PFCand", "jetIdx", "pfCandIdx", "PFCand"),
    ]
    found = [
        c for c in candidates if f"{c[1]}_{c[2]}" in available or f"{c[1]}_{c[3]}" in available
    ]
    if not found:
        raise ValueError(
            f"branch '{jets}PFCands_jetIdx' (PFNano) or '{jets}PFCand_jetIdx' (Run-3 NanoAOD) "
            f"not found in {where}; expected the {layout_doc}"
        )
    flavour, table, jet_idx, cand_idx, cands = found[0]

    def resolve(
        coll: str, required: Sequence[str], optional: Sequence[str] | None, default: Sequence[str]
    ) -> tuple[str, ...]:
        names = list(required)
        if optional is None:
            names += [f for f in default if f"{coll}_{f}" in available and f not in names]
        else:
            names += [f for f in optional if f not in names]
        return tuple(names)

    cand_fields = resolve(cands, MOMENTUM_FIELDS, pf_fields, DEFAULT_PF_FIELDS)
    jet_field_names = resolve(jets, MOMENTUM_FIELDS, jet_fields, DEFAULT_JET_FIELDS)
    layout = NanoLayout(
        jets, table, jet_idx, cand_idx, cands, cand_fields, jet_field_names, flavour
    )
    for branch in layout.branches():
        if branch not in available:
            raise ValueError(f"branch {branch!r} not found in {where}; expected the {layout_doc}")
    return layout


def resolve_puppi(available: Container[str], layout: NanoLayout, puppi: bool | None, *,
                  where: str = "the events") -> str | None:
    """The PUPPI-weight branch to read (``<cands>_puppiWeight``), or None for no weighting.

    The one implementation of the ``puppi`` option (see :func:`lgae_hep.data.read_nanoaod`):
    ``None`` weights when the branch is among ``available`` (flat branch names), ``True``
    requires it, ``False`` never weights.

    Raises
    ------
    ValueError
        ``puppi`` is not None/True/False, or ``puppi=True`` and the branch is missing (the
        message names the branch, ``where`` and the fix).
    """
    if puppi is not None and puppi is not True and puppi is not False:
        if not (hasattr(puppi, "dtype") and puppi.dtype == bool):
            raise ValueError(f"puppi must be None, True or False, got {puppi!r}")
        puppi = bool(puppi)
    if puppi is False:
        return None
    branch = f"{layout.cands}_{PUPPI_FIELD}"
    if branch in available:
        return branch
    if puppi:
        raise ValueError(
            f"puppi=True but branch {branch!r} not found in {where}; pass puppi=None "
            "(weight when present) or puppi=False"
        )
    return None


def is_dask(obj: Any) -> bool:
    """A dask-awkward collection (without importing dask_awkward when it is not)."""
    return type(obj).__module__.startswith("dask_awkward")


def _fields(obj: Any) -> list[str]:
    return list(obj.fields) if is_dask(obj) else ak.fields(obj)


def available_names(events: Any) -> tuple[set[str], bool]:
    """Flat branch names available in ``events`` and whether it is nested (NanoEvents)."""
    if isinstance(events, Mapping):
        return set(events), False
    fields = _fields(events)
    nested = False
    names: set[str] = set()
    for field in fields:
        sub = events[field]
        sub_fields = _fields(sub)
        if sub_fields:
            nested = True
            names.update(f"{field}_{f}" for f in sub_fields)
        else:
            names.add(field)
    return names, nested
