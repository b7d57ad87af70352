"""Filesets of ``lgae-hep run``: reading ``{dataset: [files]}``, checking every file up front,
and the dask-awkward chunking of a fileset."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import uproot
from tqdm.auto import tqdm

from lgae_hep.data import check_input_files, read_metadata
from lgae_hep.jsonio import read_json

__all__ = ["check_files", "dask_fileset", "generator_level", "load_fileset"]


def load_fileset(fileset: str | Path | Mapping[str, Any]) -> dict[str, list[str]]:
    """Read a fileset: ``{dataset: [files]}`` or ``{dataset: {"files": [files]}}``.

    A JSON path is accepted; relative file paths in it are relative to the JSON file.

    Raises
    ------
    ValueError
        Not a mapping of dataset names to non-empty file lists.
    """
    base = None
    if isinstance(fileset, str | Path):
        path = Path(fileset)
        fileset = read_json(path, "fileset", "; expected a JSON file")
        base = path.resolve().parent
    if not isinstance(fileset, Mapping) or not fileset:
        raise ValueError(
            "fileset must be a non-empty mapping {dataset: [file, ...]}, got "
            f"{type(fileset).__name__}"
        )
    out: dict[str, list[str]] = {}
    for dataset, files in fileset.items():
        if isinstance(files, Mapping):
            files = files.get("files")
        if isinstance(files, Mapping):
            files = list(files)
        if isinstance(files, str):
            files = [files]
        if not isinstance(files, Sequence) or not files:
            raise ValueError(f"dataset {dataset!r}: expected a non-empty list of files")
        resolved = []
        for f in files:
            text = str(f)
            if base is not None and "://" not in text and not Path(text).is_absolute():
                text = str(base / text)
            resolved.append(text)
        out[str(dataset)] = resolved
    return out


def check_files(
    fileset: Mapping[str, Sequence[str]], *, jets: str = "FatJet", treename: str = "Events",
    progress: bool = True,
) -> tuple[dict[str, list[str]], dict[str, str], dict[str, bool]]:
    """Open every file and check its tree and jet collection
    (:func:`lgae_hep.data.check_input_files`, the one file check of the readers).

    Returns
    -------
    good : dict
        The fileset without the bad files (datasets left without files are dropped).
    bad : dict
        ``{path: reason}``.
    simulated : dict
        ``{dataset: True}`` when all its good files look simulated
        (:attr:`lgae_hep.data.InputFile.simulated`).
    """

    good: dict[str, list[str]] = {}
    bad: dict[str, str] = {}
    simulated: dict[str, bool] = {}
    items = [(ds, f) for ds, files in fileset.items() for f in files]
    for ds, f in tqdm(items, desc="checking files", unit="file", disable=not progress):
        ok, problems = check_input_files([(f, treename)], jets, errors="collect")
        if ok:
            good.setdefault(ds, []).append(f)
            simulated[ds] = simulated.get(ds, True) and ok[0].simulated
        else:
            bad[f] = problems[f]
    return good, bad, simulated


def generator_level(fileset: Mapping[str, Sequence[str]]) -> dict[str, bool]:
    """``{dataset: True}`` when every file carries ``lgae-hep generate`` metadata."""
    out = {}
    for ds, files in fileset.items():
        ok = True
        for f in files:
            try:
                ok = ok and read_metadata(f) is not None
            except Exception:  # noqa: BLE001 - metadata is optional
                ok = False
        out[ds] = ok
    return out


def dask_fileset(fileset: Mapping[str, Sequence[str]], chunksize: int,
                  treename: str) -> dict[str, Any]:
    """``{dataset: {"files": {path: {"object_path": tree, "steps": [[a, b], ...]}}}}`` with
    the Runner's chunking (``ceil(n / chunksize)`` equal chunks per file)."""
    spec: dict[str, Any] = {}
    for ds, files in fileset.items():
        entries: dict[str, Any] = {}
        for f in files:
            with uproot.open({f: None}) as fh:
                n = int(fh[treename].num_entries)
            nchunks = max(1, -(-n // chunksize))
            edges = np.linspace(0, n, nchunks + 1).round().astype(int)
            entries[f] = {"object_path": treename,
                          "steps": [[int(a), int(b)] for a, b in zip(edges[:-1], edges[1:])]}
        spec[ds] = {"files": entries}
    return spec
