"""CMS-style plots (mplhep) of anomaly scores, ROC curves, reconstructions and latents.

Every ``plot_*`` function takes either ``hist.Hist`` objects, as filled by the coffea processor
(a ``StrCategory`` axis for the process/dataset plus numeric axes such as ``score``), or plain
arrays where that makes sense; it returns the :class:`matplotlib.figure.Figure` and, when ``path``
is given, saves it (``formats``, e.g. PNG and PDF).

Figures are created with :class:`matplotlib.figure.Figure` on an Agg canvas, never through
``pyplot``: no global figure state, nothing to close, no ``plt.show``, and safe in batch jobs
and worker processes. The CMS style (``mplhep.style.CMS``) is applied in a context only, so the
caller's matplotlib settings are untouched. Labels: "CMS Simulation" (``data=False``, default)
or "CMS" (``data=True``), with "(13 TeV)" on the right; every ``plot_*`` function also takes
``label=PlotLabel(...)`` to set the experiment, the text beside it (e.g. "Simulation
Preliminary", "Private work"), the centre-of-mass energy (13.6 TeV for Run 3) and the
luminosity, and ``colors={class: colour}`` so that a class keeps its colour in every figure
(:func:`class_colors`). Distributions on a log y axis are drawn without error bars (single-entry
bins would draw "curtains" down to the axis); ROC curves omit the "combined" curve when it
equals the only signal.

Histogram helpers build ``hist.Hist`` objects with a ``process`` ``StrCategory`` axis (note that
``sample``, ``weight`` and ``threads`` are reserved names in ``hist`` and cannot name an axis).

Modules, one concept each (import the public names from here):

- :mod:`.style`: the experiment label (:class:`PlotLabel`), class order and colours, feature labels;
- :mod:`.figure`: the Agg figure, the CMS style context, the experiment label, saving;
- :mod:`.hists`: axis lookup and binning of ``hist.Hist`` inputs, :func:`score_histogram`;
- :mod:`.scores`: score distributions and ROC curves;
- :mod:`.reconstruction`: input vs reconstructed features;
- :mod:`.latent`: latent invariants and the labels of latent columns;
- :mod:`.sculpting`: the jet mass before and after score cuts.

The package depends on :mod:`lgae_hep.metrics` (result type, array helpers) and never on
:mod:`lgae_hep.evaluate`, which imports it. It does not import torch.
"""

from __future__ import annotations

from .figure import cms_label, new_figure, save_figure
from .hists import score_histogram
from .latent import latent_label, plot_latent_invariants
from .reconstruction import features_for_plot, plot_feature_comparison
from .scores import plot_roc, plot_score_distributions, roc_from_hist
from .sculpting import plot_mass_sculpting
from .style import FEATURE_LABELS, PlotLabel, class_colors, sort_names

__all__ = [
    "FEATURE_LABELS",
    "PlotLabel",
    "class_colors",
    "cms_label",
    "latent_label",
    "sort_names",
    "features_for_plot",
    "new_figure",
    "plot_feature_comparison",
    "plot_latent_invariants",
    "plot_mass_sculpting",
    "plot_roc",
    "plot_score_distributions",
    "roc_from_hist",
    "save_figure",
    "score_histogram",
]
