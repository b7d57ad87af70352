"""``hist.Hist`` helpers: finding the process (category) and numeric axes, binning, and
:func:`score_histogram`, which builds the per-process score histogram the plots read.

Axes carry a ``process`` ``StrCategory`` axis; ``sample``, ``weight`` and ``threads`` are reserved
names in ``hist`` and cannot name an axis.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import hist
import numpy as np

from lgae_hep.metrics import to_numpy

__all__ = ["RESERVED_AXIS_NAMES", "common_edges", "find_category_axis", "find_numeric_axis",
           "flow_values", "is_hist", "is_log_binning", "numeric_axes", "score_histogram"]


RESERVED_AXIS_NAMES = ("sample", "weight", "threads")



def is_hist(obj: Any) -> bool:
    return isinstance(obj, hist.Hist)



def find_category_axis(h: Any, name: str | None = None) -> Any:
    if name is not None:
        try:
            return h.axes[name]
        except (KeyError, IndexError) as exc:
            raise ValueError(
                f"histogram has no axis {name!r}; axes are {[a.name for a in h.axes]}"
            ) from exc
    for ax in h.axes:
        if isinstance(ax, hist.axis.StrCategory):
            return ax
    raise ValueError(
        f"histogram needs a StrCategory axis (process/dataset); axes are {[a.name for a in h.axes]}"
    )



def numeric_axes(h: Any) -> list[Any]:
    return [a for a in h.axes if not isinstance(a, (hist.axis.StrCategory, hist.axis.IntCategory))]



def find_numeric_axis(h: Any, name: str | None, prefer: Sequence[str], what: str) -> Any:
    numeric = numeric_axes(h)
    if name is not None:
        for a in numeric:
            if a.name == name:
                return a
        raise ValueError(
            f"histogram has no numeric axis {name!r} for the {what}; numeric axes are "
            f"{[a.name for a in numeric]}"
        )
    for p in prefer:
        for a in numeric:
            if p in a.name.lower():
                return a
    if len(numeric) == 1:
        return numeric[0]
    raise ValueError(
        f"cannot tell which axis holds the {what}; pass its name (numeric axes "
        f"{[a.name for a in numeric]})"
    )



def is_log_binning(edges: np.ndarray) -> bool:
    """Draw on a log x axis: log-spaced bins, or positive edges spanning over two decades."""
    edges = np.asarray(edges, dtype=float)
    if not (len(edges) > 2 and edges[0] > 0):
        return False
    steps = np.diff(np.log(edges))
    geometric = bool(np.allclose(steps, steps[0], rtol=1e-6) and steps[0] > 0)
    linear = bool(np.allclose(np.diff(edges), edges[1] - edges[0], rtol=1e-6))
    return (geometric and not linear) or bool(edges[-1] / edges[0] > 100.0)



def flow_values(h1: Any) -> np.ndarray:
    """1D values including under/overflow when the axis has them."""
    return np.asarray(h1.values(flow=True), dtype=np.float64)



def common_edges(arrays: Sequence[np.ndarray], bins: int, *, robust: bool = False) -> np.ndarray:
    """Common bin edges: the 0.5-99.5 % quantile range of all arrays; ``robust`` narrows it
    to at most 5 interquartile ranges beyond the quartiles, so that a few outliers of a small
    sample do not squeeze the bulk into one bin."""
    allv = np.concatenate([a[np.isfinite(a)] for a in arrays])
    if allv.size == 0:
        return np.linspace(0.0, 1.0, bins + 1)
    lo, hi = np.percentile(allv, [0.5, 99.5])
    if robust:
        q1, q3 = np.percentile(allv, [25, 75])
        iqr = q3 - q1
        if iqr > 0:
            lo, hi = max(lo, q1 - 5 * iqr), min(hi, q3 + 5 * iqr)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, bins + 1)



def score_histogram(
    scores: Mapping[str, Any],
    *,
    bins: int | Sequence[float] = 60,
    range: tuple[float, float] | None = None,  # noqa: A002 - numpy's name
    log: bool = True,
    name: str = "score",
    label: str = "Anomaly score",
    category: str = "process",
) -> Any:
    """``hist.Hist`` with axes (``category``: StrCategory, ``name``: Regular or Variable).

    Parameters
    ----------
    scores : mapping
        Process name -> scores per jet. Non-finite scores are not filled (counted in a warning).
    bins : int or sequence of float
        Number of bins (log-spaced if ``log``) or explicit edges (Variable axis).
    range : (float, float), optional
        Axis range; default from the finite scores (positive ones if ``log``). Scores outside
        go to the under/overflow bins (e.g. 0.0 for an empty jet on a log axis), so ROC curves
        from the histogram still count them.
    log : bool
        Log-spaced bins (``hist.axis.transform.log``).
    """


    for n in (name, category):
        if n in RESERVED_AXIS_NAMES:
            raise ValueError(f"axis name {n!r} is reserved in hist; choose another")
    if not isinstance(scores, Mapping) or not scores:
        raise ValueError("scores must be a non-empty mapping process name -> scores")
    arrays = {str(k): to_numpy(v).astype(np.float64).reshape(-1) for k, v in scores.items()}
    if isinstance(bins, int):
        if range is None:
            allv = np.concatenate(list(arrays.values()))
            allv = allv[np.isfinite(allv)]
            if log:
                allv = allv[allv > 0]
            if allv.size == 0:
                raise ValueError(
                    "no finite" + (" positive" if log else "") + " scores to set the axis range; "
                    "pass range=(lo, hi)"
                )
            lo, hi = float(allv.min()), float(allv.max())
            if hi <= lo:
                lo, hi = (lo / 2, lo * 2) if log else (lo - 0.5, hi + 0.5)
            else:
                hi = hi * 1.0001 if log else hi + 1e-9 * (hi - lo)
            range = (lo, hi)
        lo, hi = range
        if log and lo <= 0:
            raise ValueError(f"log-spaced bins need a positive range, got {range}")
        transform = hist.axis.transform.log if log else None
        score_ax = hist.axis.Regular(bins, lo, hi, name=name, label=label, transform=transform)
    else:
        score_ax = hist.axis.Variable(np.asarray(bins, dtype=float), name=name, label=label)
    h = hist.Hist(hist.axis.StrCategory([], name=category, label="Process", growth=True),
                  score_ax)
    for k, v in arrays.items():
        finite = np.isfinite(v)
        if (~finite).any():
            warnings.warn(f"{int((~finite).sum())} non-finite {k} scores not filled",
                          RuntimeWarning, stacklevel=2)
        h.fill(**{category: k, name: v[finite]})
    return h
