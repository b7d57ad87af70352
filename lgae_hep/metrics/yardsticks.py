"""One-observable anomaly scores: the yardsticks every model is reported beside.

Each is a classic jet observable turned into a score that grows for the jets it is known to
flag, with the direction fixed by physics (never chosen on data): the jet mass; ``1 - tau21``
(two-prong jets have small tau21); ``1 - tau32`` (three-prong); ``-log D2`` (two-prong jets
have small D2). They are computed with :mod:`lgae_hep.observables` on the same jets the model
scores (its N hardest particles, if the jets were cut so).

Given a separate QCD reference sample (validation jets, never the test background), an
unsupervised density yardstick is added: a Gaussian mixture fitted on the reference jets'
``(log m, tau21, tau32)``, with score ``-log p`` (:class:`DensityYardstick`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import awkward as ak
import numpy as np
from sklearn.mixture import GaussianMixture

from lgae_hep import observables
from lgae_hep.metrics.anomaly import DEFAULT_EPS_B, anomaly_metrics
from lgae_hep.metrics.sculpting import mass_sculpting

__all__ = ["DENSITY_YARDSTICK", "YARDSTICKS", "DensityYardstick", "jet_observables",
           "scores_from_observables", "yardstick_metrics", "yardstick_scores"]

#: score names, in report order
YARDSTICKS = ("jet mass", "1 - tau21", "1 - tau32", "-log D2")


def _flat(values: Any) -> np.ndarray:
    return np.asarray(ak.to_numpy(ak.flatten(values, axis=None)), dtype=np.float64)


def _log_positive(x: np.ndarray) -> np.ndarray:
    """log x, NaN where x is not positive."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.log(np.where(x > 0, x, np.nan))


def jet_observables(jets: Any, *, d2: bool = True) -> dict[str, np.ndarray]:
    """Flat per-jet ``mass``, ``tau21``, ``tau32`` (with FastJet, the ``sim`` extra) and, if
    ``d2``, ``d2`` (beta = 1): computed once, shared by the yardstick scores and the density."""
    out = {"mass": _flat(observables.jet_mass(jets))}
    try:
        tau = observables.nsubjettiness(jets, n=(1, 2, 3))
    except ImportError:
        tau = None
    if tau is not None:
        t1, t2, t3 = (_flat(tau[f"tau{k}"]) for k in (1, 2, 3))
        out["tau21"] = observables.ratio(t2, t1)
        out["tau32"] = observables.ratio(t3, t2)
    if d2:
        out["d2"] = _flat(observables.energy_correlation(jets).d2)
    return out


def scores_from_observables(obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The yardstick scores (:data:`YARDSTICKS`) of jets whose :func:`jet_observables` are
    already computed; without N-subjettiness only the jet mass and D2 scores."""
    out = {"jet mass": obs["mass"], "-log D2": -_log_positive(obs["d2"])}
    if "tau21" in obs:
        out["1 - tau21"] = 1.0 - obs["tau21"]
        out["1 - tau32"] = 1.0 - obs["tau32"]
    return {k: out[k] for k in YARDSTICKS if k in out}


def yardstick_scores(jets: Any) -> dict[str, np.ndarray]:
    """The yardstick scores of ``[...][jet][particle]`` jets, flat per jet (``YARDSTICKS``).

    N-subjettiness needs FastJet (the ``sim`` extra); without it only the jet mass and D2
    scores are returned.
    """
    return scores_from_observables(jet_observables(jets))


#: name of the density yardstick in reports
DENSITY_YARDSTICK = "GMM density (log m, tau21, tau32)"


class DensityYardstick:
    """Unsupervised density score on classic observables: ``-log p(log m, tau21, tau32)`` under
    a Gaussian mixture fitted on QCD reference jets (scikit-learn, full covariances, seeded).

    Parameters
    ----------
    n_components : int
        Mixture components (default 8).
    seed : int
        ``random_state`` of the fit (k-means initialisation), so the fit is reproducible.
    """

    def __init__(self, n_components: int = 8, seed: int = 0) -> None:
        if not (isinstance(n_components, int) and n_components >= 1):
            raise ValueError(f"n_components must be a positive integer, got {n_components!r}")
        self.n_components = n_components
        self.seed = seed
        self.gmm: GaussianMixture | None = None

    @staticmethod
    def features(obs: dict[str, np.ndarray]) -> np.ndarray:
        """(n_jets, 3) array of ``log m`` (GeV), ``tau21``, ``tau32`` from
        :func:`jet_observables`; NaN where undefined."""
        if "tau21" not in obs:
            raise ImportError("the density yardstick needs N-subjettiness: install the `sim` "
                              "extra (fastjet)")
        return np.stack([_log_positive(obs["mass"]), obs["tau21"], obs["tau32"]], axis=1)

    def fit(self, reference_jets: Any) -> DensityYardstick:
        """Fit on QCD reference jets (jets with an undefined feature are left out)."""
        x = self.features(jet_observables(reference_jets, d2=False))
        x = x[np.isfinite(x).all(1)]
        if len(x) < 10 * self.n_components:
            raise ValueError(f"the density yardstick needs at least {10 * self.n_components} "
                             f"reference jets with defined features, got {len(x)}")
        self.gmm = GaussianMixture(self.n_components, covariance_type="full",
                                   random_state=self.seed).fit(x)
        return self

    def score(self, jets: Any) -> np.ndarray:
        """``-log p`` per jet (higher = less QCD-like); NaN where a feature is undefined."""
        return self.score_observables(jet_observables(jets, d2=False))

    def score_observables(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """:meth:`score` of jets whose :func:`jet_observables` are already computed."""
        if self.gmm is None:
            raise ValueError("fit the density yardstick on reference jets first")
        x = self.features(obs)
        out = np.full(len(x), np.nan)
        ok = np.isfinite(x).all(1)
        if ok.any():
            out[ok] = -self.gmm.score_samples(x[ok])
        return out


def yardstick_metrics(
    background: Any,
    signals: Mapping[str, Any],
    *,
    eps_b: Sequence[float] = DEFAULT_EPS_B,
    min_background: float = 1.0,
    reference: Any = None,
) -> dict[str, Any]:
    """For each yardstick: :func:`anomaly_metrics` against ``signals`` (name -> jets) plus the
    mass sculpting of the background (:func:`mass_sculpting`, with the background's jet mass).

    ``reference``: QCD jets (a validation sample, not ``background``) to fit the density
    yardstick (:class:`DensityYardstick`) on; without it that yardstick is not reported.

    Jets where an observable is undefined (NaN, e.g. D2 of a one-particle jet) are left out of
    that yardstick and counted, as non-finite model scores are.
    """
    obs_b = jet_observables(background)
    obs_s = {name: jet_observables(jets) for name, jets in signals.items()}
    bkg = scores_from_observables(obs_b)
    sig = {name: scores_from_observables(o) for name, o in obs_s.items()}
    if reference is not None:
        density = DensityYardstick().fit(reference)
        bkg[DENSITY_YARDSTICK] = density.score_observables(obs_b)
        for name, o in obs_s.items():
            sig[name][DENSITY_YARDSTICK] = density.score_observables(o)
    mass = bkg["jet mass"]
    out: dict[str, Any] = {}
    for name, s_b in bkg.items():
        m = anomaly_metrics(s_b, {k: v[name] for k, v in sig.items()}, eps_b=eps_b,
                            min_background=min_background, roc_points=0)
        m["sculpting"] = mass_sculpting(s_b, mass)
        out[name] = m
    return out
