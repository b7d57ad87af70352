"""Mass sculpting of an anomaly score: how much a cut on the score reshapes the background's
jet-mass distribution (the standard picture of the mass-decorrelation literature).

For a cut that keeps the fraction ``eps_b`` of background jets with the highest scores:

* ``1/JSD``: the inverse Jensen-Shannon divergence (base 2, so 0 <= JSD <= 1) between the
  background mass histograms before and after the cut (default 30 bins over 0-300 GeV, both
  normalised). A score independent of the mass keeps the shape (``1/JSD`` large, limited by
  the statistics of the selected jets); a cut on the mass itself gives ``1/JSD`` near 1.
* the Spearman rank correlation of score and mass over all background jets.

Jets with a non-finite score or mass are left out and counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

from lgae_hep.metrics.anomaly import eps_key

__all__ = ["DEFAULT_MASS_BINS", "DEFAULT_SCULPTING_EPS_B", "decorrelation_point", "jensen_shannon",
           "mass_sculpting"]

#: working points at which the sculpting is quoted
DEFAULT_SCULPTING_EPS_B = (0.1, 0.01)
#: mass histogram: (bins, low GeV, high GeV)
DEFAULT_MASS_BINS = (30, 0.0, 300.0)


def jensen_shannon(p: Any, q: Any) -> float:
    """Jensen-Shannon divergence, base 2, of two histograms (normalised here): in [0, 1]."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if p.shape != q.shape or p.ndim != 1 or np.any(p < 0) or np.any(q < 0):
        raise ValueError("p and q must be non-negative histograms of the same binning")
    if p.sum() <= 0 or q.sum() <= 0:
        raise ValueError("p and q must not be empty")
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / m[nz])))

    return min(max(0.5 * kl(p) + 0.5 * kl(q), 0.0), 1.0)


def mass_sculpting(
    scores_bkg: Any,
    mass_bkg: Any,
    *,
    eps_b: Sequence[float] = DEFAULT_SCULPTING_EPS_B,
    bins: tuple[int, float, float] = DEFAULT_MASS_BINS,
) -> dict[str, Any]:
    """Sculpting of the background mass distribution by cuts on a score.

    Parameters
    ----------
    scores_bkg, mass_bkg : array_like
        Score and jet mass (GeV) of each background jet (same length).
    eps_b : sequence of float
        Background efficiencies of the cuts (the highest-scoring ``ceil(eps_b n)`` jets pass;
        ties are broken by jet order, so the selection is deterministic).
    bins : (int, float, float)
        Mass histogram binning.

    Returns
    -------
    dict
        ``{"inv_jsd": {"0.1": ..., ...}, "jsd": {...}, "n_selected": {...}, "spearman": r,
        "n": n, "n_invalid": k, "bins": [...]}``. ``inv_jsd`` is ``inf`` for identical shapes.
    """
    s = np.asarray(scores_bkg, dtype=np.float64).ravel()
    m = np.asarray(mass_bkg, dtype=np.float64).ravel()
    if s.shape != m.shape:
        raise ValueError(f"{s.size} scores but {m.size} masses")
    nbins, lo, hi = int(bins[0]), float(bins[1]), float(bins[2])
    if nbins < 1 or not hi > lo:
        raise ValueError(f"bins must be (n >= 1, low, high > low), got {bins!r}")
    ok = np.isfinite(s) & np.isfinite(m)
    s, m = s[ok], m[ok]
    if s.size < 2:
        raise ValueError("need at least 2 background jets with finite score and mass, got "
                         f"{s.size}")
    edges = np.linspace(lo, hi, nbins + 1)
    before = np.histogram(m, edges)[0]
    order = np.argsort(-s, kind="stable")  # highest scores first; ties in jet order
    out: dict[str, Any] = {"inv_jsd": {}, "jsd": {}, "n_selected": {},
                           "n": int(s.size), "n_invalid": int((~ok).sum()),
                           "bins": [nbins, lo, hi]}
    for e in eps_b:
        if not 0 < float(e) <= 1:
            raise ValueError(f"eps_b must be in (0, 1], got {e!r}")
        k = int(np.ceil(float(e) * s.size))
        after = np.histogram(m[order[:k]], edges)[0]
        key = eps_key(float(e))
        if after.sum() == 0 or before.sum() == 0:  # all selected jets outside the mass range
            jsd = float("nan")
        else:
            jsd = jensen_shannon(before, after)
        out["jsd"][key] = jsd
        out["inv_jsd"][key] = float("inf") if jsd == 0 else 1.0 / jsd
        out["n_selected"][key] = k
    out["spearman"] = float(stats.spearmanr(s, m).statistic)
    return out


def decorrelation_point(
    scores_bkg: Any,
    scores_sig: Any,
    mass_bkg: Any,
    *,
    eps_s: float = 0.5,
    bins: tuple[int, float, float] = DEFAULT_MASS_BINS,
) -> dict[str, float]:
    """One point of the decorrelation plane: background rejection against 1/JSD, both at the
    cut that keeps the fraction ``eps_s`` of signal jets.

    The cut is the ``ceil(eps_s n)``-th highest of the ``n`` finite signal scores (jets at
    the threshold pass); ``eps_b`` is the fraction of finite background scores at or above it,
    the rejection ``1 / eps_b`` (``inf`` when none passes), and ``inv_jsd`` is 1/JSD between
    the background mass histogram before and after that cut (as :func:`mass_sculpting`, NaN
    when no
    background jet inside the mass range passes).

    Returns
    -------
    dict
        ``{"eps_s": ..., "eps_b": ..., "rejection": ..., "inv_jsd": ..., "threshold": ...}``.
    """
    if not 0 < float(eps_s) <= 1:
        raise ValueError(f"eps_s must be in (0, 1], got {eps_s!r}")
    sb = np.asarray(scores_bkg, dtype=np.float64).ravel()
    ss = np.asarray(scores_sig, dtype=np.float64).ravel()
    m = np.asarray(mass_bkg, dtype=np.float64).ravel()
    if sb.shape != m.shape:
        raise ValueError(f"{sb.size} background scores but {m.size} masses")
    ss = ss[np.isfinite(ss)]
    ok = np.isfinite(sb) & np.isfinite(m)
    sb, m = sb[ok], m[ok]
    if ss.size == 0 or sb.size == 0:
        raise ValueError("need finite signal and background scores")
    k = max(1, int(np.ceil(float(eps_s) * ss.size)))
    thr = float(np.sort(ss)[::-1][k - 1])
    passed = sb >= thr
    eps_b = float(passed.mean())
    edges = np.linspace(float(bins[1]), float(bins[2]), int(bins[0]) + 1)
    before, after = np.histogram(m, edges)[0], np.histogram(m[passed], edges)[0]
    if after.sum() == 0 or before.sum() == 0:
        inv = float("nan")
    else:
        jsd = jensen_shannon(before, after)
        inv = float("inf") if jsd == 0 else 1.0 / jsd
    return {"eps_s": float((ss >= thr).mean()), "eps_b": eps_b,
            "rejection": float("inf") if eps_b == 0 else 1.0 / eps_b, "inv_jsd": inv,
            "threshold": thr}
