"""The one dask adapter: run an eager awkward function on awkward, typetracer or dask-awkward
input.

Every lazy path of lgae-hep (``lgae_hep.score`` on dask-awkward jets, the dask-awkward reader,
the coffea scorer and processor) goes through :func:`on_partitions`:

* eager awkward arrays: ``fn(*arrays, **kwargs)``;
* dask-awkward collections: ``dask_awkward.map_partitions`` of the same call, one task per
  partition, nothing computed until ``.compute()``;
* typetracers (dask-awkward's metadata pass): ``fn`` runs on length-zero arrays of the same
  form and its result is returned as a typetracer of unknown length. This is the typetracer
  idiom of the project, written here once (:func:`partition_call`).

Nothing here imports dask unless a dask-awkward collection comes in.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import awkward as ak

from .layout import is_dask

__all__ = ["branch_table", "is_dask", "on_partitions", "partition_call"]


def on_partitions(fn: Callable[..., Any], *arrays: Any, label: str | None = None,
                  **kwargs: Any) -> Any:
    """``fn(*arrays, **kwargs)`` for awkward input, per partition for dask-awkward input.

    ``fn`` takes eager awkward arrays (positional) and plain keyword arguments and returns an
    awkward array. With dask-awkward ``arrays`` (all partitioned alike) the result is a lazy
    dask-awkward collection named ``label``; the keyword arguments travel with the task graph
    (they must be picklable for distributed schedulers). Typetracer input (also inside the
    partitions during dask-awkward's metadata pass) is handled by :func:`partition_call`.
    """
    if any(is_dask(a) for a in arrays):
        import dask_awkward as dak

        return dak.map_partitions(
            functools.partial(partition_call, fn=fn, kwargs=kwargs), *arrays, label=label)
    return partition_call(*arrays, fn=fn, kwargs=kwargs)


def branch_table(events: Any, names: Sequence[str], nested: bool) -> Any:
    """The flat branches ``names`` of dask-awkward ``events`` as one record collection (what the
    partitions of :func:`on_partitions` get), so dask-awkward's column optimisation reads
    nothing else. ``nested``: NanoEvents-style ``events[coll][field]`` for ``coll_field``
    (:func:`lgae_hep.data.layout.available_names`); names without ``_`` are top-level."""
    import dask_awkward as dak

    def get(name: str) -> Any:
        if not nested or "_" not in name:
            return events[name]
        coll, field = name.split("_", 1)
        return events[coll][field]

    return dak.zip({n: get(n) for n in names}, depth_limit=1)


def partition_call(*arrays: Any, fn: Callable[..., Any],
                   kwargs: Mapping[str, Any] | None = None) -> Any:
    """``fn(*arrays, **kwargs)`` on one partition; typetracer in, typetracer out.

    On typetracers, ``fn`` runs on length-zero arrays of the same form (so its output form is
    the real one) and the result is turned back into a typetracer of unknown length.
    """
    kwargs = dict(kwargs or {})
    if any(isinstance(a, ak.Array) and ak.backend(a) == "typetracer" for a in arrays):
        empty = [ak.typetracer.length_zero_if_typetracer(a) if isinstance(a, ak.Array) else a
                 for a in arrays]
        out = fn(*empty, **kwargs)
        return ak.Array(out.layout.to_typetracer(forget_length=True), behavior=out.behavior)
    return fn(*arrays, **kwargs)
