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

One module on purpose: it is one concept (CMS-style figures sharing the style context, the
figure/save plumbing and the hist axis helpers), not split by plot type. It depends on
:mod:`lgae_hep.metrics` (result type, array helpers) and never on :mod:`lgae_hep.evaluate`,
which imports it.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import hist
import matplotlib
import mplhep
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from lgae_hep.metrics import EvaluationResult, to_numpy

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

#: axis labels of the reconstruction features (keys of :func:`features_for_plot`)
FEATURE_LABELS: dict[str, str] = {
    "pt_rel": r"Particle $p_{T}^{rel}$",
    "eta_rel": r"Particle $\eta^{rel}$",
    "phi_rel": r"Particle $\phi^{rel}$",
    "jet_mass": r"Jet mass [GeV]",
    "jet_pt": r"Jet $p_{T}$ [GeV]",
    "jet_eta": r"Jet $\eta$",
}

_RESERVED_AXIS_NAMES = ("sample", "weight", "threads")

#: Colour cycle for classes (the CMS-recommended 10-colour palette of mplhep's CMS style).
_PALETTE = ("#3f90da", "#ffa90e", "#bd1f01", "#94a4a2", "#832db6", "#a96b59", "#e76300",
            "#b9ac70", "#717581", "#92dadd")


@dataclass(frozen=True)
class PlotLabel:
    """Experiment label of a figure: ``exp`` in bold, ``text`` beside it, and on the right
    ``[lumi fb^-1] (energy TeV)``.

    ``exp=""`` draws no experiment name: use it for generator-level studies (Pythia + FastJet
    jets are not CMS simulation and must not carry the CMS logo); ``rtext`` replaces the
    right-hand label entirely.
    """

    exp: str = "CMS"
    text: str = "Simulation"
    energy: str | float = "13"
    lumi: float | None = None
    rtext: str | None = None

    def right(self) -> str:
        if self.rtext is not None:
            return self.rtext
        lumi = f"{self.lumi:g} fb$^{{-1}}$ " if self.lumi else ""
        return f"{lumi}({self.energy:g} TeV)" if isinstance(self.energy, float) \
            else f"{lumi}({self.energy} TeV)"


def sort_names(names: Any) -> list[str]:
    """Class names in the one order every figure and table uses: case-insensitive, then
    case-sensitive (``QCD, t, W, Z``), independent of executor completion order."""
    return sorted(map(str, names), key=lambda n: (n.lower(), n))


def class_colors(names: Sequence[str]) -> dict[str, str]:
    """A fixed colour per class: the palette in :func:`sort_names` order (reproducible: the
    same classes get the same colours in every figure and every run, whatever order the
    executor returned them in)."""
    return {n: _PALETTE[i % len(_PALETTE)] for i, n in enumerate(sort_names(set(names)))}


def _log_ticks(ax: Any) -> None:
    """Log x ticks at 1, 2, 5 x 10^k without overlapping minor labels."""
    from matplotlib.ticker import LogFormatterSciNotation, LogLocator, NullFormatter

    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(LogFormatterSciNotation(labelOnlyBase=False))
    ax.xaxis.set_minor_formatter(NullFormatter())


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


# --------------------------------------------------------------------------------------------
# figure plumbing
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _cms_style() -> Iterator[None]:
    with matplotlib.style.context(mplhep.style.CMS):
        yield


def new_figure(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float] | None = None):
    """A Figure on an Agg canvas (no pyplot) and a 2D array of its axes.

    Call inside the CMS style context to get the CMS look (all ``plot_*`` functions do).
    """

    if figsize is None:
        figsize = (10.0 * ncols, 10.0 * nrows) if nrows * ncols > 1 else (10.0, 10.0)
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def cms_label(ax: Any, *, data: bool = False, rlabel: str = "(13 TeV)",
              label: PlotLabel | None = None, **kwargs: Any) -> Any:
    """Put "CMS Simulation" (``data=False``) or "CMS" (``data=True``) and ``rlabel`` on ``ax``;
    with ``label`` (a :class:`PlotLabel`) exactly that experiment, text and energy instead.

    Uses ``mplhep.cms.label`` / ``mplhep.label.exp_label`` (mplhep >= 1.0 API).
    """
    if label is not None:
        return mplhep.label.exp_label(exp=label.exp, text=label.text, data=True,
                                      rlabel=label.right(), ax=ax, **kwargs)
    return mplhep.cms.label(text="", data=data, rlabel=rlabel, ax=ax, **kwargs)


def save_figure(fig: Any, path: str | Path, formats: Sequence[str] = ("png",)) -> list[Path]:
    """Save ``fig``; returns the written paths.

    If ``path`` ends in a known image suffix (.png, .pdf, .svg, .jpg) exactly that file is
    written; otherwise one file per entry of ``formats`` is written as ``path.<format>``.
    """
    path = Path(path)
    known = {".png", ".pdf", ".svg", ".jpg", ".jpeg", ".eps"}
    if path.suffix.lower() in known:
        targets = [path]
    else:
        if not formats:
            raise ValueError("formats must name at least one file format, got an empty sequence")
        bad = [f for f in formats if f".{str(f).lower().lstrip('.')}" not in known]
        if bad:
            raise ValueError(f"unknown figure format(s) {bad}; expected some of {sorted(known)}")
        targets = [Path(f"{path}.{str(f).lower().lstrip('.')}") for f in formats]
    for t in targets:
        t.parent.mkdir(parents=True, exist_ok=True)
        with _cms_style():
            fig.savefig(t, dpi=100)
    return targets


def _finish(fig: Any, path: str | Path | None, formats: Sequence[str]) -> Any:
    if path is not None:
        save_figure(fig, path, formats)
    return fig


# --------------------------------------------------------------------------------------------
# hist helpers
# --------------------------------------------------------------------------------------------


def _is_hist(obj: Any) -> bool:
    return isinstance(obj, hist.Hist)


def _category_axis(h: Any, name: str | None = None) -> Any:
    if name is not None:
        try:
            return h.axes[name]
        except (KeyError, IndexError) as exc:
            raise ValueError(
                f"histogram has no axis {name!r}; axes are {[a.name for a in h.axes]}"
            ) from exc
    for ax in h.axes:
        if isinstance(ax, hist.axis.StrCategory):
            return ax
    raise ValueError(
        f"histogram needs a StrCategory axis (process/dataset); axes are {[a.name for a in h.axes]}"
    )


def _numeric_axes(h: Any) -> list[Any]:
    return [a for a in h.axes if not isinstance(a, (hist.axis.StrCategory, hist.axis.IntCategory))]


def _find_axis(h: Any, name: str | None, prefer: Sequence[str], what: str) -> Any:
    numeric = _numeric_axes(h)
    if name is not None:
        for a in numeric:
            if a.name == name:
                return a
        raise ValueError(
            f"histogram has no numeric axis {name!r} for the {what}; numeric axes are "
            f"{[a.name for a in numeric]}"
        )
    for p in prefer:
        for a in numeric:
            if p in a.name.lower():
                return a
    if len(numeric) == 1:
        return numeric[0]
    raise ValueError(
        f"cannot tell which axis holds the {what}; pass its name (numeric axes "
        f"{[a.name for a in numeric]})"
    )


def _log_axis(edges: np.ndarray) -> bool:
    """Draw on a log x axis: log-spaced bins, or positive edges spanning over two decades."""
    edges = np.asarray(edges, dtype=float)
    if not (len(edges) > 2 and edges[0] > 0):
        return False
    steps = np.diff(np.log(edges))
    geometric = bool(np.allclose(steps, steps[0], rtol=1e-6) and steps[0] > 0)
    linear = bool(np.allclose(np.diff(edges), edges[1] - edges[0], rtol=1e-6))
    return (geometric and not linear) or bool(edges[-1] / edges[0] > 100.0)


def score_histogram(
    scores: Mapping[str, Any],
    *,
    bins: int | Sequence[float] = 60,
    range: tuple[float, float] | None = None,  # noqa: A002 - numpy's name
    log: bool = True,
    name: str = "score",
    label: str = "Anomaly score",
    category: str = "process",
) -> Any:
    """``hist.Hist`` with axes (``category``: StrCategory, ``name``: Regular or Variable).

    Parameters
    ----------
    scores : mapping
        Process name -> scores per jet. Non-finite scores are not filled (counted in a warning).
    bins : int or sequence of float
        Number of bins (log-spaced if ``log``) or explicit edges (Variable axis).
    range : (float, float), optional
        Axis range; default from the finite scores (positive ones if ``log``). Scores outside
        go to the under/overflow bins (e.g. 0.0 for an empty jet on a log axis), so ROC curves
        from the histogram still count them.
    log : bool
        Log-spaced bins (``hist.axis.transform.log``).
    """


    for n in (name, category):
        if n in _RESERVED_AXIS_NAMES:
            raise ValueError(f"axis name {n!r} is reserved in hist; choose another")
    if not isinstance(scores, Mapping) or not scores:
        raise ValueError("scores must be a non-empty mapping process name -> scores")
    arrays = {str(k): to_numpy(v).astype(np.float64).reshape(-1) for k, v in scores.items()}
    if isinstance(bins, int):
        if range is None:
            allv = np.concatenate(list(arrays.values()))
            allv = allv[np.isfinite(allv)]
            if log:
                allv = allv[allv > 0]
            if allv.size == 0:
                raise ValueError(
                    "no finite" + (" positive" if log else "") + " scores to set the axis range; "
                    "pass range=(lo, hi)"
                )
            lo, hi = float(allv.min()), float(allv.max())
            if hi <= lo:
                lo, hi = (lo / 2, lo * 2) if log else (lo - 0.5, hi + 0.5)
            else:
                hi = hi * 1.0001 if log else hi + 1e-9 * (hi - lo)
            range = (lo, hi)
        lo, hi = range
        if log and lo <= 0:
            raise ValueError(f"log-spaced bins need a positive range, got {range}")
        transform = hist.axis.transform.log if log else None
        score_ax = hist.axis.Regular(bins, lo, hi, name=name, label=label, transform=transform)
    else:
        score_ax = hist.axis.Variable(np.asarray(bins, dtype=float), name=name, label=label)
    h = hist.Hist(hist.axis.StrCategory([], name=category, label="Process", growth=True),
                  score_ax)
    for k, v in arrays.items():
        finite = np.isfinite(v)
        if (~finite).any():
            warnings.warn(f"{int((~finite).sum())} non-finite {k} scores not filled",
                          RuntimeWarning, stacklevel=2)
        h.fill(**{category: k, name: v[finite]})
    return h


def _flow_values(h1: Any) -> np.ndarray:
    """1D values including under/overflow when the axis has them."""
    return np.asarray(h1.values(flow=True), dtype=np.float64)


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
    cat = _category_axis(h, category_axis)
    sax = _find_axis(h, score_axis, ("score",), "anomaly score")
    h2 = h.project(cat.name, sax.name)
    names = list(cat)
    if background not in names:
        raise ValueError(f"background {background!r} not in the {cat.name!r} axis: {names}")
    signals = [n for n in names if n != background] if signals is None else list(signals)
    missing = [s for s in signals if s not in names]
    if missing:
        raise ValueError(f"signals {missing} not in the {cat.name!r} axis: {names}")

    def passing(name: str) -> np.ndarray:
        v = _flow_values(h2[{cat.name: name}])
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


# --------------------------------------------------------------------------------------------
# ROC
# --------------------------------------------------------------------------------------------


def _roc_curves(data: Any, background: str | None) -> dict[str, tuple[np.ndarray, np.ndarray, Any]]:
    if isinstance(data, EvaluationResult):
        data = data.anomaly
    if _is_hist(data):
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
    it is the same curve).
    """
    if style not in ("rejection", "efficiency"):
        raise ValueError(f"style must be 'rejection' or 'efficiency', got {style!r}")
    curves = _roc_curves(data, background)
    if "combined" in curves and len(curves) <= 2:
        curves = {k: v for k, v in curves.items() if k != "combined"}
    with _cms_style():
        fig, axes = new_figure()
        ax = axes[0, 0]
        for name, (eb, es, a) in curves.items():
            keep = eb > 0
            y = 1.0 / eb[keep] if style == "rejection" else eb[keep]
            lab = f"{name} (AUC = {a:.3f})" if a is not None and math.isfinite(a) else name
            ax.plot(es[keep], y, label=lab, lw=2.5, ls="--" if name == "combined" else "-",
                    color=(colors or {}).get(name, "black" if name == "combined" else None))
        grid = np.linspace(1e-3, 1.0, 200)
        ax.plot(grid, 1.0 / grid if style == "rejection" else grid, color="grey", ls=":",
                label="random")
        for wp in working_points:
            ax.axhline(1.0 / wp if style == "rejection" else wp, color="lightgrey", lw=1, ls=":")
        ax.set_yscale("log")
        ax.set_xlim(0.0, 1.0)
        if style == "rejection":  # up to the largest rejection measured, with room for the legend
            top = max((float(np.max(1.0 / eb[eb > 0])) for eb, _, _ in curves.values()
                       if np.any(eb > 0)), default=1e3)
            ax.set_ylim(0.8, max(10.0, top * 30.0))
        ax.set_xlabel(r"Signal efficiency $\varepsilon_s$")
        ax.set_ylabel(r"Background rejection $1/\varepsilon_b$" if style == "rejection"
                      else r"Background efficiency $\varepsilon_b$")
        ax.legend(loc="upper right" if style == "rejection" else "lower right", fontsize=18,
                  title=title, title_fontsize=16)
        cms_label(ax, data=data_label, label=label)
        return _finish(fig, path, formats)


# --------------------------------------------------------------------------------------------
# distributions
# --------------------------------------------------------------------------------------------


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
) -> Any:
    """Anomaly-score distribution per class (normalised to unit area by default).

    ``data`` is a ``hist.Hist`` with a process (StrCategory) axis and a score axis (other
    numeric axes are summed over), or a mapping process -> scores (binned with
    :func:`score_histogram`: log-spaced when ``log_x`` is true, or by default when every finite
    score is positive; a latent-density score ``-log p`` can be negative and gets linear bins).
    ``xlabel`` names the score (say which metric and its unit). On a log y axis no error bars
    are drawn (single-entry bins would draw bars down to the axis); the classes are drawn in
    sorted order with ``colors``.
    """

    if _is_hist(data):
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
    cat = _category_axis(h, category_axis)
    sax = _find_axis(h, score_axis, ("score",), "anomaly score")
    h2 = h.project(cat.name, sax.name)
    with _cms_style():
        fig, axes = new_figure()
        ax = axes[0, 0]
        for name in sort_names(cat):
            h1 = h2[{cat.name: name}]
            if h1.values().sum() <= 0:
                continue
            mplhep.histplot(h1, ax=ax, density=density, label=str(name), flow="none", lw=2,
                            yerr=False if logy else None,
                            color=(colors or {}).get(str(name)))
        edges = np.asarray(sax.edges)
        if _log_axis(edges):
            ax.set_xscale("log")
            _log_ticks(ax)
        if logy:
            ax.set_yscale("log")
        ax.set_xlim(edges[0], edges[-1])
        ax.set_xlabel(xlabel or sax.label or "Anomaly score")
        ax.set_ylabel("Fraction of jets / bin width" if density else "Jets")
        ax.legend(fontsize=18)
        cms_label(ax, data=data_label, label=label)
        return _finish(fig, path, formats)


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


def _common_edges(arrays: Sequence[np.ndarray], bins: int, *, robust: bool = False) -> np.ndarray:
    """Common bin edges: the 0.5-99.5 % quantile range of all arrays; ``robust`` narrows it
    to at most 5 interquartile ranges beyond the quartiles, so that a few outliers of a small
    sample do not squeeze the bulk into one bin."""
    allv = np.concatenate([a[np.isfinite(a)] for a in arrays])
    if allv.size == 0:
        return np.linspace(0.0, 1.0, bins + 1)
    lo, hi = np.percentile(allv, [0.5, 99.5])
    if robust:
        q1, q3 = np.percentile(allv, [25, 75])
        iqr = q3 - q1
        if iqr > 0:
            lo, hi = max(lo, q1 - 5 * iqr), min(hi, q3 + 5 * iqr)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, bins + 1)


def _grid(n: int, ncols: int = 3) -> tuple[int, int]:
    ncols = min(ncols, n)
    return math.ceil(n / ncols), ncols


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
    nrows, ncols = _grid(len(feats))
    with _cms_style():
        fig, axes = new_figure(nrows, ncols, figsize=(8.0 * ncols, 7.5 * nrows))
        for i, f in enumerate(feats):
            ax = axes[i // ncols, i % ncols]
            item = inputs[f]
            if _is_hist(item):
                if reconstructed is not None:
                    raise ValueError("histogram inputs carry both classes: use reconstructed=None")
                cat = _category_axis(item, category_axis)
                num = _numeric_axes(item)
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
                edges = _common_edges([a, b], bins)
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
        return _finish(fig, path, formats)


def plot_latent_invariants(
    data: Any,
    *,
    bins: int = 50,
    category_axis: str | None = None,
    max_panels: int = 6,
    logy: bool = True,
    data_label: bool = False,
    path: str | Path | None = None,
    formats: Sequence[str] = ("png",),
    label: PlotLabel | None = None,
    colors: Mapping[str, str] | None = None,
) -> Any:
    """Latent Lorentz invariants (e.g. Minkowski norms of the latent 4-vectors) per class.

    Panels named like the latent columns (``s0_re``, ``v1_norm_im``) get readable x labels
    (:func:`latent_label`). Array input is binned between the 0.5 % and 99.5 % quantiles of all
    classes (the entries outside are not drawn; the y label says so).

    ``data``: a ``hist.Hist`` with a process StrCategory axis, one numeric axis and optionally a
    further category axis (one panel per entry, e.g. the latent channel); or a mapping class ->
    array (n_jets,) / (n_jets, k) (one panel per column) / mapping invariant name -> array.
    """

    panels: dict[str, Any] = {}
    if _is_hist(data):
        cat = _category_axis(data, category_axis)
        extra = [a for a in data.axes if a.name != cat.name and isinstance(
            a, (hist.axis.StrCategory, hist.axis.IntCategory))]
        num = _numeric_axes(data)
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
    nrows, ncols = _grid(len(panels))
    with _cms_style():
        fig, axes = new_figure(nrows, ncols, figsize=(8.0 * ncols, 7.5 * nrows))
        for i, (pname, content) in enumerate(panels.items()):
            ax = axes[i // ncols, i % ncols]
            yerr = False if logy else None
            if _is_hist(content):
                c = _category_axis(content, category_axis)
                for name in sort_names(c):
                    h1 = content[{c.name: name}]
                    if h1.values().sum() > 0:
                        mplhep.histplot(h1, ax=ax, density=True, label=str(name), flow="none",
                                        lw=2, yerr=yerr, color=(colors or {}).get(str(name)))
                ylabel = "Density"
            else:
                edges = _common_edges(list(content.values()), bins, robust=True)
                for name in sort_names(content):
                    arr = content[name]
                    counts, _ = np.histogram(arr[np.isfinite(arr)], bins=edges)
                    if counts.sum() > 0:
                        mplhep.histplot(counts, edges, ax=ax, density=True, label=name, lw=2,
                                        flow="none", yerr=yerr, color=(colors or {}).get(name))
                ylabel = "Density"
            if logy:
                ax.set_yscale("log")
            ax.set_xlabel(xlabels[pname], fontsize=18)
            ax.set_ylabel(ylabel)
            ax.legend(fontsize=16, title=None if _is_hist(content) or i else
                      "bulk shown (quartiles $\\pm$ 5 IQR)", title_fontsize=13)
            if i == 0:
                cms_label(ax, data=data_label, fontsize=20, label=label)
        for j in range(len(panels), nrows * ncols):
            axes[j // ncols, j % ncols].set_visible(False)
        return _finish(fig, path, formats)


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
    if _is_hist(mass):
        h = mass
        cats = [a for a in h.axes if isinstance(a, hist.axis.StrCategory)]
        if cats:
            cat = _category_axis(h, category_axis)
            if background not in list(cat):
                raise ValueError(f"background {background!r} not in axis {cat.name!r}: {list(cat)}")
            h = h[{cat.name: background}]
        max_ = _find_axis(h, mass_axis, ("mass", "msd"), "jet mass")
        sax = _find_axis(h, score_axis, ("score",), "anomaly score")
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
    with _cms_style():
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
        return _finish(fig, path, formats)
