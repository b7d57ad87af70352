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
    bins: int | Sequence[float] = 50,
    mass_range: tuple[float, float] = (0.0, 300.0),
    data_label: bool = False,
    path: str | Path | None = None,
    formats: Sequence[str] = ("png",),
    label: PlotLabel | None = None,
    mass_label: str = "Jet mass [GeV]",
    score_label: str = "score",
) -> Any:
    """Jet mass of background jets before and after anomaly-score cuts (mass sculpting).

    Array input: masses outside ``mass_range`` are counted in the first / last bin
    (under/overflow, stated in the x label), so the normalised shapes use every jet.
    ``mass_label`` names the mass (pass the soft-drop mass with ``r"Jet $m_{SD}$ [GeV]"``);
    ``score_label`` the score in the cut legend.

    Each cut keeps the fraction ``eps_b`` of the background with the highest scores.

    Parameters
    ----------
    mass : array_like or hist.Hist
        Jet masses (GeV), with ``scores`` the matching scores (non-finite scores are dropped);
        or a histogram with a mass axis and a score axis (and optionally a process axis, from
        which ``background`` is selected). With a histogram the cut is placed at the score bin
        edge whose passing fraction is closest to ``eps_b``; the legend shows the fraction
        actually kept.
    eps_b : sequence of float
        Background efficiencies of the cuts. A cut keeping fewer than 10 jets is skipped with a
        warning.
    """

    curves: list[tuple[str, np.ndarray, np.ndarray]] = []  # (label, counts, edges)
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
                       vals[m_vis].sum(axis=1), medges))
        for e in eps_b:
            k = int(np.argmin(np.abs(frac - e)))
            kept = vals[m_vis, k:].sum(axis=1)
            if vals[:, k:].sum() < 10:
                warnings.warn(f"score cut at eps_b = {e:g} keeps < 10 jets; skipped",
                              RuntimeWarning, stacklevel=2)
                continue
            curves.append((rf"$\varepsilon_b$ = {frac[k]:.3g}", kept, medges))
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
        edges = (np.linspace(*mass_range, bins + 1) if isinstance(bins, int)
                 else np.asarray(bins, dtype=float))
        # under/overflow into the first/last bin (every jet counts in the normalised shapes)
        m = np.clip(m, edges[0], np.nextafter(edges[-1], -np.inf))
        curves.append((f"All {background or ''} jets".replace("  ", " "),
                       np.histogram(m, bins=edges)[0], edges))
        order = np.sort(s)
        for e in eps_b:
            n_keep = int(round(e * s.size))
            if n_keep < 10:
                warnings.warn(f"score cut at eps_b = {e:g} keeps {n_keep} < 10 of {s.size} jets; "
                              "skipped", RuntimeWarning, stacklevel=2)
                continue
            thr = order[s.size - n_keep]
            sel = s >= thr
            curves.append((rf"$\varepsilon_b$ = {sel.mean():.3g} ({score_label} $\geq$ {thr:.3g})",
                           np.histogram(m[sel], bins=edges)[0], edges))
        xlabel = f"{mass_label} (overflow in the last bin)"
    with cms_style():
        fig, axes = new_figure()
        ax = axes[0, 0]
        for i, (lab, counts, edges) in enumerate(curves):
            if counts.sum() <= 0:
                continue
            mplhep.histplot(counts, edges, ax=ax, density=True, label=lab, lw=2,
                            ls="-" if i == 0 else "--", flow="none")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("Fraction of jets / GeV")
        ax.legend(fontsize=18, title=f"{background} jets" if background else None)
        cms_label(ax, data=data_label, label=label)
        return finish_figure(fig, path, formats)
