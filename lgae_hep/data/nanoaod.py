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
    "constituents_from_events",
    "detect_layout",
    "iter_nanoaod",
    "read_nanoaod",
]

# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------

#: Optional per-candidate fields kept when present.
DEFAULT_PF_FIELDS = ("charge", "pdgId")
#: Optional per-jet fields kept in the jet records (``with_jets=True``) when present.
DEFAULT_JET_FIELDS = ("msoftdrop", "tau1", "tau2", "tau3", "d2b1", "label")


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


def _available_names(events: Any) -> tuple[set[str], bool]:
    """Flat branch names available in ``events`` and whether it is nested (NanoEvents)."""
    if isinstance(events, Mapping):
        return set(events), False
    fields = ak.fields(events)
    nested = False
    names: set[str] = set()
    for field in fields:
        sub = events[field]
        sub_fields = ak.fields(sub)
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
        optional ``jet_fields`` and ``nConstituents``, the number of table entries of the jet
        before truncation), with the same outer structure.
    pf_fields, jet_fields : sequence of str, optional
        Extra fields to carry (defaults: ``charge``, ``pdgId`` / :data:`DEFAULT_JET_FIELDS` when
        present).
    layout : NanoLayout, optional
        Pre-computed layout (skips detection).

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
    available, nested = _available_names(events)
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

    # group by jet (stable), then sort by pT descending within jets, invalid candidates first --
    if len(gjet) > 1 and np.any(gjet[1:] < gjet[:-1]):
        order = np.argsort(gjet, kind="stable")
        gcand = gcand[order]
    del gjet
    counts = n_const_all
    starts = np.zeros(total_jets + 1, np.int64)
    np.cumsum(counts, out=starts[1:])
    # files written by write_pfnano: the table is the identity, no gather needed
    n_entries = len(gcand)
    identity = (
        n_entries == len(pf_cols["pt"])
        and (n_entries == 0 or (gcand[0] == 0 and gcand[-1] == n_entries - 1))
        and np.array_equal(gcand, np.arange(n_entries, dtype=gcand.dtype))
    )
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
    jet_record = dict(jet_cols)
    jet_record["nConstituents"] = n_const_all.astype(np.int32)
    jets_out = momentum4d(jet_record)
    if not flat:
        jets_out = ak.unflatten(jets_out, n_jets)
    return out, jets_out


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


def _normalise_sources(source: Any, tree: str) -> list[tuple[Path, str]]:
    if _is_path_like(source):
        items = [source]
    elif isinstance(source, Sequence) and source and all(_is_path_like(s) for s in source):
        items = list(source)
    else:
        raise ValueError(
            "source must be a path, a non-empty list of paths, coffea NanoEvents or an awkward "
            f"array of events; got {type(source).__name__}"
        )
    out = []
    for item in items:
        text = str(item)
        # allow uproot's "file.root:Tree" spelling
        if ":" in text and not Path(text).exists() and text.rsplit(":", 1)[1]:
            path, name = text.rsplit(":", 1)
            out.append((Path(path), name))
        else:
            out.append((Path(text), tree))
    return out


def _check_files(
    files: list[tuple[Path, str]], jets: str, pf_fields: Any, jet_fields: Any
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
    ``eta_max``, ``mass_range``, ``flat``, ``with_jets``, ``pf_fields``, ``jet_fields``).

    Parameters
    ----------
    source : str, Path or list of them
        ROOT file(s); ``"file.root:Tree"`` selects a tree.
    jets, max_particles : see :func:`read_nanoaod`.
    tree : str
        Tree name when not given in the path.
    step_size : int or str
        Entries per chunk, or a memory size such as ``"100 MB"`` (uproot's ``step_size``).
    progress : bool or None
        tqdm progress bar over events; ``None`` shows it only on a terminal.
    """
    from tqdm.auto import tqdm

    files = _normalise_sources(source, tree)
    layout, total = _check_files(files, jets, kwargs.get("pf_fields"), kwargs.get("jet_fields"))
    kwargs.pop("pf_fields", None)
    kwargs.pop("jet_fields", None)
    bar = tqdm(
        total=total,
        unit="evt",
        desc="read_nanoaod",
        disable=None if progress is None else not progress,
    )
    try:
        for chunk in uproot.iterate(
            [{str(p): t} for p, t in files],
            expressions=layout.branches(),
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
) -> ak.Array | tuple[ak.Array, ak.Array]:
    """Read jets and their PF-candidate constituents from NanoAOD / PFNano.

    Parameters
    ----------
    source : path, list of paths, NanoEvents or awkward array
        ROOT file(s) (streamed with ``uproot.iterate``, only the needed branches), an already
        opened coffea NanoEvents object (eager or virtual), or an awkward record array / dict
        of flat branches (e.g. ``tree.arrays()``).
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
    )
    if not (
        _is_path_like(source)
        or (isinstance(source, list | tuple) and source and all(_is_path_like(s) for s in source))
    ):
        if isinstance(source, ak.Array | Mapping) or hasattr(source, "fields"):
            if len(source) == 0 if isinstance(source, ak.Array) else False:
                raise ValueError("empty input: the events array has 0 events")
            return constituents_from_events(source, jets, max_particles, **options)
        _normalise_sources(source, tree)  # raises the informative ValueError
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
