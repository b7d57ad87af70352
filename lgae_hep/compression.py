"""Jet compression with an LGAE: store each jet as its latent, get particle-level jets back.

::

    import lgae_hep
    c = lgae_hep.compress(jets)          # CompressedJets: per-jet latent + side information
    rec = lgae_hep.decompress(c)         # [...][jet][particle] jets, same outer structure

    from lgae_hep.compression import compress_files, decompress_file
    compress_files(["nano.root"], "small.root")        # `lgae-hep compress`
    decompress_file("small.root", "jets.root")         # `lgae-hep decompress` (PFNano layout)

What a compressed jet holds
---------------------------
* the model's **latent** (every irrep ``(k, n)`` -> complex ``(tau, d)``, real and imaginary
  parts flattened in the order of ``metadata["latent_layout"]``), stored as float32, float32
  with a truncated mantissa (:func:`truncate_mantissa`, NanoAOD style) or float16;
* the **number of kept particles** ``n = min(multiplicity, N)``: the decoder emits ``N`` nodes
  and, as in :meth:`lgae_hep.models.LGAE.forward`, the first ``n`` are the jet (side
  information, not part of the latent);
* the **4-momentum of the kept particles** ``(E, px, py, pz)`` at full (float64) precision: it
  undoes the model's per-jet normalisation (a mass-normalised LGAE decodes in units of the jet
  mass, ``model.decode(latent, scale=m)``), whatever the model's ``normalization``;
* the **original index** of the jet in its collection, its original multiplicity and a
  **status** (:data:`STATUS_NAMES`);
* in files also the event keys ``run``, ``luminosityBlock``, ``event``, the index of the input
  file, and the jet collection's own kinematics and tagging fields exactly as stored.

Jets that cannot be encoded are never dropped: a jet without particles is marked ``empty``;
a jet with non-finite or unphysical momenta (``invalid``, the bad-input policy of
:mod:`lgae_hep.data.tensors`), a jet whose mass does not resolve under a mass-normalised model
(``unresolved``, :meth:`~lgae_hep.models.LGAE.unnormalizable`) and a jet whose latent is not
finite in the stored precision (``overflow``) keep their **raw constituents** (all of them, as
given) and come back exactly. One :class:`~lgae_hep.inference.InvalidJetWarning` counts them
(``on_invalid="raise"`` raises instead).

Decompressed particles
----------------------
The decoder's output 4-vectors are not constrained to be physical (for the bundled models
about 40 % of them are spacelike and ~1 % have E < 0). The PFNano layout stores
``pt, eta, phi, mass`` of physical particles, so :func:`decompress` (``physical=True``, the
default, and what files hold) keeps each output's 3-momentum and sets ``mass = max(m, 0)``
(spacelike outputs become massless; ``E`` is recomputed from ``|p|`` and the mass).
``physical=False`` returns the network's 4-vectors as they are (``px, py, pz, E``).

Models
------
The compressed data records the model's name, its config, the sha256 of its weights file (when
it was loaded from one) and :func:`model_checksum` (config + parameters, independent of the
precision the model was loaded in). Decompressing with another model is a ``ValueError``.
Only LGAE models (latent = dict irrep -> complex tensor, ``decode(latent, scale)``) compress.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import torch
import uproot
import vector
from tqdm.auto import tqdm

from lgae_hep import __version__
from lgae_hep.data import (
    cartesian_components,
    constituents_from_events,
    detect_layout,
    to_tensors,
    write_pfnano,
)
from lgae_hep.data.nanoaod import PUPPI_FIELD
from lgae_hep.data.pfnano import open_root
from lgae_hep.data.tensors import flatten_outer, restore_outer
from lgae_hep.data.vectors import pt_eta_phi_mass
from lgae_hep.inference import InvalidJetWarning
from lgae_hep.zoo import DEFAULT_MODEL, bundled_models, load_model, resolve_model

vector.register_awkward()

__all__ = [
    "COMPRESSIONS",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_COMPRESSION",
    "EVENT_KEYS",
    "FORMAT",
    "FORMAT_VERSION",
    "LATENT_DTYPES",
    "METADATA_KEY",
    "STATUS_NAMES",
    "TREE",
    "CompressedJets",
    "compress",
    "compress_files",
    "decompress",
    "decompress_file",
    "file_sha256",
    "model_checksum",
    "parse_compression",
    "read_compressed",
    "truncate_mantissa",
    "write_compressed",
]

#: ``metadata["format"]`` of compressed data.
FORMAT = "lgae-hep-compressed-jets"
#: Version of the compressed layout; readers refuse newer ones.
FORMAT_VERSION = 1
#: Name of the JSON metadata string in compressed files.
METADATA_KEY = "lgae_hep_compression"
#: Tree of compressed files (one entry per event).
TREE = "Events"
#: Event keys carried through compression, with their NanoAOD types.
EVENT_KEYS: dict[str, Any] = {"run": np.uint32, "luminosityBlock": np.uint32,
                              "event": np.uint64}
#: Jets per network call.
DEFAULT_BATCH_SIZE = 1024
#: Storage precisions of the latent.
LATENT_DTYPES = ("float32", "float16")
#: ``status`` code -> meaning. Only ``encoded`` jets hold a latent; ``invalid``,
#: ``unresolved`` and ``overflow`` jets hold their raw constituents; ``empty`` jets hold nothing.
STATUS_NAMES: dict[int, str] = {0: "encoded", 1: "empty", 2: "invalid", 3: "unresolved",
                                4: "overflow"}
ENCODED, EMPTY, INVALID, UNRESOLVED, OVERFLOW = range(5)
#: Compression algorithms of uproot by name (``"lzma:9"``, ``"zlib:1"``, ``"lz4:1"``,
#: ``"zstd:5"``: needs the ``zstandard`` package).
COMPRESSIONS = ("lzma", "zlib", "lz4", "zstd", "none")
#: Default file compression: LZMA level 9, what CMS NanoAOD uses.
DEFAULT_COMPRESSION = "lzma:9"

_RAW_FIELDS = ("pt", "eta", "phi", "mass", "charge", "pdgId")


# --------------------------------------------------------------------------------------------
# small public helpers
# --------------------------------------------------------------------------------------------


def truncate_mantissa(values: Any, bits: int) -> np.ndarray:
    """Round float32 values to ``bits`` explicit mantissa bits (NanoAOD's ``precision``).

    Round to nearest, ties to even, on the bit pattern; the dropped low bits become zero, which
    is what makes the values compress. Non-finite values are returned unchanged; a value that
    rounds past the largest float32 becomes ``inf``.

    Parameters
    ----------
    values : array_like
        Converted to float32 first.
    bits : int
        Explicit mantissa bits kept, 1..23 (23: unchanged).

    Returns
    -------
    np.ndarray
        float32, same shape.
    """
    if isinstance(bits, bool) or not isinstance(bits, int | np.integer) or not 1 <= bits <= 23:
        raise ValueError(f"mantissa bits must be an integer in 1..23, got {bits!r}")
    x = np.ascontiguousarray(values, dtype=np.float32)
    if bits == 23:
        return x.copy()
    shift = np.uint32(23 - int(bits))
    u = x.view(np.uint32)
    half = np.uint32((1 << (int(shift) - 1)) - 1)
    rounded = (u + half + ((u >> shift) & np.uint32(1))) & ~np.uint32((1 << int(shift)) - 1)
    out = rounded.view(np.float32)
    return np.where(np.isfinite(x), out, x)


def parse_compression(spec: str | None) -> Any:
    """``"lzma:9"`` / ``"zlib:1"`` / ``"lz4:1"`` / ``"zstd:5"`` / ``"none"`` -> uproot compression.

    ``None`` means :data:`DEFAULT_COMPRESSION`. Raises ``ValueError`` for anything else, and
    for ZSTD without the ``zstandard`` package.
    """
    spec = DEFAULT_COMPRESSION if spec is None else str(spec)
    name, _, level = spec.lower().partition(":")
    if name not in COMPRESSIONS:
        raise ValueError(f"unknown compression {spec!r}; use one of {list(COMPRESSIONS)} with "
                         "an optional ':level', e.g. 'lzma:9'")
    if name == "none":
        return None
    try:
        lvl = int(level) if level else {"lzma": 9, "zlib": 1, "lz4": 1, "zstd": 5}[name]
    except ValueError:
        raise ValueError(f"compression level in {spec!r} must be an integer") from None
    if not 1 <= lvl <= (22 if name == "zstd" else 9 if name != "lz4" else 12):
        raise ValueError(f"compression level {lvl} out of range for {name}")
    if name == "zstd":
        try:
            import zstandard  # noqa: F401
        except ImportError:
            raise ValueError("ZSTD compression needs the 'zstandard' package (pip install "
                             "zstandard); or use lzma, zlib or lz4") from None
    return {"lzma": uproot.LZMA, "zlib": uproot.ZLIB, "lz4": uproot.LZ4,
            "zstd": uproot.ZSTD}[name](lvl)


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


# --------------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------------


def _model_dtype_device(model: torch.nn.Module) -> tuple[torch.dtype, torch.device]:
    dtype = getattr(model, "dtype", None)
    device = torch.device("cpu")
    for p in model.parameters():
        device = p.device
        if not isinstance(dtype, torch.dtype) and p.is_floating_point():
            dtype = p.dtype
        break
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        dtype = torch.float32
    return dtype, device


def _model_info(model: Any, device: Any = None) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Load ``model`` (None / name / path / module) and describe it for the metadata."""
    if model is None:
        model = DEFAULT_MODEL
    info: dict[str, Any] = {"name": None, "file": None, "file_sha256": None}
    if isinstance(model, str | Path):
        name, path = resolve_model(model)
        info.update(name=name, file=str(path), file_sha256=file_sha256(path))
        module = load_model(model, device=device)
    elif isinstance(model, torch.nn.Module):
        module = model if device is None else model.to(torch.device(device))
        info["name"] = getattr(module, "name", None) or type(module).__name__
    else:
        raise ValueError("model must be None (bundled default), a bundled name, a checkpoint "
                         f"path or a torch module, got {type(model).__name__}")
    if not (callable(getattr(module, "encode", None)) and callable(getattr(module, "decode",
                                                                           None))
            and isinstance(getattr(module, "tau_latent", None), Mapping)):
        raise ValueError(f"{info['name']}: compression needs an LGAE model (a latent of "
                         "Lorentz irreps and decode(latent, scale)); GNNAE models are not "
                         "supported")
    dtype, _ = _model_dtype_device(module)
    cfg = dict(getattr(module, "config", {}) or {})
    info.update(checksum=model_checksum(module), config=cfg,
                dtype=str(dtype).replace("torch.", ""),
                normalization=str(cfg.get("normalization", getattr(module, "normalization",
                                                                    "none"))),
                num_particles=int(cfg.get("num_particles", module.num_particles)))
    return module, info


# --------------------------------------------------------------------------------------------
# in-memory compressed jets
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


def _latent_layout(latent: Mapping[Any, torch.Tensor]) -> list[list[int]]:
    layout = []
    for key in sorted(latent):
        z = latent[key]
        if not (isinstance(key, tuple) and len(key) == 2 and z.is_complex() and z.ndim == 3):
            raise ValueError(f"compression needs an LGAE latent (irrep -> complex (B, tau, d)); "
                             f"got key {key!r} with shape {tuple(z.shape)}")
        layout.append([int(key[0]), int(key[1]), int(z.shape[1]), int(z.shape[2])])
    return layout


def _layout_width(layout: Sequence[Sequence[int]]) -> int:
    return int(sum(2 * t * d for _, _, t, d in layout))


def _flatten_latent(latent: Mapping[Any, torch.Tensor]) -> np.ndarray:
    parts = [torch.view_as_real(latent[k]).reshape(latent[k].shape[0], -1)
             for k in sorted(latent)]
    return torch.cat(parts, dim=1).double().cpu().numpy()


def _unflatten_latent(z: np.ndarray, layout: Sequence[Sequence[int]], dtype: torch.dtype,
                      device: torch.device) -> dict[tuple[int, int], torch.Tensor]:
    """(B, L) real latent -> irrep -> complex (B, tau, d) in the complex type of ``dtype``."""
    out: dict[tuple[int, int], torch.Tensor] = {}
    b, col = z.shape[0], 0
    t = torch.from_numpy(np.ascontiguousarray(z)).to(device=device, dtype=dtype)
    for k, n, tau, d in layout:
        w = 2 * tau * d
        part = t[:, col: col + w].reshape(b, tau, d, 2)
        out[(int(k), int(n))] = torch.view_as_complex(part.contiguous())
        col += w
    return out


def _store_latent(z: np.ndarray, latent_dtype: str, mantissa_bits: int | None) -> np.ndarray:
    """float64 (B, L) -> stored array: float32 (optionally truncated) or float16 bits (uint16)."""
    if latent_dtype == "float16":
        with np.errstate(over="ignore", invalid="ignore"):
            return z.astype(np.float16).view(np.uint16)
    with np.errstate(over="ignore", invalid="ignore"):
        z32 = z.astype(np.float32)
    return z32 if mantissa_bits is None else truncate_mantissa(z32, mantissa_bits)


def _load_latent(stored: np.ndarray, latent_dtype: str) -> np.ndarray:
    """Stored latent -> float64 (B, L)."""
    if latent_dtype == "float16":
        return np.asarray(stored, dtype=np.uint16).view(np.float16).astype(np.float64)
    return np.asarray(stored, dtype=np.float64)


def _check_precision(latent_dtype: str, mantissa_bits: int | None) -> None:
    if latent_dtype not in LATENT_DTYPES:
        raise ValueError(f"latent_dtype must be one of {LATENT_DTYPES}, got {latent_dtype!r}")
    if mantissa_bits is not None:
        if latent_dtype != "float32":
            raise ValueError("mantissa_bits applies to latent_dtype='float32' only")
        truncate_mantissa(np.zeros(1, np.float32), mantissa_bits)  # validates the value


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
    rec = ak.zip({k: cols[k] for k in _RAW_FIELDS}, with_name="Momentum4D")
    raw_counts = np.where(take, counts, 0)
    return ak.unflatten(rec, raw_counts)


def _encode_flat(
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
    warn: bool = True,
) -> tuple[dict[str, Any], list[list[int]]]:
    """Encode ``[jet][particle]`` jets; per-jet columns (numpy / awkward) and the layout."""
    n_part = int(info["num_particles"])
    dtype, device = _model_dtype_device(module)
    jt = to_tensors(flat, n_part, dtype=dtype, backend="torch", on_invalid=on_invalid)
    p4, mask = jt.p4, jt.mask
    b = len(jt.counts)
    valid = jt.valid.cpu().numpy().astype(bool)
    counts = np.asarray(jt.counts, dtype=np.int64)
    zero = torch.zeros((), dtype=p4.dtype)
    # the kept particles' sum, summed in float64 exactly as the model's jet_mass does
    p4sum = torch.where(mask.unsqueeze(-1), p4, zero).double().sum(1).numpy()
    unresolved = np.zeros(b, bool)
    unnormalizable = getattr(module, "unnormalizable", None)
    chunks: list[np.ndarray] = []
    layout: list[list[int]] | None = None
    with torch.inference_mode():
        for start in range(0, b, batch_size):
            stop = min(start + batch_size, b)
            x = p4[start:stop].to(device)
            m = mask[start:stop].to(device)
            latent, _ = module.encode(x, m)
            if layout is None:
                layout = _latent_layout(latent)
            chunks.append(_flatten_latent(latent))
            if unnormalizable is not None:
                unresolved[start:stop] = unnormalizable(x, m).cpu().numpy()
            if bar is not None:
                bar.update(stop - start)
    if layout is None:  # no jets: the layout from one empty jet
        with torch.inference_mode():
            latent, _ = module.encode(torch.zeros((1, n_part, 4), dtype=dtype, device=device),
                                      torch.zeros((1, n_part), dtype=torch.bool, device=device))
        layout = _latent_layout(latent)
    width = _layout_width(layout)
    z = np.concatenate(chunks) if chunks else np.zeros((0, width))
    stored = _store_latent(z, latent_dtype, mantissa_bits)
    finite = np.isfinite(_load_latent(stored, latent_dtype)).all(axis=1)

    empty = counts == 0
    status = np.full(b, ENCODED, np.uint8)
    status[~valid] = INVALID
    unres = valid & ~empty & unresolved
    status[unres] = UNRESOLVED
    over = valid & ~empty & ~unres & ~finite
    status[over] = OVERFLOW
    status[empty & valid] = EMPTY
    encoded = status == ENCODED
    stored[~encoded] = 0
    n_bad, n_unres, n_over = int((~valid).sum()), int(unres.sum()), int(over.sum())
    if on_invalid == "raise" and (n_unres or n_over):
        raise ValueError(f"{what}: {n_unres} jet(s) whose mass is not resolved and {n_over} "
                         "with a non-finite latent cannot be encoded (on_invalid='raise')")
    if warn:
        _warn_raw(what, n_bad, n_unres, n_over, latent_dtype, stacklevel=4)
    keep_raw = (status == INVALID) | (status == UNRESOLVED) | (status == OVERFLOW)
    n_keep = np.where(encoded, np.minimum(counts, n_part), 0).astype(np.int16)
    cols: dict[str, Any] = {
        "status": status,
        "n": n_keep,
        "n_orig": counts,
        "E": p4sum[:, 0], "px": p4sum[:, 1], "py": p4sum[:, 2], "pz": p4sum[:, 3],
        "latent": stored,
        "raw": _raw_particles(flat, keep_raw),
    }
    for c in ("E", "px", "py", "pz"):
        cols[c] = np.where(valid, cols[c], np.nan)
    return cols, layout


def _warn_raw(what: str, n_bad: int, n_unres: int, n_over: int, latent_dtype: str,
              stacklevel: int) -> None:
    """One InvalidJetWarning counting the jets kept raw (nothing when there are none)."""
    if n_bad or n_unres or n_over:
        warnings.warn(
            f"{what}: {n_bad + n_unres + n_over} jet(s) could not be encoded and keep their "
            f"raw constituents: {n_bad} with non-finite or unphysical momenta, {n_unres} whose "
            f"mass is not resolved (m <= 2^-10 E) under the model's mass normalisation, "
            f"{n_over} with a latent that is not finite in {latent_dtype}",
            InvalidJetWarning, stacklevel=stacklevel)


def _local_index(structure: Sequence[np.ndarray], n: int) -> np.ndarray:
    if not structure:
        return np.arange(n, dtype=np.int64)
    last = np.asarray(structure[-1], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(last)[:-1]])
    return np.arange(n, dtype=np.int64) - np.repeat(starts, last)


def _records(cols: Mapping[str, Any], index: np.ndarray,
             extra: Mapping[str, np.ndarray] | None = None) -> ak.Array:
    contents: dict[str, Any] = {"index": np.asarray(index, dtype=np.int64)}
    for k, v in cols.items():
        if k == "latent":
            contents[k] = ak.from_numpy(np.asarray(v), regulararray=True)
        else:
            contents[k] = v
    for k, v in (extra or {}).items():
        contents[f"jet_{k}"] = v
    return ak.zip(contents, depth_limit=1)


def _metadata(info: Mapping[str, Any], layout: list[list[int]], latent_dtype: str,
              mantissa_bits: int | None, status: np.ndarray, **more: Any) -> dict[str, Any]:
    counts = {name: int((status == code).sum()) for code, name in STATUS_NAMES.items()}
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "lgae_hep_version": __version__,
        "model": {k: info[k] for k in ("name", "file", "file_sha256", "checksum", "config",
                                       "dtype", "normalization")},
        "num_particles": int(info["num_particles"]),
        "latent_layout": layout,
        "latent_width": _layout_width(layout),
        "latent_dtype": latent_dtype,
        "mantissa_bits": mantissa_bits,
        "n_jets": int(status.size),
        "status_counts": counts,
        "status_names": {str(k): v for k, v in STATUS_NAMES.items()},
        **more,
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
        An LGAE: ``None`` (the bundled default), a bundled name, a checkpoint path or a model.
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
    _check_precision(latent_dtype, mantissa_bits)
    _check_batch_size(batch_size)
    if on_invalid not in ("flag", "raise"):
        raise ValueError(f"on_invalid must be 'flag' or 'raise', got {on_invalid!r}")
    module, info = _model_info(model, device)
    flat, structure = flatten_outer(jets)
    bar = tqdm(total=len(flat), desc="lgae_hep.compress", unit="jet",
               disable=(len(flat) <= 50_000) if progress is None else not progress)
    try:
        cols, layout = _encode_flat(flat, module, info, batch_size=batch_size,
                                    latent_dtype=latent_dtype, mantissa_bits=mantissa_bits,
                                    on_invalid=on_invalid, bar=bar)
    finally:
        bar.close()
    rec = _records(cols, _local_index(structure, len(flat)))
    meta = _metadata(info, layout, latent_dtype, mantissa_bits, cols["status"])
    return CompressedJets(restore_outer(rec, structure), meta)


def _check_batch_size(batch_size: Any) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer) \
            or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")


# --------------------------------------------------------------------------------------------
# decompression
# --------------------------------------------------------------------------------------------


def _model_for(meta: Mapping[str, Any], model: Any, device: Any) -> torch.nn.Module:
    """The model that decodes ``meta``'s jets: the recorded one (``model=None``) or the one
    given, which must have the recorded checksum."""
    rec = meta["model"]
    if model is None:
        name = rec.get("name")
        if isinstance(name, str) and name in bundled_models():
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


def _check_meta(meta: Any, where: str) -> dict[str, Any]:
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


def _flatten_records(arr: ak.Array) -> tuple[ak.Array, list[np.ndarray]]:
    structure: list[np.ndarray] = []
    while arr.ndim > 1:
        structure.append(np.asarray(ak.to_numpy(ak.num(arr, axis=1)), dtype=np.int64))
        arr = ak.flatten(arr, axis=1)
    return arr, structure


def _decode_flat(
    flat: ak.Array,
    meta: Mapping[str, Any],
    module: torch.nn.Module,
    *,
    physical: bool,
    batch_size: int,
    bar: Any = None,
) -> ak.Array:
    """``[jet]`` compressed records -> ``[jet][particle]`` Momentum4D records."""
    n_part = int(meta["num_particles"])
    layout = meta["latent_layout"]
    width = _layout_width(layout)
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
    z = _load_latent(stored[enc], meta["latent_dtype"])
    bad = ~np.isfinite(z).all(axis=1)
    if bad.any():
        raise ValueError(f"corrupt latent: {int(bad.sum())} encoded jet(s) hold non-finite "
                         f"latent values (first: jet {int(enc[np.argmax(bad)])})")
    p4sum = np.stack([np.asarray(ak.to_numpy(flat[c]), dtype=np.float64)[enc]
                      for c in ("E", "px", "py", "pz")], axis=1) if b else np.zeros((0, 4))
    dtype, device = _model_dtype_device(module)
    normalised = str(meta["model"].get("normalization", "none")) != "none"
    if normalised and not np.isfinite(p4sum).all():
        raise ValueError("corrupt compressed data: non-finite jet 4-momentum of an encoded jet")
    outs: list[np.ndarray] = []
    with torch.inference_mode():
        for start in range(0, len(enc), batch_size):
            stop = min(start + batch_size, len(enc))
            latent = _unflatten_latent(z[start:stop], layout, dtype, device)
            scale = None
            if normalised:
                s = torch.from_numpy(p4sum[start:stop]).to(device)[:, None, :]
                scale = module.jet_scale(s, torch.ones(s.shape[:2], dtype=torch.bool,
                                                       device=device))
            outs.append(module.decode(latent, scale)["p4"].double().cpu().numpy())
            if bar is not None:
                bar.update(stop - start)
    p4 = np.concatenate(outs) if outs else np.zeros((0, n_part, 4))
    mask = np.arange(n_part)[None, :] < n_keep[enc][:, None]
    e, px, py, pz = (p4[..., i] for i in range(4))
    if physical:
        pt, eta, phi, mass = pt_eta_phi_mass(e, px, py, pz)
        mass = np.maximum(mass, 0.0)
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
        raw = ak.zip({k: raw[k] for k in _RAW_FIELDS})
    # jet order: encoded jets from dec_lists, the others (raw or empty) from raw
    src = np.empty(b, np.int64)
    src[enc] = np.arange(len(enc))
    others = np.setdiff1d(np.arange(b), enc, assume_unique=True)
    src[others] = len(enc) + others
    merged = ak.concatenate([dec_lists, raw]) if b else dec_lists
    out = merged[src] if b else merged
    fields = ak.fields(out)
    return ak.zip({f: out[f] for f in fields}, with_name="Momentum4D")


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
        ``None``: the model recorded at compression (bundled name or checkpoint path). A model
        given explicitly must be the same (checksum), else ``ValueError``.
    physical : bool
        ``True``: Momentum4D ``pt, eta, phi, mass`` with ``mass = max(m, 0)`` (what PFNano
        files hold, see the module docstring); ``False``: the network's ``px, py, pz, E``.
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
    _check_batch_size(batch_size)
    meta = _check_meta(compressed.metadata, "the compressed jets")
    module = _model_for(meta, model, device)
    flat, structure = _flatten_records(compressed.jets)
    bar = tqdm(total=int((np.asarray(ak.to_numpy(flat["status"])) == ENCODED).sum())
               if len(flat) else 0, desc="lgae_hep.decompress", unit="jet",
               disable=(len(flat) <= 50_000) if progress is None else not progress)
    try:
        out = _decode_flat(flat, meta, module, physical=physical, batch_size=batch_size,
                           bar=bar)
    finally:
        bar.close()
    return restore_outer(out, structure)


# --------------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------------


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
    for f in _RAW_FIELDS:
        dt = np.int32 if f in ("charge", "pdgId") else np.float32
        rcols[f] = np.asarray(ak.to_numpy(rflat[f]), dtype=dt)
    out[f"{collection}RawPFCands"] = ak.zip({k: ak.unflatten(v, per_event)
                                             for k, v in rcols.items()})
    return out


def _branch_type(values: Any) -> Any:
    return values.dtype if isinstance(values, np.ndarray) else values.type


class _Writer:
    """Appends chunks of compressed events to one TTree."""

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
    writer = _Writer(path, collection, parse_compression(compression))
    try:
        writer.write(cc)
    finally:
        writer.close({**c.metadata, "collection": collection, "n_events": n_events})
    return path


def _depth(arr: ak.Array) -> int:
    """List levels of compressed records (``[jet]``: 1, ``[event][jet]``: 2)."""
    return len(_flatten_records(arr)[1]) + 1


def _input_files(inputs: Any) -> list[Path]:
    if isinstance(inputs, str | Path):
        inputs = [inputs]
    files = [Path(p) for p in inputs]
    if not files:
        raise ValueError("no input files")
    return files


def _check_input(path: Path, tree: str, collection: str) -> tuple[Any, int]:
    with open_root(path) as f:
        if tree not in f:
            trees = [k for k, c in f.classnames().items() if c == "TTree"]
            raise ValueError(f"{path} has no tree {tree!r}; trees in the file: {trees}")
        t = f[tree]
        keys = set(t.keys())
        layout = detect_layout(keys, collection, where=f"tree {tree!r} of {path}")
        missing = [k for k in EVENT_KEYS if k not in keys]
        if missing:
            raise ValueError(f"{path}: event key branch(es) {missing} not found; compressed "
                             "files carry run, luminosityBlock and event")
        return layout, int(t.num_entries)


def _iter_events(files: Sequence[Path], tree: str, collection: str, step_size: Any,
                 puppi: bool | None) -> Iterator[tuple[int, Any, Any]]:
    """Chunks of events with the branches :func:`lgae_hep.read_nanoaod` reads (the PUPPI
    weights included when they are used) plus the event keys."""
    for source, path in enumerate(files):
        layout, _ = _check_input(path, tree, collection)
        expressions = [*EVENT_KEYS, *layout.branches()]
        weight = f"{layout.cands}_{PUPPI_FIELD}"
        if puppi is not False:
            with open_root(path) as f:
                if weight in f[tree].keys():
                    expressions.append(weight)
        for chunk in uproot.iterate({str(path): tree}, expressions=expressions,
                                    step_size=step_size, library="ak"):
            yield source, layout, chunk


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
    model and layout (:class:`CompressedJets`).

    Parameters
    ----------
    inputs : path or list of paths
        PFNano / NanoAOD files (see :func:`lgae_hep.read_nanoaod`).
    output : path
        Compressed ROOT file (overwritten).
    model : None, str, Path or torch.nn.Module
        The LGAE (default: the bundled default model).
    collection, tree : str
        Jet collection and tree name.
    pt_min, eta_max : float, optional
        Jet selection on the collection's ``pt`` / ``|eta|``; other jets are not stored
        (``lgaeIdx`` keeps the original indices of those that are).
    latent_dtype, mantissa_bits : see :func:`compress`.
    compression : str
        ``"lzma:9"`` (default, as NanoAOD), ``"zlib:N"``, ``"lz4:N"``, ``"zstd:N"``, ``"none"``.
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
        A missing jet collection or event-key branch, not a ROOT file, a non-LGAE model.
    FileNotFoundError
        A missing input file.
    """
    _check_precision(latent_dtype, mantissa_bits)
    _check_batch_size(batch_size)
    if on_invalid not in ("flag", "raise"):
        raise ValueError(f"on_invalid must be 'flag' or 'raise', got {on_invalid!r}")
    files = _input_files(inputs)
    total = 0
    for path in files:  # every input checked before any work
        total += _check_input(path, tree, collection)[1]
    if total == 0:
        raise ValueError(f"empty input: {', '.join(map(str, files))} hold(s) 0 events")
    comp = parse_compression(compression)
    module, info = _model_info(model, device)
    output = Path(output)
    if any(output.resolve() == p.resolve() for p in files):
        raise ValueError(f"output {output} is also an input")
    writer = _Writer(output, collection, comp)
    statuses: list[np.ndarray] = []
    layout: list[list[int]] | None = None
    n_events = 0
    jet_fields: list[str] = []
    bar = tqdm(total=total, desc="lgae-hep compress", unit="evt",
               disable=None if progress is None else not progress)
    ok = False
    try:
        for source, nano_layout, chunk in _iter_events(files, tree, collection, step_size,
                                                       puppi):
            parts, jets = constituents_from_events(chunk, collection, None, with_jets=True,
                                                   layout=nano_layout, puppi=puppi)
            index = ak.local_index(jets, axis=1)
            sel = None
            if pt_min is not None:
                sel = jets.pt > pt_min
            if eta_max is not None:
                cut = abs(jets.eta) < eta_max
                sel = cut if sel is None else (sel & cut)
            if sel is not None:
                parts, jets, index = parts[sel], jets[sel], index[sel]
            flat, structure = flatten_outer(parts)
            cols, layout = _encode_flat(flat, module, info, batch_size=batch_size,
                                        latent_dtype=latent_dtype, mantissa_bits=mantissa_bits,
                                        on_invalid=on_invalid, what="lgae-hep compress",
                                        warn=False)
            jflat = ak.flatten(jets, axis=1)
            jet_fields = [f for f in nano_layout.jet_fields if f in ak.fields(jflat)]
            extra = {f: np.asarray(ak.to_numpy(jflat[f])) for f in jet_fields}
            rec = _records(cols, np.asarray(ak.to_numpy(ak.flatten(index))), extra)
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
        meta = _metadata(info, layout or [], latent_dtype, mantissa_bits, status,
                         collection=collection, n_events=n_events, jet_fields=jet_fields,
                         inputs=[str(p) for p in files], complete=ok,
                         selection={"pt_min": pt_min, "eta_max": eta_max}, puppi=puppi,
                         compression=str(compression or DEFAULT_COMPRESSION))
        writer.close(meta)
    if not ok:  # pragma: no cover - the exception propagates from the try block
        raise RuntimeError("compression failed")
    _warn_raw("lgae-hep compress", int((status == INVALID).sum()),
              int((status == UNRESOLVED).sum()), int((status == OVERFLOW).sum()), latent_dtype,
              stacklevel=2)
    return {"output": str(output), "n_events": n_events, "n_jets": int(status.size),
            "status_counts": meta["status_counts"], "bytes": output.stat().st_size}


def read_compressed(path: str | Path) -> CompressedJets:
    """Read a compressed ROOT file (:func:`compress_files`) into :class:`CompressedJets`.

    Raises
    ------
    ValueError
        Not a compressed file (no or foreign metadata), a newer format, missing or corrupt
        branches (a latent branch missing or of the wrong type, inconsistent counts).
    FileNotFoundError
        A missing file.
    """
    path = Path(path)
    with open_root(path) as f:
        if METADATA_KEY not in f:
            raise ValueError(f"{path} is not an lgae-hep compressed file (no {METADATA_KEY!r} "
                             "metadata; compress files with `lgae-hep compress`)")
        try:
            meta = json.loads(str(f[METADATA_KEY]))
        except ValueError as err:
            raise ValueError(f"{path}: corrupt compression metadata ({err})") from None
        meta = _check_meta(meta, str(path))
        if not meta.get("complete", True):
            raise ValueError(f"{path}: compression did not finish (the file is incomplete)")
        if TREE not in f:
            raise ValueError(f"{path}: tree {TREE!r} missing (corrupt compressed file)")
        t = f[TREE]
        coll = str(meta.get("collection", "FatJet"))
        width = int(meta.get("latent_width", _layout_width(meta["latent_layout"])))
        want_dtype = np.dtype(np.uint16 if meta["latent_dtype"] == "float16" else np.float32)
        keys = set(t.keys())
        jet_fields = list(meta.get("jet_fields", []))
        names = ["lgaeIdx", "lgaeStatus", "lgaeN", "lgaeNOrig", "lgaeE", "lgaePx", "lgaePy",
                 "lgaePz", *[_latent_branch(i) for i in range(width)]]
        required = [*EVENT_KEYS, "lgaeSource", *[f"{coll}_{n}" for n in (*jet_fields, *names)],
                    *[f"{coll}RawPFCands_{n}" for n in ("jetIdx", *_RAW_FIELDS)]]
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
        try:
            arr = t.arrays(required, library="ak")
        except Exception as err:  # noqa: BLE001 - uproot/zlib/lzma raise many types on bad bytes
            raise ValueError(f"{path}: cannot read the compressed tree ({type(err).__name__}: "
                             f"{err}); the file is corrupt") from None
    n_jets = ak.num(arr[f"{coll}_lgaeIdx"], axis=1)
    for n in (*jet_fields, *names):
        if not ak.all(ak.num(arr[f"{coll}_{n}"], axis=1) == n_jets):
            raise ValueError(f"{path}: corrupt compressed file, branch {coll}_{n} has other "
                             f"jet counts than {coll}_lgaeIdx")

    def col(n: str) -> np.ndarray:
        return np.asarray(ak.to_numpy(ak.flatten(arr[f"{coll}_{n}"])))

    latent = np.stack([col(_latent_branch(i)) for i in range(width)], axis=1) if width else \
        np.zeros((int(ak.sum(n_jets)), 0), want_dtype)
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
        raise ValueError(f"{path}: corrupt compressed file, raw constituents not in jet order")
    total = int(jet_off[-1])
    raw_counts = np.bincount(gjet, minlength=total) if total else np.zeros(0, np.int64)
    rcols = {f: np.asarray(ak.to_numpy(ak.flatten(arr[f"{coll}RawPFCands_{f}"])))
             for f in _RAW_FIELDS}
    raw = ak.unflatten(ak.zip(rcols, with_name="Momentum4D"), raw_counts)
    cols: dict[str, Any] = {
        "status": col("lgaeStatus").astype(np.uint8),
        "n": col("lgaeN").astype(np.int16),
        "n_orig": col("lgaeNOrig").astype(np.int64),
        "E": col("lgaeE"), "px": col("lgaePx"), "py": col("lgaePy"), "pz": col("lgaePz"),
        "latent": latent,
        "raw": raw,
    }
    status = cols["status"]
    is_raw = (status == INVALID) | (status == UNRESOLVED) | (status == OVERFLOW)
    if np.any((raw_counts > 0) & ~is_raw) or np.any(raw_counts[is_raw]
                                                    != cols["n_orig"][is_raw]):
        raise ValueError(f"{path}: corrupt compressed file, raw constituents do not match the "
                         "jets' status and multiplicity")
    extra = {f: col(f) for f in jet_fields}
    rec = _records(cols, col("lgaeIdx").astype(np.int64), extra)
    events = {k: np.asarray(ak.to_numpy(arr[k])) for k in (*EVENT_KEYS, "lgaeSource")}
    return CompressedJets(ak.unflatten(rec, counts), meta, events)


def decompress_file(
    path: str | Path,
    output: str | Path,
    model: Any = None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: Any = None,
    progress: bool | None = None,
    compression: str | None = "lz4:1",
) -> dict[str, Any]:
    """Rebuild particle-level jets from a compressed file into a PFNano-layout ROOT file.

    The output has every event of the compressed file with its ``run``, ``luminosityBlock``,
    ``event``; the jet collection with its stored fields exactly as they were (``pt, eta, phi,
    mass``, ...), ``lgaeIdx`` (the original index), ``lgaeStatus`` and ``lgaeNOrig``; and the
    decompressed constituents as ``<collection>PFCands`` / ``PFCands`` (decoded particles:
    ``mass = max(m, 0)``, ``charge = pdgId = 0``; jets kept raw: their stored constituents), so
    :func:`lgae_hep.read_nanoaod` and coffea's ``PFNanoAODSchema`` read it like any PFNano file.

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

    Returns
    -------
    dict
        ``output``, ``n_events``, ``n_jets``, ``bytes``.
    """
    c = read_compressed(path)
    meta = c.metadata
    output = Path(output)
    if output.resolve() == Path(path).resolve():
        raise ValueError(f"output {output} is the compressed input")
    particles = decompress(c, model, batch_size=batch_size, device=device, progress=progress)
    coll = str(meta.get("collection", "FatJet"))
    jets = c.jets
    jet_fields: dict[str, Any] = {f: jets[f"jet_{f}"] for f in meta.get("jet_fields", [])}
    jet_fields.update(lgaeIdx=ak.values_astype(jets["index"], np.int32),
                      lgaeStatus=jets["status"],
                      lgaeNOrig=ak.values_astype(jets["n_orig"], np.int32))
    events = dict(c.events or {})
    out_meta = {"decompressed_from": str(path), "compression": {
        k: meta.get(k) for k in ("model", "latent_dtype", "mantissa_bits", "inputs",
                                 "status_counts", "num_particles")},
        "lgae_hep_version": __version__}
    write_pfnano(output, particles, jet_fields=jet_fields, event_fields=events,
                 metadata=out_meta, collection=coll,
                 compression=parse_compression(compression), sort_by_pt=False)
    return {"output": str(output), "n_events": len(jets), "n_jets": int(ak.sum(ak.num(jets))),
            "bytes": output.stat().st_size}
