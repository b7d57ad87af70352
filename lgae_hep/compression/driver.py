"""The file-level driver: :func:`compress_files` (NanoAOD/PFNano files -> one compressed file,
chunk by chunk) and :func:`decompress_file` (compressed file -> PFNano-layout file).

Inputs are checked once, before any work, by :func:`lgae_hep.data.check_input_files`; the
constituents are grouped (and PUPPI-weighted, :func:`lgae_hep.data.resolve_puppi`) as
:func:`lgae_hep.read_nanoaod` does, so the compressed jets are the ones the reader returns.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot
from tqdm.auto import tqdm

from lgae_hep import __version__
from lgae_hep.data import (
    InputFile,
    check_input_files,
    constituents_from_events,
    resolve_puppi,
)
from lgae_hep.data.pfnano import PFNanoWriter
from lgae_hep.data.tensors import flatten_outer, restore_outer

from .codec import DEFAULT_COMPRESSION, check_precision, parse_compression
from .fileformat import EVENT_KEYS, CompressedFileReader, CompressedFileWriter
from .jets import (
    DEFAULT_BATCH_SIZE,
    CompressedJets,
    check_batch_size,
    check_on_invalid,
    decode_jets,
    encode_jets,
    flatten_records,
    metadata,
    model_for,
    model_info,
    records,
    warn_raw,
)
from .physical import REPAIR_NAMES, merge_counts, warn_repaired

__all__ = ["DEFAULT_DECOMPRESS_STEP", "compress_files", "decompress_file"]

#: Events per chunk of :func:`decompress_file`.
DEFAULT_DECOMPRESS_STEP = 5_000

_EVENT_KEYS_REASON = "compressed files carry run, luminosityBlock and event"


def _input_files(inputs: Any) -> list[Path]:
    if isinstance(inputs, str | Path):
        inputs = [inputs]
    files = [Path(p) for p in inputs]
    if not files:
        raise ValueError("no input files")
    return files


def _iter_events(checked: Sequence[InputFile], step_size: Any, puppi: bool | None
                 ) -> Iterator[tuple[int, InputFile, Any]]:
    """Chunks of events with the branches :func:`lgae_hep.read_nanoaod` reads (the PUPPI
    weights included when they are used) plus the event keys, file by file."""
    for source, info in enumerate(checked):
        expressions = [*EVENT_KEYS, *info.layout.branches()]
        weight = resolve_puppi(info.branches, info.layout, puppi, where=info.path)
        if weight is not None:
            expressions.append(weight)
        for chunk in uproot.iterate({info.path: info.tree}, expressions=expressions,
                                    step_size=step_size, library="ak"):
            yield source, info, chunk


def _select(chunk: Any, info: InputFile, collection: str, puppi: bool | None,
            pt_min: float | None, eta_max: float | None) -> tuple[Any, Any, Any]:
    """``[event][jet][particle]`` constituents, the jets and their original indices, of the
    jets passing ``pt > pt_min`` and ``|eta| < eta_max``."""
    parts, jets = constituents_from_events(chunk, collection, None, with_jets=True,
                                           layout=info.layout, puppi=puppi)
    index = ak.local_index(jets, axis=1)
    sel = None
    if pt_min is not None:
        sel = jets.pt > pt_min
    if eta_max is not None:
        cut = abs(jets.eta) < eta_max
        sel = cut if sel is None else (sel & cut)
    if sel is not None:
        parts, jets, index = parts[sel], jets[sel], index[sel]
    return parts, jets, index


def compress_files(
    inputs: Any,
    output: str | Path,
    model: Any = None,
    *,
    collection: str = "FatJet",
    tree: str = "Events",
    pt_min: float | None = None,
    eta_max: float | None = None,
    latent_dtype: str = "float32",
    mantissa_bits: int | None = None,
    compression: str | None = DEFAULT_COMPRESSION,
    batch_size: int = DEFAULT_BATCH_SIZE,
    step_size: int | str = "100 MB",
    device: Any = None,
    progress: bool | None = None,
    on_invalid: str = "flag",
    puppi: bool | None = None,
) -> dict[str, Any]:
    """Compress the jets of NanoAOD/PFNano files into one compressed ROOT file.

    Every event is kept (with its ``run``, ``luminosityBlock``, ``event`` and the index of its
    input file, ``lgaeSource``); every selected jet of ``collection`` becomes one entry of
    the ``[event][jet]`` branches ``<collection>_*``: its own fields exactly as stored
    (``pt, eta, phi, mass`` and, when present, ``msoftdrop, tau1..3, d2b1, label``),
    ``lgaeIdx`` (its index in the original collection), ``lgaeStatus``, ``lgaeN``,
    ``lgaeNOrig``, ``lgaeE/Px/Py/Pz`` (float64) and the latent ``lgaeZ0..lgaeZ{L-1}``. Jets
    kept raw have their constituents in ``<collection>RawPFCands_*`` (``jetIdx`` = position in
    the event's compressed jets). The JSON metadata string :data:`METADATA_KEY` records the
    model and layout (:class:`CompressedJets`; the layout: :mod:`.fileformat`).

    Parameters
    ----------
    inputs : path or list of paths
        PFNano / NanoAOD files (see :func:`lgae_hep.read_nanoaod`).
    output : path
        Compressed ROOT file (overwritten).
    model : None, str, Path or torch.nn.Module
        The LGAE (default: the bundled compression model, ``lgae_hep.zoo.COMPRESSION_MODEL``).
    collection, tree : str
        Jet collection and tree name.
    pt_min, eta_max : float, optional
        Jet selection on the collection's ``pt`` / ``|eta|``; other jets are not stored
        (``lgaeIdx`` keeps the original indices of those that are).
    latent_dtype, mantissa_bits : see :func:`compress`.
    compression : str
        ``"lzma:1"`` (default, :data:`~lgae_hep.compression.DEFAULT_COMPRESSION`), ``"lzma:9"``
        (as NanoAOD: 5 % smaller, slower), ``"zlib:N"``, ``"lz4:N"``, ``"zstd:N"``, ``"none"``.
    batch_size, device, progress, on_invalid : see :func:`compress`.
    step_size : int or str
        Events (or a size such as ``"100 MB"``) read per chunk.
    puppi : bool or None
        PUPPI-weight the constituents as :func:`lgae_hep.read_nanoaod` does (``None``: when the
        weights exist). The compressed jets are the ones the reader returns.

    Returns
    -------
    dict
        Summary: ``n_events``, ``n_jets``, ``status_counts``, ``bytes``, ``output``.

    Raises
    ------
    ValueError
        A missing jet collection or event-key branch, not a ROOT file, no events, a non-LGAE
        model (:func:`lgae_hep.data.check_input_files`).
    FileNotFoundError
        A missing input file.
    """
    check_precision(latent_dtype, mantissa_bits)
    check_batch_size(batch_size)
    check_on_invalid(on_invalid)
    files = _input_files(inputs)
    # every input checked before any work (the files may differ in layout: read one by one)
    checked, _ = check_input_files([(str(p), tree) for p in files], collection,
                                   require=tuple(EVENT_KEYS), require_reason=_EVENT_KEYS_REASON,
                                   same_layout=False)
    total = sum(info.num_entries for info in checked)
    comp = parse_compression(compression)
    module, info = model_info(model, device)
    output = Path(output)
    if any(output.resolve() == p.resolve() for p in files):
        raise ValueError(f"output {output} is also an input")
    writer = CompressedFileWriter(output, collection, comp)
    statuses: list[np.ndarray] = []
    n_events = 0
    jet_fields: list[str] = []
    bar = tqdm(total=total, desc="lgae-hep compress", unit="evt",
               disable=None if progress is None else not progress)
    ok = False
    try:
        for source, file_info, chunk in _iter_events(checked, step_size, puppi):
            parts, jets, index = _select(chunk, file_info, collection, puppi, pt_min, eta_max)
            flat, structure = flatten_outer(parts)
            cols = encode_jets(flat, module, info, batch_size=batch_size,
                               latent_dtype=latent_dtype, mantissa_bits=mantissa_bits,
                               on_invalid=on_invalid, what="lgae-hep compress")
            jflat = ak.flatten(jets, axis=1)
            jet_fields = [f for f in file_info.layout.jet_fields if f in ak.fields(jflat)]
            extra = {f: np.asarray(ak.to_numpy(jflat[f])) for f in jet_fields}
            rec = records(cols, np.asarray(ak.to_numpy(ak.flatten(index))), extra)
            events = {k: np.asarray(ak.to_numpy(chunk[k]), dtype=t)
                      for k, t in EVENT_KEYS.items()}
            events["lgaeSource"] = np.full(len(chunk), source, np.int32)
            writer.write(CompressedJets(restore_outer(rec, structure), {}, events))
            statuses.append(cols["status"])
            n_events += len(chunk)
            bar.update(len(chunk))
        ok = True
    finally:
        bar.close()
        status = np.concatenate(statuses) if statuses else np.zeros(0, np.uint8)
        meta = metadata(info, latent_dtype, mantissa_bits, status,
                        collection=collection, n_events=n_events, jet_fields=jet_fields,
                        inputs=[str(p) for p in files], complete=ok,
                        selection={"pt_min": pt_min, "eta_max": eta_max}, puppi=puppi,
                        compression=str(compression or DEFAULT_COMPRESSION))
        writer.close(meta)
    if not ok:  # pragma: no cover - the exception propagates from the try block
        raise RuntimeError("compression failed")
    warn_raw("lgae-hep compress", status, latent_dtype, stacklevel=2)
    return {"output": str(output), "n_events": n_events, "n_jets": int(status.size),
            "status_counts": meta["status_counts"], "bytes": output.stat().st_size}


def decompress_file(
    path: str | Path,
    output: str | Path,
    model: Any = None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: Any = None,
    progress: bool | None = None,
    compression: str | None = "lz4:1",
    step_size: int | str = DEFAULT_DECOMPRESS_STEP,
) -> dict[str, Any]:
    """Rebuild particle-level jets from a compressed file into a PFNano-layout ROOT file.

    The output has every event of the compressed file with its ``run``, ``luminosityBlock``,
    ``event``; the jet collection with its stored fields exactly as they were (``pt, eta, phi,
    mass``, ...), ``lgaeIdx`` (the original index), ``lgaeStatus``, ``lgaeNOrig`` and
    ``lgaeRepair`` (:data:`~lgae_hep.compression.physical.REPAIR_NAMES`); and the decompressed
    constituents as ``<collection>PFCands`` / ``PFCands``, so :func:`lgae_hep.read_nanoaod` and
    coffea's ``PFNanoAODSchema`` read it like any PFNano file. Decoded particles are physical
    (``E >= |p|``, ``charge = pdgId = 0``) and sum to the decoder's jet 4-momentum, that of
    :func:`lgae_hep.reconstruct` (decoder outputs outside the light cone are repaired,
    :mod:`lgae_hep.compression.physical`: counted in the output's metadata ``physical`` and in
    one :class:`~lgae_hep.compression.physical.UnphysicalOutputWarning`); jets kept raw: their
    stored constituents.

    The file is read and written in chunks of ``step_size`` events (memory bounded by the
    chunk, not the file). On an error no output file is left behind.

    Parameters
    ----------
    path : path
        Compressed file (:func:`compress_files`).
    output : path
        Output ROOT file (overwritten).
    model : None, str, Path or torch.nn.Module
        ``None``: the model recorded in the file; another model (checksum) is an error.
    compression : str
        Compression of the output (default ``"lz4:1"``, fast to read, as the generator writes).
    step_size : int or str
        Events (or a size such as ``"50 MB"``) per chunk.

    Returns
    -------
    dict
        ``output``, ``n_events``, ``n_jets``, ``bytes``, ``physical`` (the repair counts) and
        ``warning`` (the text of the warning, or None).

    Raises
    ------
    ValueError
        Not a compressed file, a corrupt or truncated one, non-finite latents, another model
        than the one that compressed: the message names the file.
    """
    check_batch_size(batch_size)
    output = Path(output)
    if output.resolve() == Path(path).resolve():
        raise ValueError(f"output {output} is the compressed input")
    comp = parse_compression(compression)
    with CompressedFileReader(path) as reader:
        meta = reader.metadata
        try:
            module = model_for(meta, model, device)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
        coll = reader.collection
        writer = PFNanoWriter(output, collection=coll, compression=comp, sort_by_pt=False)
        counts: dict[str, int] | None = None
        n_events = n_jets = 0
        bar = tqdm(total=reader.num_entries, desc="lgae-hep decompress", unit="evt",
                   disable=None if progress is None else not progress)
        ok = False
        try:
            for c in reader.chunks(step_size):
                flat, structure = flatten_records(c.jets)
                try:
                    parts, repair, cnt = decode_jets(flat, meta, module, physical=True,
                                                     batch_size=batch_size)
                except ValueError as err:
                    raise ValueError(f"{path}: {err}") from None
                counts = merge_counts(counts, cnt)
                jets = c.jets
                jet_fields: dict[str, Any] = {f: jets[f"jet_{f}"]
                                              for f in meta.get("jet_fields", [])}
                jet_fields.update(lgaeIdx=ak.values_astype(jets["index"], np.int32),
                                  lgaeStatus=jets["status"],
                                  lgaeNOrig=ak.values_astype(jets["n_orig"], np.int32),
                                  lgaeRepair=restore_outer(ak.Array(repair), structure))
                writer.write(restore_outer(parts, structure), jet_fields=jet_fields,
                             event_fields=dict(c.events or {}))
                n_events += len(jets)
                n_jets += len(flat)
                bar.update(len(jets))
            ok = True
        finally:
            bar.close()
            counts = counts or {}
            writer.metadata = {
                "decompressed_from": str(path), "lgae_hep_version": __version__,
                "compression": {k: meta.get(k) for k in (
                    "model", "latent_dtype", "mantissa_bits", "inputs", "status_counts",
                    "num_particles")},
                "physical": {**counts, "repair_names": {str(k): v
                                                        for k, v in REPAIR_NAMES.items()},
                             "fit_for_physics": not counts.get("unphysical_particles", 0)}}
            writer.close()
            if not ok:
                output.unlink(missing_ok=True)
    text = warn_repaired("lgae-hep decompress", counts, stacklevel=2)
    return {"output": str(output), "n_events": n_events, "n_jets": n_jets,
            "bytes": output.stat().st_size, "physical": counts, "warning": text}
