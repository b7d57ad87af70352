"""Evaluation metrics of the autoencoders, on plain numpy / awkward arrays (no model code).

One concept per module, all public names re-exported here:

:mod:`~lgae_hep.metrics.anomaly`
    ROC curves, AUC and signal efficiencies at fixed background efficiencies
    (:func:`anomaly_metrics`).
:mod:`~lgae_hep.metrics.reconstruction`
    Hungarian-matched relative errors and Wasserstein-1 distances of particle and jet features
    (:func:`reconstruction_metrics`).
:mod:`~lgae_hep.metrics.result`
    :class:`EvaluationResult`, its strict-JSON I/O and summary table.
``lgae_hep.metrics._arrays``
    Array and jet helpers (:func:`to_numpy`, :func:`padded_p4`, :func:`jet_masses`, ...).

:func:`lgae_hep.evaluate.evaluate` runs all of them from model callables and draws the plots of
:mod:`lgae_hep.plotting`. Importing this package does not import torch.
"""

from __future__ import annotations

from lgae_hep.metrics._arrays import (
    flat_jets,
    is_awkward,
    jet_components,
    jet_masses,
    padded_p4,
    signed_mass,
    to_numpy,
)
from lgae_hep.metrics.anomaly import (
    DEFAULT_EPS_B,
    anomaly_metrics,
    auc,
    auc_standard_error,
    eps_key,
    roc_curve,
    signal_efficiency_at,
)
from lgae_hep.metrics.reconstruction import (
    JET_FEATURES,
    PARTICLE_FEATURES,
    particle_jet_features,
    reconstruction_features,
    reconstruction_metrics,
    reconstruction_metrics_from_features,
)
from lgae_hep.metrics.result import EvaluationResult
from lgae_hep.metrics.sculpting import (
    DEFAULT_MASS_BINS,
    DEFAULT_SCULPTING_EPS_B,
    decorrelation_point,
    jensen_shannon,
    mass_sculpting,
)
from lgae_hep.metrics.yardsticks import (
    DENSITY_YARDSTICK,
    YARDSTICKS,
    DensityYardstick,
    scores_from_observables,
    yardstick_metrics,
    yardstick_scores,
)

__all__ = [
    "DENSITY_YARDSTICK",
    "DensityYardstick",
    "YARDSTICKS",
    "scores_from_observables",
    "yardstick_metrics",
    "yardstick_scores",
    "DEFAULT_MASS_BINS",
    "DEFAULT_SCULPTING_EPS_B",
    "decorrelation_point",
    "jensen_shannon",
    "mass_sculpting",
    "DEFAULT_EPS_B",
    "JET_FEATURES",
    "PARTICLE_FEATURES",
    "EvaluationResult",
    "anomaly_metrics",
    "auc",
    "auc_standard_error",
    "eps_key",
    "flat_jets",
    "is_awkward",
    "jet_components",
    "jet_masses",
    "padded_p4",
    "particle_jet_features",
    "reconstruction_features",
    "reconstruction_metrics",
    "reconstruction_metrics_from_features",
    "roc_curve",
    "signal_efficiency_at",
    "signed_mass",
    "to_numpy",
]
