"""The histograms of :class:`lgae_hep.processors.LGAEProcessor`, one chunk at a time.

``score`` (process, score), ``mass_score`` (process, mass, score), ``pt_score`` (process, pt,
score), ``msoftdrop_score`` (when the files have ``msoftdrop``) and ``latent`` (process,
invariant, asinh of a latent Lorentz invariant). The score axis (binning, label, log or
linear) comes from the score registry (:mod:`lgae_hep.scoring.registry`). Only jets with a
finite score are filled (invalid jets are counted in the cutflow instead).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import hist
import numpy as np

from lgae_hep.scoring.registry import check_score

__all__ = ["LATENT_BINS", "MASS_BINS", "PT_BINS", "fill_hists"]

MASS_BINS = (60, 0.0, 300.0)
PT_BINS = (60, 0.0, 3000.0)
#: Latent invariants are histogrammed as asinh(value): linear near 0, logarithmic beyond 1.
#: Bins of 0.08 in asinh: |v| < 1 (the bundled models' typical range) spans ~22 bins, and the
#: axis still reaches |v| ~ 1500 before the overflow.
LATENT_BINS = (200, -8.0, 8.0)


def fill_hists(dataset: str, columns: Mapping[str, Any], *, metric: str,
               latent_invariants: Sequence[str] | None = None,
               hist_module: Any = hist) -> dict[str, Any]:
    """Histograms of one chunk's per-jet ``columns`` (``score``, ``mass``, ``pt``, optional
    ``msoftdrop``, ``latent_<name>`` for each of ``latent_invariants``; ``None``: no latent
    histogram), filled with ``process=dataset``. ``hist_module=hist.dask`` for dask-awkward
    columns."""
    spec = check_score(metric)
    bins, label, log = spec.axis, spec.label, spec.log_axis
    score_ax = hist.axis.Regular(*bins, name="score", label=label,
                                 transform=hist.axis.transform.log if log else None)

    def cat() -> Any:
        return hist.axis.StrCategory([], name="process", label="Process", growth=True)

    score = columns["score"]
    ok = np.isfinite(score)
    H = hist_module.Hist
    h_score = H(cat(), score_ax, storage=hist.storage.Double())
    h_score.fill(process=dataset, score=score[ok])
    h_mass = H(cat(), hist.axis.Regular(*MASS_BINS, name="mass", label="Jet mass [GeV]"),
               score_ax)
    h_mass.fill(process=dataset, mass=columns["mass"][ok], score=score[ok])
    h_pt = H(cat(), hist.axis.Regular(*PT_BINS, name="pt", label="Jet $p_{T}$ [GeV]"),
             score_ax)
    h_pt.fill(process=dataset, pt=columns["pt"][ok], score=score[ok])
    hists = {"score": h_score, "mass_score": h_mass, "pt_score": h_pt}
    if "msoftdrop" in columns:
        h_msd = H(cat(), hist.axis.Regular(*MASS_BINS, name="msoftdrop",
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
