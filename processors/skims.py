"""Skim files of :class:`lgae_hep.processors.LGAEProcessor`: the selected jets of one chunk with
their scores, written to ROOT (TTree ``Events``) or parquet beside (never over) the inputs.

One file per input file and chunk, ``<skim_dir>/<dataset>/<file stem>_<hash>_<start>-<stop>``
with ``<hash>`` the first 8 hex digits of the SHA-256 of the input's full path or URL (two inputs
named ``tree_1.root`` in different folders never overwrite each other). Branches: ``run``,
``luminosityBlock``, ``event`` (when the input has them) and, per selected jet,
``<jets>_pt, _eta, _phi, _mass`` (float32), ``<jets>_lgaeIdx`` (the jet's index in the input
event's original collection: the join-back key), ``<jets>_lgaeScore`` and
``<jets>_lgaeLatent_<name>``; ``n<jets>`` counts the selected jets. Files are written to a
temporary name and renamed, so a failed chunk leaves no partial skim.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from .columns import EVENT_IDS

__all__ = ["SKIM_FORMATS", "safe_name", "skim_path", "write_skim"]

SKIM_FORMATS = ("root", "parquet")


def safe_name(name: str) -> str:
    """``name`` with every character outside ``[A-Za-z0-9._-]`` replaced by ``_``."""
    keep = "".join(c if (c.isalnum() or c in "-_.") else "_" for c in name)
    return keep or uuid.uuid4().hex


def skim_path(skim_dir: str | Path, dataset: str, chunk_key: tuple[str, int, int],
              fmt: str) -> Path:
    """Where the skim of chunk ``(filename, start, stop)`` of ``dataset`` goes."""
    filename, start, stop = chunk_key
    stem = safe_name(Path(filename).stem or "events")
    digest = hashlib.sha256(filename.encode()).hexdigest()[:8]
    ext = "root" if fmt == "root" else "parquet"
    return Path(skim_dir) / safe_name(dataset) / f"{stem}_{digest}_{start}-{stop}.{ext}"


def write_skim(target: Path, fmt: str, jets_name: str, event_ids: Mapping[str, np.ndarray],
               jets: ak.Array, result: Mapping[str, Any]) -> Path:
    """Write one skim file (see the module docstring) atomically; returns ``target``.

    ``jets`` are the selected ``[event][jet]`` records (``pt, eta, phi, mass, idx``),
    ``result`` the scorer's ``[event][jet]`` output (``score``, ``latent_<name>``).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    branches: dict[str, Any] = {f: event_ids[f] for f in EVENT_IDS if f in event_ids}
    jet_rec: dict[str, Any] = {f: ak.values_astype(jets[f], np.float32)
                               for f in ("pt", "eta", "phi", "mass")}
    jet_rec["lgaeIdx"] = ak.values_astype(jets["idx"], np.int32)
    jet_rec["lgaeScore"] = ak.values_astype(result["score"], np.float32)
    for k, v in result.items():
        if k.startswith("latent_"):
            jet_rec["lgaeLatent_" + k[len("latent_"):]] = ak.values_astype(v, np.float32)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        if fmt == "root":
            import uproot

            # TTree (not RNTuple): mktree + extend, jagged branches <jets>_* with n<jets>
            jet_tree = {name: ak.without_parameters(col) for name, col in jet_rec.items()}
            types: dict[str, Any] = {k: v.dtype for k, v in branches.items()}
            data: dict[str, Any] = dict(branches)
            zipped = ak.zip(jet_tree)
            types[jets_name] = zipped.type
            data[jets_name] = zipped
            with uproot.recreate(tmp) as fout:
                tree = fout.mktree("Events", types, counter_name=lambda c: "n" + c)
                tree.extend(data)
        else:
            cols = dict(branches)
            for name, col in jet_rec.items():
                cols[f"{jets_name}_{name}"] = col
            ak.to_parquet(ak.zip(cols, depth_limit=1), tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target
