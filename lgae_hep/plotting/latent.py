"""Latent-space figures: the latent Lorentz invariants per class, with readable labels of the
latent column names."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import hist
import mplhep
import numpy as np
from matplotlib.ticker import MaxNLocator, NullFormatter

from .figure import cms_label, cms_style, finish_figure, new_figure, panel_grid
from .hists import common_edges, find_category_axis, is_hist, numeric_axes
from .style import PlotLabel, sort_names

__all__ = ["latent_label", "plot_latent_invariants"]


def latent_label(name: str) -> str:
    """Readable axis label of a latent column name of :func:`lgae_hep.inference.latent_columns`.

    ``s<i>_re``/``_im``: real/imaginary part of latent Lorentz scalar i (``encode()`` field
    ``scalars_re[i]``); ``v<i>_norm_re``/``_im``: of the Minkowski square ``v_i . v_i`` of
    latent 4-vector i (``norms_re[i]``); ``v<i>_<E|px|py|pz>_re``: a component of latent
    4-vector i (``vectors_re[i]``, not invariant). Other names are returned unchanged.
    """
    import re

    m = re.fullmatch(r"(?:latent_)?s(\d+)_(re|im)", name)
    part = {"re": "Re", "im": "Im"}
    if m:
        return rf"{part[m.group(2)]} $s_{{{m.group(1)}}}$ (latent Lorentz scalar {m.group(1)})"
    m = re.fullmatch(r"(?:latent_)?v(\d+)_norm_(re|im)", name)
    if m:
        i = m.group(1)
        return (rf"{part[m.group(2)]} $v_{{{i}}}\cdot v_{{{i}}}$ (Minkowski square of latent "
                f"4-vector {i})")
    m = re.fullmatch(r"(?:latent_)?v(\d+)_(E|px|py|pz)_(re|im)", name)
    if m:
        return rf"{part[m.group(3)]} $v_{{{m.group(1)}}}^{{{m.group(2)}}}$ (latent 4-vector)"
    return name



def plot_latent_invariants(
    data: Any,
    *,
    bins: int = 50,
    category_axis: str | None = None,
    max_panels: int = 4,
    logy: bool = True,
    data_label: bool = False,
    path: str | Path | None = None,
    formats: Sequence[str] = ("png",),
    label: PlotLabel | None = None,
    colors: Mapping[str, str] | None = None,
) -> Any:
    """Latent Lorentz invariants (e.g. Minkowski norms of the latent 4-vectors) per class.

    Panels named like the latent columns (``s0_re``, ``v1_norm_im``) get readable x labels
    (:func:`latent_label`). The first ``max_panels`` invariants are drawn (default 4, a 2 x 2
    grid; a warning names how many were left out), with one legend (first panel) and at most
    five labelled x ticks per panel. Array input is binned between the 0.5 % and 99.5 %
    quantiles of all classes (the entries outside are not drawn; the legend title says so).

    ``data``: a ``hist.Hist`` with a process StrCategory axis, one numeric axis and optionally a
    further category axis (one panel per entry, e.g. the latent channel); or a mapping class ->
    array (n_jets,) / (n_jets, k) (one panel per column) / mapping invariant name -> array.
    """

    panels: dict[str, Any] = {}
    if is_hist(data):
        cat = find_category_axis(data, category_axis)
        extra = [a for a in data.axes if a.name != cat.name and isinstance(
            a, (hist.axis.StrCategory, hist.axis.IntCategory))]
        num = numeric_axes(data)
        if len(num) != 1 or len(extra) > 1:
            raise ValueError(
                "latent histogram must have the process axis, one numeric axis and at most one "
                f"further category axis; got axes {[a.name for a in data.axes]}"
            )
        xlabels = {}
        if extra:
            for v in extra[0]:
                key = f"{extra[0].label or extra[0].name} {v}"
                panels[key] = data[{extra[0].name: v}]
                pretty = latent_label(str(v))
                xlabels[key] = (f"asinh({pretty})" if "asinh" in (num[0].label or "")
                                else pretty) if pretty != str(v) else key
        else:
            panels[num[0].label or num[0].name] = data
            xlabels = {k: num[0].label or num[0].name for k in panels}
    else:
        if not isinstance(data, Mapping) or not data:
            raise ValueError("data must be a hist.Hist or a non-empty mapping class -> invariants")
        per_class: dict[str, dict[str, np.ndarray]] = {}
        for cls_name, v in data.items():
            if isinstance(v, Mapping):
                per_class[str(cls_name)] = {str(k): np.asarray(x, dtype=float).reshape(-1)
                                            for k, x in v.items()}
            else:
                arr = np.asarray(v, dtype=float)
                arr = arr.reshape(arr.shape[0], -1) if arr.ndim > 1 else arr[:, None]
                per_class[str(cls_name)] = {f"Latent invariant {i}": arr[:, i]
                                            for i in range(arr.shape[1])}
        names: list[str] = []
        for d in per_class.values():
            names += [k for k in d if k not in names]
        for k in names:
            panels[k] = {c: d[k] for c, d in per_class.items() if k in d}
        xlabels = {k: latent_label(k) for k in panels}
    if len(panels) > max_panels:
        warnings.warn(f"{len(panels)} latent invariants; plotting the first {max_panels}",
                      RuntimeWarning, stacklevel=2)
        panels = dict(list(panels.items())[:max_panels])
    nrows, ncols = panel_grid(len(panels), 2 if len(panels) <= 4 else 3)
    with cms_style():
        fig, axes = new_figure(nrows, ncols, figsize=(8.0 * ncols, 7.5 * nrows))
        for i, (pname, content) in enumerate(panels.items()):
            ax = axes[i // ncols, i % ncols]
            yerr = False if logy else None
            if is_hist(content):
                c = find_category_axis(content, category_axis)
                for name in sort_names(c):
                    h1 = content[{c.name: name}]
                    if h1.values().sum() > 0:
                        mplhep.histplot(h1, ax=ax, density=True, label=str(name), flow="none",
                                        lw=2, yerr=yerr, color=(colors or {}).get(str(name)))
                ylabel = "Density"
            else:
                edges = common_edges(list(content.values()), bins, robust=True)
                for name in sort_names(content):
                    arr = content[name]
                    counts, _ = np.histogram(arr[np.isfinite(arr)], bins=edges)
                    if counts.sum() > 0:
                        mplhep.histplot(counts, edges, ax=ax, density=True, label=name, lw=2,
                                        flow="none", yerr=yerr, color=(colors or {}).get(name))
                ylabel = "Density"
            if logy:
                ax.set_yscale("log")
                ax.yaxis.set_minor_formatter(NullFormatter())
            ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
            ax.tick_params(labelsize=18)
            ax.set_xlabel(xlabels[pname], fontsize=18)
            ax.set_ylabel(ylabel)
            if i == 0:  # one legend: the classes are the same in every panel
                ax.legend(fontsize=18, title=None if is_hist(content) else
                          "bulk shown (quartiles $\\pm$ 5 IQR)", title_fontsize=14)
        for j in range(len(panels), nrows * ncols):
            axes[j // ncols, j % ncols].set_visible(False)
        cms_label(axes[0, 0], data=data_label, fontsize=20, label=label)
        return finish_figure(fig, path, formats)
