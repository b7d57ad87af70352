"""One-observable anomaly scores: the yardsticks every model is reported beside.

Each is a classic jet observable turned into a score that grows for the jets it is known to
flag, with the direction fixed by physics (never chosen on data): the jet mass; ``1 - tau21``
(two-prong jets have small tau21); ``1 - tau32`` (three-prong); ``-log D2`` (two-prong jets
have small D2). They are computed with :mod:`lgae_hep.observables` on the same jets the model
scores (its N hardest particles, if the jets were cut so).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import awkward as ak
import numpy as np

from lgae_hep import observables
from lgae_hep.metrics.anomaly import DEFAULT_EPS_B, anomaly_metrics
from lgae_hep.metrics.sculpting import mass_sculpting

__all__ = ["YARDSTICKS", "yardstick_metrics", "yardstick_scores"]

#: score names, in report order
YARDSTICKS = ("jet mass", "1 - tau21", "1 - tau32", "-log D2")


def _flat(values: Any) -> np.ndarray:
    return np.asarray(ak.to_numpy(ak.flatten(values, axis=None)), dtype=np.float64)


def yardstick_scores(jets: Any) -> dict[str, np.ndarray]:
    """The yardstick scores of ``[...][jet][particle]`` jets, flat per jet (``YARDSTICKS``).

    N-subjettiness needs FastJet (the ``sim`` extra); without it only the jet mass and D2
    scores are returned.
    """
    out = {"jet mass": _flat(observables.jet_mass(jets))}
    try:
        tau = observables.nsubjettiness(jets, n=(1, 2, 3))
    except ImportError:
        tau = None
    if tau is not None:
        t1, t2, t3 = (_flat(tau[f"tau{k}"]) for k in (1, 2, 3))
        with np.errstate(invalid="ignore", divide="ignore"):
            out["1 - tau21"] = 1.0 - np.where(t1 > 0, t2 / np.where(t1 > 0, t1, 1.0), np.nan)
            out["1 - tau32"] = 1.0 - np.where(t2 > 0, t3 / np.where(t2 > 0, t2, 1.0), np.nan)
    d2 = _flat(observables.energy_correlation(jets).d2)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["-log D2"] = -np.log(np.where(d2 > 0, d2, np.nan))
    return {k: out[k] for k in YARDSTICKS if k in out}


def yardstick_metrics(
    background: Any,
    signals: Mapping[str, Any],
    *,
    eps_b: Sequence[float] = DEFAULT_EPS_B,
    min_background: float = 1.0,
) -> dict[str, Any]:
    """For each yardstick: :func:`anomaly_metrics` against ``signals`` (name -> jets) plus the
    mass sculpting of the background (:func:`mass_sculpting`, with the background's jet mass).

    Jets where an observable is undefined (NaN, e.g. D2 of a one-particle jet) are left out of
    that yardstick and counted, as non-finite model scores are.
    """
    bkg = yardstick_scores(background)
    sig = {name: yardstick_scores(jets) for name, jets in signals.items()}
    mass = bkg["jet mass"]
    out: dict[str, Any] = {}
    for name, s_b in bkg.items():
        m = anomaly_metrics(s_b, {k: v[name] for k, v in sig.items()}, eps_b=eps_b,
                            min_background=min_background, roc_points=0)
        m["sculpting"] = mass_sculpting(s_b, mass)
        out[name] = m
    return out
