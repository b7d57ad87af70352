"""The histograms of :class:`lgae_hep.processors.LGAEProcessor`, one chunk at a time.

``score`` (process, score), ``mass_score`` (process, mass, score), ``pt_score`` (process, pt,
score), ``msoftdrop_score`` (when the files have ``msoftdrop``) and ``latent`` (process,
invariant, asinh of a latent Lorentz invariant). Only jets with a finite score are filled
(invalid jets are counted in the cutflow instead).

Binning that holds the jets
---------------------------
A fixed score range loses the interesting jets: the anomalous tail lands in the overflow and a
model's QCD bulk can sit anywhere. The score axis (:func:`score_edges`) is therefore a
``Variable`` axis with *sinh-spaced* edges around the QCD bulk of the model and metric at hand::

    t_j = c + w K sinh(j / K),   j = -J..J,   K = CORE_BINS,   w = h / K

in ``t = score`` (linear scores) or ``t = log10(score)`` (the registry's log-axis scores). Near
the centre ``c`` the bins are ``w`` wide (linear, ``K`` bins per half-width ``h``); beyond the
bulk they widen exponentially, so ``J`` ~ ``K asinh(R / h)`` bins reach ``R = 1000 h``
(linear scores) or ``h + 6`` decades (log scores) on either side. ``c`` and ``h`` come from the
QCD validation quantiles stored in the bundled model's card (``score_axes``, written by
``python tools/score_axes.py --write``): ``c`` the median, ``h`` the larger distance from it to
the 0.5 % / 99.5 % quantiles. Models without a stored entry use the registry's default axis
(:mod:`lgae_hep.scoring.registry`, ``c`` its centre, ``h`` its half-width), widened the same
way. The label and log/linear choice follow the registry. A log-axis score of exactly 0 (a jet
with no particles) is below every edge: underflow.

Jet mass and pT axes follow the model's training domain (its card, :mod:`lgae_hep.domain`;
the generator's domain otherwise): pT from 0 to twice the domain's upper pT (where the
out-of-domain warning starts), 50 GeV bins; mass (and soft-drop mass) from 0 to
``pT_max * R``, the largest mass of a two-prong jet of radius ``R`` at the domain's highest pT,
10 GeV bins. Latent invariants are histogrammed as ``asinh(value)`` in [-8, 8] (linear near 0,
logarithmic beyond 1, up to |v| ~ 1500).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import hist
import numpy as np

from lgae_hep.scoring.registry import check_score

__all__ = ["CORE_BINS", "LATENT_BINS", "fill_hists", "kinematic_bins", "score_edges"]

#: Bins per half-width of the QCD bulk at the centre of the score axis (``K`` above).
CORE_BINS = 25
#: Reach of the score axis beyond the centre: this many half-widths (linear scores) ...
_LINEAR_REACH = 1000.0
#: ... or the half-width plus this many decades (log-axis scores).
_LOG_REACH_DECADES = 6.0
#: Latent invariants are histogrammed as asinh(value): linear near 0, logarithmic beyond 1.
#: Bins of 0.08 in asinh: |v| < 1 (the bundled models' typical range) spans ~22 bins, and the
#: axis still reaches |v| ~ 1500 before the overflow.
LATENT_BINS = (200, -8.0, 8.0)


def _stored_quantiles(metric: str, model: Any) -> Mapping[str, float] | None:
    """The QCD validation quantiles of ``metric`` in a bundled model's card, else None."""
    if not isinstance(model, str):
        return None
    from lgae_hep.zoo import bundled_models, model_card

    if model not in bundled_models():
        return None
    entry = model_card(model).get("score_axes")
    if not isinstance(entry, Mapping):
        return None
    q = entry.get("quantiles", {}).get(metric)
    return q if isinstance(q, Mapping) else None


@functools.lru_cache(maxsize=64)
def score_edges(metric: str, model: str | None = None) -> tuple[float, ...]:
    """Edges of the score axis of ``metric`` for ``model`` (a bundled name or a path; the
    module docstring gives the rule). Strictly increasing, finite."""
    spec = check_score(metric)
    log = spec.log_axis
    q = _stored_quantiles(metric, model)
    if q is not None:
        lo, mid, hi = (float(q[k]) for k in ("0.005", "0.5", "0.995"))
        if log:
            tiny = 1e-12
            lo, mid, hi = (math.log10(max(v, tiny)) for v in (lo, mid, hi))
        c, h = mid, max(hi - mid, mid - lo)
    else:
        _, a, b = spec.axis
        if log:
            a, b = math.log10(a), math.log10(b)
        c, h = (a + b) / 2.0, (b - a) / 2.0
    if not (math.isfinite(c) and math.isfinite(h)) or h <= 0:
        h = 1.0 if not math.isfinite(h) or h <= 0 else h
        c = 0.0 if not math.isfinite(c) else c
    reach = h + _LOG_REACH_DECADES if log else _LINEAR_REACH * h
    k = CORE_BINS
    j_max = math.ceil(k * math.asinh(reach / h))
    j = np.arange(-j_max, j_max + 1, dtype=np.float64)
    t = c + h * np.sinh(j / k)
    edges = 10.0 ** t if log else t
    return tuple(float(e) for e in edges)


@functools.lru_cache(maxsize=64)
def kinematic_bins(model: str | None = None) -> dict[str, tuple[int, float, float]]:
    """``{"pt": (bins, 0, hi), "mass": (bins, 0, hi)}`` of ``model``'s training domain (module
    docstring); the generator's domain for models without a card."""
    from lgae_hep.domain import GENERATOR_DOMAIN, training_domain

    dom = None
    if isinstance(model, str):
        try:
            dom = training_domain(model)
        except Exception:  # noqa: BLE001 - unreadable card: the generator's domain
            dom = None
    pt_hi = float(dom.pt_range[1]) if dom is not None else float(GENERATOR_DOMAIN["pt_range"][1])
    radius = (dom.jet_radius if dom is not None and dom.jet_radius else
              float(GENERATOR_DOMAIN["jet_radius"]))
    pt_max = 2.0 * pt_hi
    m_max = 10.0 * math.ceil(pt_hi * radius / 10.0)
    return {"pt": (int(round(pt_max / 50.0)), 0.0, pt_max),
            "mass": (int(round(m_max / 10.0)), 0.0, m_max)}


def fill_hists(dataset: str, columns: Mapping[str, Any], *, metric: str,
               model: str | None = None,
               latent_invariants: Sequence[str] | None = None,
               hist_module: Any = hist) -> dict[str, Any]:
    """Histograms of one chunk's per-jet ``columns`` (``score``, ``mass``, ``pt``, optional
    ``msoftdrop``, ``latent_<name>`` for each of ``latent_invariants``; ``None``: no latent
    histogram), filled with ``process=dataset``; binned for ``metric`` and ``model`` (module
    docstring). ``hist_module=hist.dask`` for dask-awkward columns."""
    spec = check_score(metric)
    score_ax = hist.axis.Variable(score_edges(metric, model), name="score", label=spec.label)
    kin = kinematic_bins(model)

    def cat() -> Any:
        return hist.axis.StrCategory([], name="process", label="Process", growth=True)

    score = columns["score"]
    ok = np.isfinite(score)
    H = hist_module.Hist
    h_score = H(cat(), score_ax, storage=hist.storage.Double())
    h_score.fill(process=dataset, score=score[ok])
    h_mass = H(cat(), hist.axis.Regular(*kin["mass"], name="mass", label="Jet mass [GeV]"),
               score_ax)
    h_mass.fill(process=dataset, mass=columns["mass"][ok], score=score[ok])
    h_pt = H(cat(), hist.axis.Regular(*kin["pt"], name="pt", label="Jet $p_{T}$ [GeV]"),
             score_ax)
    h_pt.fill(process=dataset, pt=columns["pt"][ok], score=score[ok])
    hists = {"score": h_score, "mass_score": h_mass, "pt_score": h_pt}
    if "msoftdrop" in columns:
        h_msd = H(cat(), hist.axis.Regular(*kin["mass"], name="msoftdrop",
                                           label=r"Jet $m_{SD}$ [GeV]"), score_ax)
        h_msd.fill(process=dataset, msoftdrop=columns["msoftdrop"][ok], score=score[ok])
        hists["msoftdrop_score"] = h_msd
    if latent_invariants is not None:
        h_lat = H(
            cat(),
            hist.axis.StrCategory([], name="invariant", label="Latent invariant", growth=True),
            hist.axis.Regular(*LATENT_BINS, name="value", label="asinh(latent invariant)"),
        )
        for name in latent_invariants:
            v = columns[f"latent_{name}"][ok]
            h_lat.fill(process=dataset, invariant=name, value=np.arcsinh(v))
        hists["latent"] = h_lat
    return hists
