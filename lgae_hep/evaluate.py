"""``evaluate(...)``: the paper's evaluation of a model from callables, in one call.

:func:`evaluate` scores the background and signal jets with ``score_fn``, computes the anomaly
metrics (:mod:`lgae_hep.metrics.anomaly`) and, with ``reconstruct_fn``, the reconstruction
metrics of the background (:mod:`lgae_hep.metrics.reconstruction`), collects them in an
:class:`~lgae_hep.metrics.EvaluationResult` and, with ``outdir``, writes ``scores.npz``, the
plots of :mod:`lgae_hep.plotting` and ``metrics.json`` (once). The model side is plugged in
through the callables, so nothing here imports torch.

The metric functions and the result type live in :mod:`lgae_hep.metrics` and are re-exported
here, so ``from lgae_hep.evaluate import anomaly_metrics, EvaluationResult, ...`` keeps working.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm.auto import tqdm

from lgae_hep import plotting
from lgae_hep.metrics import (
    DEFAULT_EPS_B,
    JET_FEATURES,
    PARTICLE_FEATURES,
    EvaluationResult,
    anomaly_metrics,
    auc,
    flat_jets,
    is_awkward,
    jet_masses,
    mass_sculpting,
    padded_p4,
    particle_jet_features,
    reconstruction_features,
    reconstruction_metrics,
    reconstruction_metrics_from_features,
    roc_curve,
    signal_efficiency_at,
    to_numpy,
    yardstick_metrics,
)

__all__ = [
    "DEFAULT_EPS_B",
    "JET_FEATURES",
    "PARTICLE_FEATURES",
    "EvaluationResult",
    "anomaly_metrics",
    "auc",
    "evaluate",
    "flat_jets",
    "jet_masses",
    "padded_p4",
    "particle_jet_features",
    "reconstruction_features",
    "reconstruction_metrics",
    "roc_curve",
    "signal_efficiency_at",
    "to_numpy",
]


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
    metadata: Mapping[str, Any] | None = None,
    yardsticks: bool = True,
    reference: Any = None,
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
    metadata : mapping, optional
        Extra provenance (e.g. input files) merged into ``result.metadata`` (overriding entries
        of the same name) before ``metrics.json`` is written, once.
    yardsticks : bool
        For awkward jet samples, also report the one-observable scores (jet mass,
        ``1 - tau21``, ``1 - tau32``, ``-log D2``; :mod:`lgae_hep.metrics.yardsticks`) on the
        same jets, each with its AUCs, signal efficiencies and mass sculpting, under
        ``result.anomaly["yardsticks"]``; the model's own mass sculpting is
        ``result.anomaly["sculpting"]``.
    reference : awkward jets, optional
        QCD reference jets (a validation sample, never the test background) to fit the
        unsupervised density yardstick on (:class:`lgae_hep.metrics.DensityYardstick`).

    Returns
    -------
    EvaluationResult
    """
    if not isinstance(signals, Mapping) or not signals:
        raise ValueError("signals must be a non-empty mapping name -> jets")
    if background_name in signals:
        raise ValueError(f"background name {background_name!r} is also a signal name")
    if max_jets is not None and max_jets < 1:
        raise ValueError(f"max_jets must be a positive integer, got {max_jets}")
    if reconstruct_fn is not None and angle_error not in ("absolute", "relative"):
        raise ValueError(f"angle_error must be 'absolute' or 'relative', got {angle_error!r}")
    t0 = time.perf_counter()
    samples = {background_name: background, **{str(k): v for k, v in signals.items()}}
    samples = {k: flat_jets(v) for k, v in samples.items()}
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
        # one Hungarian matching for the metrics and the reconstruction plot
        feats = reconstruction_features(p_in, m_in, p_re, m_re,
                                        progress=progress and p_in.shape[0] > 20_000)
        reco = reconstruction_metrics_from_features(feats, angle_error=angle_error)
        if outdir is not None and plots:
            reco_feats = feats
        bkg_mass = feats["jet"]["input"]["mass"]
    if is_awkward(samples[background_name]):
        try:
            bkg_mass = jet_masses(samples[background_name])
        except ValueError:
            pass
    if bkg_mass is not None and np.asarray(bkg_mass).size == scores[background_name].size:
        # how much a cut on the score reshapes the background mass (lgae_hep.metrics.sculpting)
        metrics["sculpting"] = mass_sculpting(scores[background_name], bkg_mass)
    if yardsticks and all(is_awkward(v) for v in samples.values()):
        # the model beside the classic one-observable scores on the same jets
        metrics["yardsticks"] = yardstick_metrics(
            samples[background_name],
            {k: v for k, v in samples.items() if k != background_name},
            eps_b=eps_b, min_background=min_background, reference=reference,
        )

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
    if metadata:
        result.metadata.update(metadata)
    if outdir is not None:
        result.metadata["total_seconds"] = time.perf_counter() - t0
        result.to_json(outdir / "metrics.json")
    return result


def _write_plots(
    outdir: Path, result: EvaluationResult, scores: dict[str, np.ndarray], background_name: str,
    reco_feats: dict | None, latents: dict | None, bkg_mass: np.ndarray | None,
    mass_cut_eps_b: Sequence[float], formats: Sequence[str],
) -> None:
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
