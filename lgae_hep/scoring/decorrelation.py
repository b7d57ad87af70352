"""Exact mass decorrelation of any score: its QCD quantile in bins of jet mass.

A cut on an anomaly score that correlates with the jet mass sculpts the QCD mass spectrum (a
bump hunt then sees a fake bump). :class:`MassDecorrelation` maps a score ``s`` of a jet of mass
``m`` to where ``s`` lies among QCD jets *of the same mass*: in each mass bin the map is the
empirical QCD distribution function ``F_bin(s)`` of the score, fitted on QCD validation jets and
stored in the model file. A cut ``F > 1 - eps`` keeps the fraction ``eps`` of QCD jets in every
mass bin, so the selected QCD mass spectrum has the shape of the inclusive one by construction
(up to the statistics of the fit and the bin width).

The decorrelated score reported is ``-log(1 - F)``: it ranks like ``F`` within a bin, and it
resolves the tail (``eps = 1e-3`` is 6.9). ``F`` is capped at ``1 - 1 / (2 n_bin)`` (the
resolution of the fit); a score above the largest QCD value of its bin adds
``(s - s_max) / (s_max - s_median)`` to the cap, so the most anomalous jets stay ordered
(monotone in ``s`` within every bin).

Masses outside the fitted range are clamped to the first/last bin; the number of such jets is
returned by :meth:`MassDecorrelation.transform` (the engine warns with the count). Each score of
the registry gets a decorrelated form ``"<score>-decorrelated"`` when the model file holds a map
for it (:func:`lgae_hep.scoring.registry.check_score`).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> m = rng.uniform(20, 300, 20000)
>>> s = np.log(m) + rng.normal(size=m.size)          # a score that grows with the mass
>>> dec = MassDecorrelation.fit(s, m, n_bins=10)
>>> y, clamped = dec.transform(s, m)
>>> low, high = m < 100, m > 200                      # the same fraction passes at every mass
>>> bool(abs((y[low] > -np.log(0.1)).mean() - (y[high] > -np.log(0.1)).mean()) < 0.02)
True
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch

__all__ = ["MassDecorrelation", "STATE_VERSION"]

STATE_VERSION = 1
#: Quantile levels of the stored maps: dense in the upper tail, where cuts are made.
_LEVELS = np.unique(np.concatenate([np.linspace(0.0, 0.9, 91),
                                    1.0 - np.logspace(-1, -4, 61)]))


class MassDecorrelation:
    """Per-mass-bin QCD quantile maps of one score (module docstring).

    Parameters
    ----------
    edges : array_like
        Increasing mass bin edges in GeV, ``(n_bins + 1,)``.
    knots : array_like
        ``(n_bins, L)`` score quantiles of each bin at :attr:`levels` (non-decreasing rows).
    levels : array_like
        ``(L,)`` increasing probabilities in [0, 1] of the knots.
    counts : array_like
        ``(n_bins,)`` QCD jets per bin in the fit (the resolution of the map).
    info : mapping, optional
        Provenance (score name, fit sample).
    """

    def __init__(self, edges: Any, knots: Any, levels: Any, counts: Any,
                 info: dict[str, Any] | None = None) -> None:
        self.edges = np.asarray(edges, dtype=np.float64)
        self.knots = np.asarray(knots, dtype=np.float64)
        self.levels = np.asarray(levels, dtype=np.float64)
        self.counts = np.asarray(counts, dtype=np.int64)
        nb = len(self.edges) - 1
        if (nb < 1 or self.knots.shape != (nb, len(self.levels)) or self.counts.shape != (nb,)
                or not np.all(np.diff(self.edges) > 0) or not np.isfinite(self.knots).all()
                or not np.all(np.diff(self.knots, axis=1) >= 0)
                or not np.all(np.diff(self.levels) > 0) or (self.counts < 1).any()
                or self.levels[0] < 0 or self.levels[-1] > 1):
            raise ValueError(
                f"inconsistent mass decorrelation map: edges {self.edges.shape}, knots "
                f"{self.knots.shape}, levels {self.levels.shape}, counts {self.counts.shape} "
                "(edges and levels must increase, knot rows must not decrease, counts >= 1)")
        self.info = dict(info or {})

    @classmethod
    def fit(cls, scores: Any, masses: Any, *, n_bins: int = 20, min_per_bin: int = 200,
            info: dict[str, Any] | None = None) -> MassDecorrelation:
        """Fit on QCD jets: equal-population bins in mass, the score's quantiles in each.

        Jets with a non-finite score or a non-positive mass are left out. ``n_bins`` is reduced
        so that every bin holds at least ``min_per_bin`` jets; ``ValueError`` if fewer than
        ``min_per_bin`` jets remain.
        """
        s = np.asarray(scores, dtype=np.float64).reshape(-1)
        m = np.asarray(masses, dtype=np.float64).reshape(-1)
        if s.shape != m.shape:
            raise ValueError(f"scores and masses differ in length: {s.shape} vs {m.shape}")
        ok = np.isfinite(s) & np.isfinite(m) & (m > 0)
        s, m = s[ok], m[ok]
        if len(s) < min_per_bin:
            raise ValueError(f"a mass decorrelation needs at least {min_per_bin} QCD jets with "
                             f"a finite score and mass, got {len(s)}")
        nb = int(max(1, min(n_bins, len(s) // min_per_bin)))
        edges = np.quantile(m, np.linspace(0, 1, nb + 1))
        edges = np.unique(edges)
        nb = len(edges) - 1
        idx = np.clip(np.searchsorted(edges, m, side="right") - 1, 0, nb - 1)
        knots = np.stack([np.quantile(s[idx == b], _LEVELS) for b in range(nb)])
        counts = np.bincount(idx, minlength=nb)
        meta = {"n_jets": int(len(s)), "n_bins": nb}
        meta.update(info or {})
        return cls(edges, knots, _LEVELS, counts, meta)

    def transform(self, scores: Any, masses: Any) -> tuple[np.ndarray, int]:
        """``(decorrelated scores, number of jets whose mass was clamped into the range)``.

        NaN where the score or the mass is NaN (or the mass is not positive)."""
        s = np.asarray(scores, dtype=np.float64).reshape(-1)
        m = np.asarray(masses, dtype=np.float64).reshape(-1)
        out = np.full(len(s), np.nan)
        ok = np.isfinite(s) & np.isfinite(m) & (m > 0)
        outside = ok & ((m < self.edges[0]) | (m > self.edges[-1]))
        nb = len(self.counts)
        idx = np.clip(np.searchsorted(self.edges, m[ok], side="right") - 1, 0, nb - 1)
        for b in np.unique(idx):
            sel = np.flatnonzero(ok)[idx == b]
            k = self.knots[b]
            cap = 1.0 - 0.5 / self.counts[b]
            f = np.minimum(np.interp(s[sel], k, self.levels), cap)
            y = -np.log1p(-f)
            spread = max(k[-1] - np.interp(0.5, self.levels, k), 1e-12 * max(1.0, abs(k[-1])))
            y += np.maximum(s[sel] - k[-1], 0.0) / spread
            out[sel] = y
        return out, int(outside.sum())

    # ------------------------------------------------------------------ storage
    def to_state(self) -> dict[str, Any]:
        """A plain dict (tensors and a JSON string) for a weights-only model file."""
        return {"version": STATE_VERSION, "config": json.dumps({"info": self.info}),
                "edges": torch.from_numpy(self.edges.copy()),
                "knots": torch.from_numpy(self.knots.copy()),
                "levels": torch.from_numpy(self.levels.copy()),
                "counts": torch.from_numpy(self.counts.copy())}

    @classmethod
    def from_state(cls, state: Any) -> MassDecorrelation:
        """Rebuild from :meth:`to_state`; ``ValueError`` saying what is missing or corrupt."""
        if not isinstance(state, dict):
            raise ValueError(f"mass decorrelation must be a dict, got {type(state).__name__}")
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"mass decorrelation version {state.get('version')!r} is not "
                             f"supported (expected {STATE_VERSION})")
        missing = [k for k in ("config", "edges", "knots", "levels", "counts") if k not in state]
        if missing:
            raise ValueError(f"mass decorrelation is missing {missing}")
        for k in ("edges", "knots", "levels", "counts"):
            if not isinstance(state[k], torch.Tensor):
                raise ValueError(f"mass decorrelation {k!r} must be a tensor")
        try:
            info = json.loads(state["config"]).get("info")
        except (TypeError, ValueError, AttributeError) as err:
            raise ValueError(f"mass decorrelation config is not valid ({err})") from None
        return cls(*(state[k].detach().cpu().numpy() for k in ("edges", "knots", "levels",
                                                                  "counts")), info)
