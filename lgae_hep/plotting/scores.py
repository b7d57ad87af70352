"""Anomaly-score figures: score distributions per class and ROC curves (from histograms,
metric results or arrays)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import mplhep
import numpy as np

from lgae_hep.metrics import EvaluationResult, to_numpy

from .figure import cms_label, cms_style, finish_figure, log_ticks, new_figure
from .hists import (
    find_category_axis,
    find_numeric_axis,
    flow_values,
    is_hist,
    is_log_binning,
    score_histogram,
)
from .style import PlotLabel, sort_names

__all__ = ["plot_roc", "plot_score_distributions", "roc_from_hist"]

#: One line style per class in score distributions, so that coincident histograms stay visible.
_LINE_STYLES = ("-", "--", "-.", ":")


def roc_from_hist(
    h: Any,
    background: str,
    signals: Sequence[str] | None = None,
    *,
    score_axis: str | None = None,
    category_axis: str | None = None,
) -> dict[str, dict[str, Any]]:
    """ROC curves (cut ``score >= bin edge``) from a histogram of scores per process.

    Other numeric axes (e.g. jet mass) are summed over. Under- and overflow bins are counted, so
    efficiencies are relative to all filled jets. With binned scores the curve has one point per
    bin edge and the AUC (trapezoidal) treats jets in one bin as tied.

    Returns
    -------
    dict
        signal name -> ``{"eps_b": array, "eps_s": array, "auc": float}``.
    """
    cat = find_category_axis(h, category_axis)
    sax = find_numeric_axis(h, score_axis, ("score",), "anomaly score")
    h2 = h.project(cat.name, sax.name)
    names = list(cat)
    if background not in names:
        raise ValueError(f"background {background!r} not in the {cat.name!r} axis: {names}")
    signals = [n for n in names if n != background] if signals is None else list(signals)
    missing = [s for s in signals if s not in names]
    if missing:
        raise ValueError(f"signals {missing} not in the {cat.name!r} axis: {names}")

    def passing(name: str) -> np.ndarray:
        v = flow_values(h2[{cat.name: name}])
        tot = v.sum()
        if tot <= 0:
            raise ValueError(f"process {name!r} has no entries in the histogram")
        cum = np.cumsum(v[::-1])[::-1] / tot  # fraction with score in this bin or above
        return np.concatenate([cum, [0.0]])

    eb = passing(background)
    out = {}
    for s in signals:
        es = passing(s)
        x, y = eb[::-1], es[::-1]  # increasing eps_b
        out[s] = {"eps_b": x, "eps_s": y, "auc": float(np.trapezoid(y, x))}
    return out



def _roc_curves(data: Any, background: str | None) -> dict[str, tuple[np.ndarray, np.ndarray, Any]]:
    if isinstance(data, EvaluationResult):
        data = data.anomaly
    if is_hist(data):
        if background is None:
            raise ValueError("a histogram input needs background=<name of the background process>")
        return {k: (v["eps_b"], v["eps_s"], v["auc"])
                for k, v in roc_from_hist(data, background).items()}
    if isinstance(data, Mapping) and "signals" in data and isinstance(data["signals"], Mapping):
        curves = {}
        for name, m in data["signals"].items():
            if "roc" not in m:
                raise ValueError(f"metrics of {name!r} have no stored ROC (roc_points=0)")
            curves[name] = (np.asarray(m["roc"]["eps_b"]), np.asarray(m["roc"]["eps_s"]),
                            m.get("auc"))
        return curves
    if isinstance(data, Mapping) and data:
        curves = {}
        for name, c in data.items():
            if isinstance(c, Mapping):
                curves[str(name)] = (np.asarray(c["eps_b"]), np.asarray(c["eps_s"]), c.get("auc"))
            elif isinstance(c, (tuple, list)) and len(c) in (2, 3):
                curves[str(name)] = (np.asarray(c[0]), np.asarray(c[1]),
                                     c[2] if len(c) == 3 else None)
            else:
                raise ValueError(
                    f"ROC entry {name!r} must be (eps_b, eps_s[, auc]) or a mapping with "
                    f"eps_b/eps_s, got {type(c).__name__}"
                )
        return curves
    raise ValueError(
        "plot_roc expects an EvaluationResult, anomaly_metrics() output, a hist.Hist with a "
        f"process axis, or a mapping name -> (eps_b, eps_s); got {type(data).__name__}"
    )



def plot_roc(
    data: Any,
    *,
    background: str | None = None,
    style: Literal["rejection", "efficiency"] = "rejection",
    working_points: Sequence[float] = (1e-1, 1e-2, 1e-3),
    data_label: bool = False,
    path: str | Path | None = None,
    formats: Sequence[str] = ("png",),
    label: PlotLabel | None = None,
    colors: Mapping[str, str] | None = None,
    title: str | None = None,
) -> Any:
    """ROC curves, paper style: signal efficiency on x, background rejection 1/eps_b (log) on y.

    Parameters
    ----------
    data : EvaluationResult, dict, hist.Hist or mapping
        :func:`lgae_hep.metrics.anomaly_metrics` output (or a result holding it), a histogram
        of scores with a process axis (then ``background`` names the background process), or
        ``{name: (eps_b, eps_s[, auc])}``.
    style : {"rejection", "efficiency"}
        y axis 1/eps_b (default) or eps_b, both log-scaled.
    working_points : sequence of float
        Background efficiencies marked with horizontal dotted lines.
    data_label : bool
        "CMS" instead of "CMS Simulation".
    label : PlotLabel, optional
        Experiment label (overrides ``data_label``).
    colors : mapping, optional
        Colour per signal name (:func:`class_colors`).
    title : str, optional
        Legend title (e.g. the score metric and the background).

    A ``"combined"`` curve is drawn only when there are at least two other signals (with one,
    it is the same curve). The y axis stops where the background statistics end: at the
    rejection of one background jet (``1 / min eps_b``, drawn as a dashed line), with the
    working-point lines below it.
    """
    if style not in ("rejection", "efficiency"):
        raise ValueError(f"style must be 'rejection' or 'efficiency', got {style!r}")
    curves = _roc_curves(data, background)
    if "combined" in curves and len(curves) <= 2:
        curves = {k: v for k, v in curves.items() if k != "combined"}
    with cms_style():
        fig, axes = new_figure()
        ax = axes[0, 0]
        for name, (eb, es, a) in curves.items():
            keep = eb > 0
            y = 1.0 / eb[keep] if style == "rejection" else eb[keep]
            lab = f"{name} (AUC = {a:.3f})" if a is not None and math.isfinite(a) else name
            ax.plot(es[keep], y, label=lab, lw=2.5, ls="--" if name == "combined" else "-",
                    color=(colors or {}).get(name, "black" if name == "combined" else None))
        # the background statistics end at one background jet: eps_b = 1 / n_background
        top = max((float(np.max(1.0 / eb[eb > 0])) for eb, _, _ in curves.values()
                   if np.any(eb > 0)), default=1e3)
        grid = np.linspace(1.0 / top if np.isfinite(top) else 1e-3, 1.0, 200)
        ax.plot(grid, 1.0 / grid if style == "rejection" else grid, color="grey", ls=":",
                label="random")
        for wp in working_points:
            if 1.0 / wp <= top:
                ax.axhline(1.0 / wp if style == "rejection" else wp, color="lightgrey", lw=1,
                           ls=":")
        ax.set_yscale("log")
        ax.set_xlim(0.0, 1.0)
        if style == "rejection":  # up to the largest rejection measured (one background jet)
            ax.axhline(top, color="grey", lw=1, ls="--",
                       label=f"1 background jet ($1/\\varepsilon_b$ = {top:.3g})")
            ax.set_ylim(0.8, max(10.0, top * 2.5))
        else:
            ax.set_ylim(min(0.5 / top, 0.1), 1.25)
        ax.set_xlabel(r"Signal efficiency $\varepsilon_s$")
        ax.set_ylabel(r"Background rejection $1/\varepsilon_b$" if style == "rejection"
                      else r"Background efficiency $\varepsilon_b$")
        ax.legend(loc="upper right" if style == "rejection" else "lower right", fontsize=18,
                  title=title, title_fontsize=16)
        cms_label(ax, data=data_label, label=label)
        return finish_figure(fig, path, formats)



def plot_score_distributions(
    data: Any,
    *,
    density: bool = True,
    category_axis: str | None = None,
    score_axis: str | None = None,
    logy: bool = True,
    data_label: bool = False,
    path: str | Path | None = None,
    formats: Sequence[str] = ("png",),
    label: PlotLabel | None = None,
    colors: Mapping[str, str] | None = None,
    xlabel: str | None = None,
    log_x: bool | None = None,
    data_classes: Sequence[str] = (),
) -> Any:
    """Anomaly-score distribution per class (normalised to unit area by default).

    ``data`` is a ``hist.Hist`` with a process (StrCategory) axis and a score axis (other
    numeric axes are summed over), or a mapping process -> scores (binned with
    :func:`score_histogram`: log-spaced when ``log_x`` is true, or by default when every finite
    score is positive; a latent-density score ``-log p`` can be negative and gets linear bins).
    ``xlabel`` names the score (say which metric and its unit). Every class carries its
    statistical uncertainty (Poisson 68 % intervals per bin, which for one jet span 0.17-3.3
    entries, so a single-jet bin in the tail shows as such instead of looking like structure)
    and its number of jets in the legend. The classes are drawn in sorted order with
    ``colors`` and one line style each (solid, dashed, dash-dotted, dotted), so that
    identical histograms stay visible; ``data_classes`` (real collision data, e.g. ``JetHT``)
    are drawn as black points with error bars on top.
    """

    if is_hist(data):
        h = data
    else:
        if log_x is None:
            finite = [to_numpy(v).astype(float).reshape(-1) for v in data.values()]
            allv = np.concatenate(finite) if finite else np.zeros(0)
            allv = allv[np.isfinite(allv)]
            log_x = bool(allv.size) and bool(np.all(allv > 0))
        # bins for the statistics at hand: ~2 sqrt(n) of the smallest class, 10 to 60
        n_min = min(int(np.isfinite(to_numpy(v).astype(float)).sum()) for v in data.values())
        nbins = int(np.clip(2 * math.sqrt(max(n_min, 1)), 10, 60))
        h = score_histogram(data, bins=nbins, log=log_x, label=xlabel or "Anomaly score")
    cat = find_category_axis(h, category_axis)
    sax = find_numeric_axis(h, score_axis, ("score",), "anomaly score")
    h2 = h.project(cat.name, sax.name)
    with cms_style():
        fig, axes = new_figure()
        ax = axes[0, 0]
        data_names = {str(n) for n in data_classes}
        filled = np.zeros(len(sax), dtype=bool)
        floor = np.inf  # the lowest plotted bin (one jet): its error bar must stay visible
        names = sort_names(cat)
        sim = [n for n in names if n not in data_names]
        for i, name in enumerate(sim + [n for n in names if n in data_names]):
            h1 = h2[{cat.name: name}]
            n_jets = float(h1.values(flow=True).sum())
            if h1.values().sum() <= 0:
                continue
            v1 = np.asarray(h1.values(), dtype=float)
            filled |= v1 > 0
            y1 = v1 / (v1.sum() * np.diff(np.asarray(sax.edges))) if density else v1
            floor = min(floor, float(y1[v1 > 0].min()))
            lab = f"{name} ({n_jets:.0f} jets)"
            if name in data_names:
                mplhep.histplot(h1, ax=ax, density=density, label=lab, flow="none",
                                histtype="errorbar", yerr=True, color="black", marker="o",
                                markersize=6, zorder=5)
            else:
                mplhep.histplot(h1, ax=ax, density=density, label=lab, flow="none", lw=2,
                                yerr=True, ls=_LINE_STYLES[i % len(_LINE_STYLES)],
                                color=(colors or {}).get(str(name)))
        edges = np.asarray(sax.edges)
        if is_log_binning(edges):
            ax.set_xscale("log")
            log_ticks(ax)
        if logy:
            ax.set_yscale("log")
            if np.isfinite(floor):  # the Poisson interval of one jet reaches 0.17 of it
                ax.set_ylim(bottom=0.1 * floor)
        if filled.any():  # the filled range (a histogram's axis reaches far beyond the jets)
            first, last = np.flatnonzero(filled)[[0, -1]]
            lo, hi = edges[first], edges[last + 1]
            pad = 0.0 if is_log_binning(edges) else 0.03 * (hi - lo)
            ax.set_xlim(lo - pad, hi + pad)
        else:
            ax.set_xlim(edges[0], edges[-1])
        ax.set_xlabel(xlabel or sax.label or "Anomaly score")
        ax.set_ylabel("Fraction of jets / bin width" if density else "Jets")
        ax.legend(fontsize=18)
        cms_label(ax, data=data_label, label=label)
        return finish_figure(fig, path, formats)
