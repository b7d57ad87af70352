"""Mass sculpting: the background jet mass before and after anomaly-score cuts."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hist
import mplhep
import numpy as np

from lgae_hep.metrics import to_numpy

from .figure import cms_label, cms_style, finish_figure, new_figure
from .hists import find_category_axis, find_numeric_axis, is_hist
from .style import PlotLabel

__all__ = ["plot_mass_sculpting"]


def plot_mass_sculpting(
    mass: Any,
    scores: Any = None,
    *,
    eps_b: Sequence[float] = (1e-1, 1e-2),
    background: str | None = "QCD",
    mass_axis: str | None = None,
    score_axis: str | None = None,
    category_axis: str | None = None,
    bins: int | Sequence[float] | None = None,
    mass_range: tuple[float, float] | None = None,
    data_label: bool = False,
    path: str | Path | None = None,
    formats: Sequence[str] = ("png",),
    label: PlotLabel | None = None,
    mass_label: str = "Jet mass [GeV]",
    score_label: str = "score",
) -> Any:
    """Jet mass of background jets before and after anomaly-score cuts (mass sculpting).

    Each curve is the fraction of *its* jets per GeV: jets outside the mass range are not
    piled into the last bin but counted in the legend ("x % beyond M GeV"), so every curve is
    normalised to all its jets and no overflow spike appears. Array input: the range is
    ``mass_range`` or, by default, 0 to the 99.5 % quantile of the background mass rounded up
    to 50 GeV; ``bins`` (default: ``2 sqrt(n)`` of the smallest selection, 10 to 50) equal
    bins. The selected curves carry their statistical uncertainty, a band of
    ``sqrt(n_bin) / (n w)`` (Poisson per bin). ``mass_label`` names the mass (pass the
    soft-drop mass with ``r"Jet $m_{SD}$ [GeV]"``); ``score_label`` the score in the cut
    legend.

    Each cut keeps the fraction ``eps_b`` of the background with the highest scores.

    Parameters
    ----------
    mass : array_like or hist.Hist
        Jet masses (GeV), with ``scores`` the matching scores (non-finite scores are dropped);
        or a histogram with a mass axis and a score axis (and optionally a process axis, from
        which ``background`` is selected). With a histogram the cut is placed at the score bin
        edge whose passing fraction is closest to ``eps_b``; the legend shows the fraction
        actually kept, the mass binning is the histogram's.
    eps_b : sequence of float
        Background efficiencies of the cuts. A cut keeping fewer than 10 jets is skipped with a
        warning.
    """

    # (label, counts in range, edges, all jets of the curve, jets beyond the range)
    curves: list[tuple[str, np.ndarray, np.ndarray, float, float]] = []
    if is_hist(mass):
        h = mass
        cats = [a for a in h.axes if isinstance(a, hist.axis.StrCategory)]
        if cats:
            cat = find_category_axis(h, category_axis)
            if background not in list(cat):
                raise ValueError(f"background {background!r} not in axis {cat.name!r}: {list(cat)}")
            h = h[{cat.name: background}]
        max_ = find_numeric_axis(h, mass_axis, ("mass", "msd"), "jet mass")
        sax = find_numeric_axis(h, score_axis, ("score",), "anomaly score")
        h2 = h.project(max_.name, sax.name)
        vals = np.asarray(h2.values(flow=True), dtype=float)  # (mass(+flow), score(+flow))
        mflow = int(bool(max_.traits.underflow))
        medges = np.asarray(max_.edges)
        m_vis = slice(mflow, mflow + len(max_))
        per_score = vals.sum(axis=0)
        total = per_score.sum()
        if total <= 0:
            raise ValueError("the background histogram is empty")
        frac = np.cumsum(per_score[::-1])[::-1] / total
        curves.append((f"All {background or ''} jets".replace("  ", " "),
                       vals[m_vis].sum(axis=1), medges, total,
                       total - vals[m_vis].sum()))
        for e in eps_b:
            k = int(np.argmin(np.abs(frac - e)))
            kept = vals[m_vis, k:].sum(axis=1)
            n_all = vals[:, k:].sum()
            if n_all < 10:
                warnings.warn(f"score cut at eps_b = {e:g} keeps < 10 jets; skipped",
                              RuntimeWarning, stacklevel=2)
                continue
            curves.append((rf"$\varepsilon_b$ = {frac[k]:.3g}", kept, medges, n_all,
                           n_all - kept.sum()))
        xlabel = max_.label or "Jet mass [GeV]"
    else:
        if scores is None:
            raise ValueError("array input needs scores=<anomaly score per jet>")
        m = to_numpy(mass).astype(float).reshape(-1)
        s = to_numpy(scores).astype(float).reshape(-1)
        if m.size != s.size:
            raise ValueError(f"mass has {m.size} jets but scores has {s.size}")
        ok = np.isfinite(s) & np.isfinite(m)
        m, s = m[ok], s[ok]
        if m.size == 0:
            raise ValueError("no jets with finite mass and score")
        order = np.sort(s)
        cuts = []
        for e in eps_b:
            n_keep = int(round(e * s.size))
            if n_keep < 10:
                warnings.warn(f"score cut at eps_b = {e:g} keeps {n_keep} < 10 of {s.size} jets; "
                              "skipped", RuntimeWarning, stacklevel=2)
                continue
            thr = order[s.size - n_keep]
            cuts.append((thr, s >= thr))
        if mass_range is None:
            top = float(np.quantile(m, 0.995))
            mass_range = (min(0.0, float(m.min())), 50.0 * max(1.0, np.ceil(top / 50.0)))
        if bins is None:
            n_min = min([int(sel.sum()) for _, sel in cuts] or [m.size])
            bins = int(np.clip(round(2 * np.sqrt(n_min)), 10, 50))
        edges = (np.linspace(*mass_range, bins + 1) if isinstance(bins, int)
                 else np.asarray(bins, dtype=float))

        def curve(lab: str, mm: np.ndarray) -> tuple[str, np.ndarray, np.ndarray, float, float]:
            counts = np.histogram(mm, bins=edges)[0].astype(float)
            return lab, counts, edges, float(mm.size), float(mm.size - counts.sum())

        curves.append(curve(f"All {background or ''} jets".replace("  ", " "), m))
        for thr, sel in cuts:
            curves.append(curve(rf"$\varepsilon_b$ = {sel.mean():.3g} ({score_label} $\geq$ "
                                f"{thr:.3g})", m[sel]))
        xlabel = mass_label
    with cms_style():
        fig, axes = new_figure()
        ax = axes[0, 0]
        for i, (lab, counts, edges, n_all, n_out) in enumerate(curves):
            if counts.sum() <= 0:
                continue
            width = np.diff(edges)
            dens = counts / (n_all * width)
            if n_out > 0:
                lab = f"{lab}; {100.0 * n_out / n_all:.2g} % outside"
            line = mplhep.histplot(dens, edges, ax=ax, label=lab, lw=2, yerr=False,
                                   ls="-" if i == 0 else "--", flow="none")
            if i > 0:  # the selected curves' statistical uncertainty (Poisson per bin)
                err = np.sqrt(counts) / (n_all * width)
                color = line[0].stairs.get_edgecolor() if hasattr(line[0], "stairs") else None
                ax.stairs(dens + err, edges, baseline=np.clip(dens - err, 0, None), fill=True,
                          alpha=0.25, color=color, lw=0)
        ax.set_xlim(edges[0], edges[-1])
        ax.set_ylim(bottom=0)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("Fraction of jets / GeV")
        ax.legend(fontsize=16, title=(f"{background} jets (bands: stat. uncertainty)"
                                      if background else "bands: stat. uncertainty"),
                  title_fontsize=16)
        cms_label(ax, data=data_label, label=label)
        return finish_figure(fig, path, formats)
