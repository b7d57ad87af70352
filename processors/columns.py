"""The per-jet column builder: one chunk's scorer output and selected jets -> flat numpy columns.

Shared by :class:`lgae_hep.processors.LGAEProcessor` (its ``columns`` output, the dask-awkward
partitions) and ``lgae-hep score`` (its output file), so both write the same columns from the
same numbers. Columns, one entry per selected jet in event order:

``score`` (float64), ``valid`` (bool), ``n_constituents`` (int64), ``pt``, ``eta``, ``phi``,
``mass``, ``jet_idx`` (the jet's index in its event's original collection: the join-back key),
``label`` and ``msoftdrop`` (when the jets have them), ``run``, ``luminosityBlock``, ``event``
(when the events have them) and ``latent_<name>`` (float64) for every latent column of the
scorer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import awkward as ak
import numpy as np

__all__ = ["EVENT_IDS", "OPTIONAL_JET_FIELDS", "event_ids", "jet_columns"]

#: Event-id branches carried into the columns and skims when the input has them.
EVENT_IDS = ("run", "luminosityBlock", "event")
#: Jet fields carried into the columns when the jets have them.
OPTIONAL_JET_FIELDS = ("label", "msoftdrop")


def event_ids(events: Any) -> dict[str, np.ndarray]:
    """The :data:`EVENT_IDS` arrays of ``events`` (NanoEvents, awkward records or a mapping of
    flat branches), numpy, one entry per event."""
    names = set(events) if isinstance(events, Mapping) else set(ak.fields(events))
    return {f: np.asarray(ak.to_numpy(events[f])) for f in EVENT_IDS if f in names}


def jet_columns(result: Mapping[str, Any], jets: ak.Array,
                ids: Mapping[str, np.ndarray] | None = None, *,
                kinematics_dtype: Any = None, index_dtype: Any = None,
                ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Flat per-jet columns (see the module docstring) and the selected jets per event.

    Parameters
    ----------
    result : mapping
        :class:`lgae_hep.processors.LGAEScorer` output on ``[event][jet][particle]``
        constituents (``score``, ``valid``, ``n_particles``, ``latent_<name>``).
    jets : ak.Array
        The selected ``[event][jet]`` jet records (``pt, eta, phi, mass, idx`` and any of
        :data:`OPTIONAL_JET_FIELDS`), as :func:`lgae_hep.data.constituents_from_events`
        returns them with ``with_jets=True``.
    ids : mapping, optional
        :func:`event_ids` of the chunk, repeated per jet.
    kinematics_dtype, index_dtype : numpy dtype, optional
        Casts of ``pt, eta, phi, mass`` and of ``jet_idx`` (``None``: as stored).
    """
    flat = {k: np.asarray(ak.to_numpy(ak.flatten(v, axis=None))) for k, v in result.items()}
    jets_flat = ak.flatten(jets, axis=1)
    cols: dict[str, np.ndarray] = {
        "score": flat["score"].astype(np.float64),
        "valid": flat["valid"].astype(bool),
        "n_constituents": flat["n_particles"].astype(np.int64),
    }
    for f in ("pt", "eta", "phi", "mass"):
        cols[f] = np.asarray(ak.to_numpy(jets_flat[f]), dtype=kinematics_dtype)
    cols["jet_idx"] = np.asarray(ak.to_numpy(jets_flat["idx"]), dtype=index_dtype)
    fields = ak.fields(jets_flat)
    for f in OPTIONAL_JET_FIELDS:
        if f in fields:
            cols[f] = np.asarray(ak.to_numpy(jets_flat[f]))
    n_per_event = np.asarray(ak.to_numpy(ak.num(jets, axis=1)), dtype=np.int64)
    for f, v in (ids or {}).items():
        cols[f] = np.repeat(v, n_per_event)
    cols.update({k: v.astype(np.float64, copy=False) for k, v in flat.items()
                 if k.startswith("latent_")})
    return cols, n_per_event
