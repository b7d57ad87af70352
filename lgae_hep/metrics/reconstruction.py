"""Reconstruction metrics as in the LGAE paper (Hao et al. 2022).

Input and reconstructed particle clouds, (B, N, 4) (E, px, py, pz) in GeV with boolean masks, are
matched jet by jet with the Hungarian algorithm (:func:`lgae_hep.losses.hungarian_match`, squared
Euclidean 4-vector distance, the metric of the Chamfer loss). Particle features are taken relative
to the jet axis as in JetNet (each cloud relative to its own jet, i.e. the sum of its real
particles): ``pt_rel = pT / pT_jet``, ``eta_rel = eta - eta_jet``, ``phi_rel = phi - phi_jet``
wrapped to [-pi, pi). Jet features are the mass, pT and eta of the sum of the real particles. See
:func:`reconstruction_metrics` for the error definitions; errors are summarised by median and IQR,
distributions compared by Wasserstein-1 distances (scipy; jetnet's bootstrapped W1 when jetnet
imports).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from scipy.stats import wasserstein_distance
from tqdm.auto import tqdm

from lgae_hep.metrics._arrays import signed_mass, to_numpy

__all__ = [
    "JET_FEATURES",
    "PARTICLE_FEATURES",
    "particle_jet_features",
    "reconstruction_features",
    "reconstruction_metrics",
    "reconstruction_metrics_from_features",
]

PARTICLE_FEATURES: tuple[str, ...] = ("pt_rel", "eta_rel", "phi_rel")
JET_FEATURES: tuple[str, ...] = ("mass", "pt", "eta")


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
            "mass": signed_mass(*jet4.T),
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

    Uses :func:`lgae_hep.losses.hungarian_match` (scipy's ``linear_sum_assignment`` per jet), in
    chunks for a progress bar.
    """
    # lazy: lgae_hep.losses imports torch, which metrics, evaluate and plotting users do not
    # need at import time (seconds of start-up; tests/evaluate checks torch stays unloaded)
    from lgae_hep.losses import hungarian_match

    chunk = 2048
    perm = np.full(x.shape[:2], -1, dtype=np.int64)
    starts = range(0, x.shape[0], chunk)
    for s in tqdm(starts, desc="Hungarian matching", unit="chunk", disable=not progress):
        sl = slice(s, s + chunk)
        perm[sl] = hungarian_match(x[sl], y[sl], mx[sl], my[sl])
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
    _check_angle_error(angle_error)
    feats = reconstruction_features(p4_in, mask_in, p4_reco, mask_reco, progress=progress)
    return reconstruction_metrics_from_features(feats, angle_error=angle_error)


def _check_angle_error(angle_error: str) -> None:
    if angle_error not in ("absolute", "relative"):
        raise ValueError(f"angle_error must be 'absolute' or 'relative', got {angle_error!r}")


def reconstruction_metrics_from_features(
    features: Mapping[str, Any],
    *,
    angle_error: Literal["absolute", "relative"] = "absolute",
) -> dict[str, Any]:
    """:func:`reconstruction_metrics` from :func:`reconstruction_features` output.

    For callers that need the matched features as well (e.g. for plots): the Hungarian
    matching then runs once. Same result as :func:`reconstruction_metrics` on the same clouds.
    """
    _check_angle_error(angle_error)
    feats = features
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
