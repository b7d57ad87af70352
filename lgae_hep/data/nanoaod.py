"""CMS NanoAOD / PFNano jets: reading jets with their PF constituents (writing: :mod:`.pfnano`).

Layouts
-------
PFNano (``cms-jet/PFNano``, what :func:`lgae_hep.data.write_pfnano` writes)::

    run, luminosityBlock, event
    nFatJet, FatJet_{pt,eta,phi,mass,nConstituents,...}
    nFatJetPFCands, FatJetPFCands_{jetIdx,pFCandsIdx}
    nPFCands, PFCands_{pt,eta,phi,mass,charge,pdgId,...}

Official Run-3 NanoAOD (v12+) stores the same information as ``PFCand_*`` and
``FatJetPFCand_{jetIdx,pfCandIdx}``. :func:`read_nanoaod` and :func:`constituents_from_events`
understand both and group the PF candidates through the index table themselves (coffea's
``events.FatJet.constituents`` needs a ``FatJet_nConstituents`` branch and a jet-ordered table,
which real PFNano files such as the CMS fixture do not have).

This module is one concept, reading: layout detection, grouping candidates into jets, selection,
the bad-input policy and the file/URL handling of the readers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot

from .pfnano import PFNANO_LAYOUT, open_root
from .tensors import ABS_TOL, DEFAULT_NUM_PARTICLES, REL_TOL
from .vectors import MOMENTUM_FIELDS, momentum4d

__all__ = [
    "DEFAULT_JET_FIELDS",
    "DEFAULT_PF_FIELDS",
    "NanoLayout",
    "available_names",
    "constituents_from_events",
    "detect_layout",
    "iter_nanoaod",
    "normalise_sources",
    "read_nanoaod",
]

# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------

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


def _is_dask(obj: Any) -> bool:
    """A dask-awkward collection (without importing dask_awkward when it is not)."""
    return type(obj).__module__.startswith("dask_awkward")


def _fields(obj: Any) -> list[str]:
    return list(obj.fields) if _is_dask(obj) else ak.fields(obj)


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


def _to_flat(values: Any, dtype: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """``[event][item]`` awkward array -> (flat numpy values, counts per event)."""
    arr = values if isinstance(values, ak.Array) else ak.Array(values)
    if arr.ndim != 2:
        raise ValueError(f"expected an [event][item] jagged array, got type {arr.type}")
    counts = np.asarray(ak.to_numpy(ak.num(arr, axis=1)), dtype=np.int64)
    flat = np.asarray(ak.to_numpy(ak.flatten(ak.without_parameters(arr), axis=1)))
    if dtype is not None:
        flat = flat.astype(dtype, copy=False)
    return flat, counts


def constituents_from_events(
    events: Any,
    jets: str = "FatJet",
    max_particles: int | None = DEFAULT_NUM_PARTICLES,
    *,
    pt_min: float | None = None,
    eta_max: float | None = None,
    mass_range: tuple[float, float] | None = None,
    flat: bool = False,
    with_jets: bool = False,
    pf_fields: Sequence[str] | None = None,
    jet_fields: Sequence[str] | None = None,
    layout: NanoLayout | None = None,
    puppi: bool | None = None,
) -> ak.Array | tuple[ak.Array, ak.Array]:
    """Group PF candidates into jets through the jet-candidate index table.

    Works on already loaded arrays: plain uproot arrays (a record array or dict with flat
    branch names such as ``FatJet_pt``) or coffea NanoEvents (eager or virtual), with PFNano
    (``FatJetPFCands_{jetIdx,pFCandsIdx}``, ``PFCands_*``) or official Run-3 NanoAOD names
    (``FatJetPFCand_{jetIdx,pfCandIdx}``, ``PFCand_*``). It does not use coffea's
    ``FatJet.constituents`` (which needs ``FatJet_nConstituents`` and a jet-ordered table).

    Parameters
    ----------
    events : ak.Array or mapping
        One chunk of events.
    jets : str
        Jet collection name.
    max_particles : int or None
        Keep the N hardest constituents per jet (``None``: all).
    pt_min, eta_max, mass_range : optional
        Jet selection on the jet collection's own kinematics: ``pt > pt_min``,
        ``|eta| < eta_max``, ``mass_range[0] <= mass < mass_range[1]``.
    flat : bool
        Return ``[jet][particle]`` instead of ``[event][jet][particle]``.
    with_jets : bool
        Also return the selected jets as Momentum4D records (``pt, eta, phi, mass``, the
        optional ``jet_fields``, ``nConstituents``, the number of table entries of the jet
        before truncation, and ``idx``, the jet's index in its event's original collection,
        so that results join back to ``events.FatJet`` after a selection), with the same outer
        structure.
    pf_fields, jet_fields : sequence of str, optional
        Extra fields to carry (defaults: ``charge``, ``pdgId`` / :data:`DEFAULT_JET_FIELDS` when
        present).
    layout : NanoLayout, optional
        Pre-computed layout (skips detection).
    puppi : bool or None
        PUPPI-weight the constituents (see :data:`PUPPI_DOC` / :func:`read_nanoaod`): ``None``
        (default) weights when ``<cands>_puppiWeight`` exists, ``True`` requires it, ``False``
        never weights.

    Returns
    -------
    ak.Array or (ak.Array, ak.Array)
        Constituents as Momentum4D records (``pt, eta, phi, mass`` + carried fields), sorted by
        pT (descending) within each jet; with ``with_jets`` also the jet records.

    Notes
    -----
    Values are passed through as stored: non-finite or unphysical candidates are not repaired
    here but sorted *first* within their jet (so truncation never hides them) and flagged by
    :func:`lgae_hep.data.to_tensors` (``valid=False``).

    Raises
    ------
    ValueError
        Missing branches, or an inconsistent index table: ``jetIdx`` / candidate index out of
        range, table columns or candidate columns of different lengths.
    """
    if max_particles is not None and (
        not isinstance(max_particles, int | np.integer) or max_particles < 1
    ):
        raise ValueError(f"max_particles must be a positive integer or None, got {max_particles!r}")
    if _is_dask(events):
        return _dask_constituents(
            events, jets, max_particles, pt_min=pt_min, eta_max=eta_max,
            mass_range=mass_range, flat=flat, with_jets=with_jets, pf_fields=pf_fields,
            jet_fields=jet_fields, layout=layout, puppi=puppi,
        )
    available, nested = available_names(events)
    if layout is None:
        layout = detect_layout(
            available, jets, pf_fields=pf_fields, jet_fields=jet_fields, where="the events"
        )
    else:
        for branch in layout.branches():
            if branch not in available:
                raise ValueError(
                    f"branch {branch!r} not found in the events; expected the "
                    f"{PFNANO_LAYOUT.format(jets=layout.jets)}"
                )

    def get(coll: str, field: str) -> Any:
        return events[coll][field] if nested else events[f"{coll}_{field}"]

    weight_branch = f"{layout.cands}_{PUPPI_FIELD}"
    if puppi is None:
        puppi = weight_branch in available
    elif puppi and weight_branch not in available:
        raise ValueError(
            f"puppi=True but branch {weight_branch!r} not found in the events; pass puppi=None "
            "(weight when present) or puppi=False"
        )

    # jets -----------------------------------------------------------------------------------
    jet_cols: dict[str, np.ndarray] = {}
    n_jets = None
    for field in layout.jet_fields:
        values, counts = _to_flat(get(layout.jets, field))
        if n_jets is None:
            n_jets = counts
        elif not np.array_equal(counts, n_jets):
            raise ValueError(
                f"{layout.jets}_{field} has different per-event lengths than {layout.jets}_pt"
            )
        jet_cols[field] = values
    # candidates -----------------------------------------------------------------------------
    pf_cols: dict[str, np.ndarray] = {}
    n_pf = None
    for field in layout.cand_fields:
        values, counts = _to_flat(get(layout.cands, field))
        if n_pf is None:
            n_pf = counts
        elif not np.array_equal(counts, n_pf):
            raise ValueError(
                f"{layout.cands}_{field} has different per-event lengths than "
                f"{layout.cands}_pt: the candidate table is inconsistent"
            )
        pf_cols[field] = values
    weights = None
    if puppi:
        weights, counts = _to_flat(get(layout.cands, PUPPI_FIELD), np.float64)
        if not np.array_equal(counts, n_pf):
            raise ValueError(f"{weight_branch} has different per-event lengths than "
                             f"{layout.cands}_pt: the candidate table is inconsistent")
    # index table ----------------------------------------------------------------------------
    jet_idx, n_tab = _to_flat(get(layout.table, layout.jet_idx), np.int64)
    cand_idx, n_tab2 = _to_flat(get(layout.table, layout.cand_idx), np.int64)
    t_jet, t_cand = f"{layout.table}_{layout.jet_idx}", f"{layout.table}_{layout.cand_idx}"
    if len(n_tab) != len(n_jets) or len(n_pf) != len(n_jets) or not np.array_equal(n_tab, n_tab2):
        bad = np.flatnonzero(n_tab != n_tab2)[:5] if len(n_tab) == len(n_tab2) else "all"
        raise ValueError(
            f"index table lengths mismatch: {t_jet} and {t_cand} differ in events "
            f"{bad}; both must have one entry per jet-candidate pair"
        )
    jet_off = np.zeros(len(n_jets) + 1, np.int64)
    np.cumsum(n_jets, out=jet_off[1:])
    pf_off = np.zeros(len(n_pf) + 1, np.int64)
    np.cumsum(n_pf, out=pf_off[1:])
    total_jets = int(jet_off[-1])
    # global indices (per-entry event offsets); range checks on the global values
    gjet = jet_idx + np.repeat(jet_off[:-1], n_tab)
    gcand = cand_idx + np.repeat(pf_off[:-1], n_tab)
    _check_range(jet_idx, gjet, jet_off, n_tab, t_jet, f"{layout.jets} jets")
    _check_range(cand_idx, gcand, pf_off, n_tab, t_cand, layout.cands)

    # jet selection --------------------------------------------------------------------------
    selected = np.ones(total_jets, bool)
    if pt_min is not None:
        selected &= jet_cols["pt"] > pt_min
    if eta_max is not None:
        selected &= np.abs(jet_cols["eta"]) < eta_max
    if mass_range is not None:
        lo, hi = mass_range
        selected &= (jet_cols["mass"] >= lo) & (jet_cols["mass"] < hi)
    n_const_all = np.bincount(gjet, minlength=total_jets)
    # original index of every jet in its event's collection (for joining results back)
    jet_cols["idx"] = (np.arange(total_jets, dtype=np.int64)
                       - np.repeat(jet_off[:-1], n_jets)).astype(np.int32)

    if not selected.all():
        keep_entry = selected[gjet]
        gjet, gcand = gjet[keep_entry], gcand[keep_entry]
        new_index = np.cumsum(selected) - 1
        gjet = new_index[gjet]
        event_of_jet = np.repeat(np.arange(len(n_jets)), n_jets)
        n_jets = np.bincount(event_of_jet[selected], minlength=len(n_jets))
        jet_cols = {k: v[selected] for k, v in jet_cols.items()}
        n_const_all = n_const_all[selected]
        total_jets = int(selected.sum())

    counts = n_const_all
    if weights is not None:
        # PUPPI: candidates with weight 0 carry no momentum in the PUPPI jet; drop them
        keep_entry = weights[gcand] > 0
        if not keep_entry.all():
            gjet, gcand = gjet[keep_entry], gcand[keep_entry]
            counts = np.bincount(gjet, minlength=total_jets)
    # group by jet (stable), then sort by pT descending within jets, invalid candidates first --
    if len(gjet) > 1 and np.any(gjet[1:] < gjet[:-1]):
        order = np.argsort(gjet, kind="stable")
        gcand = gcand[order]
    del gjet
    starts = np.zeros(total_jets + 1, np.int64)
    np.cumsum(counts, out=starts[1:])
    # files written by write_pfnano: the table is the identity, no gather needed
    n_entries = len(gcand)
    identity = (
        n_entries == len(pf_cols["pt"])
        and (n_entries == 0 or (gcand[0] == 0 and gcand[-1] == n_entries - 1))
        and np.array_equal(gcand, np.arange(n_entries, dtype=gcand.dtype))
    )
    if weights is not None:
        # p4 -> w * p4: pT and mass scale, eta and phi do not
        pf_cols = dict(pf_cols)
        for f in ("pt", "mass"):
            pf_cols[f] = (pf_cols[f] * weights).astype(pf_cols[f].dtype, copy=False)
    pt = pf_cols["pt"] if identity else pf_cols["pt"][gcand]
    bad = _invalid_candidates(pf_cols)
    if bad is not None and not identity:
        bad = bad[gcand]
    if _needs_sort(pt, starts, bad):
        key = np.negative(pt, dtype=np.float64)
        if bad is not None:
            key[bad] = -np.inf
        local = ak.argsort(ak.unflatten(key, counts), axis=1, stable=True)
        order = np.asarray(ak.to_numpy(ak.flatten(local, axis=1)), np.int64)
        order += np.repeat(starts[:-1], counts)
        gcand = gcand[order]
        identity = False

    columns = {f: pf_cols[f] if identity else pf_cols[f][gcand] for f in layout.cand_fields}
    out = ak.unflatten(momentum4d(columns), counts)
    if max_particles is not None and n_entries and counts.max() > max_particles:
        # a view (ListArray starts/stops); no copy of the particle buffers
        out = out[:, :max_particles]
    if not flat:
        out = ak.unflatten(out, n_jets)
    if not with_jets:
        return out
    jet_record = {k: v for k, v in jet_cols.items() if k != "idx"}
    jet_record["nConstituents"] = n_const_all.astype(np.int32)
    jet_record["idx"] = jet_cols["idx"]
    jets_out = momentum4d(jet_record)
    if not flat:
        jets_out = ak.unflatten(jets_out, n_jets)
    return out, jets_out


def _dask_constituents(events: Any, jets: str, max_particles: int | None, *,
                       layout: NanoLayout | None, puppi: bool | None, with_jets: bool,
                       pf_fields: Sequence[str] | None, jet_fields: Sequence[str] | None,
                       **options: Any) -> Any:
    """:func:`constituents_from_events` on dask-awkward events (e.g. coffea NanoEvents with
    ``mode="dask"``): the same function per partition, through ``dask_awkward.map_partitions``.

    Only the branches of the layout (and the PUPPI weights) are handed to the partitions, so
    dask-awkward's column optimisation reads nothing else from the files.
    """
    import dask_awkward as dak

    available, nested = available_names(events)
    if layout is None:
        layout = detect_layout(available, jets, pf_fields=pf_fields, jet_fields=jet_fields,
                               where="the events")
    weight = f"{layout.cands}_{PUPPI_FIELD}"
    if puppi is None:
        puppi = weight in available
    elif puppi and weight not in available:
        raise ValueError(f"puppi=True but branch {weight!r} not found in the events")
    names = layout.branches() + ([weight] if puppi else [])

    def get(name: str) -> Any:
        if not nested:
            return events[name]
        coll, field = name.split("_", 1)
        return events[coll][field]

    sub = dak.zip({n: get(n) for n in names}, depth_limit=1)
    out = dak.map_partitions(
        _constituents_partition, sub, jets=jets, max_particles=max_particles, layout=layout,
        puppi=bool(puppi), with_jets=with_jets, options=options, label="lgae-constituents",
    )
    return (out["constituents"], out["jets"]) if with_jets else out["constituents"]


def _constituents_partition(sub: ak.Array, *, jets: str, max_particles: int | None,
                            layout: NanoLayout, puppi: bool, with_jets: bool,
                            options: Mapping[str, Any]) -> ak.Array:
    """One partition of :func:`_dask_constituents`; typetracer in, typetracer out."""
    if ak.backend(sub) == "typetracer":
        empty = ak.typetracer.length_zero_if_typetracer(sub)
        res = _constituents_partition(empty, jets=jets, max_particles=max_particles,
                                      layout=layout, puppi=puppi, with_jets=with_jets,
                                      options=options)
        return ak.Array(res.layout.to_typetracer(forget_length=True), behavior=res.behavior)
    flat = {f: sub[f] for f in ak.fields(sub)}
    res = constituents_from_events(flat, jets, max_particles, layout=layout, puppi=puppi,
                                   with_jets=with_jets, **options)
    if with_jets:
        return ak.zip({"constituents": res[0], "jets": res[1]}, depth_limit=1)
    return ak.zip({"constituents": res}, depth_limit=1)


def _check_range(
    local: np.ndarray,
    glob: np.ndarray,
    offsets: np.ndarray,
    n_tab: np.ndarray,
    branch: str,
    what: str,
) -> None:
    """Raise if a per-event index points outside its event's collection."""
    bad = (local < 0) | (glob >= np.repeat(offsets[1:], n_tab))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        event = int(np.searchsorted(np.cumsum(n_tab), i, side="right"))
        size = int(offsets[event + 1] - offsets[event])
        raise ValueError(
            f"{branch} out of range: value {int(local[i])} in event {event} (0-based in the "
            f"chunk) which has {size} {what}; indices must be in [0, {size})"
        )


def _invalid_candidates(cols: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """Candidates that :func:`lgae_hep.data.to_tensors` flags, or None when there are none.

    Same criteria and tolerances as ``to_tensors``: a non-finite ``pt``/``eta``/``phi``/
    ``mass``, ``pt < 0``, or a negative mass beyond the float tolerance of the ``E >= |p|``
    test (``E**2 = |p|**2 - m**2`` for ``m < 0``, as `vector` does). Readers sort these first in
    their jet so that truncation to the N hardest never hides them.
    """
    pt, eta, phi, mass = (cols[name] for name in MOMENTUM_FIELDS)
    finite = np.isfinite(pt) & np.isfinite(eta) & np.isfinite(phi) & np.isfinite(mass)
    if finite.all() and not (pt < 0).any() and not (mass < 0).any():
        return None  # the common case: one cheap pass, no per-candidate work
    bad = ~finite | (pt < 0)
    neg = np.flatnonzero(finite & (mass < 0))
    if len(neg):
        with np.errstate(invalid="ignore", over="ignore"):
            p_abs = np.abs(pt[neg].astype(np.float64)) * np.cosh(eta[neg].astype(np.float64))
            m = mass[neg].astype(np.float64)
            energy = np.sqrt(p_abs * p_abs - m * m)  # NaN when m**2 > p**2
            bad[neg] = ~(energy >= p_abs * (1 - REL_TOL) - ABS_TOL)
    return bad if bad.any() else None


def _needs_sort(pt: np.ndarray, starts: np.ndarray, bad: np.ndarray | None = None) -> bool:
    """True unless every jet (segments given by ``starts``) is already pT-descending and has
    no invalid candidate (``bad``, sorted first) after a valid one."""
    if len(pt) < 2:
        return False
    if bad is not None or not np.isfinite(pt).all():
        return True
    rises = np.flatnonzero(pt[1:] > pt[:-1]) + 1  # positions where pT increases
    if len(rises) == 0:
        return False
    is_start = np.zeros(len(pt) + 1, bool)
    is_start[starts] = True
    return not bool(is_start[rises].all())


def _is_path_like(source: Any) -> bool:
    return isinstance(source, str | Path)


def _is_url(text: str) -> bool:
    """``scheme://...`` or ``file:...`` (what uproot hands to fsspec / XRootD / HTTP)."""
    head = text.split(":", 1)[0]
    return "://" in text or (head == "file" and ":" in text)


def _split_object(text: str) -> tuple[str, str | None]:
    """``"path_or_url:Tree"`` -> (path_or_url, "Tree" or None), as ``uproot.open`` splits it."""
    if _is_url(text):
        try:
            from uproot._util import file_object_path_split  # uproot's own rule for URLs
        except ImportError:  # pragma: no cover - uproot moved it
            file_object_path_split = None
        if file_object_path_split is not None:
            path, obj = file_object_path_split(text)
            return path, obj or None
        scheme, rest = text.split("://", 1) if "://" in text else ("file", text[5:])
        if ":" in rest and "/" not in rest.rsplit(":", 1)[1]:
            path, obj = text.rsplit(":", 1)
            return path, obj or None
        return text, None
    if ":" in text and not Path(text).exists() and text.rsplit(":", 1)[1]:
        path, name = text.rsplit(":", 1)
        return path, name
    return text, None


def normalise_sources(source: Any, tree: str) -> list[tuple[str, str]]:
    """Everything ``uproot.open`` accepts -> a list of ``(path or URL, tree name)``.

    Accepted: a local path (``str`` or ``Path``), a URL (``file:``, ``root://``, ``https://``,
    ``s3://``, ... through uproot's fsspec/XRootD/HTTP sources), each optionally with
    ``":Tree"``; a dict ``{path_or_url: tree_name_or_None}``; or a list of any of these.
    """
    if _is_path_like(source) or isinstance(source, Mapping):
        items: list[Any] = [source]
    elif (isinstance(source, Sequence) and source
          and all(_is_path_like(s) or isinstance(s, Mapping) for s in source)):
        items = list(source)
    else:
        raise ValueError(
            "source must be a path or URL, a dict {path: tree}, a non-empty list of them, "
            f"coffea NanoEvents or an awkward array of events; got {type(source).__name__}"
        )
    out: list[tuple[str, str]] = []
    for item in items:
        if isinstance(item, Mapping):
            if not item:
                raise ValueError("empty dict of files: expected {path_or_url: tree_name}")
            for path, name in item.items():
                if not _is_path_like(path) or not (name is None or isinstance(name, str)):
                    raise ValueError(f"dict sources map a path/URL to a tree name, got "
                                     f"{path!r}: {name!r}")
                out.append((str(path), name or tree))
            continue
        path, name = _split_object(str(item))
        out.append((path, name or tree))
    return out


def _check_files(
    files: list[tuple[str, str]], jets: str, pf_fields: Any, jet_fields: Any
) -> tuple[NanoLayout, int]:
    layout = None
    total = 0
    for path, tree in files:
        with open_root(path) as file:
            if tree not in file:
                trees = [k for k, c in file.classnames().items() if c == "TTree"]
                raise ValueError(f"{path} has no tree {tree!r}; trees in the file: {trees}")
            ttree = file[tree]
            if not hasattr(ttree, "keys") or not hasattr(ttree, "num_entries"):
                raise ValueError(f"{path}:{tree} is not a TTree ({type(ttree).__name__})")
            file_layout = detect_layout(
                set(ttree.keys()),
                jets,
                pf_fields=pf_fields,
                jet_fields=jet_fields,
                where=f"tree {tree!r} of {path}",
            )
            if layout is None:
                layout = file_layout
            elif file_layout != layout:
                raise ValueError(
                    f"{path} has a different layout ({file_layout.flavour}, fields "
                    f"{file_layout.cand_fields}) than the first file ({layout.flavour}, "
                    f"{layout.cand_fields}); pass pf_fields/jet_fields explicitly"
                )
            total += int(ttree.num_entries)
    if total == 0:
        names = ", ".join(f"{p}:{t}" for p, t in files)
        raise ValueError(f"empty tree: {names} has 0 events")
    assert layout is not None
    return layout, total


def iter_nanoaod(
    source: Any,
    jets: str = "FatJet",
    max_particles: int | None = DEFAULT_NUM_PARTICLES,
    *,
    tree: str = "Events",
    step_size: int | str = "100 MB",
    progress: bool | None = None,
    **kwargs: Any,
) -> Iterator[ak.Array | tuple[ak.Array, ak.Array]]:
    """Stream jets chunk by chunk from ROOT files (bounded memory).

    Reads only the needed branches with ``uproot.iterate`` and yields, per chunk, what
    :func:`constituents_from_events` returns (same keyword arguments: ``pt_min``,
    ``eta_max``, ``mass_range``, ``flat``, ``with_jets``, ``pf_fields``, ``jet_fields``,
    ``puppi``).

    Parameters
    ----------
    source : str, Path, URL, dict or list of them
        ROOT file(s), as for :func:`read_nanoaod`.
    jets, max_particles : see :func:`read_nanoaod`.
    tree : str
        Tree name when not given in the path.
    step_size : int or str
        Entries per chunk, or a memory size such as ``"100 MB"`` (uproot's ``step_size``).
    progress : bool or None
        tqdm progress bar over events; ``None`` shows it only on a terminal.
    """
    from tqdm.auto import tqdm

    files = normalise_sources(source, tree)
    pf_fields = kwargs.get("pf_fields")
    layout, total = _check_files(files, jets, pf_fields, kwargs.get("jet_fields"))
    kwargs.pop("pf_fields", None)
    kwargs.pop("jet_fields", None)
    expressions = layout.branches()
    weight_branch = f"{layout.cands}_{PUPPI_FIELD}"
    if kwargs.get("puppi") is not False and weight_branch not in expressions:
        with open_root(files[0][0]) as f:
            if weight_branch in f[files[0][1]].keys():
                expressions.append(weight_branch)
            elif kwargs.get("puppi"):
                raise ValueError(f"puppi=True but branch {weight_branch!r} not found in "
                                 f"{files[0][0]}")
    bar = tqdm(
        total=total,
        unit="evt",
        desc="read_nanoaod",
        disable=None if progress is None else not progress,
    )
    try:
        for chunk in uproot.iterate(
            [{p: t} for p, t in files],
            expressions=expressions,
            step_size=step_size,
            library="ak",
        ):
            bar.update(len(chunk))
            if len(chunk) == 0:
                continue
            yield constituents_from_events(chunk, jets, max_particles, layout=layout, **kwargs)
    finally:
        bar.close()


def read_nanoaod(
    source: Any,
    jets: str = "FatJet",
    max_particles: int | None = DEFAULT_NUM_PARTICLES,
    *,
    pt_min: float | None = None,
    eta_max: float | None = None,
    mass_range: tuple[float, float] | None = None,
    flat: bool = False,
    with_jets: bool = False,
    pf_fields: Sequence[str] | None = None,
    jet_fields: Sequence[str] | None = None,
    tree: str = "Events",
    step_size: int | str = "100 MB",
    progress: bool | None = None,
    puppi: bool | None = None,
) -> ak.Array | tuple[ak.Array, ak.Array]:
    """Read jets and their PF-candidate constituents from NanoAOD / PFNano.

    Parameters
    ----------
    source : path, URL, dict, list of them, NanoEvents or awkward array
        ROOT file(s), streamed with ``uproot.iterate`` (only the needed branches): everything
        ``uproot.open`` accepts, i.e. a local path, a URL (``file:///...``,
        ``root://cmsxrootd.fnal.gov//store/...`` with the ``xrootd`` extra,
        ``https://...``), each optionally with ``":Tree"``, a dict ``{path_or_url: tree}``,
        or a list of these. Or an already opened coffea NanoEvents object (eager, virtual, or
        ``mode="dask"``: then the result is a dask-awkward array), or an awkward record array /
        dict of flat branches (e.g. ``tree.arrays()``).
    jets : str
        Jet collection (``FatJet``; ``Jet`` uses ``JetPFCands``).
    max_particles : int or None
        Keep the N hardest constituents by pT (``None``: keep all).
    pt_min, eta_max, mass_range : optional
        Jet selection on the jet collection's kinematics: ``pt > pt_min``, ``|eta| < eta_max``,
        ``mass_range[0] <= mass < mass_range[1]`` (GeV).
    flat : bool
        Return ``[jet][particle]`` instead of ``[event][jet][particle]``.
    with_jets : bool
        Return ``(constituents, jets)``: the jet records are Momentum4D with ``pt, eta, phi,
        mass``, the ``jet_fields`` (default :data:`DEFAULT_JET_FIELDS`, when present) and
        ``nConstituents`` (table entries per jet before truncation), with the same outer
        structure as the constituents (one jet record per constituent list).
    pf_fields, jet_fields : sequence of str, optional
        Candidate / jet fields to carry besides the kinematics (``None``: ``charge``, ``pdgId``
        / :data:`DEFAULT_JET_FIELDS`, each when present; explicit names must exist).
    tree : str
        Tree name for paths (``"file.root:Tree"`` also works).
    step_size : int or str
        Chunk size for streaming (entries or e.g. ``"100 MB"``).
    progress : bool or None
        tqdm progress bar (``None``: only on a terminal).
    puppi : bool or None
        Weight every constituent 4-vector by ``PFCands_puppiWeight`` (``pt`` and ``mass`` times
        the weight; candidates of weight 0 dropped). ``None`` (default) weights whenever the
        branch exists, ``True`` requires it, ``False`` never weights. Why on by default:
        CMS AK8 jets (``FatJet``) and Run-3 AK4 jets are PUPPI jets, clustered from the
        PUPPI-weighted candidates, while PFNano stores the *unweighted* candidate momenta. The
        weighted constituents are what the jet is made of (their sum reproduces the raw jet pT
        and mass to the storage precision; unweighted sums differ by up to ~15 %, see
        ``tests/data/test_nanoaod.py``), and they remove pileup the way the jet does; the
        bundled models were trained on generator-level jets without pileup, where every weight
        is 1, so weighting is the closer input. Use ``puppi=False`` for CHS jets or to study
        the effect. Files without the branch (e.g. ``lgae-hep generate`` output) are never
        weighted.

    Returns
    -------
    ak.Array or (ak.Array, ak.Array)
        ``[event][jet][particle]`` (or ``[jet][particle]``) Momentum4D records with ``pt, eta,
        phi, mass`` (+ ``charge``, ``pdgId`` when present), sorted by pT, N hardest kept.

    Raises
    ------
    ValueError
        Missing branches (naming the branch and the expected layout), not a ROOT file, missing
        or empty tree, inconsistent index tables.
    FileNotFoundError
        A path that does not exist.

    Examples
    --------
    >>> jets = read_nanoaod("nano.root", max_particles=30)                   # doctest: +SKIP
    >>> consts, fatjets = read_nanoaod("nano.root", flat=True, with_jets=True)  # doctest: +SKIP
    """
    options = dict(
        pt_min=pt_min,
        eta_max=eta_max,
        mass_range=mass_range,
        flat=flat,
        with_jets=with_jets,
        pf_fields=pf_fields,
        jet_fields=jet_fields,
        puppi=puppi,
    )
    if _is_dask(source):
        return constituents_from_events(source, jets, max_particles, **options)
    is_file_dict = isinstance(source, Mapping) and bool(source) and all(
        _is_path_like(k) and (_is_url(str(k)) or str(k).endswith(".root") or Path(k).is_file())
        for k in source
    )
    if not (
        _is_path_like(source)
        or is_file_dict
        or (isinstance(source, list | tuple) and source
            and all(_is_path_like(s) or isinstance(s, Mapping) for s in source))
    ):
        if isinstance(source, ak.Array | Mapping) or hasattr(source, "fields"):
            if len(source) == 0 if isinstance(source, ak.Array) else False:
                raise ValueError("empty input: the events array has 0 events")
            return constituents_from_events(source, jets, max_particles, **options)
        normalise_sources(source, tree)  # raises the informative ValueError
    chunks = list(
        iter_nanoaod(
            source,
            jets,
            max_particles,
            tree=tree,
            step_size=step_size,
            progress=progress,
            **options,
        )
    )
    if not chunks:  # every chunk empty (cannot happen after _check_files, kept for safety)
        raise ValueError(f"empty tree: no events read from {source}")
    if with_jets:
        return (ak.concatenate([c[0] for c in chunks]), ak.concatenate([c[1] for c in chunks]))
    return chunks[0] if len(chunks) == 1 else ak.concatenate(chunks)
