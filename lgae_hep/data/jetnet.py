"""JetNet HDF5 reader (h5py only; the ``jetnet`` package is optional and imported lazily).

The JetNet dataset (Kansal et al., Zenodo records 6975118 / 6975117) ships one file per jet
class, ``{g,q,t,w,z}.hdf5`` (30 particles) or ``{g,q,t,w,z}150.hdf5`` (150 particles), each with

* ``particle_features`` (N, P, 4): ``eta_rel, phi_rel, pt_rel, mask`` (P = 30 or 150),
* ``jet_features`` (N, 4): ``pt, eta, mass, n_particles``.

Split (reproduces ``jetnet.datasets.JetNet.getData`` of jetnet 0.2.x, read from its source)
-----------------------------------------------------------------------------------------
jetnet concatenates the requested classes, then shuffles with the *legacy* global numpy RNG,
``np.random.seed(seed); perm = np.random.permutation(length)``, and takes
``perm[lcut:rcut]`` with ``cuts = (np.cumsum([0, *split_fraction]) * length).astype(int)``
(``train`` = cuts[0]:cuts[1], ``valid`` = cuts[1]:cuts[2], ``test`` = cuts[2]:cuts[3], ``all`` =
every jet, in the permuted order, since jetnet slices ``data[perm][0:length]``).
We use ``np.random.RandomState(seed).permutation(length)``, the same
stream without touching numpy's global state. Classes are concatenated in the canonical order
``g, q, t, w, z`` (jetnet's order for ``"all"``; for a subset jetnet iterates a Python ``set``,
whose order depends on string hashing, so only single classes and ``"all"`` are reproducible
bit-for-bit against jetnet).

Four-vectors
------------
JetNet has no jet azimuth, so we set ``phi_jet = 0``: ``pt = pt_rel * pt_jet``,
``eta = eta_rel + eta_jet``, ``phi = phi_rel`` (wrapped to [-pi, pi)). This is a rotation of the
whole jet about the beam axis, so every Lorentz invariant (jet mass, pairwise p_i.p_j) is
unchanged, and the LGAE anomaly score, a Chamfer distance between an input and its
reconstruction by a Lorentz(rotation)-equivariant network with a rotation-invariant Euclidean
metric on (E, px, py, pz), is invariant up to float rounding (non-equivariant baselines such as
the GNNAE are not). JetNet stores no particle masses: particles are massless (``mass = 0``).
Masked slots (``mask == 0``) are dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from .tensors import DEFAULT_NUM_PARTICLES
from .vectors import momentum4d, wrap_phi

__all__ = ["JET_TYPES", "SPLITS", "jetnet_split_indices", "read_jetnet"]

#: JetNet classes in jetnet's canonical order.
JET_TYPES = ("g", "q", "t", "w", "z")
#: Split names.
SPLITS = ("train", "valid", "test", "all")

_FIX_HINT = (
    "jetnet is installed but cannot be imported. Under numpy 2 its dependency Wasserstein must "
    "be rebuilt from source: pip install --no-build-isolation --no-deps --force-reinstall "
    "Wasserstein==1.0.1 . lgae_hep.read_jetnet does not need jetnet (it reads the HDF5 files "
    "with h5py)."
)


def _import_jetnet() -> Any:
    """Import the optional ``jetnet`` package, with an actionable message when it is broken.

    Raises
    ------
    ImportError
        jetnet is not installed (``pip install lgae-hep[jetnet]``) or its install is broken
        (the message gives the Wasserstein rebuild command).
    """
    try:
        import jetnet
    except ModuleNotFoundError as err:
        if err.name == "jetnet":
            raise ImportError(
                "jetnet is not installed; install it with `pip install lgae-hep[jetnet]` (only "
                "needed for downloading and jetnet's metrics, not for read_jetnet)"
            ) from err
        raise ImportError(f"{_FIX_HINT} (original error: {err})") from err
    except (ImportError, ValueError, AttributeError) as err:
        raise ImportError(f"{_FIX_HINT} (original error: {err!r})") from err
    return jetnet


def jetnet_split_indices(
    length: int,
    split: str = "train",
    *,
    seed: int = 42,
    split_fractions: Sequence[float] = (0.7, 0.15, 0.15),
) -> np.ndarray:
    """Indices of ``split`` among ``length`` concatenated jets, exactly as jetnet computes them.

    Parameters
    ----------
    length : int
        Number of jets (all requested classes concatenated).
    split : {"train", "valid", "test", "all"}
        ``"all"`` returns every index in permuted order (see Notes).
    seed : int
        Seed of the legacy numpy RNG.
    split_fractions : sequence of 3 floats
        Train, valid, test fractions (sum <= 1).

    Notes
    -----
    jetnet's ``getData`` always indexes ``data[randperm][lcut:rcut]``, including for ``"all"``
    (``lcut, rcut = 0, length``), so ``"all"`` is the whole dataset in permuted order.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    fractions = np.asarray(split_fractions, dtype=np.float64)
    if fractions.shape != (3,) or np.any(fractions < 0) or fractions.sum() > 1.0 + 1e-12:
        raise ValueError(
            "split_fractions must be three non-negative numbers (train, valid, test) summing to "
            f"<= 1, got {tuple(split_fractions)}"
        )
    perm = np.random.RandomState(seed).permutation(length)
    if split == "all":
        return perm
    cuts = (np.cumsum(np.insert(fractions, 0, 0)) * length).astype(int)
    i = SPLITS.index(split)
    return perm[cuts[i] : cuts[i + 1]]


def _resolve_files(path: Path, jet_types: Sequence[str], num_particles: int) -> list[Path]:
    if path.is_file():
        if len(jet_types) > 1:
            raise ValueError(
                f"{path} is a single file but jet_type={list(jet_types)}; pass the directory "
                "holding {g,q,t,w,z}.hdf5 to read several classes"
            )
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(
            f"JetNet path {path} does not exist (expected a directory with "
            "{g,q,t,w,z}.hdf5 or one such file)"
        )
    files = []
    for j in jet_types:
        names = (
            [f"{j}.hdf5", f"{j}150.hdf5"] if num_particles <= 30 else [f"{j}150.hdf5", f"{j}.hdf5"]
        )
        for name in names:
            if (path / name).is_file():
                files.append(path / name)
                break
        else:
            raise FileNotFoundError(
                f"no JetNet file for jet type {j!r} in {path} (looked for {names}); download it "
                "from Zenodo record 6975118 (30 particles) or 6975117 (150 particles)"
            )
    return files


def _load_file(file: Path, num_particles: int) -> tuple[np.ndarray, np.ndarray]:
    import h5py

    try:
        handle = h5py.File(file, "r")
    except OSError as err:
        raise ValueError(f"{file} is not a readable HDF5 file ({err})") from err
    with handle as f:
        for name in ("particle_features", "jet_features"):
            if name not in f:
                raise ValueError(
                    f"dataset {name!r} missing in {file}; expected JetNet layout "
                    "particle_features (N, P, 4: eta_rel, phi_rel, pt_rel, mask) and "
                    "jet_features (N, 4: pt, eta, mass, n_particles)"
                )
        pf = f["particle_features"]
        jf = f["jet_features"]
        if pf.ndim != 3 or pf.shape[2] < 4 or jf.ndim != 2 or jf.shape[1] < 4:
            raise ValueError(
                f"{file}: particle_features has shape {pf.shape} and jet_features {jf.shape}; "
                "expected (N, P, 4) and (N, 4)"
            )
        if pf.shape[0] != jf.shape[0]:
            raise ValueError(
                f"{file}: {pf.shape[0]} jets in particle_features but {jf.shape[0]} in jet_features"
            )
        if pf.shape[1] < num_particles:
            raise ValueError(
                f"{file} holds {pf.shape[1]} particles per jet, fewer than num_particles="
                f"{num_particles}"
            )
        return np.asarray(pf[:, :num_particles, :4]), np.asarray(jf[:, :4])


def read_jetnet(
    path: str | Path,
    jet_type: str | Sequence[str] = "g",
    split: str = "train",
    *,
    seed: int = 42,
    split_fractions: Sequence[float] = (0.7, 0.15, 0.15),
    num_particles: int = DEFAULT_NUM_PARTICLES,
    with_jets: bool = False,
) -> ak.Array | tuple[ak.Array, ak.Array]:
    """Read JetNet jets as Lorentz vectors, with jetnet's train/valid/test split.

    Parameters
    ----------
    path : str or Path
        Directory holding ``{g,q,t,w,z}.hdf5`` (or ``{..}150.hdf5`` for ``num_particles > 30``),
        or a single such file (then ``jet_type`` must be a single class).
    jet_type : str or sequence of str
        ``"g"``, ``"q"``, ``"t"``, ``"w"``, ``"z"``, a list of them, or ``"all"``.
    split : {"train", "valid", "test", "all"}
        Which part of jetnet's seeded shuffle to return (see module docstring).
    seed : int
        jetnet's seed (42 by default, as in jetnet).
    split_fractions : 3 floats
        Train / valid / test fractions (jetnet's ``split_fraction``).
    num_particles : int
        Particle slots read per jet (<= the file's; 30 or 150 in JetNet).
    with_jets : bool
        Also return jet records ``{pt, eta, phi (= 0), mass, n_particles, jet_type}`` (Momentum4D,
        ``jet_type`` = index in ``JET_TYPES``), aligned with the particles.

    Returns
    -------
    ak.Array or (ak.Array, ak.Array)
        ``[jet][particle]`` Momentum4D records ``pt, eta, phi, mass`` (massless, ``phi_jet = 0``,
        see module docstring), padded slots removed.

    Raises
    ------
    ValueError
        Unknown jet type / split, bad fractions, not an HDF5 file, missing datasets or wrong
        shapes.
    FileNotFoundError
        The path or a class file does not exist.
    """
    if isinstance(jet_type, str):
        types = list(JET_TYPES) if jet_type == "all" else [jet_type]
    else:
        types = list(jet_type)
    unknown = [t for t in types if t not in JET_TYPES]
    if unknown or not types:
        raise ValueError(f"jet_type must be one of {JET_TYPES}, 'all' or a list; got {jet_type!r}")
    types = [t for t in JET_TYPES if t in types]  # canonical order, no duplicates
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not isinstance(num_particles, int | np.integer) or num_particles < 1:
        raise ValueError(f"num_particles must be a positive integer, got {num_particles!r}")

    files = _resolve_files(Path(path), types, num_particles)
    parts = [_load_file(f, num_particles) for f in files]
    pf = np.concatenate([p for p, _ in parts], axis=0)
    jf = np.concatenate([j for _, j in parts], axis=0)
    type_index = np.concatenate(
        [np.full(len(p), JET_TYPES.index(t), np.int32) for (p, _), t in zip(parts, types)]
    )
    idx = jetnet_split_indices(len(pf), split, seed=seed, split_fractions=split_fractions)
    pf, jf, type_index = pf[idx], jf[idx], type_index[idx]

    mask = pf[..., 3] > 0.5
    jet_pt = jf[:, 0:1].astype(np.float64)
    jet_eta = jf[:, 1:2].astype(np.float64)
    pt = pf[..., 2] * jet_pt
    eta = pf[..., 0] + jet_eta
    phi = wrap_phi(pf[..., 1].astype(np.float64))
    counts = mask.sum(axis=1)
    particles = momentum4d(
        {
            "pt": pt[mask],
            "eta": eta[mask],
            "phi": phi[mask],
            "mass": np.zeros(int(counts.sum())),
        }
    )
    out = ak.unflatten(particles, counts)
    if not with_jets:
        return out
    jets = momentum4d(
        {
            "pt": jf[:, 0].astype(np.float64),
            "eta": jf[:, 1].astype(np.float64),
            "phi": np.zeros(len(jf)),
            "mass": jf[:, 2].astype(np.float64),
            "n_particles": np.minimum(jf[:, 3], num_particles).astype(np.int64),
            "jet_type": type_index,
        }
    )
    return out, jets
