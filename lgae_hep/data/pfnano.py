"""Our PFNano files: the layout, writing generated jets, and the metadata stored beside them.

:func:`write_pfnano` writes the PFNano layout (``cms-jet/PFNano``) that CMS PFNano files and
:func:`lgae_hep.data.read_nanoaod` share::

    run, luminosityBlock, event
    nFatJet, FatJet_{pt,eta,phi,mass,nConstituents,...}
    nFatJetPFCands, FatJetPFCands_{jetIdx,pFCandsIdx}
    nPFCands, PFCands_{pt,eta,phi,mass,charge,pdgId,...}

as a TTree (``file.mktree`` + ``extend``; uproot >= 5.7 would otherwise write RNTuple), with a
JSON metadata string beside it (:func:`read_metadata`). Reading lives in
:mod:`lgae_hep.data.nanoaod`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot

from .vectors import MOMENTUM_FIELDS, cartesian_components, pt_eta_phi_mass

__all__ = ["METADATA_KEY", "PFNANO_LAYOUT", "PFNanoWriter", "open_root", "read_metadata",
           "write_pfnano"]

#: Name of the JSON string object that :func:`write_pfnano` stores next to the tree.
METADATA_KEY = "lgae_hep_metadata"

#: The branch layouts :func:`lgae_hep.data.read_nanoaod` understands (for error messages).
PFNANO_LAYOUT = (
    "PFNano layout: {jets}_{{pt,eta,phi,mass}}, {jets}PFCands_jetIdx, {jets}PFCands_pFCandsIdx, "
    "PFCands_{{pt,eta,phi,mass[,charge,pdgId]}}; or official Run-3 NanoAOD: "
    "{jets}PFCand_jetIdx, {jets}PFCand_pfCandIdx, PFCand_{{pt,eta,phi,mass[,charge,pdgId]}}"
)


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------


def _as_numpy(arr: Any, dtype: Any) -> np.ndarray:
    return np.asarray(ak.to_numpy(arr), dtype=dtype)


def write_pfnano(
    path: str | Path,
    jets: ak.Array,
    *,
    jet_fields: Mapping[str, Any] | None = None,
    event_fields: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    tree: str = "Events",
    collection: str = "FatJet",
    float_dtype: Any = np.float32,
    step_size: int = 100_000,
    compression: Any = None,
    sort_by_pt: bool = True,
) -> Path:
    """Write jets with their constituents as a PFNano-layout ``TTree``.

    The file is what CMS PFNano looks like for AK8 jets, so every reader of this project (and
    coffea's ``PFNanoAODSchema``, including ``events.FatJet.constituents.pf``) reads generated
    and real files the same way. The tree is written with ``file.mktree`` + ``extend`` (a TTree,
    not the RNTuple that uproot >= 5.7 writes by default).

    Parameters
    ----------
    path : str or Path
        Output ROOT file (overwritten).
    jets : ak.Array
        ``[event][jet][particle]`` Lorentz-vector records (pt/eta/phi/mass, px/py/pz/E, ...),
        optionally with integer fields ``charge`` and ``pdgId`` (written as 0 when absent).
    jet_fields : mapping, optional
        Per-jet ``[event][jet]`` arrays written as ``FatJet_<name>`` (e.g. ``label``,
        ``msoftdrop``). ``pt``, ``eta``, ``phi``, ``mass`` override the default kinematics, which
        are those of the summed constituents. ``nConstituents`` is always the constituent count.
    event_fields : mapping, optional
        Per-event ``[event]`` arrays written as top-level branches. ``run``,
        ``luminosityBlock`` and ``event`` default to ``1``, ``1`` and ``1..N``.
    metadata : mapping, optional
        JSON-serialisable dict stored as a string object :data:`METADATA_KEY` in the file
        (read it back with :func:`read_metadata`).
    tree : str
        Tree name.
    collection : str
        Jet collection name (``FatJet``; ``Jet`` gives ``JetPFCands``).
    float_dtype : dtype
        Floating type of kinematic branches (``float32`` as in NanoAOD).
    step_size : int
        Events per ``extend`` call (one basket per branch per call).
    compression : uproot compression, optional
        Passed to ``uproot.recreate``. Default ``uproot.LZ4(1)``: about 3x faster to read back
        than uproot's ZLIB default at a modest size cost (needs the ``lz4`` and ``xxhash``
        packages, which are dependencies of lgae-hep).
    sort_by_pt : bool
        Write each jet's constituents in decreasing pT (as PFNano does; readers then skip their
        sort). ``False`` keeps the given order.

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    ValueError
        ``jets`` not ``[event][jet][particle]`` records, bad ``step_size``, ``jet_fields`` /
        ``event_fields`` of the wrong shape, or a particle with negative energy (not
        representable in pt/eta/phi/mass; NaN/inf and spacelike particles are written as given
        and flagged invalid by the readers).

    Notes
    -----
    Branch types follow PFNano: kinematics float32, indices and ``charge``/``pdgId`` int32,
    ``run``/``luminosityBlock`` uint32, ``event`` uint64. Counter branches (``nFatJet``,
    ``nFatJetPFCands``, ``nPFCands``) are int32 (uproot's choice; coffea only needs counts).
    Each event's ``PFCands`` are the concatenation of its jets' constituents, so
    ``FatJetPFCands`` is jet-ordered with ``pFCandsIdx = 0..n-1``, which is what coffea's
    ``FatJet.constituents`` (through ``FatJet_nConstituents``) requires.
    """
    with PFNanoWriter(path, tree=tree, collection=collection, float_dtype=float_dtype,
                      step_size=step_size, compression=compression,
                      sort_by_pt=sort_by_pt) as writer:
        writer.write(jets, jet_fields=jet_fields, event_fields=event_fields)
        writer.metadata = metadata
    return Path(path)


def _pfnano_chunks(
    jets: ak.Array,
    jet_fields: Mapping[str, Any] | None,
    event_fields: Mapping[str, Any] | None,
    collection: str,
    float_dtype: Any,
    sort_by_pt: bool,
) -> tuple[int, Any]:
    """The number of events and ``chunk(start, stop)``: the branches (uproot ``extend`` dict)
    of events ``start:stop`` (see :func:`write_pfnano`)."""
    jets = ak.Array(jets)
    if jets.ndim != 3 or not ak.fields(jets):
        raise ValueError(
            "write_pfnano expects jets as an [event][jet][particle] array of Lorentz-vector "
            f"records, got type {jets.type}"
        )
    n_events = len(jets)
    if sort_by_pt:
        energy, px, py, pz = cartesian_components(jets)
        pt_flat = np.hypot(px, py)
        counts_flat = _as_numpy(ak.flatten(ak.num(jets, axis=2), axis=None), np.int64)
        pt_jagged = ak.unflatten(ak.unflatten(pt_flat, counts_flat), ak.num(jets, axis=1))
        jets = jets[ak.argsort(pt_jagged, axis=-1, ascending=False, stable=True)]
    jet_fields = dict(jet_fields or {})
    event_fields = dict(event_fields or {})

    n_jets = _as_numpy(ak.num(jets, axis=1), np.int64)
    n_const = ak.num(jets, axis=2)  # [event][jet]
    n_const_flat = _as_numpy(ak.flatten(n_const, axis=1), np.int64)
    n_pf = _as_numpy(ak.sum(n_const, axis=1), np.int64)  # per event

    # particle kinematics (flat, particle order) ------------------------------------------------
    energy, px, py, pz = cartesian_components(jets)
    negative = energy < 0
    if negative.any():
        # pt/eta/phi/mass cannot hold E < 0: mass**2 = E**2 - p**2 would turn it into a
        # physical particle with E > 0 and hide the bad input from every reader
        first = int(np.flatnonzero(negative)[0])
        raise ValueError(
            f"{int(negative.sum())} particle(s) with negative energy (first: particle {first} "
            f"of the flattened input, E = {float(energy[first])!r} GeV); the PFNano layout "
            "stores pt/eta/phi/mass and cannot represent E < 0; expected E >= 0 (NaN/inf and "
            "E < |p| are written as they are and flagged by the readers)"
        )
    fields = set(ak.fields(jets))
    if {"pt", "eta", "phi", "mass"} <= fields:
        pf_pt, pf_eta, pf_phi, pf_mass = (
            _as_numpy(ak.flatten(jets[name], axis=None), np.float64) for name in MOMENTUM_FIELDS
        )
    else:
        pf_pt, pf_eta, pf_phi, pf_mass = pt_eta_phi_mass(energy, px, py, pz)
    pf_charge = (
        _as_numpy(ak.flatten(jets["charge"], axis=None), np.int32)
        if "charge" in fields
        else np.zeros(len(pf_pt), np.int32)
    )
    pf_pdgid = (
        _as_numpy(ak.flatten(jets["pdgId"], axis=None), np.int32)
        if "pdgId" in fields
        else np.zeros(len(pf_pt), np.int32)
    )

    # jet kinematics: summed constituents unless given ---------------------------------------
    total_jets = int(n_jets.sum())
    jet_id = np.repeat(np.arange(total_jets), n_const_flat)
    sums = [np.bincount(jet_id, weights=c, minlength=total_jets) for c in (energy, px, py, pz)]
    jet_kin = dict(zip(MOMENTUM_FIELDS, pt_eta_phi_mass(*sums)))
    jet_columns: dict[str, np.ndarray] = {}
    for name in MOMENTUM_FIELDS:
        jet_columns[name] = jet_kin[name]
    for name, values in jet_fields.items():
        if name == "nConstituents":
            continue
        arr = ak.Array(values) if not isinstance(values, ak.Array) else values
        if arr.ndim != 2 or not np.array_equal(_as_numpy(ak.num(arr, axis=1), np.int64), n_jets):
            raise ValueError(
                f"jet_fields[{name!r}] must be an [event][jet] array with the jet counts of "
                f"`jets`; got type {arr.type}"
            )
        jet_columns[name] = np.asarray(ak.to_numpy(ak.flatten(arr, axis=1)))

    # per-event branches -----------------------------------------------------------------------
    events_columns: dict[str, np.ndarray] = {
        "run": np.ones(n_events, np.uint32),
        "luminosityBlock": np.ones(n_events, np.uint32),
        "event": np.arange(1, n_events + 1, dtype=np.uint64),
    }
    default_types = {"run": np.uint32, "luminosityBlock": np.uint32, "event": np.uint64}
    for name, values in event_fields.items():
        arr = np.asarray(
            ak.to_numpy(ak.Array(values) if not isinstance(values, np.ndarray) else values)
        )
        if arr.shape[:1] != (n_events,):
            raise ValueError(
                f"event_fields[{name!r}] must have one entry per event ({n_events}), "
                f"got shape {arr.shape}"
            )
        events_columns[name] = arr.astype(default_types[name]) if name in default_types else arr

    # offsets for chunking ----------------------------------------------------------------------
    jet_off = np.concatenate([[0], np.cumsum(n_jets)])
    pf_off = np.concatenate([[0], np.cumsum(n_pf)])
    local_jet = np.arange(total_jets) - np.repeat(jet_off[:-1], n_jets)
    pf_jet_idx = np.repeat(local_jet, n_const_flat).astype(np.int32)
    pf_idx = (np.arange(len(pf_pt)) - np.repeat(pf_off[:-1], n_pf)).astype(np.int32)

    float_dtype = np.dtype(float_dtype)
    pf_columns = {
        "pt": pf_pt.astype(float_dtype),
        "eta": pf_eta.astype(float_dtype),
        "phi": pf_phi.astype(float_dtype),
        "mass": pf_mass.astype(float_dtype),
        "charge": pf_charge,
        "pdgId": pf_pdgid,
    }
    jet_out: dict[str, np.ndarray] = {}
    for name, col in jet_columns.items():
        if name in MOMENTUM_FIELDS or np.issubdtype(col.dtype, np.floating):
            col = col.astype(float_dtype)
        jet_out[name] = col
    jet_out["nConstituents"] = n_const_flat.astype(np.int32)

    def chunk(start: int, stop: int) -> dict[str, Any]:
        j0, j1 = jet_off[start], jet_off[stop]
        p0, p1 = pf_off[start], pf_off[stop]
        jets_counts = n_jets[start:stop]
        pf_counts = n_pf[start:stop]
        out: dict[str, Any] = {k: v[start:stop] for k, v in events_columns.items()}
        out[collection] = ak.zip(
            {k: ak.unflatten(v[j0:j1], jets_counts) for k, v in jet_out.items()}
        )
        out[f"{collection}PFCands"] = ak.zip(
            {
                "jetIdx": ak.unflatten(pf_jet_idx[p0:p1], pf_counts),
                "pFCandsIdx": ak.unflatten(pf_idx[p0:p1], pf_counts),
            }
        )
        out["PFCands"] = ak.zip(
            {k: ak.unflatten(v[p0:p1], pf_counts) for k, v in pf_columns.items()}
        )
        return out

    return n_events, chunk


class PFNanoWriter:
    """Writes the PFNano layout of :func:`write_pfnano` chunk by chunk: each :meth:`write`
    appends ``[event][jet][particle]`` jets (and their jet / event fields) to one TTree, so a
    file can be written from a stream without holding it in memory. The branches are created
    by the first :meth:`write` (later chunks must have the same fields and types); closing
    (``with`` block or :meth:`close`) writes :attr:`metadata` (if set) and the file. Arguments
    as for :func:`write_pfnano`."""

    def __init__(self, path: str | Path, *, tree: str = "Events", collection: str = "FatJet",
                 float_dtype: Any = np.float32, step_size: int = 100_000,
                 compression: Any = None, sort_by_pt: bool = True) -> None:
        if step_size < 1:
            raise ValueError(f"step_size must be >= 1, got {step_size}")
        self.path = Path(path)
        self.tree_name, self.collection = tree, collection
        self.float_dtype, self.step_size, self.sort_by_pt = float_dtype, step_size, sort_by_pt
        self.metadata: Mapping[str, Any] | None = None
        self.compression = uproot.LZ4(1) if compression is None else compression
        self.file: Any = None  # opened by the first write, after its input is checked
        self.ttree: Any = None
        self.closed = False

    def _open(self) -> Any:
        if self.file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = uproot.recreate(self.path, compression=self.compression)
        return self.file

    def write(self, jets: ak.Array, *, jet_fields: Mapping[str, Any] | None = None,
              event_fields: Mapping[str, Any] | None = None) -> None:
        """Append ``[event][jet][particle]`` jets (``ValueError`` as for :func:`write_pfnano`)."""
        n_events, chunk = _pfnano_chunks(jets, jet_fields, event_fields, self.collection,
                                         self.float_dtype, self.sort_by_pt)
        first = chunk(0, min(self.step_size, n_events))
        if self.ttree is None:
            self.ttree = self._open().mktree(self.tree_name,
                                          {k: _branch_type(v) for k, v in first.items()})
        if n_events:
            self.ttree.extend(first)
        for start in range(self.step_size, n_events, self.step_size):
            self.ttree.extend(chunk(start, min(start + self.step_size, n_events)))

    def close(self) -> None:
        """Write the metadata string and close the file (idempotent)."""
        if self.closed:
            return
        self.closed = True
        file = self._open()
        try:
            if self.metadata is not None:
                file[METADATA_KEY] = json.dumps(dict(self.metadata), sort_keys=True,
                                                default=str)
        finally:
            file.close()

    def __enter__(self) -> PFNanoWriter:
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is not None and self.file is None:
            self.closed = True  # the first write failed its checks: no file is created
            return
        self.close()


def _branch_type(values: Any) -> Any:
    if isinstance(values, np.ndarray):
        return values.dtype
    return values.type


def read_metadata(path: str | Path) -> dict[str, Any] | None:
    """Return the metadata dict stored by :func:`write_pfnano` (``None`` if absent)."""
    with open_root(path) as file:
        if METADATA_KEY not in file:
            return None
        return json.loads(str(file[METADATA_KEY]))


def open_root(path: str | Path) -> Any:
    """``uproot.open`` with clear errors for a missing file and for a file that is not ROOT.

    ``path`` is a local path or anything else ``uproot.open`` opens: ``file:`` URLs,
    ``root://`` (XRootD, needs ``fsspec-xrootd``: ``pip install "lgae-hep[xrootd]"``),
    ``http(s)://``, ``s3://``, ...
    """
    text = str(path)
    is_url = "://" in text or text.startswith("file:")
    if not is_url:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"ROOT file not found: {path}; check the path")
    try:
        return uproot.open(path)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"ROOT file not found: {text} ({err}); check the path or URL"
                                ) from err
    except ImportError as err:  # the fsspec/XRootD backend of this protocol is missing
        raise ValueError(f"cannot open {text}: {err} (for root:// URLs install the xrootd "
                         "extra: pip install 'lgae-hep[xrootd]')") from err
    except (ValueError, OSError) as err:  # uproot: "not a ROOT file: first four bytes are ..."
        raise ValueError(f"{path} is not a readable ROOT file ({err})") from err
