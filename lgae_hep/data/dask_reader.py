"""The dask-awkward reader: :func:`lgae_hep.data.constituents_from_events` on dask-awkward
events (coffea NanoEvents with ``mode="dask"``), the eager grouping per partition."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import awkward as ak

from .constituents import eager_constituents
from .dask_adapter import branch_table, on_partitions
from .layout import NanoLayout, available_names, detect_layout, resolve_puppi

__all__ = ["dask_constituents"]


def dask_constituents(events: Any, jets: str, max_particles: int | None, *,
                      layout: NanoLayout | None, puppi: bool | None, with_jets: bool,
                      pf_fields: Sequence[str] | None, jet_fields: Sequence[str] | None,
                      **options: Any) -> Any:
    """:func:`lgae_hep.data.constituents_from_events` on dask-awkward events (e.g. coffea
    NanoEvents with ``mode="dask"``): the eager grouping per partition, through
    :func:`lgae_hep.data.dask_adapter.on_partitions`.

    Only the branches of the layout (and the PUPPI weights) are handed to the partitions, so
    dask-awkward's column optimisation reads nothing else from the files.
    """
    available, nested = available_names(events)
    if layout is None:
        layout = detect_layout(available, jets, pf_fields=pf_fields, jet_fields=jet_fields,
                               where="the events")
    weight = resolve_puppi(available, layout, puppi)
    names = layout.branches() + ([weight] if weight is not None else [])
    out = on_partitions(
        _constituents_partition, branch_table(events, names, nested), jets=jets,
        max_particles=max_particles, layout=layout, puppi=weight is not None,
        with_jets=with_jets, options=options, label="lgae-constituents",
    )
    return (out["constituents"], out["jets"]) if with_jets else out["constituents"]


def _constituents_partition(sub: ak.Array, *, jets: str, max_particles: int | None,
                            layout: NanoLayout, puppi: bool, with_jets: bool,
                            options: Mapping[str, Any]) -> ak.Array:
    """One eager partition of :func:`dask_constituents` (typetracers: :func:`on_partitions`)."""
    flat = {f: sub[f] for f in ak.fields(sub)}
    res = eager_constituents(flat, jets, max_particles, layout=layout, puppi=puppi,
                             with_jets=with_jets, **options)
    if with_jets:
        return ak.zip({"constituents": res[0], "jets": res[1]}, depth_limit=1)
    return ak.zip({"constituents": res}, depth_limit=1)
