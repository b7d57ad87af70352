"""Input vs reconstructed particle and jet features."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import mplhep
import numpy as np

from .figure import cms_label, cms_style, finish_figure, new_figure, panel_grid
from .hists import common_edges, find_category_axis, is_hist, numeric_axes
from .style import FEATURE_LABELS

__all__ = ["features_for_plot", "plot_feature_comparison"]


def features_for_plot(reco_features: Mapping[str, Any], which: str) -> dict[str, np.ndarray]:
    """Flat feature arrays for :func:`plot_feature_comparison` from
    :func:`lgae_hep.metrics.reconstruction_features` output; ``which`` is "input" or "reco".

    Particle features of all real particles, jet features of jets with at least one particle.
    """
    if which not in ("input", "reco"):
        raise ValueError(f"which must be 'input' or 'reco', got {which!r}")
    part = reco_features["particles"][which]
    jet = reco_features["jet"][which]
    keep = np.asarray(jet["n"]) > 0
    out = {k: np.asarray(part[k]) for k in ("pt_rel", "eta_rel", "phi_rel")}
    out.update({f"jet_{k}": np.asarray(jet[k])[keep] for k in ("mass", "pt", "eta")})
    return out



def plot_feature_comparison(
    inputs: Mapping[str, Any],
    reconstructed: Mapping[str, Any] | None = None,
    *,
    features: Sequence[str] | None = None,
    bins: int = 50,
    category_axis: str | None = None,
    data_label: bool = False,
    path: str | Path | None = None,
    formats: Sequence[str] = ("png",),
) -> Any:
    """Input vs reconstructed particle and jet feature distributions, one panel per feature.

    Either two mappings feature -> array (``inputs`` and ``reconstructed``, e.g. from
    :func:`features_for_plot`; common binning from the 0.5-99.5 % quantiles), or one mapping
    feature -> ``hist.Hist`` with a StrCategory axis (e.g. "input"/"reconstructed") and one
    numeric axis, with ``reconstructed=None``.
    """

    if not isinstance(inputs, Mapping) or not inputs:
        raise ValueError("inputs must be a non-empty mapping feature -> array or hist")
    feats = list(features) if features is not None else list(inputs)
    missing = [f for f in feats if f not in inputs]
    if missing:
        raise ValueError(f"features {missing} not in inputs (have {list(inputs)})")
    if reconstructed is not None:
        missing = [f for f in feats if f not in reconstructed]
        if missing:
            raise ValueError(
                f"features {missing} not in reconstructed (have {list(reconstructed)})"
            )
    nrows, ncols = panel_grid(len(feats))
    with cms_style():
        fig, axes = new_figure(nrows, ncols, figsize=(8.0 * ncols, 7.5 * nrows))
        for i, f in enumerate(feats):
            ax = axes[i // ncols, i % ncols]
            item = inputs[f]
            if is_hist(item):
                if reconstructed is not None:
                    raise ValueError("histogram inputs carry both classes: use reconstructed=None")
                cat = find_category_axis(item, category_axis)
                num = numeric_axes(item)
                if len(num) != 1:
                    raise ValueError(
                        f"histogram of {f!r} must have one numeric axis, has {len(num)}"
                    )
                for name in cat:
                    mplhep.histplot(item[{cat.name: name}], ax=ax, density=True, label=str(name),
                                    flow="none", lw=2)
                xlabel = num[0].label or FEATURE_LABELS.get(f, f)
            else:
                if reconstructed is None:
                    raise ValueError(f"array input for {f!r} needs the reconstructed arrays too")
                a = np.asarray(item, dtype=np.float64).reshape(-1)
                b = np.asarray(reconstructed[f], dtype=np.float64).reshape(-1)
                edges = common_edges([a, b], bins)
                for arr, lab, ls in ((a, "Input", "-"), (b, "Reconstructed", "--")):
                    arr = arr[np.isfinite(arr)]
                    counts, _ = np.histogram(arr, bins=edges)
                    if counts.sum() == 0:
                        continue
                    mplhep.histplot(counts, edges, ax=ax, density=True, label=lab, ls=ls, lw=2,
                                    flow="none")
                xlabel = FEATURE_LABELS.get(f, f)
            ax.set_xlabel(xlabel)
            ax.set_ylabel("Density")
            ax.legend(fontsize=16)
            if i == 0:  # one experiment label per figure (mplhep's label layout is slow)
                cms_label(ax, data=data_label, fontsize=20)
        for j in range(len(feats), nrows * ncols):
            axes[j // ncols, j % ncols].set_visible(False)
        return finish_figure(fig, path, formats)
