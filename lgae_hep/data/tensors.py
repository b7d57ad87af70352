"""Jets <-> padded tensors.

:func:`to_tensors` turns any awkward array of Lorentz vectors with outer structure
``[...][jet][particle]`` into padded ``(B, N, 4)`` tensors in ``(E, px, py, pz)`` GeV, sorted by
pT, with a boolean mask; :func:`from_tensors` and :func:`unflatten_like` put tensors or per-jet
values back into the original outer structure. Everything is vectorised over flat numpy buffers
(no Python loop over jets), so conversion runs at millions of particles per second.

Bad-input policy (project-wide)
-------------------------------
A jet is *invalid* when any of its particles (before truncation to the N hardest) has

* a non-finite component (NaN or +-inf in any input coordinate or derived Cartesian component),
* a negative energy,
* an unphysical momentum: ``E < |p| * (1 - REL_TOL) - ABS_TOL`` with ``REL_TOL = 1e-4`` and
  ``ABS_TOL = 1e-6`` GeV (float32 storage of a massless particle rounds ``E`` and ``|p|``
  independently by ~1e-7 relative; a negative ``mass`` field enters through ``vector``'s
  sign-preserving ``E**2 = |p|**2 + m*|m|`` and is caught by the same test, i.e. when
  ``m**2 < -2e-4 |p|**2`` roughly),
* a negative ``pt`` field (when the records have one),
* a component too large for the output ``dtype`` (``|E|`` or ``|p|`` above
  ``np.finfo(dtype).max``, e.g. 1e39 GeV in float64 input converted to float32), which would
  otherwise become ``inf`` in the tensors.

Invalid jets get ``valid = False``, their particles are zeroed and masked (no NaN ever reaches
a network), and ``counts`` keeps their original multiplicity. ``on_invalid="raise"`` raises a
``ValueError`` instead. A jet with no particles is valid (all-false mask). The predicate and
the tolerances live in :mod:`lgae_hep.data.badinput`, the one implementation of this policy.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import awkward as ak
import numpy as np
import vector

from .badinput import ABS_TOL, REASONS, REL_TOL, all_valid, particle_flags
from .vectors import cartesian_components, pt_eta_phi_mass

vector.register_awkward()

__all__ = ["ABS_TOL", "DEFAULT_NUM_PARTICLES", "REL_TOL", "JetTensors", "flatten_outer",
           "from_tensors", "restore_outer", "to_tensors", "unflatten_like"]

#: Particles kept per jet unless a model or a caller says otherwise (the N hardest by pT), as
#: in JetNet and the LGAE paper. The one source of this number for readers, models and CLI.
DEFAULT_NUM_PARTICLES = 30



@dataclass
class JetTensors:
    """Padded tensors of a batch of jets, and what is needed to undo the flattening.

    Unpacks as ``p4, mask, scalars = jet_tensors``.

    Attributes
    ----------
    p4 : torch.Tensor or np.ndarray
        ``(B, N, 4)`` particles in ``(E, px, py, pz)`` GeV, sorted by pT (descending),
        zero-padded.
    mask : torch.Tensor or np.ndarray
        ``(B, N)`` bool, True for real particles.
    scalars : torch.Tensor, np.ndarray or None
        ``(B, N, S)`` per-particle scalar features (``scalar_names``), zero-padded, or None.
    valid : torch.Tensor or np.ndarray
        ``(B,)`` bool; False for jets that failed the bad-input checks (zeroed and masked).
    counts : np.ndarray
        ``(B,)`` int64 original multiplicity of each jet (before truncation to N).
    structure : tuple of np.ndarray
        Counts of each outer list level above ``[jet]``, outermost first (empty for
        ``[jet][particle]`` input); used by :func:`from_tensors` and :func:`unflatten_like`.
    scalar_names : tuple of str
        Names of the scalar features.
    invalid_reason : np.ndarray
        ``(B,)`` object array: empty string for valid jets, else a short reason.
    """

    p4: Any
    mask: Any
    scalars: Any
    valid: Any
    counts: np.ndarray
    structure: tuple[np.ndarray, ...] = ()
    scalar_names: tuple[str, ...] = ()
    invalid_reason: np.ndarray = field(default_factory=lambda: np.zeros(0, object))

    def __iter__(self) -> Iterator[Any]:
        yield self.p4
        yield self.mask
        yield self.scalars

    def __len__(self) -> int:
        return len(self.counts)

    @property
    def num_particles(self) -> int:
        """Padded length N."""
        return int(self.p4.shape[1])

    @property
    def n_invalid(self) -> int:
        """Number of jets flagged invalid."""
        return int(len(self.counts) - int(np.asarray(_to_numpy(self.valid)).sum()))


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _numpy_dtype(dtype: Any) -> np.dtype:
    if dtype is None:
        return np.dtype(np.float32)
    if hasattr(dtype, "is_floating_point"):  # torch.dtype
        name = str(dtype).replace("torch.", "")
        return np.dtype(name)
    out = np.dtype(dtype)
    if out not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    return out


def flatten_outer(jets: Any) -> tuple[ak.Array, tuple[np.ndarray, ...]]:
    """Flatten all list levels above ``[jet][particle]``; return the jets and the structure."""
    arr = jets if isinstance(jets, ak.Array) else ak.Array(jets)
    if arr.ndim < 2 or not ak.fields(arr):
        raise ValueError(
            "expected jets as an awkward array [..][jet][particle] of Lorentz-vector records "
            f"(at least two list levels), got type {arr.type}"
        )
    structure: list[np.ndarray] = []
    has_option = "?" in str(arr.type) or "option" in str(arr.layout.form.type)
    while arr.ndim > 2:
        if has_option and ak.any(ak.is_none(arr, axis=1)):
            raise ValueError(f"missing (None) entries in the outer structure of type {jets.type}")
        structure.append(np.asarray(ak.to_numpy(ak.num(arr, axis=1)), dtype=np.int64))
        arr = ak.flatten(arr, axis=1)
    if has_option and ak.any(ak.is_none(arr, axis=0)):
        raise ValueError("missing (None) jets in the input; drop or fill them first")
    return arr, tuple(structure)


def restore_outer(values: Any, structure: Sequence[np.ndarray]) -> ak.Array:
    """Inverse of :func:`flatten_outer`: per-jet ``values`` (anything ``ak.Array`` takes:
    numbers, records, particle lists) back into the outer list structure."""
    out = values if isinstance(values, ak.Array) else ak.Array(values)
    for counts in reversed(structure):
        out = ak.unflatten(out, counts)
    return out


def to_tensors(
    jets: Any,
    num_particles: int = DEFAULT_NUM_PARTICLES,
    *,
    scalars: Sequence[str] | None = None,
    dtype: Any = None,
    backend: str = "torch",
    on_invalid: str = "flag",
    device: Any = None,
) -> JetTensors:
    """Convert jets to padded, pT-sorted ``(E, px, py, pz)`` tensors.

    Parameters
    ----------
    jets : ak.Array
        ``[...][jet][particle]`` records that `vector` understands (pt/eta/phi/mass,
        pt/eta/phi/energy, px/py/pz/E, E/px/py/pz, ...), any number of outer list levels,
        float32 or float64.
    num_particles : int
        N: the N hardest particles by pT are kept; jets with fewer are zero-padded.
    scalars : sequence of str, optional
        Per-particle fields (e.g. ``("charge",)``) returned as ``(B, N, S)`` features.
    dtype : float32 (default) or float64
        numpy or torch floating dtype of ``p4`` and ``scalars``.
    backend : {"torch", "numpy"}
        Type of the returned arrays (torch is imported only for ``"torch"``).
    on_invalid : {"flag", "raise"}
        Bad-input policy (module docstring): flag the jet (``valid=False``, zeroed, masked)
        or raise ``ValueError``.
    device : torch device, optional
        Target device for the torch backend.

    Returns
    -------
    JetTensors
        Unpacks as ``p4, mask, scalars``; also ``.valid``, ``.counts``, ``.structure``.

    Raises
    ------
    ValueError
        Not an array of Lorentz-vector records, bad ``num_particles``/``backend``/
        ``on_invalid``, an unknown scalar field, or (``on_invalid="raise"``) invalid jets.
    """
    if not isinstance(num_particles, int | np.integer) or num_particles < 1:
        raise ValueError(f"num_particles must be a positive integer, got {num_particles!r}")
    if backend not in ("torch", "numpy"):
        raise ValueError(f"backend must be 'torch' or 'numpy', got {backend!r}")
    if on_invalid not in ("flag", "raise"):
        raise ValueError(f"on_invalid must be 'flag' or 'raise', got {on_invalid!r}")
    np_dtype = _numpy_dtype(dtype)
    n = int(num_particles)

    flat_jets, structure = flatten_outer(jets)
    fields = set(ak.fields(flat_jets))
    scalar_names = tuple(scalars or ())
    for name in scalar_names:
        if name not in fields:
            raise ValueError(f"scalar field {name!r} not in the particle records {sorted(fields)}")

    counts = np.asarray(ak.to_numpy(ak.num(flat_jets, axis=1)), dtype=np.int64)
    n_jets = len(counts)
    total = int(counts.sum())
    starts = np.zeros(n_jets + 1, np.int64)
    np.cumsum(counts, out=starts[1:])

    energy, px, py, pz = (np.asarray(c, dtype=np.float64) for c in cartesian_components(flat_jets))
    pt = np.hypot(px, py)

    # ---- validity (per particle, then per jet): the one predicate of .badinput ---------------
    big = float(np.finfo(np_dtype).max)  # largest magnitude the output dtype holds
    pt_field = None
    if "pt" in fields:
        pt_field = np.asarray(ak.to_numpy(ak.flatten(flat_jets["pt"], axis=None)))
    reason = np.full(n_jets, "", dtype=object)
    # the range test only matters below float64 (a finite float64 never exceeds its own max)
    max_abs = big if np_dtype != np.float64 else None
    if all_valid(energy, px, py, pz, pt=pt_field, max_abs=max_abs):
        valid = np.ones(n_jets, bool)
    else:
        jet_id = np.repeat(np.arange(n_jets), counts)
        flags = particle_flags(energy, px, py, pz, pt=pt_field, max_abs=big)
        bad_particle = np.logical_or.reduce(list(flags.values()))
        valid = np.bincount(jet_id[bad_particle], minlength=n_jets) == 0
        for key, flag in flags.items():  # increasing precedence: the last flag names the jet
            if flag.any():
                reason[np.unique(jet_id[flag])] = REASONS[key].format(dtype=np_dtype)
        if on_invalid == "raise":
            first = int(np.flatnonzero(~valid)[0])
            raise ValueError(
                f"{int((~valid).sum())} invalid jet(s) (first: jet {first} of the flattened "
                f"[jet] list, {reason[first]}); expected finite momenta with E >= |p| >= 0"
            )

    # ---- order: pT-descending within jets (skipped when already sorted) ----------------------
    order = None
    rises = np.flatnonzero(pt[1:] > pt[:-1]) + 1 if total > 1 else np.zeros(0, np.int64)
    if len(rises):
        is_start = np.zeros(total + 1, bool)
        is_start[starts] = True
        if not is_start[rises].all():
            key = np.where(np.isfinite(pt), -pt, 0.0)
            local = ak.argsort(ak.unflatten(key, counts), axis=1, stable=True)
            order = np.asarray(ak.to_numpy(ak.flatten(local, axis=1)), np.int64)
            order += np.repeat(starts[:-1], counts)

    # ---- scatter into (B*N) slots -----------------------------------------------------------
    kept = np.where(valid, np.minimum(counts, n), 0)
    if (kept == counts).all():
        # every particle kept (common case: sorted reader output, N hardest already)
        src = order
        slot = np.arange(total, dtype=np.int64)
        slot += np.repeat(np.arange(n_jets, dtype=np.int64) * n - starts[:-1], counts)
    else:
        kept_total = int(kept.sum())
        kept_starts = np.zeros(n_jets + 1, np.int64)
        np.cumsum(kept, out=kept_starts[1:])
        rank = np.arange(kept_total, dtype=np.int64) - np.repeat(kept_starts[:-1], kept)
        pos = np.repeat(starts[:-1], kept) + rank
        src = order[pos] if order is not None else pos
        slot = np.repeat(np.arange(n_jets, dtype=np.int64) * n, kept) + rank

    def take(values: np.ndarray) -> np.ndarray:
        return values if src is None else values[src]

    p4 = np.zeros((n_jets * n, 4), dtype=np_dtype)
    for k, comp in enumerate((energy, px, py, pz)):
        p4[slot, k] = take(comp)
    p4 = p4.reshape(n_jets, n, 4)
    mask = np.zeros(n_jets * n, dtype=bool)
    mask[slot] = True
    mask = mask.reshape(n_jets, n)
    scalar_array = None
    if scalar_names:
        scalar_array = np.zeros((n_jets * n, len(scalar_names)), dtype=np_dtype)
        for k, name in enumerate(scalar_names):
            values = np.asarray(ak.to_numpy(ak.flatten(flat_jets[name], axis=None)))
            scalar_array[slot, k] = take(values)
        scalar_array = scalar_array.reshape(n_jets, n, len(scalar_names))

    valid_out: Any = valid
    if backend == "torch":
        import torch

        def conv(x: np.ndarray | None) -> Any:
            if x is None:
                return None
            t = torch.from_numpy(x)
            return t.to(device) if device is not None else t

        p4, mask, scalar_array, valid_out = conv(p4), conv(mask), conv(scalar_array), conv(valid)
    return JetTensors(
        p4=p4,
        mask=mask,
        scalars=scalar_array,
        valid=valid_out,
        counts=counts,
        structure=structure,
        scalar_names=scalar_names,
        invalid_reason=reason,
    )


def _structure_of(like: Any) -> tuple[np.ndarray, ...]:
    if like is None:
        return ()
    if isinstance(like, JetTensors):
        return like.structure
    if isinstance(like, ak.Array):
        return flatten_outer(like)[1] if like.ndim >= 2 and ak.fields(like) else _counts_of(like)
    if isinstance(like, tuple | list):
        return tuple(np.asarray(c, dtype=np.int64) for c in like)
    raise ValueError(
        "like must be a JetTensors, the original jets (ak.Array) or a structure tuple, "
        f"got {type(like).__name__}"
    )


def _counts_of(like: ak.Array) -> tuple[np.ndarray, ...]:
    # an [...][jet] array of per-jet values: all its list levels are structure
    out: list[np.ndarray] = []
    arr = like
    while arr.ndim > 1:
        out.append(np.asarray(ak.to_numpy(ak.num(arr, axis=1)), dtype=np.int64))
        arr = ak.flatten(arr, axis=1)
    return tuple(out)


def from_tensors(
    p4: Any,
    mask: Any,
    like: Any = None,
    *,
    scalars: Any = None,
    scalar_names: Sequence[str] | None = None,
    coordinates: str = "cartesian",
) -> ak.Array:
    """Rebuild awkward Momentum4D jets from padded tensors.

    Parameters
    ----------
    p4 : (B, N, 4) torch.Tensor or np.ndarray
        ``(E, px, py, pz)`` in GeV.
    mask : (B, N) bool
        Real particles; masked slots are dropped (any pattern, slot order kept).
    like : JetTensors, ak.Array or tuple of counts, optional
        Where the outer structure comes from: the :class:`JetTensors` returned by
        :func:`to_tensors`, the original jets, or its ``structure``. ``None``: ``[jet][particle]``.
    scalars : (B, N, S), optional
        Per-particle features to attach as fields ``scalar_names`` (default: those of ``like``).
    coordinates : {"cartesian", "ptetaphimass"}
        Record fields: ``px, py, pz, E`` (bit-exact round trip) or ``pt, eta, phi, mass``.

    Returns
    -------
    ak.Array
        ``[...][jet][particle]`` Momentum4D records with the outer structure of ``like``.
    """
    p4 = _to_numpy(p4)
    mask = _to_numpy(mask).astype(bool)
    if p4.ndim != 3 or p4.shape[-1] != 4 or mask.shape != p4.shape[:2]:
        raise ValueError(
            f"expected p4 of shape (B, N, 4) and mask of shape (B, N), got {p4.shape} and "
            f"{mask.shape}"
        )
    if coordinates not in ("cartesian", "ptetaphimass"):
        raise ValueError(f"coordinates must be 'cartesian' or 'ptetaphimass', got {coordinates!r}")
    structure = _structure_of(like)
    if structure and int(structure[-1].sum()) != len(p4):
        raise ValueError(
            f"the structure of `like` holds {int(structure[-1].sum())} jets but p4 has {len(p4)}"
        )
    counts = mask.sum(axis=1)
    sel = p4[mask]  # (M, 4) in row-major (jet, slot) order
    energy, px, py, pz = (sel[:, k] for k in range(4))
    if coordinates == "cartesian":
        cols = {"px": px, "py": py, "pz": pz, "E": energy}
    else:
        pt, eta, phi, mass = pt_eta_phi_mass(energy, px, py, pz)
        cols = {"pt": pt, "eta": eta, "phi": phi, "mass": mass}
    if scalars is not None:
        s = _to_numpy(scalars)
        names = tuple(scalar_names or (like.scalar_names if isinstance(like, JetTensors) else ()))
        if len(names) != s.shape[-1]:
            raise ValueError(f"{s.shape[-1]} scalar features but names {names}")
        sel_s = s[mask]
        for k, name in enumerate(names):
            cols[name] = sel_s[:, k]
    particles = ak.zip(cols, with_name="Momentum4D")
    return restore_outer(ak.unflatten(particles, counts), structure)


def unflatten_like(values: Any, like: Any) -> ak.Array:
    """Put per-jet values back into the outer structure of the original jets.

    Parameters
    ----------
    values : (B,) or (B, k) array (torch or numpy)
        One value (or vector) per jet, in the flattened jet order of :func:`to_tensors`.
    like : JetTensors, ak.Array or tuple of counts
        Source of the structure (see :func:`from_tensors`).

    Returns
    -------
    ak.Array
        ``[...][jet]`` (or ``[...][jet][k]``) with the original outer structure; ``[jet]`` for
        ``[jet][particle]`` input.
    """
    arr = _to_numpy(values)
    structure = _structure_of(like)
    n_expected = (
        int(structure[-1].sum())
        if structure
        else (len(like) if isinstance(like, JetTensors) else len(arr))
    )
    if arr.ndim == 0 or len(arr) != n_expected:
        raise ValueError(f"expected {n_expected} per-jet values, got shape {arr.shape}")
    return restore_outer(ak.Array(arr), structure)
