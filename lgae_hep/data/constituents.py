"""Grouping PF candidates into jets through the jet-candidate index table, on loaded (eager or
virtual) arrays: the core of :func:`lgae_hep.data.constituents_from_events`.

Vectorised over flat numpy buffers: global indices, range checks, jet selection, PUPPI
weighting, a stable pT sort only where a jet is not already sorted (flagged candidates first,
:func:`lgae_hep.data.badinput.invalid_candidates`), truncation as a view.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import awkward as ak
import numpy as np

from .badinput import invalid_candidates
from .layout import PUPPI_FIELD, NanoLayout, available_names, detect_layout, resolve_puppi
from .pfnano import PFNANO_LAYOUT
from .vectors import momentum4d

__all__ = ["eager_constituents"]


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


def eager_constituents(
    events: Any,
    jets: str,
    max_particles: int | None,
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
    """:func:`lgae_hep.data.constituents_from_events` on loaded arrays (same arguments and
    result; ``max_particles`` already checked)."""
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

    weight_branch = resolve_puppi(available, layout, puppi)

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
    if weight_branch is not None:
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
    bad = invalid_candidates(pf_cols)
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
