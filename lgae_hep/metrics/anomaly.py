"""Anomaly-detection metrics: ROC curves, AUC and signal efficiencies at fixed background
efficiencies.

Convention: a **higher score is more anomalous**; background (QCD) is the negative class and each
signal the positive class. :func:`roc_curve`, :func:`auc`, :func:`signal_efficiency_at` and
:func:`anomaly_metrics` use scikit-learn. Non-finite scores (NaN is what the scoring API returns
for jets flagged invalid by the bad-input policy) are excluded with ONE warning per sample that
counts them; they are never silently dropped, and the counts are part of the results.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import auc as _sk_auc
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as _sk_roc

from lgae_hep.metrics._arrays import to_numpy

__all__ = [
    "DEFAULT_EPS_B",
    "anomaly_metrics",
    "auc",
    "auc_standard_error",
    "eps_key",
    "roc_curve",
    "signal_efficiency_at",
]

#: background efficiencies at which signal efficiencies are quoted (as in the LGAE paper)
DEFAULT_EPS_B: tuple[float, ...] = (1e-1, 1e-2, 1e-3)


def _clean_scores(scores: Any, name: str, *, warn: bool = True) -> tuple[np.ndarray, int]:
    """1D float64 scores with non-finite entries removed, and how many were removed.

    Raises
    ------
    ValueError
        If the scores are not one value per jet, or nothing finite is left.
    """
    arr = to_numpy(scores)
    if arr.ndim != 1:
        raise ValueError(
            f"{name} scores must be one value per jet (1D), got an array of shape {arr.shape}"
        )
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{name} scores must be real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    finite = np.isfinite(arr)
    n_bad = int(arr.size - finite.sum())
    if n_bad and warn:
        n_nan = int(np.isnan(arr).sum())
        warnings.warn(
            f"{n_bad} of {arr.size} {name} jets have non-finite anomaly scores "
            f"({n_nan} NaN, i.e. flagged invalid input jets; {n_bad - n_nan} infinite) and are "
            "excluded from the metrics",
            RuntimeWarning,
            stacklevel=3,
        )
    arr = arr[finite]
    if arr.size == 0:
        raise ValueError(
            f"{name} sample has no jets with a finite score ({n_bad} non-finite of {n_bad}); "
            "expected at least one"
        )
    return arr, n_bad


def _labels_and_scores(
    scores_bkg: Any, scores_sig: Any, *, warn: bool = True
) -> tuple[np.ndarray, np.ndarray, int, int]:
    bkg, nb = _clean_scores(scores_bkg, "background", warn=warn)
    sig, ns = _clean_scores(scores_sig, "signal", warn=warn)
    y = np.concatenate([np.zeros(bkg.size, dtype=np.int8), np.ones(sig.size, dtype=np.int8)])
    return y, np.concatenate([bkg, sig]), nb, ns


def roc_curve(scores_bkg: Any, scores_sig: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve of a score that is higher for signal (more anomalous).

    Parameters
    ----------
    scores_bkg, scores_sig : array_like
        One score per jet (numpy, torch or awkward; awkward arrays are flattened). Non-finite
        scores are excluded with a warning counting them.

    Returns
    -------
    eps_b, eps_s, thresholds : numpy.ndarray
        Background efficiency (false-positive rate), signal efficiency (true-positive rate) and
        the score thresholds (a jet passes when ``score >= threshold``), from
        :func:`sklearn.metrics.roc_curve`; ``eps_b`` is non-decreasing and starts at 0.
    """
    y, s, _, _ = _labels_and_scores(scores_bkg, scores_sig)
    eps_b, eps_s, thr = _sk_roc(y, s)
    return eps_b, eps_s, thr


def auc(scores_bkg: Any, scores_sig: Any) -> float:
    """Area under the ROC curve (probability that a signal jet scores above a background jet,
    ties counting one half); 0.5 for identical distributions, 1 for perfect separation.

    Non-finite scores are excluded with a warning counting them.
    """
    y, s, _, _ = _labels_and_scores(scores_bkg, scores_sig)
    return float(roc_auc_score(y, s))


def auc_standard_error(auc_value: float, n_bkg: int, n_sig: int) -> float:
    """Statistical (sampling) standard error of an AUC measured on ``n_bkg`` background and
    ``n_sig`` signal jets (Hanley & McNeil 1982, Radiology 143, 29)::

        Q1 = A / (2 - A),  Q2 = 2 A^2 / (1 + A)
        SE^2 = (A (1 - A) + (n_s - 1)(Q1 - A^2) + (n_b - 1)(Q2 - A^2)) / (n_s n_b)

    >>> round(auc_standard_error(0.5, 400, 400), 4)
    0.0204
    """
    a = float(auc_value)
    if not 0.0 <= a <= 1.0 or n_bkg < 1 or n_sig < 1:
        raise ValueError(f"need 0 <= auc <= 1 and positive counts, got {a}, {n_bkg}, {n_sig}")
    q1, q2 = a / (2.0 - a), 2.0 * a * a / (1.0 + a)
    var = (a * (1.0 - a) + (n_sig - 1) * (q1 - a * a) + (n_bkg - 1) * (q2 - a * a)) \
        / (n_sig * n_bkg)
    return float(np.sqrt(max(var, 0.0)))


def _roc_envelope(eps_b: np.ndarray, eps_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Strictly increasing eps_b with the best eps_s reached at each (for np.interp)."""
    ub, inv = np.unique(eps_b, return_inverse=True)
    best = np.zeros(ub.size)
    np.maximum.at(best, inv, eps_s)
    return ub, best


def _eps_s_at(
    eps_b_curve: np.ndarray, eps_s_curve: np.ndarray, n_bkg: int, targets: Sequence[float],
    min_background: float,
) -> dict[float, float]:
    ub, best = _roc_envelope(eps_b_curve, eps_s_curve)
    out: dict[float, float] = {}
    for t in targets:
        t = float(t)
        if not 0.0 < t <= 1.0:
            raise ValueError(f"eps_b must lie in (0, 1], got {t}")
        if t * n_bkg < min_background:
            warnings.warn(
                f"eps_b = {t:g} needs at least {min_background:g} background jet(s) passing the "
                f"cut, but the background sample has only {n_bkg} jets with a finite score "
                f"(eps_b * n = {t * n_bkg:.3g}); returning NaN for eps_s at eps_b = {t:g}",
                RuntimeWarning,
                stacklevel=3,
            )
            out[t] = math.nan
        else:
            out[t] = float(np.interp(t, ub, best))
    return out


def signal_efficiency_at(
    scores_bkg: Any,
    scores_sig: Any,
    eps_b: Sequence[float] = DEFAULT_EPS_B,
    *,
    min_background: float = 1.0,
) -> dict[float, float]:
    """Signal efficiency at given background efficiencies, linearly interpolated on the ROC.

    For each target ``eps_b`` the ROC curve (upper envelope where several points share one
    background efficiency) is interpolated linearly in eps_b with :func:`numpy.interp`.

    Parameters
    ----------
    scores_bkg, scores_sig : array_like
        Scores per jet, higher = more anomalous. Non-finite scores are excluded with a warning.
    eps_b : sequence of float
        Background efficiencies in (0, 1].
    min_background : float
        Small-sample policy: the working point ``eps_b`` is only quoted when at least this many
        background jets are expected to pass the cut, ``eps_b * n_bkg >= min_background``
        (default 1, i.e. at least 1,000 background jets for eps_b = 1e-3). Otherwise the result
        is **NaN** with a warning, because below one background jet the ROC is not measured and
        interpolating towards the (0, 0) end point would be pure extrapolation.

    Returns
    -------
    dict
        ``{eps_b: eps_s}`` with float keys in the order given.
    """
    eb, es, _ = roc_curve(scores_bkg, scores_sig)
    n_bkg = _clean_scores(scores_bkg, "background", warn=False)[0].size
    return _eps_s_at(eb, es, n_bkg, eps_b, min_background)


def eps_key(eps: float) -> str:
    """Key of the working point ``eps`` in the ``eps_s`` dicts of :func:`anomaly_metrics`."""
    return f"{float(eps):g}"


def _resample_roc(eps_b: np.ndarray, eps_s: np.ndarray, n_bkg: int, points: int) -> dict:
    """ROC on a log-spaced eps_b grid from 1/n_bkg to 1 (plus eps_b = 0): compact for JSON."""
    ub, best = _roc_envelope(eps_b, eps_s)
    grid = np.concatenate([[0.0], np.logspace(math.log10(1.0 / max(n_bkg, 1)), 0.0, points)])
    return {"eps_b": grid.tolist(), "eps_s": np.interp(grid, ub, best).tolist()}


def _binary_metrics(
    bkg: np.ndarray, sig: np.ndarray, eps_b: Sequence[float], min_background: float,
    roc_points: int,
) -> dict[str, Any]:
    y = np.concatenate([np.zeros(bkg.size, dtype=np.int8), np.ones(sig.size, dtype=np.int8)])
    s = np.concatenate([bkg, sig])
    fpr, tpr, _ = _sk_roc(y, s)
    eff = _eps_s_at(fpr, tpr, bkg.size, eps_b, min_background)
    out: dict[str, Any] = {
        # trapezoid on the ROC = roc_auc_score (which does the same), without a second sort
        "auc": float(_sk_auc(fpr, tpr)),
        "eps_s": {eps_key(k): v for k, v in eff.items()},
        "n_signal": int(sig.size),
        "n_background": int(bkg.size),
    }
    if roc_points:
        out["roc"] = _resample_roc(fpr, tpr, bkg.size, roc_points)
    return out


def anomaly_metrics(
    scores_bkg: Any,
    signals: Mapping[str, Any],
    *,
    eps_b: Sequence[float] = DEFAULT_EPS_B,
    min_background: float = 1.0,
    roc_points: int = 200,
    combined: bool = True,
) -> dict[str, Any]:
    """AUC and signal efficiencies per signal and for all signals combined.

    Parameters
    ----------
    scores_bkg : array_like
        Background (QCD) scores, one per jet.
    signals : mapping
        Signal name -> scores per jet (e.g. ``{"t": ..., "W": ..., "Z": ...}``).
    eps_b : sequence of float
        Working points; see :func:`signal_efficiency_at` for the small-sample policy.
    min_background : float
        See :func:`signal_efficiency_at`.
    roc_points : int
        Number of log-spaced eps_b points at which the ROC curve is stored (0 = do not store).
    combined : bool
        Add ``"combined"``: all signal jets pooled against the background (each signal weighted
        by its number of jets, as in the paper where the test sets have equal sizes).

    Returns
    -------
    dict
        ``{"background": {"n": ..., "n_invalid": ...}, "signals": {name: m, ...,
        "combined": m}, "eps_b": [...]}`` where each ``m`` holds ``auc``, ``eps_s`` (keys
        ``"0.1"``, ``"0.01"``, ``"0.001"``), ``n_signal``, ``n_background``, ``n_invalid`` (jets
        with non-finite score, excluded) and ``roc`` (``eps_b``/``eps_s`` lists).
    """
    if not isinstance(signals, Mapping) or not signals:
        raise ValueError(
            f"signals must be a non-empty mapping name -> scores, got {type(signals).__name__}"
        )
    if "combined" in signals:
        raise ValueError("'combined' is reserved for the pooled signals; rename that signal")
    bkg, n_bad_b = _clean_scores(scores_bkg, "background")
    out: dict[str, Any] = {
        "background": {"n": int(bkg.size + n_bad_b), "n_invalid": n_bad_b},
        "signals": {},
        "eps_b": [float(e) for e in eps_b],
        "min_background": float(min_background),
    }
    pooled = []
    with warnings.catch_warnings():
        # eps_b warnings are issued once, for the combined sample (same background)
        warnings.simplefilter("ignore", RuntimeWarning)
        small = [e for e in eps_b if e * bkg.size < min_background]
    if small:
        warnings.warn(
            f"background sample has {bkg.size} jets with a finite score: eps_s at eps_b = "
            f"{', '.join(f'{e:g}' for e in small)} needs eps_b * n >= {min_background:g} and is "
            "reported as NaN",
            RuntimeWarning,
            stacklevel=2,
        )
    for name, scores in signals.items():
        sig, n_bad = _clean_scores(scores, f"signal {name!r}")
        pooled.append(sig)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            m = _binary_metrics(bkg, sig, eps_b, min_background, roc_points)
        m["n_invalid"] = n_bad
        out["signals"][str(name)] = m
    if combined:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            m = _binary_metrics(bkg, np.concatenate(pooled), eps_b, min_background, roc_points)
        m["n_invalid"] = int(sum(v["n_invalid"] for v in out["signals"].values()))
        out["signals"]["combined"] = m
    return out
