"""Latent layout: an LGAE latent as flat per-jet columns (with the names of its Lorentz-invariant
columns) or as nested per-jet records. Used by the scoring engine, the API, the processor,
the densities and compression; the layout depends only on the latent's keys and shapes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import awkward as ak
import numpy as np

from lgae_hep.lorentz import invariant_form, irrep_to_fourvec

__all__ = ["LatentColumns", "latent_columns", "latent_records"]




def _irrep_key(key: Any) -> tuple[int, int] | None:
    """A latent key as an irrep ``(k, n)`` (tuple or ``"(k, n)"`` string), else None."""
    if (
        isinstance(key, tuple)
        and len(key) == 2
        and all(isinstance(k, int | np.integer) for k in key)
    ):
        return int(key[0]), int(key[1])
    if isinstance(key, str):
        digits = [t for t in key.replace("(", " ").replace(")", " ").replace(",", " ").split()]
        if len(digits) == 2 and all(d.isdigit() for d in digits):
            return int(digits[0]), int(digits[1])
    return None


def _flat2(z: np.ndarray) -> np.ndarray:
    """(B, ...) -> (B, prod(...)), also for B = 0."""
    return z.reshape(z.shape[0], int(np.prod(z.shape[1:])))


def _fourvectors(z: np.ndarray) -> np.ndarray:
    """(1,1) canonical-basis complex (..., 4) -> complex Cartesian (E, px, py, pz)."""
    return np.asarray(irrep_to_fourvec(np.asarray(z, dtype=np.complex128)))


def _minkowski_norm(z: np.ndarray) -> np.ndarray:
    """Bilinear Lorentz invariant ``z^T M z`` of (1,1) irrep vectors (..., 4), M the invariant
    form (the Minkowski metric in Cartesian coordinates): complex (...)."""
    m = np.asarray(invariant_form((1, 1)))
    z = np.asarray(z, dtype=np.complex128)
    return np.einsum("...i,ij,...j->...", z, m, z)


class LatentColumns(NamedTuple):
    """What :func:`latent_columns` returns (unpacks as ``cols, invariants``)."""

    #: column name -> (B,) float64, in layout order
    columns: dict[str, np.ndarray]
    #: names of the columns that are Lorentz invariants, in layout order
    invariants: list[str]


def latent_columns(latent: Mapping[Any, np.ndarray]) -> LatentColumns:
    """Flat per-jet columns of a latent, and which of them are Lorentz invariants.

    LGAE latents (irrep ``(k, n)`` -> complex ``(B, tau, d)``) give, for channel ``i``:

    * ``s{i}_re``, ``s{i}_im``: the complex latent scalars ``(0, 0)`` (invariants);
    * ``v{i}_norm_re``, ``v{i}_norm_im``: the complex Minkowski square ``v . v`` of the latent
      4-vector ``(1, 1)`` (bilinear, via :func:`lgae_hep.lorentz.invariant_form`; invariants);
    * ``v{i}_{E,px,py,pz}_{re,im}``: Cartesian components of the latent 4-vectors (covariant);
    * ``k{k}n{n}_{i}_{j}_{re,im}``: components of any other irrep (canonical basis).

    Real latents (GNNAE: ``{"jet": (B, L)}`` or ``{"particle": (B, N, L)}``) give
    ``{name}_{j}`` for every flattened component (no invariants).

    The layout depends only on the latent's keys and shapes, so
    ``latent_columns(empty_latent(model, n)).invariants`` names a model's invariant columns.

    Returns
    -------
    LatentColumns
        ``(columns: dict name -> (B,) float64, invariants: list of invariant column names)``.
    """
    cols: dict[str, np.ndarray] = {}
    invariants: list[str] = []
    for key, z in latent.items():
        z = np.asarray(z)
        rep = _irrep_key(key)
        b = z.shape[0]
        if rep == (0, 0) and np.iscomplexobj(z):
            flat = _flat2(z)
            for i in range(flat.shape[1]):
                for part, fn in (("re", np.real), ("im", np.imag)):
                    name = f"s{i}_{part}"
                    cols[name] = fn(flat[:, i]).astype(np.float64)
                    invariants.append(name)
        elif rep == (1, 1) and np.iscomplexobj(z) and z.ndim == 3 and z.shape[-1] == 4:
            norms = _minkowski_norm(z)  # (B, tau)
            cart = _fourvectors(z)  # (B, tau, 4)
            for i in range(z.shape[1]):
                for part, fn in (("re", np.real), ("im", np.imag)):
                    name = f"v{i}_norm_{part}"
                    cols[name] = fn(norms[:, i]).astype(np.float64)
                    invariants.append(name)
            for i in range(z.shape[1]):
                for c, comp in enumerate(("E", "px", "py", "pz")):
                    for part, fn in (("re", np.real), ("im", np.imag)):
                        cols[f"v{i}_{comp}_{part}"] = fn(cart[:, i, c]).astype(np.float64)
        elif rep is not None and np.iscomplexobj(z):
            z3 = z.reshape(b, z.shape[1] if z.ndim > 1 else 1, int(np.prod(z.shape[2:])))
            for i in range(z3.shape[1]):
                for j in range(z3.shape[2]):
                    for part, fn in (("re", np.real), ("im", np.imag)):
                        name = f"k{rep[0]}n{rep[1]}_{i}_{j}_{part}"
                        cols[name] = fn(z3[:, i, j]).astype(np.float64)
        else:
            flat = _flat2(np.real(z) if np.iscomplexobj(z) else z)
            for j in range(flat.shape[1]):
                cols[f"{key}_{j}"] = flat[:, j].astype(np.float64)
    return LatentColumns(cols, invariants)


def latent_records(latent: Mapping[Any, np.ndarray]) -> ak.Array:
    """Nested per-jet latent records (the layout of :func:`lgae_hep.api.encode`)."""
    fields: dict[str, Any] = {}
    for key, z in latent.items():
        z = np.asarray(z)
        rep = _irrep_key(key)
        if rep == (0, 0) and np.iscomplexobj(z):
            flat = _flat2(z)
            fields["scalars_re"] = np.real(flat).astype(np.float64)
            fields["scalars_im"] = np.imag(flat).astype(np.float64)
        elif rep == (1, 1) and np.iscomplexobj(z) and z.ndim == 3 and z.shape[-1] == 4:
            cart = _fourvectors(z)
            norms = _minkowski_norm(z)
            fields["vectors_re"] = np.real(cart).astype(np.float64)
            fields["vectors_im"] = np.imag(cart).astype(np.float64)
            fields["norms_re"] = np.real(norms).astype(np.float64)
            fields["norms_im"] = np.imag(norms).astype(np.float64)
        elif rep is not None and np.iscomplexobj(z):
            fields[f"irrep_{rep[0]}_{rep[1]}_re"] = np.real(z).astype(np.float64)
            fields[f"irrep_{rep[0]}_{rep[1]}_im"] = np.imag(z).astype(np.float64)
        else:
            fields[str(key)] = np.asarray(np.real(z), dtype=np.float64)
    if not fields:
        raise ValueError("the model returned an empty latent")
    contents = {k: ak.from_numpy(v, regulararray=True) for k, v in fields.items()}
    return ak.zip(contents, depth_limit=1)
