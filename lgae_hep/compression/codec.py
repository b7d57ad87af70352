"""The latent codec: packing a latent into per-jet real columns, its storage precision
(float32, truncated mantissa, float16) and the file's entropy coding (uproot's algorithms).

Packing: an LGAE latent (irrep ``(k, n)`` -> complex ``(B, tau, d)``) becomes ``(B, L)`` real
numbers, irreps in sorted order, each flattened as ``(tau, d, re/im)``; the layout
``[[k, n, tau, d], ...]`` (:func:`latent_layout`) is recorded in the metadata and undoes it
(:func:`unflatten_latent`). Nothing here needs torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import uproot

__all__ = [
    "COMPRESSIONS",
    "DEFAULT_COMPRESSION",
    "LATENT_DTYPES",
    "check_precision",
    "flatten_latent",
    "latent_layout",
    "layout_width",
    "load_latent",
    "parse_compression",
    "store_latent",
    "truncate_mantissa",
    "unflatten_latent",
]

#: Storage precisions of the latent.
LATENT_DTYPES = ("float32", "float16")
#: Compression algorithms of uproot by name (``"lzma:9"``, ``"zlib:1"``, ``"lz4:1"``,
#: ``"zstd:5"``: needs the ``zstandard`` package).
COMPRESSIONS = ("lzma", "zlib", "lz4", "zstd", "none")
#: Default file compression: LZMA level 1. Chosen by benchmarks/compress_throughput.py
#: (issue 22.4): on the compressed branches it writes files 5 % larger than LZMA level 9
#: (NanoAOD's setting; 169.9 vs 161.9 bytes per jet) at a tenth of its cost, which moves
#: compression from 3,015 jets/s (LZMA 9, idle 2-core machine) above 4,000; ZLIB 1 is 14 %
#: larger, LZ4 60 %, ZSTD (an extra package) no smaller at the same cost.
DEFAULT_COMPRESSION = "lzma:1"


# --------------------------------------------------------------------------------------------
# quantisation
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


def check_precision(latent_dtype: str, mantissa_bits: int | None) -> None:
    """``ValueError`` unless ``latent_dtype`` is one of :data:`LATENT_DTYPES` and
    ``mantissa_bits`` is None or valid for float32."""
    if latent_dtype not in LATENT_DTYPES:
        raise ValueError(f"latent_dtype must be one of {LATENT_DTYPES}, got {latent_dtype!r}")
    if mantissa_bits is not None:
        if latent_dtype != "float32":
            raise ValueError("mantissa_bits applies to latent_dtype='float32' only")
        truncate_mantissa(np.zeros(1, np.float32), mantissa_bits)  # validates the value


def store_latent(z: np.ndarray, latent_dtype: str, mantissa_bits: int | None) -> np.ndarray:
    """float64 (B, L) -> stored array: float32 (optionally truncated) or float16 bits (uint16)."""
    if latent_dtype == "float16":
        with np.errstate(over="ignore", invalid="ignore"):
            return z.astype(np.float16).view(np.uint16)
    with np.errstate(over="ignore", invalid="ignore"):
        z32 = z.astype(np.float32)
    return z32 if mantissa_bits is None else truncate_mantissa(z32, mantissa_bits)


def load_latent(stored: np.ndarray, latent_dtype: str) -> np.ndarray:
    """Stored latent -> float64 (B, L)."""
    if latent_dtype == "float16":
        return np.asarray(stored, dtype=np.uint16).view(np.float16).astype(np.float64)
    return np.asarray(stored, dtype=np.float64)


# --------------------------------------------------------------------------------------------
# packing
# --------------------------------------------------------------------------------------------


def latent_layout(latent: Mapping[Any, Any]) -> list[list[int]]:
    """``[[k, n, tau, d], ...]`` of an LGAE latent (irrep -> complex (B, tau, d)), sorted."""
    layout = []
    for key in sorted(latent):
        z = np.asarray(latent[key])
        if not (isinstance(key, tuple) and len(key) == 2 and np.iscomplexobj(z) and z.ndim == 3):
            raise ValueError(f"compression needs an LGAE latent (irrep -> complex (B, tau, d)); "
                             f"got key {key!r} with shape {tuple(z.shape)}")
        layout.append([int(key[0]), int(key[1]), int(z.shape[1]), int(z.shape[2])])
    return layout


def layout_width(layout: Sequence[Sequence[int]]) -> int:
    """Real numbers per jet of a packed latent."""
    return int(sum(2 * t * d for _, _, t, d in layout))


def flatten_latent(latent: Mapping[Any, Any]) -> np.ndarray:
    """irrep -> complex (B, tau, d) -> float64 (B, L) in the order of :func:`latent_layout`."""
    parts = []
    for key in sorted(latent):
        z = np.asarray(latent[key])
        parts.append(np.stack([z.real, z.imag], axis=-1).reshape(z.shape[0], -1))
    return np.concatenate(parts, axis=1).astype(np.float64)


def unflatten_latent(z: np.ndarray, layout: Sequence[Sequence[int]]
                     ) -> dict[tuple[int, int], np.ndarray]:
    """(B, L) real latent -> irrep -> complex128 (B, tau, d) (inverse of :func:`flatten_latent`)."""
    out: dict[tuple[int, int], np.ndarray] = {}
    b, col = z.shape[0], 0
    z = np.asarray(z, dtype=np.float64)
    for k, n, tau, d in layout:
        w = 2 * tau * d
        part = z[:, col: col + w].reshape(b, tau, d, 2)
        out[(int(k), int(n))] = part[..., 0] + 1j * part[..., 1]
        col += w
    return out


# --------------------------------------------------------------------------------------------
# entropy coding of the file
# --------------------------------------------------------------------------------------------


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
