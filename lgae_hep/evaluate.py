"""Anomaly-detection and reconstruction metrics, and the ``lgae-hep evaluate`` command.

Everything here works on plain numpy arrays (and awkward arrays of jets for the orchestration),
so it is independent of the model code: the model side is plugged in through callables.

Anomaly metrics
    Convention: a **higher score is more anomalous**; background (QCD) is the negative class and
    each signal the positive class. :func:`roc_curve`, :func:`auc`, :func:`signal_efficiency_at`
    and :func:`anomaly_metrics` use scikit-learn. Non-finite scores (NaN is what the scoring API
    returns for jets flagged invalid by the bad-input policy) are excluded with ONE warning per
    sample that counts them; they are never silently dropped, and the counts are part of the
    results.

Reconstruction metrics (as in the LGAE paper, Hao et al. 2022)
    Input and reconstructed particle clouds, (B, N, 4) (E, px, py, pz) in GeV with boolean masks,
    are matched jet by jet with the Hungarian algorithm (:func:`lgae_hep.losses.hungarian_match`,
    squared Euclidean 4-vector distance, the metric of the Chamfer loss). Particle features are
    taken relative to the jet axis as in JetNet (each cloud relative to its own jet, i.e. the sum
    of its real particles): ``pt_rel = pT / pT_jet``, ``eta_rel = eta - eta_jet``,
    ``phi_rel = phi - phi_jet`` wrapped to [-pi, pi). Jet features are the mass, pT and eta of the
    sum of the real particles. See :func:`reconstruction_metrics` for the error definitions.

Results
    :class:`EvaluationResult` is a JSON-serialisable container (``to_json`` / ``from_json``);
    :func:`evaluate` runs everything from ``score_fn`` / ``reconstruct_fn`` callables and writes
    the JSON and the plots of :mod:`lgae_hep.plotting`.

No torch import at module level: torch is only touched (lazily) for the Hungarian matching and by
the CLI, which goes through :mod:`lgae_hep.api`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

__all__ = [
    "DEFAULT_EPS_B",
    "EvaluationResult",
    "anomaly_metrics",
    "auc",
    "evaluate",
    "padded_p4",
    "to_numpy",
    "jet_masses",
    "particle_jet_features",
    "reconstruction_features",
    "reconstruction_metrics",
    "roc_curve",
    "signal_efficiency_at",
]

#: background efficiencies at which signal efficiencies are quoted (as in the LGAE paper)
DEFAULT_EPS_B: tuple[float, ...] = (1e-1, 1e-2, 1e-3)

PARTICLE_FEATURES: tuple[str, ...] = ("pt_rel", "eta_rel", "phi_rel")
JET_FEATURES: tuple[str, ...] = ("mass", "pt", "eta")


# --------------------------------------------------------------------------------------------
# scores and ROC
# --------------------------------------------------------------------------------------------


def to_numpy(x: Any) -> np.ndarray:
    """numpy view of a numpy / torch / awkward / list input (awkward is flattened fully)."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch tensor, without importing torch
        x = x.detach().cpu().numpy()
    elif _is_awkward(x):
        import awkward as ak

        x = ak.to_numpy(ak.flatten(x, axis=None))
    return np.asarray(x)


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
    from sklearn.metrics import roc_curve as _sk_roc

    y, s, _, _ = _labels_and_scores(scores_bkg, scores_sig)
    eps_b, eps_s, thr = _sk_roc(y, s)
    return eps_b, eps_s, thr


def auc(scores_bkg: Any, scores_sig: Any) -> float:
    """Area under the ROC curve (probability that a signal jet scores above a background jet,
    ties counting one half); 0.5 for identical distributions, 1 for perfect separation.

    Non-finite scores are excluded with a warning counting them.
    """
    from sklearn.metrics import roc_auc_score

    y, s, _, _ = _labels_and_scores(scores_bkg, scores_sig)
    return float(roc_auc_score(y, s))


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


def _eps_key(eps: float) -> str:
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
    from sklearn.metrics import auc as _sk_auc
    from sklearn.metrics import roc_curve as _sk_roc

    y = np.concatenate([np.zeros(bkg.size, dtype=np.int8), np.ones(sig.size, dtype=np.int8)])
    s = np.concatenate([bkg, sig])
    fpr, tpr, _ = _sk_roc(y, s)
    eff = _eps_s_at(fpr, tpr, bkg.size, eps_b, min_background)
    out: dict[str, Any] = {
        # trapezoid on the ROC = roc_auc_score (which does the same), without a second sort
        "auc": float(_sk_auc(fpr, tpr)),
        "eps_s": {_eps_key(k): v for k, v in eff.items()},
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


# --------------------------------------------------------------------------------------------
# reconstruction
# --------------------------------------------------------------------------------------------


def _wrap_phi(phi: np.ndarray) -> np.ndarray:
    """Wrap angles to [-pi, pi)."""
    return (phi + np.pi) % (2.0 * np.pi) - np.pi


def _check_cloud(name: str, p4: Any, mask: Any) -> tuple[np.ndarray, np.ndarray]:
    p4 = to_numpy(p4).astype(np.float64, copy=False)
    if p4.ndim != 3 or p4.shape[-1] != 4:
        raise ValueError(
            f"{name} must have shape (B, N, 4) with (E, px, py, pz) last, got {p4.shape}"
        )
    if mask is None:
        mask = np.ones(p4.shape[:2], dtype=bool)
    mask = to_numpy(mask)
    if mask.shape != p4.shape[:2]:
        raise ValueError(
            f"mask of {name} must have shape {p4.shape[:2]} (B, N), got {mask.shape}"
        )
    return p4, mask.astype(bool, copy=False)


def _signed_mass(e: np.ndarray, px: np.ndarray, py: np.ndarray, pz: np.ndarray) -> np.ndarray:
    """Invariant mass, negative for space-like 4-vectors (ROOT's TLorentzVector::M convention)."""
    m2 = e * e - (px * px + py * py + pz * pz)
    return np.sign(m2) * np.sqrt(np.abs(m2))


def particle_jet_features(
    p4: Any, mask: Any = None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """JetNet-style relative particle features and jet features of padded particle clouds.

    Parameters
    ----------
    p4 : array_like
        (B, N, 4) (E, px, py, pz) in GeV.
    mask : array_like of bool, optional
        (B, N) real particles (default: all).

    Returns
    -------
    particle : dict
        ``pt_rel``, ``eta_rel``, ``phi_rel`` (and ``pt``, ``eta``, ``phi``), each (B, N), NaN for
        padded slots. The jet axis is the sum of the real particles of the same cloud;
        ``phi_rel`` is wrapped to [-pi, pi). A particle (or jet) with pT = 0 has undefined eta:
        NaN.
    jet : dict
        ``mass`` (signed: negative for a space-like sum), ``pt``, ``eta``, ``phi``, ``n`` (number
        of real particles), each (B,).
    """
    p4, mask = _check_cloud("p4", p4, mask)
    w = np.where(mask[..., None], p4, 0.0)
    jet4 = w.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        jpt = np.hypot(jet4[:, 1], jet4[:, 2])
        jeta = np.where(jpt > 0, np.arcsinh(jet4[:, 3] / jpt), np.nan)
        jphi = np.arctan2(jet4[:, 2], jet4[:, 1])
        jet = {
            "mass": _signed_mass(*jet4.T),
            "pt": jpt,
            "eta": jeta,
            "phi": jphi,
            "n": mask.sum(axis=1),
        }
        pt = np.hypot(p4[..., 1], p4[..., 2])
        eta = np.where(pt > 0, np.arcsinh(p4[..., 3] / pt), np.nan)
        phi = np.arctan2(p4[..., 2], p4[..., 1])
        particle = {
            "pt_rel": pt / jpt[:, None],
            "eta_rel": eta - jeta[:, None],
            "phi_rel": _wrap_phi(phi - jphi[:, None]),
            "pt": pt,
            "eta": eta,
            "phi": phi,
        }
    for k, v in particle.items():
        particle[k] = np.where(mask, v, np.nan)
    return particle, jet


def _hungarian(
    x: np.ndarray, y: np.ndarray, mx: np.ndarray, my: np.ndarray, progress: bool
) -> np.ndarray:
    """perm (B, N): index in y[b] matched to x[b, i], -1 for padding / unmatched.

    Uses :func:`lgae_hep.losses.hungarian_match` (in chunks, for a progress bar); falls back to
    scipy directly when that module (which needs torch) cannot be imported.
    """
    try:
        from lgae_hep.losses import hungarian_match
    except ImportError:  # pragma: no cover - torch is a hard dependency of the package
        hungarian_match = None
    from tqdm.auto import tqdm

    chunk = 2048
    perm = np.full(x.shape[:2], -1, dtype=np.int64)
    starts = range(0, x.shape[0], chunk)
    for s in tqdm(starts, desc="Hungarian matching", unit="chunk", disable=not progress):
        sl = slice(s, s + chunk)
        if hungarian_match is not None:
            perm[sl] = hungarian_match(x[sl], y[sl], mx[sl], my[sl])
            continue
        from scipy.optimize import linear_sum_assignment

        for b in range(sl.start, min(sl.stop, x.shape[0])):
            ix, iy = np.flatnonzero(mx[b]), np.flatnonzero(my[b])
            if ix.size and iy.size:
                d = ((x[b, ix, None, :] - y[b, None, iy, :]) ** 2).sum(-1)
                r, c = linear_sum_assignment(d)
                perm[b, ix[r]] = iy[c]
    return perm


def reconstruction_features(
    p4_in: Any,
    mask_in: Any,
    p4_reco: Any,
    mask_reco: Any,
    *,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Features of input and reconstructed clouds, particles paired by Hungarian matching.

    Returns
    -------
    dict
        ``"matched"``: ``{"input": {feature: (P,)}, "reco": {feature: (P,)}}`` for the P matched
        particle pairs (``pt_rel``, ``eta_rel``, ``phi_rel``); ``"jet"``: ``{"input": {feature:
        (B,)}, "reco": {...}}`` (``mass``, ``pt``, ``eta``, ``n``); ``"particles"``: all real
        particles of each cloud, unmatched, ``{"input": {...}, "reco": {...}}`` (for
        distribution distances and plots); ``"padded"``: the (B, N) particle feature dicts and
        masks of each cloud; ``"n_unmatched"``: real particles without a partner
        (multiplicity differences).
    """
    x, mx = _check_cloud("p4_in", p4_in, mask_in)
    y, my = _check_cloud("p4_reco", p4_reco, mask_reco)
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"p4_in and p4_reco must hold the same jets, got {x.shape[0]} and {y.shape[0]}"
        )
    if progress is None:
        progress = x.shape[0] > 20_000
    perm = _hungarian(x, y, mx, my, progress)
    pin, jin = particle_jet_features(x, mx)
    pre, jre = particle_jet_features(y, my)
    b_idx, i_idx = np.nonzero(perm >= 0)
    j_idx = perm[b_idx, i_idx]
    matched_in = {f: pin[f][b_idx, i_idx] for f in PARTICLE_FEATURES}
    matched_re = {f: pre[f][b_idx, j_idx] for f in PARTICLE_FEATURES}
    n_matched = b_idx.size
    return {
        "matched": {"input": matched_in, "reco": matched_re},
        "jet": {"input": jin, "reco": jre},
        "particles": {
            "input": {f: pin[f][mx] for f in PARTICLE_FEATURES},
            "reco": {f: pre[f][my] for f in PARTICLE_FEATURES},
        },
        "padded": {"input": (pin, mx), "reco": (pre, my)},
        "n_unmatched": int(mx.sum() + my.sum() - 2 * n_matched),
        "n_matched": int(n_matched),
    }


def _summary(err: np.ndarray) -> dict[str, Any]:
    finite = np.isfinite(err)
    e = err[finite]
    if e.size == 0:
        return {"median": math.nan, "iqr": math.nan, "q25": math.nan, "q75": math.nan,
                "n": 0, "n_nonfinite": int(err.size)}
    q25, med, q75 = np.percentile(e, [25.0, 50.0, 75.0])
    return {"median": float(med), "iqr": float(q75 - q25), "q25": float(q25), "q75": float(q75),
            "n": int(e.size), "n_nonfinite": int(err.size - e.size)}


def _w1(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import wasserstein_distance

    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size == 0 or b.size == 0:
        return math.nan
    return float(wasserstein_distance(a, b))


def _jetnet_w1(mask_in: np.ndarray, mask_reco: np.ndarray, p_in: dict, p_re: dict
               ) -> dict[str, Any]:
    """jetnet's bootstrapped W1 metrics when jetnet imports; a note otherwise (never required)."""
    try:  # jetnet is optional and its import fails under numpy 2 with an unrebuilt Wasserstein
        from jetnet import evaluation as jn_eval
    except Exception as exc:  # noqa: BLE001 - any import-time failure means "not available"
        return {"available": False,
                "note": f"jetnet not importable ({type(exc).__name__}); W1 from scipy on the "
                        "full samples. To use jetnet under numpy 2: pip install jetnet && pip "
                        "install --no-build-isolation --no-deps --force-reinstall "
                        "Wasserstein==1.0.1"}
    out: dict[str, Any] = {"available": True}
    try:
        def stack(p: dict, m: np.ndarray) -> np.ndarray:
            arr = np.stack([p["eta_rel"], p["phi_rel"], p["pt_rel"]], axis=-1)
            return np.nan_to_num(np.where(m[..., None], arr, 0.0))

        j1, j2 = stack(p_in, mask_in), stack(p_re, mask_reco)
        means, stds = jn_eval.w1p(j1, j2, mask_in, mask_reco, exclude_zeros=True)
        out["w1p_mean"] = [float(v) for v in np.atleast_1d(means)]
        out["w1p_std"] = [float(v) for v in np.atleast_1d(stds)]
        m_mean, m_std = jn_eval.w1m(j1, j2)
        out["w1m_mean"], out["w1m_std"] = float(m_mean), float(m_std)
    except Exception as exc:  # noqa: BLE001 - report jetnet API drift instead of failing
        out["error"] = f"{type(exc).__name__}: {exc}"
    return out


def reconstruction_metrics(
    p4_in: Any,
    mask_in: Any,
    p4_reco: Any,
    mask_reco: Any,
    *,
    angle_error: Literal["absolute", "relative"] = "absolute",
    progress: bool | None = None,
) -> dict[str, Any]:
    """Reconstruction quality as in the LGAE paper: median and IQR of errors, and W1 distances.

    Particles of each jet are matched input <-> reconstruction with the Hungarian algorithm
    (squared Euclidean 4-vector cost); only min(n_in, n_reco) pairs exist per jet and the
    unmatched count is reported.

    Error definitions (documented choice):

    * ``pt_rel`` (particles), ``mass`` and ``pt`` (jets): relative error
      ``(reco - true) / true``.
    * ``eta_rel``, ``phi_rel`` (particles) and ``eta`` (jets): with ``angle_error="absolute"``
      (default) the difference ``reco - true`` (``phi_rel`` difference wrapped to [-pi, pi)).
      These quantities are distributed around 0, where a relative error is dominated by the
      division and its IQR is meaningless; the LGAE paper's code divides by the true value for
      all features, which ``angle_error="relative"`` reproduces for comparison.

    Non-finite errors (a true value of 0, e.g. the mass of a one-particle jet, or an empty jet)
    are excluded from the statistics and counted in ``n_nonfinite``.

    Parameters
    ----------
    p4_in, p4_reco : array_like
        (B, N, 4) and (B, M, 4) (E, px, py, pz), GeV.
    mask_in, mask_reco : array_like of bool or None
        (B, N) / (B, M) real particles (None = all real).
    angle_error : {"absolute", "relative"}
        See above.
    progress : bool, optional
        tqdm bar for the matching (default: on above 20,000 jets).

    Returns
    -------
    dict
        ``{"particle": {f: stats}, "jet": {f: stats}, "n_jets", "n_matched", "n_unmatched",
        "definitions", "jetnet"}`` where stats hold ``median``, ``iqr``, ``q25``, ``q75``,
        ``n``, ``n_nonfinite`` and ``w1`` (scipy Wasserstein-1 distance between the input and
        reconstructed distributions of the feature, all real particles / all jets).
    """
    if angle_error not in ("absolute", "relative"):
        raise ValueError(f"angle_error must be 'absolute' or 'relative', got {angle_error!r}")
    feats = reconstruction_features(p4_in, mask_in, p4_reco, mask_reco, progress=progress)
    mi, mr = feats["matched"]["input"], feats["matched"]["reco"]
    ji, jr = feats["jet"]["input"], feats["jet"]["reco"]

    def rel(r: np.ndarray, t: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return (r - t) / t

    angle = rel if angle_error == "relative" else (lambda r, t: r - t)
    particle_err = {
        "pt_rel": rel(mr["pt_rel"], mi["pt_rel"]),
        "eta_rel": angle(mr["eta_rel"], mi["eta_rel"]),
        "phi_rel": (angle(mr["phi_rel"], mi["phi_rel"]) if angle_error == "relative"
                    else _wrap_phi(mr["phi_rel"] - mi["phi_rel"])),
    }
    nonempty = ji["n"] > 0
    jet_err = {
        "mass": rel(jr["mass"], ji["mass"])[nonempty],
        "pt": rel(jr["pt"], ji["pt"])[nonempty],
        "eta": angle(jr["eta"], ji["eta"])[nonempty],
    }
    pa_in, pa_re = feats["particles"]["input"], feats["particles"]["reco"]
    out: dict[str, Any] = {"particle": {}, "jet": {}}
    for f, err in particle_err.items():
        out["particle"][f] = {**_summary(err), "w1": _w1(pa_in[f], pa_re[f])}
    for f, err in jet_err.items():
        out["jet"][f] = {**_summary(err),
                         "w1": _w1(ji[f][nonempty], jr[f][jr["n"] > 0])}
    out.update(
        n_jets=int(ji["n"].size),
        n_empty_jets=int((~nonempty).sum()),
        n_matched=feats["n_matched"],
        n_unmatched=feats["n_unmatched"],
        definitions={
            "matching": "Hungarian, squared Euclidean (E, px, py, pz) distance",
            "pt_rel": "(reco - true) / true",
            "eta_rel": "reco - true" if angle_error == "absolute" else "(reco - true) / true",
            "phi_rel": ("wrap(reco - true) to [-pi, pi)" if angle_error == "absolute"
                        else "(reco - true) / true"),
            "mass": "(reco - true) / true", "pt": "(reco - true) / true",
            "eta": "reco - true" if angle_error == "absolute" else "(reco - true) / true",
            "w1": "scipy.stats.wasserstein_distance, input vs reco distributions",
        },
    )
    (pin, mx), (pre, my) = feats["padded"]["input"], feats["padded"]["reco"]
    out["jetnet"] = _jetnet_w1(mx, my, pin, pre)
    return out


# --------------------------------------------------------------------------------------------
# results container
# --------------------------------------------------------------------------------------------


def _jsonable(obj: Any) -> Any:
    """Plain JSON types; non-finite floats become null (read back as NaN by from_dict)."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    return obj


def _nulls_to_nan(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _nulls_to_nan(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_nulls_to_nan(v) for v in obj]
    return math.nan if obj is None else obj


@dataclasses.dataclass
class EvaluationResult:
    """Everything an evaluation measured, independent of the model's compression rate.

    Attributes
    ----------
    anomaly : dict
        Output of :func:`anomaly_metrics`.
    reconstruction : dict or None
        Output of :func:`reconstruction_metrics` on the background sample, if computed.
    compression_rate : float, dict or None
        Latent size / input size as the model reports it (see DESIGN.md section 3); the models
        report a dict of conventions, e.g. ``{"paper": ..., "p4": ...}`` (over N x 3 as in the
        paper, or over the N x 4 Cartesian inputs).
    model : str or None
        Model name or path.
    metadata : dict
        Free-form provenance (sample sizes, files, timing, versions).

    Non-finite numbers are written to JSON as ``null`` (strict JSON) and read back as NaN inside
    ``anomaly`` and ``reconstruction``.
    """

    anomaly: dict[str, Any]
    reconstruction: dict[str, Any] | None = None
    compression_rate: float | dict[str, float] | None = None
    model: str | None = None
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dict (non-finite floats as None)."""
        return _jsonable(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvaluationResult:
        """Inverse of :meth:`to_dict`."""
        if not isinstance(data, Mapping) or "anomaly" not in data:
            keys = sorted(data) if isinstance(data, Mapping) else "-"
            raise ValueError(
                "not an EvaluationResult: expected a mapping with an 'anomaly' entry, got "
                f"{type(data).__name__} with keys {keys}"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(
                f"unknown EvaluationResult fields {sorted(unknown)}; known {sorted(known)}"
            )
        kw = dict(data)
        kw["anomaly"] = _nulls_to_nan(kw["anomaly"])
        if kw.get("reconstruction") is not None:
            kw["reconstruction"] = _nulls_to_nan(kw["reconstruction"])
        kw.setdefault("metadata", {})
        return cls(**kw)

    def to_json(self, path: str | Path) -> Path:
        """Write the result as strict JSON (indent 2); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")
        return path

    @classmethod
    def from_json(cls, path: str | Path) -> EvaluationResult:
        """Read a result written by :meth:`to_json`."""
        from lgae_hep._jsonio import read_json

        return cls.from_dict(read_json(path, "evaluation result file"))

    def summary_table(self) -> str:
        """Markdown table in the paper's format: AUC and eps_s at each eps_b per signal."""
        eps = self.anomaly.get("eps_b", list(DEFAULT_EPS_B))
        head = "| signal | AUC | " + " | ".join(f"eps_s @ eps_b={e:g}" for e in eps) + " |"
        rows = [head, "|" + "---|" * (2 + len(eps))]
        for name, m in self.anomaly["signals"].items():
            effs = " | ".join(f"{m['eps_s'][_eps_key(e)]:.3f}" for e in eps)
            rows.append(f"| {name} | {m['auc']:.3f} | {effs} |")
        return "\n".join(rows)


# --------------------------------------------------------------------------------------------
# orchestration
# --------------------------------------------------------------------------------------------


def _is_awkward(x: Any) -> bool:
    """An awkward Array (including behaviour subclasses such as vector's MomentumArray4D)."""
    import awkward as ak

    return isinstance(x, ak.Array)


def _flat_jets(jets: Any) -> Any:
    """[..][jet][particle] awkward -> [jet][particle]; other inputs unchanged."""
    if not _is_awkward(jets):
        return jets
    import awkward as ak

    while jets.ndim > 2:
        jets = ak.flatten(jets, axis=1)
    return jets


def jet_masses(jets: Any) -> np.ndarray:
    """Invariant mass of the constituent sum of each jet, flattened to (n_jets,), GeV.

    ``jets`` is an awkward array [..][jet][particle] of Lorentz vectors that ``vector``
    understands (any coordinate system) or of records with ``E, px, py, pz`` fields. Space-like
    sums give a negative mass (ROOT convention).
    """
    if not _is_awkward(jets):
        raise ValueError(f"jets must be an awkward array of particles, got {type(jets).__name__}")
    import awkward as ak

    jets, comps = _components(jets)
    e, px, py, pz = (ak.to_numpy(ak.sum(c, axis=1)).astype(np.float64) for c in comps)
    return _signed_mass(e, px, py, pz)


def _components(jets: Any) -> tuple[Any, list[Any]]:
    """Flattened [jet][particle] jets and their (E, px, py, pz) awkward arrays."""
    import vector

    vector.register_awkward()
    jets = _flat_jets(jets)
    if jets.ndim != 2:
        raise ValueError(f"jets must be [..][jet][particle], got {jets.ndim} list levels")
    try:
        comps = [jets.E if "E" in jets.fields else jets.t, jets.px, jets.py, jets.pz]
    except AttributeError as exc:
        raise ValueError(
            f"jets have fields {jets.fields}; expected Lorentz vectors (vector's Momentum4D "
            "or E/px/py/pz)"
        ) from exc
    return jets, comps


def padded_p4(jets: Any) -> tuple[np.ndarray, np.ndarray]:
    """[jet][particle] Lorentz vectors -> (B, M, 4) (E, px, py, pz) and mask, M = largest jet.

    Unlike :func:`lgae_hep.data.to_tensors` no physics validation is applied: this is for
    network *outputs* (reconstructions), which are evaluated as they are.
    """
    import awkward as ak

    jets, comps = _components(jets)
    comps = [ak.fill_none(c, [], axis=0) for c in comps]  # invalid (None) jets -> no particles
    counts = ak.to_numpy(ak.num(comps[0], axis=1))
    m = max(int(counts.max(initial=0)), 1)
    p4 = np.stack(
        [ak.to_numpy(ak.fill_none(ak.pad_none(c, m, axis=1, clip=True), 0.0)).astype(np.float64)
         for c in comps], axis=-1)
    return p4, np.arange(m)[None, :] < counts[:, None]


def _n_jets(jets: Any) -> int:
    return len(jets)


def _score_array(score_fn: Callable[[Any], Any], jets: Any, name: str) -> np.ndarray:
    s = to_numpy(score_fn(jets)).astype(np.float64, copy=False).reshape(-1)
    n = _n_jets(jets)
    if s.size != n:
        raise ValueError(
            f"score_fn returned {s.size} scores for the {n} jets of {name!r}; expected one per jet"
        )
    return s


def _unpack_reco(out: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if not isinstance(out, (tuple, list)) or len(out) != 4:
        raise ValueError(
            "reconstruct_fn must return (p4_in, mask_in, p4_reco, mask_reco), got "
            f"{type(out).__name__}" + (f" of length {len(out)}" if hasattr(out, "__len__") else "")
        )
    return tuple(to_numpy(o) for o in out)  # type: ignore[return-value]


def _latent_dict(z: Any, n: int, name: str) -> dict[str, np.ndarray]:
    if isinstance(z, Mapping):
        out = {str(k): to_numpy(v).reshape(n, -1) for k, v in z.items()}
    else:
        arr = to_numpy(z)
        if arr.shape[0] != n:
            raise ValueError(f"latent_fn returned {arr.shape[0]} rows for {n} jets of {name!r}")
        arr = arr.reshape(n, -1)
        out = {f"invariant {i}": arr[:, i] for i in range(arr.shape[1])}
    flat: dict[str, np.ndarray] = {}
    for k, v in out.items():
        if v.ndim == 2 and v.shape[1] > 1:
            flat.update({f"{k} [{i}]": v[:, i] for i in range(v.shape[1])})
        else:
            flat[k] = v.reshape(n)
    return flat


def evaluate(
    score_fn: Callable[[Any], Any],
    background: Any,
    signals: Mapping[str, Any],
    *,
    reconstruct_fn: Callable[[Any], Any] | None = None,
    latent_fn: Callable[[Any], Any] | None = None,
    background_name: str = "QCD",
    eps_b: Sequence[float] = DEFAULT_EPS_B,
    min_background: float = 1.0,
    max_jets: int | None = None,
    compression_rate: float | Mapping[str, float] | None = None,
    model_name: str | None = None,
    angle_error: Literal["absolute", "relative"] = "absolute",
    mass_cut_eps_b: Sequence[float] = (1e-1, 1e-2),
    outdir: str | Path | None = None,
    plots: bool = True,
    formats: Sequence[str] = ("png", "pdf"),
    progress: bool = True,
) -> EvaluationResult:
    """Run the paper's evaluation from model callables.

    Parameters
    ----------
    score_fn : callable
        ``score_fn(jets) -> scores``, one per jet (numpy, torch or awkward with the jets' outer
        structure; flattened). NaN for invalid jets is allowed (excluded, counted, warned).
    background, signals : jets
        Background jets and a mapping signal name -> jets. Awkward arrays [..][jet][particle]
        are flattened to [jet][particle] first; anything else is passed to the callables as is.
    reconstruct_fn : callable, optional
        ``reconstruct_fn(jets) -> (p4_in, mask_in, p4_reco, mask_reco)`` as numpy/torch arrays
        (B, N, 4)/(B, N)/(B, M, 4)/(B, M); reconstruction metrics are computed on the background.
    latent_fn : callable, optional
        ``latent_fn(jets) -> invariants``: (n_jets,) or (n_jets, k) array, or mapping name ->
        per-jet values (e.g. Minkowski norms of the latent 4-vectors); only plotted.
    background_name : str
        Label of the background class in plots and outputs.
    eps_b, min_background : see :func:`anomaly_metrics`.
    max_jets : int, optional
        Use at most this many jets per sample (the first ones).
    compression_rate, model_name : stored in the result.
    angle_error : see :func:`reconstruction_metrics`.
    mass_cut_eps_b : sequence of float
        Background efficiencies of the score cuts in the mass-sculpting plot.
    outdir : path, optional
        Write ``metrics.json``, ``scores.npz`` and (if ``plots``) the plots there.
    formats : sequence of str
        Plot file formats.
    progress : bool
        Progress bar over the samples.

    Returns
    -------
    EvaluationResult
    """
    from tqdm.auto import tqdm

    if not isinstance(signals, Mapping) or not signals:
        raise ValueError("signals must be a non-empty mapping name -> jets")
    if background_name in signals:
        raise ValueError(f"background name {background_name!r} is also a signal name")
    if max_jets is not None and max_jets < 1:
        raise ValueError(f"max_jets must be a positive integer, got {max_jets}")
    t0 = time.perf_counter()
    samples = {background_name: background, **{str(k): v for k, v in signals.items()}}
    samples = {k: _flat_jets(v) for k, v in samples.items()}
    if max_jets is not None:
        samples = {k: v[:max_jets] for k, v in samples.items()}
    for k, v in samples.items():
        if _n_jets(v) == 0:
            raise ValueError(f"sample {k!r} has no jets; expected at least one")

    scores: dict[str, np.ndarray] = {}
    for name in tqdm(samples, desc="scoring", unit="sample", disable=not progress):
        scores[name] = _score_array(score_fn, samples[name], name)
    t_score = time.perf_counter() - t0
    metrics = anomaly_metrics(
        scores[background_name], {k: v for k, v in scores.items() if k != background_name},
        eps_b=eps_b, min_background=min_background,
    )

    reco = None
    reco_feats = None
    bkg_mass = None
    if reconstruct_fn is not None:
        p_in, m_in, p_re, m_re = _unpack_reco(reconstruct_fn(samples[background_name]))
        if p_in.shape[0] != scores[background_name].size:
            raise ValueError(
                f"reconstruct_fn returned {p_in.shape[0]} jets for the "
                f"{scores[background_name].size} background jets"
            )
        reco = reconstruction_metrics(p_in, m_in, p_re, m_re, angle_error=angle_error,
                                      progress=progress and p_in.shape[0] > 20_000)
        if outdir is not None and plots:
            reco_feats = reconstruction_features(p_in, m_in, p_re, m_re, progress=False)
        bkg_mass = particle_jet_features(p_in, m_in)[1]["mass"]
    if _is_awkward(samples[background_name]):
        try:
            bkg_mass = jet_masses(samples[background_name])
        except ValueError:
            pass

    latents = None
    if latent_fn is not None:
        latents = {k: _latent_dict(latent_fn(v), _n_jets(v), k) for k, v in samples.items()}

    result = EvaluationResult(
        anomaly=metrics,
        reconstruction=reco,
        compression_rate=(
            None if compression_rate is None
            else {str(k): float(v) for k, v in compression_rate.items()}
            if isinstance(compression_rate, Mapping) else float(compression_rate)
        ),
        model=model_name,
        metadata={
            "background": background_name,
            "n_jets": {k: int(v.size) for k, v in scores.items()},
            "scoring_seconds": t_score,
            "total_seconds": time.perf_counter() - t0,
            "numpy": np.__version__,
        },
    )
    if outdir is not None:
        outdir = Path(outdir)
        outdir.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(outdir / "scores.npz", **scores)
        if plots:
            _write_plots(outdir, result, scores, background_name, reco_feats, latents, bkg_mass,
                         mass_cut_eps_b, formats)
        result.metadata["total_seconds"] = time.perf_counter() - t0
        result.to_json(outdir / "metrics.json")
    return result


def _write_plots(
    outdir: Path, result: EvaluationResult, scores: dict[str, np.ndarray], background_name: str,
    reco_feats: dict | None, latents: dict | None, bkg_mass: np.ndarray | None,
    mass_cut_eps_b: Sequence[float], formats: Sequence[str],
) -> None:
    from lgae_hep import plotting

    result.metadata["plots"] = []

    def save(fig_fn: Callable[..., Any], stem: str, *args: Any, **kw: Any) -> None:
        fig_fn(*args, path=outdir / stem, formats=formats, **kw)
        result.metadata["plots"].extend(f"{stem}.{f}" for f in formats)

    save(plotting.plot_roc, "roc", result.anomaly)
    save(plotting.plot_score_distributions, "scores", plotting.score_histogram(scores))
    if reco_feats is not None:
        save(plotting.plot_feature_comparison, "reconstruction",
             plotting.features_for_plot(reco_feats, "input"),
             plotting.features_for_plot(reco_feats, "reco"))
    if latents is not None:
        save(plotting.plot_latent_invariants, "latent_invariants", latents)
    if bkg_mass is not None and bkg_mass.size == scores[background_name].size:
        save(plotting.plot_mass_sculpting, "mass_sculpting", bkg_mass,
             scores[background_name], eps_b=mass_cut_eps_b)


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------
