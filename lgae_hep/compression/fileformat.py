"""The compressed ROOT file: one TTree of events, the JSON metadata string, and their writer
(:func:`write_compressed`, the chunk writer of :func:`~lgae_hep.compression.compress_files`)
and reader (:func:`read_compressed`).

Layout (tree :data:`TREE`): per event ``run``, ``luminosityBlock``, ``event`` (NanoAOD types,
:data:`EVENT_KEYS`) and ``lgaeSource`` (index of the input file); per jet ``<collection>_*``:
the collection's own fields as stored, ``lgaeIdx``, ``lgaeStatus``, ``lgaeN``, ``lgaeNOrig``,
``lgaeE/Px/Py/Pz`` (float64) and the latent ``lgaeZ0..lgaeZ{L-1}`` (float32, or uint16 holding
float16 bits); the raw constituents of jets kept raw in ``<collection>RawPFCands_*`` (``jetIdx``
= position in the event's compressed jets). The metadata string :data:`METADATA_KEY` holds
:attr:`CompressedJets.metadata` plus ``collection``, ``n_events`` and what the driver records.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot

from lgae_hep.data.pfnano import open_root

from .codec import DEFAULT_COMPRESSION, layout_width, parse_compression
from .jets import RAW_FIELDS, CompressedJets, check_meta, flatten_records, is_raw, records

__all__ = ["EVENT_KEYS", "METADATA_KEY", "TREE", "CompressedFileReader", "CompressedFileWriter",
           "read_compressed", "write_compressed"]

#: Name of the JSON metadata string in compressed files.
METADATA_KEY = "lgae_hep_compression"
#: Tree of compressed files (one entry per event).
TREE = "Events"
#: Event keys carried through compression, with their NanoAOD types.
EVENT_KEYS: dict[str, Any] = {"run": np.uint32, "luminosityBlock": np.uint32,
                              "event": np.uint64}


def _latent_branch(i: int) -> str:
    return f"lgaeZ{i}"


def _chunk_branches(c: CompressedJets, collection: str) -> dict[str, Any]:
    """Tree branches (uproot ``extend`` dict) of one chunk of ``[event][jet]`` records."""
    jets = c.jets
    n_jets = ak.num(jets, axis=1)
    flat = ak.flatten(jets, axis=1)
    latent = np.asarray(ak.to_numpy(flat["latent"]))
    jet_cols: dict[str, Any] = {}
    for f in ak.fields(flat):
        if f.startswith("jet_"):
            jet_cols[f[4:]] = ak.to_numpy(flat[f])
    jet_cols.update({
        "lgaeIdx": np.asarray(ak.to_numpy(flat["index"]), np.int32),
        "lgaeStatus": np.asarray(ak.to_numpy(flat["status"]), np.uint8),
        "lgaeN": np.asarray(ak.to_numpy(flat["n"]), np.int16),
        "lgaeNOrig": np.asarray(ak.to_numpy(flat["n_orig"]), np.int32),
        "lgaeE": np.asarray(ak.to_numpy(flat["E"]), np.float64),
        "lgaePx": np.asarray(ak.to_numpy(flat["px"]), np.float64),
        "lgaePy": np.asarray(ak.to_numpy(flat["py"]), np.float64),
        "lgaePz": np.asarray(ak.to_numpy(flat["pz"]), np.float64),
    })
    for i in range(latent.shape[1] if latent.ndim == 2 else 0):
        jet_cols[_latent_branch(i)] = np.ascontiguousarray(latent[:, i])
    out: dict[str, Any] = {k: np.asarray(v) for k, v in (c.events or {}).items()}
    out[collection] = ak.zip({k: ak.unflatten(v, n_jets) for k, v in jet_cols.items()})
    raw = flat["raw"]
    raw_n = np.asarray(ak.to_numpy(ak.num(raw, axis=1)), np.int64)
    rflat = ak.flatten(raw, axis=1)
    local = np.asarray(ak.to_numpy(ak.flatten(ak.local_index(jets, axis=1))), np.int32)
    per_event = np.asarray(ak.to_numpy(ak.sum(ak.unflatten(raw_n, n_jets), axis=1)), np.int64)
    rcols = {"jetIdx": np.repeat(local, raw_n)}
    for f in RAW_FIELDS:
        dt = np.int32 if f in ("charge", "pdgId") else np.float32
        rcols[f] = np.asarray(ak.to_numpy(rflat[f]), dtype=dt)
    out[f"{collection}RawPFCands"] = ak.zip({k: ak.unflatten(v, per_event)
                                             for k, v in rcols.items()})
    return out


def _branch_type(values: Any) -> Any:
    return values.dtype if isinstance(values, np.ndarray) else values.type


class CompressedFileWriter:
    """Appends chunks of compressed ``[event][jet]`` records (with their ``events``) to one
    TTree; :meth:`close` writes the metadata string and closes the file."""

    def __init__(self, path: Path, collection: str, compression: Any) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = uproot.recreate(path, compression=compression)
        self.collection = collection
        self.tree: Any = None

    def write(self, c: CompressedJets) -> None:
        branches = _chunk_branches(c, self.collection)
        if self.tree is None:
            self.tree = self.file.mktree(TREE, {k: _branch_type(v) for k, v in branches.items()})
        if len(c.jets):
            self.tree.extend(branches)

    def close(self, metadata: Mapping[str, Any]) -> None:
        self.file[METADATA_KEY] = json.dumps(dict(metadata), sort_keys=True, default=str)
        self.file.close()


def _depth(arr: ak.Array) -> int:
    """List levels of compressed records (``[jet]``: 1, ``[event][jet]``: 2)."""
    return len(flatten_records(arr)[1]) + 1


def write_compressed(c: CompressedJets, path: str | Path, *, collection: str = "FatJet",
                     compression: str | None = DEFAULT_COMPRESSION) -> Path:
    """Write :class:`CompressedJets` to a ROOT file (the layout of :func:`compress_files`).

    ``c.jets`` must be ``[event][jet]``; without ``c.events``, ``run = luminosityBlock = 1``
    and ``event = 1..N`` (as :func:`lgae_hep.data.write_pfnano` does).
    """
    path = Path(path)
    jets = c.jets
    if _depth(jets) == 1:  # [jet]: one jet per event
        jets = ak.unflatten(jets, np.ones(len(jets), np.int64))
    if _depth(jets) != 2:
        raise ValueError("write_compressed expects [event][jet] (or [jet]) compressed jets; "
                         f"got {_depth(jets)} list levels")
    n_events = len(jets)
    events = dict(c.events or {})
    defaults = {"run": np.ones(n_events, np.uint32),
                "luminosityBlock": np.ones(n_events, np.uint32),
                "event": np.arange(1, n_events + 1, dtype=np.uint64),
                "lgaeSource": np.zeros(n_events, np.int32)}
    for k, v in defaults.items():
        events.setdefault(k, v)
    cc = CompressedJets(jets, c.metadata, events)
    writer = CompressedFileWriter(path, collection, parse_compression(compression))
    try:
        writer.write(cc)
    finally:
        writer.close({**c.metadata, "collection": collection, "n_events": n_events})
    return path


class CompressedFileReader:
    """A compressed ROOT file (:func:`compress_files`), opened and checked once (metadata,
    branches, latent types), read as :class:`CompressedJets` whole (:meth:`read`) or in chunks
    of events (:meth:`chunks`, uproot's ``iterate``: memory bounded by the chunk, not the file).

    Every error names the file: ``ValueError`` for a file that is not compressed data (no or
    foreign metadata), a newer format, missing, mistyped or corrupt branches and damaged
    baskets; ``FileNotFoundError`` for a missing file. Use as a context manager (or
    :meth:`close`).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = path = Path(path)
        self.file = f = open_root(path)
        try:
            self._check()
        except BaseException:
            f.close()
            raise

    def _check(self) -> None:
        f, path = self.file, self.path
        end = getattr(getattr(f, "file", None), "fEND", None)
        if end is not None and path.is_file() and path.stat().st_size < int(end):
            # uproot reads what is there; the ROOT header says where the file ends
            raise ValueError(f"{path}: truncated ROOT file ({path.stat().st_size} bytes, its "
                             f"header says {int(end)}); the compressed file is incomplete")
        if METADATA_KEY not in f:
            raise ValueError(f"{path} is not an lgae-hep compressed file (no {METADATA_KEY!r} "
                             "metadata; compress files with `lgae-hep compress`)")
        try:
            meta = json.loads(str(f[METADATA_KEY]))
        except Exception as err:  # noqa: BLE001 - bad JSON or an unreadable string object
            raise ValueError(f"{path}: corrupt compression metadata ({err})") from None
        meta = check_meta(meta, str(path))
        if not meta.get("complete", True):
            raise ValueError(f"{path}: compression did not finish (the file is incomplete)")
        if TREE not in f:
            raise ValueError(f"{path}: tree {TREE!r} missing (corrupt compressed file)")
        try:
            t = f[TREE]
            keys = set(t.keys())
        except Exception as err:  # noqa: BLE001 - a truncated file fails here in many ways
            raise ValueError(f"{path}: cannot read tree {TREE!r} ({type(err).__name__}: {err});"
                             " the file is corrupt or truncated") from None
        coll = str(meta.get("collection", "FatJet"))
        width = int(meta.get("latent_width", layout_width(meta["latent_layout"])))
        want_dtype = np.dtype(np.uint16 if meta["latent_dtype"] == "float16" else np.float32)
        jet_fields = list(meta.get("jet_fields", []))
        names = ["lgaeIdx", "lgaeStatus", "lgaeN", "lgaeNOrig", "lgaeE", "lgaePx", "lgaePy",
                 "lgaePz", *[_latent_branch(i) for i in range(width)]]
        required = [*EVENT_KEYS, "lgaeSource", *[f"{coll}_{n}" for n in (*jet_fields, *names)],
                    *[f"{coll}RawPFCands_{n}" for n in ("jetIdx", *RAW_FIELDS)]]
        missing = [b for b in required if b not in keys]
        if missing:
            what = " (latent branches)" if any("lgaeZ" in m for m in missing) else ""
            raise ValueError(f"{path}: corrupt compressed file, branch(es) {missing[:5]} "
                             f"missing{what}")
        extra_latent = [k for k in keys if re.fullmatch(rf"{coll}_lgaeZ\d+", k)
                        and int(k.rsplit("Z", 1)[1]) >= width]
        if extra_latent:
            raise ValueError(f"{path}: corrupt compressed file, latent branches beyond the "
                             f"layout's {width}: {sorted(extra_latent)[:3]}")
        for i in range(width):
            interp = t[f"{coll}_{_latent_branch(i)}"].interpretation
            got = getattr(getattr(interp, "content", interp), "to_dtype", None)
            if got is None or np.dtype(got) != want_dtype:
                raise ValueError(f"{path}: corrupt latent branch {coll}_{_latent_branch(i)}: "
                                 f"type {interp}, expected {want_dtype} per jet")
        self.metadata, self.tree, self.collection = meta, t, coll
        self.width, self.latent_dtype, self.jet_fields = width, want_dtype, jet_fields
        self.names, self.required = names, required

    @property
    def num_entries(self) -> int:
        """Events in the file."""
        return int(self.tree.num_entries)

    def read(self) -> CompressedJets:
        """All events as one :class:`CompressedJets`."""
        try:
            arr = self.tree.arrays(self.required, library="ak")
        except Exception as err:  # noqa: BLE001 - uproot/zlib/lzma raise many types on bad bytes
            raise self._corrupt(err) from None
        return self._compressed(arr)

    def chunks(self, step_size: int | str = 10_000) -> Iterator[CompressedJets]:
        """:class:`CompressedJets` of consecutive chunks of ``step_size`` events (or a size such
        as ``"50 MB"``), through ``uproot``'s ``iterate``; at least one (possibly empty)."""
        it = self.tree.iterate(self.required, step_size=step_size, library="ak")
        any_chunk = False
        while True:
            try:
                arr = next(it)
            except StopIteration:
                break
            except Exception as err:  # noqa: BLE001 - damaged or truncated baskets
                raise self._corrupt(err) from None
            any_chunk = True
            yield self._compressed(arr)
        if not any_chunk:
            yield self._compressed(self.tree.arrays(self.required, entry_stop=0, library="ak"))

    def _corrupt(self, err: BaseException) -> ValueError:
        return ValueError(f"{self.path}: cannot read the compressed tree ({type(err).__name__}: "
                          f"{err}); the file is corrupt or truncated")

    def _compressed(self, arr: ak.Array) -> CompressedJets:
        path, coll, meta = self.path, self.collection, self.metadata
        width, want_dtype, jet_fields, names = (self.width, self.latent_dtype, self.jet_fields,
                                                self.names)
        n_jets = ak.num(arr[f"{coll}_lgaeIdx"], axis=1)
        for n in (*jet_fields, *names):
            if not ak.all(ak.num(arr[f"{coll}_{n}"], axis=1) == n_jets):
                raise ValueError(f"{path}: corrupt compressed file, branch {coll}_{n} has other "
                                 f"jet counts than {coll}_lgaeIdx")

        def col(n: str) -> np.ndarray:
            return np.asarray(ak.to_numpy(ak.flatten(arr[f"{coll}_{n}"])))

        latent = np.stack([col(_latent_branch(i)) for i in range(width)], axis=1) if width \
            else np.zeros((int(ak.sum(n_jets)), 0), want_dtype)
        counts = np.asarray(ak.to_numpy(n_jets), np.int64)
        # raw constituents back to their jets
        rj = arr[f"{coll}RawPFCands_jetIdx"]
        n_raw_ev = np.asarray(ak.to_numpy(ak.num(rj, axis=1)), np.int64)
        jet_off = np.concatenate([[0], np.cumsum(counts)])
        rj_flat = np.asarray(ak.to_numpy(ak.flatten(rj)), np.int64)
        ev_of_raw = np.repeat(np.arange(len(counts)), n_raw_ev)
        if np.any((rj_flat < 0) | (rj_flat >= counts[ev_of_raw])):
            raise ValueError(f"{path}: corrupt compressed file, {coll}RawPFCands_jetIdx out of "
                             "range")
        gjet = rj_flat + jet_off[:-1][ev_of_raw]
        if len(gjet) > 1 and np.any(np.diff(gjet) < 0):
            raise ValueError(f"{path}: corrupt compressed file, raw constituents not in jet "
                             "order")
        total = int(jet_off[-1])
        raw_counts = np.bincount(gjet, minlength=total) if total else np.zeros(0, np.int64)
        rcols = {f: np.asarray(ak.to_numpy(ak.flatten(arr[f"{coll}RawPFCands_{f}"])))
                 for f in RAW_FIELDS}
        raw = ak.unflatten(ak.zip(rcols, with_name="Momentum4D"), raw_counts)
        cols: dict[str, Any] = {
            "status": col("lgaeStatus").astype(np.uint8),
            "n": col("lgaeN").astype(np.int16),
            "n_orig": col("lgaeNOrig").astype(np.int64),
            "E": col("lgaeE"), "px": col("lgaePx"), "py": col("lgaePy"), "pz": col("lgaePz"),
            "latent": latent,
            "raw": raw,
        }
        raw_jets = is_raw(cols["status"])
        if np.any((raw_counts > 0) & ~raw_jets) or np.any(raw_counts[raw_jets]
                                                          != cols["n_orig"][raw_jets]):
            raise ValueError(f"{path}: corrupt compressed file, raw constituents do not match "
                             "the jets' status and multiplicity")
        extra = {f: col(f) for f in jet_fields}
        rec = records(cols, col("lgaeIdx").astype(np.int64), extra)
        events = {k: np.asarray(ak.to_numpy(arr[k])) for k in (*EVENT_KEYS, "lgaeSource")}
        return CompressedJets(ak.unflatten(rec, counts), meta, events)

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> CompressedFileReader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def read_compressed(path: str | Path) -> CompressedJets:
    """Read a compressed ROOT file (:func:`compress_files`) into :class:`CompressedJets`
    (all of it; :class:`CompressedFileReader` reads it in chunks).

    Raises
    ------
    ValueError
        Not a compressed file (no or foreign metadata), a newer format, missing or corrupt
        branches (a latent branch missing or of the wrong type, inconsistent counts), damaged
        or truncated baskets; the message names the file.
    FileNotFoundError
        A missing file.
    """
    with CompressedFileReader(path) as reader:
        return reader.read()
