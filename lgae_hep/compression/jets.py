"""Compressed jets in memory: :class:`CompressedJets`, :func:`compress` and :func:`decompress`.

Encoding runs the scoring engine (:func:`lgae_hep.inference.forward_batches` in its encode-only
mode: fixed-shape batches, the model's dtype and device, each jet in its rest frame, the latent
boosted back to the lab); decoding runs :func:`lgae_hep.inference.decode_batches`. Which jets
cannot be encoded is decided by the bad-input predicate (:mod:`lgae_hep.data.badinput`) and the
engine's :func:`~lgae_hep.inference.jet_status`; such jets keep their raw constituents (see
:mod:`lgae_hep.compression`).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import torch
import vector
from tqdm.auto import tqdm

from lgae_hep import __version__
from lgae_hep.data import cartesian_components, to_tensors
from lgae_hep.data.badinput import ENCODED, INVALID, OVERFLOW, STATUS_NAMES, UNRESOLVED
from lgae_hep.data.tensors import flatten_outer, restore_outer
from lgae_hep.data.vectors import pt_eta_phi_mass
from lgae_hep.inference import (
    DEFAULT_CHUNK_SIZE,
    InvalidJetWarning,
    decode_batches,
    empty_latent,
    forward_batches,
    jet_status,
    model_dtype_device,
)
from lgae_hep.zoo import COMPRESSION_MODEL, bundled_models, load_model, resolve_model

from .codec import (
    check_precision,
    flatten_latent,
    latent_layout,
    layout_width,
    load_latent,
    store_latent,
    unflatten_latent,
)
from .physical import make_physical, repair_counts, warn_repaired

vector.register_awkward()

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "FORMAT",
    "FORMAT_VERSION",
    "RAW_FIELDS",
    "STATUS_NAMES",
    "CompressedJets",
    "check_batch_size",
    "check_meta",
    "check_on_invalid",
    "compress",
    "decompress",
    "decode_jets",
    "encode_jets",
    "file_sha256",
    "flatten_records",
    "is_raw",
    "metadata",
    "model_checksum",
    "model_for",
    "model_info",
    "records",
    "warn_raw",
]

#: ``metadata["format"]`` of compressed data.
FORMAT = "lgae-hep-compressed-jets"
#: Version of the compressed layout; readers refuse newer ones.
FORMAT_VERSION = 1
#: Jets per network call.
DEFAULT_BATCH_SIZE = 1024
#: Fields of the raw constituents of jets kept raw.
RAW_FIELDS = ("pt", "eta", "phi", "mass", "charge", "pdgId")


# --------------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------------


def file_sha256(path: str | Path) -> str:
    """sha256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model_checksum(model: torch.nn.Module) -> str:
    """sha256 of a model's config (without its ``dtype``) and parameters (as float32).

    The same weights give the same checksum whether the model was loaded in float32 or
    float64, from a file or built in memory; any other config or weight gives another.
    """
    h = hashlib.sha256()
    cfg = dict(getattr(model, "config", {}) or {})
    cfg.pop("dtype", None)
    h.update(json.dumps(cfg, sort_keys=True, default=str).encode())
    for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        t = p.detach().cpu()
        if t.is_complex():
            t = torch.view_as_real(t.to(torch.complex64))
        elif t.is_floating_point():
            t = t.to(torch.float32)
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


def model_info(model: Any, device: Any = None) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Load ``model`` (None / name / path / module) and describe it for the metadata
    (``latent_layout`` included)."""
    if model is None:
        model = COMPRESSION_MODEL
    info: dict[str, Any] = {"name": None, "file": None, "file_sha256": None}
    if isinstance(model, str | Path):
        name, path = resolve_model(model)
        info.update(name=name, file=str(path), file_sha256=file_sha256(path))
        module = load_model(model, device=device)
    elif isinstance(model, torch.nn.Module):
        module = model if device is None else model.to(torch.device(device))
        info["name"] = getattr(module, "name", None) or type(module).__name__
    else:
        raise ValueError("model must be None (the bundled compression model), a bundled name, "
                         f"a checkpoint path or a torch module, got {type(model).__name__}")
    if not (callable(getattr(module, "encode", None)) and callable(getattr(module, "decode",
                                                                           None))
            and isinstance(getattr(module, "tau_latent", None), Mapping)):
        raise ValueError(f"{info['name']}: compression needs an LGAE model (a latent of "
                         "Lorentz irreps and decode(latent, scale)); GNNAE models are not "
                         "supported")
    dtype, _ = model_dtype_device(module)
    cfg = dict(getattr(module, "config", {}) or {})
    n_part = int(cfg.get("num_particles", module.num_particles))
    info.update(checksum=model_checksum(module), config=cfg,
                dtype=str(dtype).replace("torch.", ""),
                normalization=str(cfg.get("normalization", getattr(module, "normalization",
                                                                    "none"))),
                num_particles=n_part,
                latent_layout=latent_layout(empty_latent(module, n_part)))
    return module, info


def _bundled_with_sha256(sha: Any) -> str | None:
    """The bundled model whose weights file has SHA-256 ``sha`` (None: none, or no hash)."""
    if not isinstance(sha, str):
        return None
    for name, path in bundled_models().items():
        if file_sha256(path) == sha:
            return name
    return None


def model_for(meta: Mapping[str, Any], model: Any, device: Any) -> torch.nn.Module:
    """The model that decodes ``meta``'s jets: the recorded one (``model=None``) or the one
    given, which must have the recorded checksum."""
    rec = meta["model"]
    if model is None:
        name = rec.get("name")
        kept = _bundled_with_sha256(rec.get("file_sha256"))
        if kept is not None:
            # the very file that compressed: the bundled one of that name, or the superseded
            # bundle kept under another name (lgae-compress-v1 for the lgae-compress of before)
            model = load_model(kept, device=device, dtype=rec.get("dtype"))
        elif isinstance(name, str) and name in bundled_models():
            model = load_model(name, device=device, dtype=rec.get("dtype"))
        elif isinstance(rec.get("file"), str) and Path(rec["file"]).is_file():
            model = load_model(rec["file"], device=device, dtype=rec.get("dtype"))
        else:
            raise ValueError(f"the jets were compressed with model {name!r} "
                             f"({rec.get('file')}), which is not available here; pass the "
                             "model (a bundled name, a checkpoint path or the model object)")
    elif isinstance(model, str | Path):
        model = load_model(model, device=device, dtype=rec.get("dtype"))
    elif isinstance(model, torch.nn.Module):
        model = model if device is None else model.to(torch.device(device))
    else:
        raise ValueError("model must be None (the one recorded at compression), a bundled "
                         f"name, a checkpoint path or a torch module, got {type(model).__name__}")
    got = model_checksum(model)
    if got != rec.get("checksum"):
        raise ValueError(
            f"model mismatch: the jets were compressed with {rec.get('name')!r} (checksum "
            f"{str(rec.get('checksum'))[:16]}...) but the decoding model has checksum "
            f"{got[:16]}...; decompress with the model that compressed them")
    return model


# --------------------------------------------------------------------------------------------
# the container and its metadata
# --------------------------------------------------------------------------------------------


@dataclass
class CompressedJets:
    """Compressed jets: per-jet records and the metadata needed to decompress them.

    Attributes
    ----------
    jets : ak.Array
        ``[...][jet]`` records with the outer structure of the compressed input. Fields:
        ``index`` (int64, original position in its list), ``status`` (uint8,
        :data:`STATUS_NAMES`), ``n`` (int16, particles the decoder emits), ``n_orig`` (int64,
        original multiplicity), ``E, px, py, pz`` (float64 sum of the kept particles),
        ``latent`` (``(L,)`` float32, or uint16 holding float16 bits; zero unless encoded),
        ``raw`` (the raw constituents ``pt, eta, phi, mass, charge, pdgId`` of jets kept raw,
        empty otherwise) and, for jets read from files, ``jet_<field>`` (the collection's own
        fields, e.g. ``jet_pt``, as stored).
    metadata : dict
        JSON-serialisable: format, model (name, checksums, config), latent layout and
        precision, particles per jet, status counts.
    events : dict or None
        Per-event arrays (``run``, ``luminosityBlock``, ``event``, ``source``) when the jets
        came from files (``jets`` is then ``[event][jet]``).
    """

    jets: ak.Array
    metadata: dict[str, Any]
    events: dict[str, np.ndarray] | None = field(default=None)

    def __len__(self) -> int:
        return len(self.jets)

    @property
    def n_jets(self) -> int:
        """Total number of jets (all outer levels flattened)."""
        return int(self.metadata.get("n_jets", 0))


def metadata(info: Mapping[str, Any], latent_dtype: str, mantissa_bits: int | None,
             status: np.ndarray, **more: Any) -> dict[str, Any]:
    """The metadata of compressed jets (``info``: :func:`model_info`)."""
    counts = {name: int((status == code).sum()) for code, name in STATUS_NAMES.items()}
    layout = info["latent_layout"]
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "lgae_hep_version": __version__,
        "model": {k: info[k] for k in ("name", "file", "file_sha256", "checksum", "config",
                                       "dtype", "normalization")},
        "num_particles": int(info["num_particles"]),
        "latent_layout": layout,
        "latent_width": layout_width(layout),
        "latent_dtype": latent_dtype,
        "mantissa_bits": mantissa_bits,
        "n_jets": int(status.size),
        "status_counts": counts,
        "status_names": {str(k): v for k, v in STATUS_NAMES.items()},
        **more,
    }


def check_meta(meta: Any, where: str) -> dict[str, Any]:
    """``ValueError`` unless ``meta`` is compressed-jets metadata this version reads."""
    if not isinstance(meta, Mapping) or meta.get("format") != FORMAT:
        raise ValueError(f"{where} is not lgae-hep compressed data (metadata format "
                         f"{(meta or {}).get('format') if isinstance(meta, Mapping) else None!r},"
                         f" expected {FORMAT!r})")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise ValueError(f"{where}: compressed format version {meta.get('format_version')} is "
                         f"newer than this lgae-hep reads ({FORMAT_VERSION}); upgrade lgae-hep")
    for key in ("model", "latent_layout", "latent_dtype", "num_particles"):
        if key not in meta:
            raise ValueError(f"{where}: compressed metadata lacks {key!r} (corrupt file)")
    return dict(meta)


def check_batch_size(batch_size: Any) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer) \
            or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")


def check_on_invalid(on_invalid: str) -> None:
    if on_invalid not in ("flag", "raise"):
        raise ValueError(f"on_invalid must be 'flag' or 'raise', got {on_invalid!r}")


def is_raw(status: np.ndarray) -> np.ndarray:
    """Jets that keep their raw constituents: ``invalid``, ``unresolved``, ``overflow``."""
    return (status == INVALID) | (status == UNRESOLVED) | (status == OVERFLOW)


def warn_raw(what: str, status: np.ndarray, latent_dtype: str, stacklevel: int) -> None:
    """One InvalidJetWarning counting the jets kept raw (nothing when there are none)."""
    n_bad, n_unres, n_over = (int((status == s).sum()) for s in (INVALID, UNRESOLVED, OVERFLOW))
    if n_bad or n_unres or n_over:
        warnings.warn(
            f"{what}: {n_bad + n_unres + n_over} jet(s) could not be encoded and keep their "
            f"raw constituents: {n_bad} with non-finite or unphysical momenta, {n_unres} whose "
            f"mass is not resolved (m <= 2^-10 E) under the model's mass normalisation, "
            f"{n_over} with a latent that is not finite in {latent_dtype}",
            InvalidJetWarning, stacklevel=stacklevel + 1)


def records(cols: Mapping[str, Any], index: np.ndarray,
            extra: Mapping[str, np.ndarray] | None = None) -> ak.Array:
    """``[jet]`` compressed records from per-jet columns (``extra``: ``jet_<field>``)."""
    contents: dict[str, Any] = {"index": np.asarray(index, dtype=np.int64)}
    for k, v in cols.items():
        if k == "latent":
            contents[k] = ak.from_numpy(np.asarray(v), regulararray=True)
        else:
            contents[k] = v
    for k, v in (extra or {}).items():
        contents[f"jet_{k}"] = v
    return ak.zip(contents, depth_limit=1)


def flatten_records(arr: ak.Array) -> tuple[ak.Array, list[np.ndarray]]:
    """``[...][jet]`` records -> ``[jet]`` and the counts of each outer level."""
    structure: list[np.ndarray] = []
    while arr.ndim > 1:
        structure.append(np.asarray(ak.to_numpy(ak.num(arr, axis=1)), dtype=np.int64))
        arr = ak.flatten(arr, axis=1)
    return arr, structure


def _local_index(structure: Sequence[np.ndarray], n: int) -> np.ndarray:
    if not structure:
        return np.arange(n, dtype=np.int64)
    last = np.asarray(structure[-1], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(last)[:-1]])
    return np.arange(n, dtype=np.int64) - np.repeat(starts, last)


# --------------------------------------------------------------------------------------------
# encoding
# --------------------------------------------------------------------------------------------


def _raw_particles(flat: ak.Array, take: np.ndarray) -> ak.Array:
    """Raw constituents of the jets ``take`` (bool per jet) as pt/eta/phi/mass/charge/pdgId
    lists, empty lists elsewhere; values kept as given when the input has those fields."""
    counts = np.asarray(ak.to_numpy(ak.num(flat, axis=1)), dtype=np.int64)
    sub = flat[take]
    fields = set(ak.fields(flat))
    n_sub = int(counts[take].sum())
    cols: dict[str, np.ndarray] = {}
    if {"pt", "eta", "phi", "mass"} <= fields:
        for f in ("pt", "eta", "phi", "mass"):
            cols[f] = np.asarray(ak.to_numpy(ak.flatten(sub[f], axis=None)))
    elif n_sub:
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            cols.update(zip(("pt", "eta", "phi", "mass"),
                            pt_eta_phi_mass(*cartesian_components(sub))))
    else:
        cols.update({f: np.zeros(0) for f in ("pt", "eta", "phi", "mass")})
    for f in ("charge", "pdgId"):
        cols[f] = (np.asarray(ak.to_numpy(ak.flatten(sub[f], axis=None)), dtype=np.int32)
                   if f in fields else np.zeros(n_sub, np.int32))
    rec = ak.zip({k: cols[k] for k in RAW_FIELDS}, with_name="Momentum4D")
    raw_counts = np.where(take, counts, 0)
    return ak.unflatten(rec, raw_counts)


def encode_jets(
    flat: ak.Array,
    module: torch.nn.Module,
    info: Mapping[str, Any],
    *,
    batch_size: int,
    latent_dtype: str,
    mantissa_bits: int | None,
    on_invalid: str,
    bar: Any = None,
    what: str = "lgae_hep.compress",
) -> dict[str, Any]:
    """Encode ``[jet][particle]`` jets with the scoring engine; per-jet columns of
    :class:`CompressedJets` (numpy / awkward). Warns about nothing (see :func:`warn_raw`)."""
    n_part = int(info["num_particles"])
    width = layout_width(info["latent_layout"])
    b = len(flat)
    parts: list[tuple[Any, Any, np.ndarray, np.ndarray]] = []
    chunk = max(batch_size, (DEFAULT_CHUNK_SIZE // batch_size) * batch_size)
    for start in range(0, b, chunk):
        # float64 tensors, as the engine's run_chunks converts them; the bad-input predicate
        # (lgae_hep.data.badinput) flags jets here (valid False, zeroed and masked)
        jt = to_tensors(flat[start: start + chunk], n_part, dtype=torch.float64,
                        backend="torch", on_invalid=on_invalid)
        res = forward_batches(module, jt.p4, jt.mask, batch_size=batch_size, want_latent=True,
                              want_reco=False, encode_only=True)
        # the kept particles' sum, computed as rest_frame_boosts sums them: decode_batches
        # rebuilds the same rest frame (and a mass-normalised model's unit) from it
        p4sum = (jt.p4 * jt.mask.unsqueeze(-1)).sum(1).numpy()
        z = flatten_latent(res.latent) if len(jt.counts) else np.zeros((0, width))
        parts.append((jt, res, p4sum, z))
        if bar is not None:
            bar.update(len(jt.counts))
    if parts:
        valid = np.concatenate([jt.valid.numpy().astype(bool) for jt, *_ in parts])
        counts = np.concatenate([np.asarray(jt.counts, dtype=np.int64) for jt, *_ in parts])
        finite = np.concatenate([res.finite for _, res, *_ in parts])
        unresolved = np.concatenate([res.unresolved for _, res, *_ in parts])
        p4sum = np.concatenate([p for *_, p, _ in parts])
        z = np.concatenate([zz for *_, zz in parts])
    else:
        valid, finite, unresolved = (np.zeros(0, bool) for _ in range(3))
        counts, p4sum, z = np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros((0, width))
    if z.shape[1] != width:
        raise ValueError(f"the model's latent has {z.shape[1]} real numbers per jet, its "
                         f"layout {info['latent_layout']} {width}")
    stored = store_latent(z, latent_dtype, mantissa_bits)
    # a latent must also be finite in its stored precision (float16 overflows above 65504)
    finite = finite & np.isfinite(load_latent(stored, latent_dtype)).all(axis=1)
    status = jet_status(valid, counts, finite, unresolved)
    encoded = status == ENCODED
    stored[~encoded] = 0
    n_unres, n_over = int((status == UNRESOLVED).sum()), int((status == OVERFLOW).sum())
    if on_invalid == "raise" and (n_unres or n_over):
        raise ValueError(f"{what}: {n_unres} jet(s) whose mass is not resolved and {n_over} "
                         "with a non-finite latent cannot be encoded (on_invalid='raise')")
    n_keep = np.where(encoded, np.minimum(counts, n_part), 0).astype(np.int16)
    p4sum = np.where(valid[:, None], p4sum, np.nan)
    return {
        "status": status,
        "n": n_keep,
        "n_orig": counts,
        "E": p4sum[:, 0], "px": p4sum[:, 1], "py": p4sum[:, 2], "pz": p4sum[:, 3],
        "latent": stored,
        "raw": _raw_particles(flat, is_raw(status)),
    }


def compress(
    jets: Any,
    model: Any = None,
    *,
    latent_dtype: str = "float32",
    mantissa_bits: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: Any = None,
    progress: bool | None = None,
    on_invalid: str = "flag",
) -> CompressedJets:
    """Compress jets to their LGAE latents plus what is needed to decode them.

    Parameters
    ----------
    jets : ak.Array
        ``[...][jet][particle]`` Lorentz-vector records (any outer list levels, any
        multiplicity), as for :func:`lgae_hep.score`.
    model : None, str, Path or torch.nn.Module
        An LGAE: ``None`` (the bundled compression model, ``lgae-compress``), a bundled
        name, a checkpoint path or a model.
    latent_dtype : {"float32", "float16"}
        Storage precision of the latent.
    mantissa_bits : int, optional
        With float32: keep this many mantissa bits (:func:`truncate_mantissa`).
    batch_size : int
        Jets per network call.
    device : str or torch.device, optional
        Where the network runs.
    progress : bool or None
        tqdm bar (``None``: only above 50,000 jets).
    on_invalid : {"flag", "raise"}
        Jets that cannot be encoded: keep them raw with one ``InvalidJetWarning``, or raise
        ``ValueError``.

    Returns
    -------
    CompressedJets
        ``.jets`` has the outer structure of ``jets`` (see :class:`CompressedJets`).
    """
    check_precision(latent_dtype, mantissa_bits)
    check_batch_size(batch_size)
    check_on_invalid(on_invalid)
    module, info = model_info(model, device)
    flat, structure = flatten_outer(jets)
    bar = tqdm(total=len(flat), desc="lgae_hep.compress", unit="jet",
               disable=(len(flat) <= 50_000) if progress is None else not progress)
    try:
        cols = encode_jets(flat, module, info, batch_size=batch_size,
                           latent_dtype=latent_dtype, mantissa_bits=mantissa_bits,
                           on_invalid=on_invalid, bar=bar)
    finally:
        bar.close()
    warn_raw("lgae_hep.compress", cols["status"], latent_dtype, stacklevel=2)
    rec = records(cols, _local_index(structure, len(flat)))
    meta = metadata(info, latent_dtype, mantissa_bits, cols["status"])
    return CompressedJets(restore_outer(rec, structure), meta)


# --------------------------------------------------------------------------------------------
# decoding
# --------------------------------------------------------------------------------------------


def decode_jets(
    flat: ak.Array,
    meta: Mapping[str, Any],
    module: torch.nn.Module,
    *,
    physical: bool,
    batch_size: int,
    bar: Any = None,
) -> tuple[ak.Array, np.ndarray, dict[str, int]]:
    """``[jet]`` compressed records -> ``[jet][particle]`` Momentum4D records, the per-jet
    repair code (:data:`~lgae_hep.compression.physical.REPAIR_NAMES`; 0 for jets not encoded
    and with ``physical=False``) and the repair counts
    (:func:`~lgae_hep.compression.physical.repair_counts`).

    ``physical=True``: the decoder's outputs made physical by
    :func:`~lgae_hep.compression.physical.make_physical` (each jet's decoded 4-momentum kept),
    as ``pt, eta, phi, mass`` sorted by pT; ``False``: the outputs as ``px, py, pz, E``."""
    n_part = int(meta["num_particles"])
    layout = meta["latent_layout"]
    width = layout_width(layout)
    b = len(flat)
    status = np.asarray(ak.to_numpy(flat["status"]), dtype=np.int64)
    n_keep = np.asarray(ak.to_numpy(flat["n"]), dtype=np.int64)
    if np.any(~np.isin(status, list(STATUS_NAMES))):
        raise ValueError(f"corrupt compressed data: unknown status values "
                         f"{sorted(set(status.tolist()) - set(STATUS_NAMES))}")
    if np.any((n_keep < 0) | (n_keep > n_part)):
        raise ValueError(f"corrupt compressed data: particle counts outside 0..{n_part}")
    stored = np.asarray(ak.to_numpy(flat["latent"])) if b else np.zeros((0, width))
    if stored.ndim != 2 or stored.shape[1] != width:
        raise ValueError(f"corrupt latent: {stored.shape[1:] if stored.ndim == 2 else stored.shape}"
                         f" values per jet, the layout {layout} needs {width}")
    enc = np.flatnonzero(status == ENCODED)
    z = load_latent(stored[enc], meta["latent_dtype"])
    bad = ~np.isfinite(z).all(axis=1)
    if bad.any():
        raise ValueError(f"corrupt latent: {int(bad.sum())} encoded jet(s) hold non-finite "
                         f"latent values (first: jet {int(enc[np.argmax(bad)])})")
    p4sum = np.stack([np.asarray(ak.to_numpy(flat[c]), dtype=np.float64)[enc]
                      for c in ("E", "px", "py", "pz")], axis=1) if b else np.zeros((0, 4))
    if not np.isfinite(p4sum).all():
        raise ValueError("corrupt compressed data: non-finite jet 4-momentum of an encoded jet")
    # the rest frame each jet was encoded in, and a mass-normalised model's unit, from p4sum
    p4 = decode_batches(module, unflatten_latent(z, layout), batch_size=batch_size,
                        jet_p4=p4sum, bar=bar)
    mask = np.arange(n_part)[None, :] < n_keep[enc][:, None]
    repair = np.zeros(b, np.uint8)
    if physical:
        # outputs outside the light cone -> physical particles with the same jet sum
        p4, unphysical, repair_enc = make_physical(p4, mask)
        repair[enc] = repair_enc
        counts = repair_counts(unphysical, repair_enc, int(mask.sum()))
    else:
        counts = repair_counts(np.zeros(0, bool), np.zeros(0, np.uint8), int(mask.sum()))
    e, px, py, pz = (p4[..., i] for i in range(4))
    if physical:
        pt, eta, phi, mass = pt_eta_phi_mass(e, px, py, pz)
        mass = np.maximum(mass, 0.0)  # massless repaired outputs: -0 or rounding below 0
        order = np.argsort(np.where(mask, -pt, np.inf), axis=1, kind="stable")
        take = (lambda a: np.take_along_axis(a, order, axis=1)[mask])  # noqa: E731
        dec = {"pt": take(pt), "eta": take(eta), "phi": take(phi), "mass": take(mass)}
    else:
        dec = {"px": px[mask], "py": py[mask], "pz": pz[mask], "E": e[mask]}
    n_dec = int(mask.sum())
    dec["charge"] = np.zeros(n_dec, np.int32)
    dec["pdgId"] = np.zeros(n_dec, np.int32)
    dec_lists = ak.unflatten(ak.zip(dec), mask.sum(axis=1))

    raw = flat["raw"]
    if not physical and len(raw):
        rflat = ak.flatten(raw, axis=1)
        if len(rflat):
            e_r, px_r, py_r, pz_r = cartesian_components(rflat)
        else:
            e_r = px_r = py_r = pz_r = np.zeros(0)
        rcols = {"px": px_r, "py": py_r, "pz": pz_r, "E": e_r,
                 "charge": np.asarray(ak.to_numpy(rflat["charge"]), np.int32),
                 "pdgId": np.asarray(ak.to_numpy(rflat["pdgId"]), np.int32)}
        raw = ak.unflatten(ak.zip(rcols), ak.num(raw, axis=1))
    else:
        raw = ak.zip({k: raw[k] for k in RAW_FIELDS})
    # jet order: encoded jets from dec_lists, the others (raw or empty) from raw
    src = np.empty(b, np.int64)
    src[enc] = np.arange(len(enc))
    others = np.setdiff1d(np.arange(b), enc, assume_unique=True)
    src[others] = len(enc) + others
    merged = ak.concatenate([dec_lists, raw]) if b else dec_lists
    out = merged[src] if b else merged
    fields = ak.fields(out)
    return ak.zip({f: out[f] for f in fields}, with_name="Momentum4D"), repair, counts


def decompress(
    compressed: CompressedJets,
    model: Any = None,
    *,
    physical: bool = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: Any = None,
    progress: bool | None = None,
) -> ak.Array:
    """Particle-level jets back from :func:`compress` output (or :func:`read_compressed`).

    Parameters
    ----------
    compressed : CompressedJets
        What :func:`compress` or :func:`read_compressed` returned.
    model : None, str, Path or torch.nn.Module
        ``None``: the model recorded at compression: the bundled model whose weight file has
        the recorded SHA-256 (also a superseded bundle kept under a new name, e.g.
        ``lgae-compress-v1``), else the recorded bundled name or checkpoint path. A model
        given explicitly must be the same (checksum), else ``ValueError``.
    physical : bool
        ``True``: physical Momentum4D ``pt, eta, phi, mass`` (what PFNano files hold): in each
        jet with decoder outputs outside the light cone, the particles are repaired keeping the
        decoded jet 4-momentum (:mod:`lgae_hep.compression.physical`; one
        :class:`~lgae_hep.compression.physical.UnphysicalOutputWarning` counts them);
        ``False``: the network's ``px, py, pz, E`` as they are (:func:`lgae_hep.reconstruct`).
    batch_size, device, progress
        As for :func:`compress`.

    Returns
    -------
    ak.Array
        ``[...][jet][particle]`` with the outer structure of the compressed jets, particles
        sorted by pT (``physical=True``); fields also ``charge``, ``pdgId`` (0 for decoded
        particles). Jets kept raw come back exactly as given; empty jets stay empty.
    """
    if not isinstance(compressed, CompressedJets):
        raise ValueError("decompress expects CompressedJets (from lgae_hep.compress or "
                         f"read_compressed), got {type(compressed).__name__}")
    check_batch_size(batch_size)
    meta = check_meta(compressed.metadata, "the compressed jets")
    module = model_for(meta, model, device)
    flat, structure = flatten_records(compressed.jets)
    bar = tqdm(total=int((np.asarray(ak.to_numpy(flat["status"])) == ENCODED).sum())
               if len(flat) else 0, desc="lgae_hep.decompress", unit="jet",
               disable=(len(flat) <= 50_000) if progress is None else not progress)
    try:
        out, _, counts = decode_jets(flat, meta, module, physical=physical,
                                     batch_size=batch_size, bar=bar)
    finally:
        bar.close()
    warn_repaired("lgae_hep.decompress", counts, stacklevel=2)
    return restore_outer(out, structure)
