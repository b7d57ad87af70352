"""CMS-style plots (mplhep) of anomaly scores, ROC curves, reconstructions and latents.

Every ``plot_*`` function takes either ``hist.Hist`` objects, as filled by the coffea processor
(a ``StrCategory`` axis for the process/dataset plus numeric axes such as ``score``), or plain
arrays where that makes sense; it returns the :class:`matplotlib.figure.Figure` and, when ``path``
is given, saves it (``formats``, e.g. PNG and PDF).

Figures are created with :class:`matplotlib.figure.Figure` on an Agg canvas, never through
``pyplot``: no global figure state, nothing to close, no ``plt.show``, and safe in batch jobs
and worker processes. The CMS style (``mplhep.style.CMS``) is applied in a context only, so the
caller's matplotlib settings are untouched. Labels: "CMS Simulation" (``data=False``, default)
or "CMS" (``data=True``), with "(13 TeV)" on the right.

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
    "cms_label",
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


def cms_label(ax: Any, *, data: bool = False, rlabel: str = "(13 TeV)", **kwargs: Any) -> Any:
    """Put "CMS Simulation" (``data=False``) or "CMS" (``data=True``) and ``rlabel`` on ``ax``.

    Uses ``mplhep.cms.label`` (mplhep >= 1.0 API: ``text=``, ``data=``, ``rlabel=``, ``ax=``).
    """

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
    """
    if style not in ("rejection", "efficiency"):
        raise ValueError(f"style must be 'rejection' or 'efficiency', got {style!r}")
    curves = _roc_curves(data, background)
    with _cms_style():
        fig, axes = new_figure()
        ax = axes[0, 0]
        for name, (eb, es, a) in curves.items():
            keep = eb > 0
            y = 1.0 / eb[keep] if style == "rejection" else eb[keep]
            lab = f"{name} (AUC = {a:.3f})" if a is not None and math.isfinite(a) else name
            ax.plot(es[keep], y, label=lab, lw=2.5, ls="--" if name == "combined" else "-")
        grid = np.linspace(1e-3, 1.0, 200)
        ax.plot(grid, 1.0 / grid if style == "rejection" else grid, color="grey", ls=":",
                label="random")
        for wp in working_points:
            ax.axhline(1.0 / wp if style == "rejection" else wp, color="lightgrey", lw=1, ls=":")
        ax.set_yscale("log")
        ax.set_xlim(0.0, 1.0)
        ax.set_xlabel(r"Signal efficiency $\varepsilon_s$")
        ax.set_ylabel(r"Background rejection $1/\varepsilon_b$" if style == "rejection"
                      else r"Background efficiency $\varepsilon_b$")
        ax.legend(loc="upper right" if style == "rejection" else "lower right", fontsize=18)
        cms_label(ax, data=data_label)
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
) -> Any:
    """Anomaly-score distribution per class (normalised to unit area by default).

    ``data`` is a ``hist.Hist`` with a process (StrCategory) axis and a score axis (other
    numeric axes are summed over), or a mapping process -> scores (binned with
    :func:`score_histogram`).
    """

    h = data if _is_hist(data) else score_histogram(data)
    cat = _category_axis(h, category_axis)
    sax = _find_axis(h, score_axis, ("score",), "anomaly score")
    h2 = h.project(cat.name, sax.name)
    with _cms_style():
        fig, axes = new_figure()
        ax = axes[0, 0]
        for name in cat:
            h1 = h2[{cat.name: name}]
            if h1.values().sum() <= 0:
                continue
            mplhep.histplot(h1, ax=ax, density=density, label=str(name), flow="none", lw=2)
        edges = np.asarray(sax.edges)
        if _log_axis(edges):
            ax.set_xscale("log")
        if logy:
            ax.set_yscale("log")
        ax.set_xlim(edges[0], edges[-1])
        ax.set_xlabel(sax.label or "Anomaly score")
        ax.set_ylabel("Fraction of jets / bin width" if density else "Jets")
        ax.legend(fontsize=18)
        cms_label(ax, data=data_label)
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


def _common_edges(arrays: Sequence[np.ndarray], bins: int) -> np.ndarray:
    allv = np.concatenate([a[np.isfinite(a)] for a in arrays])
    if allv.size == 0:
        return np.linspace(0.0, 1.0, bins + 1)
    lo, hi = np.percentile(allv, [0.5, 99.5])
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
) -> Any:
    """Latent Lorentz invariants (e.g. Minkowski norms of the latent 4-vectors) per class.

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
        if extra:
            for v in extra[0]:
                panels[f"{extra[0].label or extra[0].name} {v}"] = data[{extra[0].name: v}]
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
        xlabels = {k: k for k in panels}
    if len(panels) > max_panels:
        warnings.warn(f"{len(panels)} latent invariants; plotting the first {max_panels}",
                      RuntimeWarning, stacklevel=2)
        panels = dict(list(panels.items())[:max_panels])
    nrows, ncols = _grid(len(panels))
    with _cms_style():
        fig, axes = new_figure(nrows, ncols, figsize=(8.0 * ncols, 7.5 * nrows))
        for i, (pname, content) in enumerate(panels.items()):
            ax = axes[i // ncols, i % ncols]
            if _is_hist(content):
                c = _category_axis(content, category_axis)
                for name in c:
                    h1 = content[{c.name: name}]
                    if h1.values().sum() > 0:
                        mplhep.histplot(h1, ax=ax, density=True, label=str(name), flow="none",
                                        lw=2)
            else:
                edges = _common_edges(list(content.values()), bins)
                for name, arr in content.items():
                    counts, _ = np.histogram(arr[np.isfinite(arr)], bins=edges)
                    if counts.sum() > 0:
                        mplhep.histplot(counts, edges, ax=ax, density=True, label=name, lw=2,
                                        flow="none")
            if logy:
                ax.set_yscale("log")
            ax.set_xlabel(xlabels[pname])
            ax.set_ylabel("Density")
            ax.legend(fontsize=16)
            if i == 0:
                cms_label(ax, data=data_label, fontsize=20)
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
) -> Any:
    """Jet mass of background jets before and after anomaly-score cuts (mass sculpting).

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
            curves.append((rf"$\varepsilon_b$ = {sel.mean():.3g} (score $\geq$ {thr:.3g})",
                           np.histogram(m[sel], bins=edges)[0], edges))
        xlabel = "Jet mass [GeV]"
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
        cms_label(ax, data=data_label)
        return _finish(fig, path, formats)
