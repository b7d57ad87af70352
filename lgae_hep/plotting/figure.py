"""Figure plumbing: an Agg-canvas Figure (no pyplot), the CMS style context, the experiment
label, saving in several formats."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import mplhep
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .style import PlotLabel

__all__ = ["cms_label", "cms_style", "finish_figure", "log_ticks", "new_figure", "panel_grid",
           "save_figure"]


@contextlib.contextmanager
def cms_style() -> Iterator[None]:
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

    Uses ``mplhep.cms.label`` / ``mplhep.label.exp_label`` (mplhep >= 1.0 API). mplhep
    places the text beside the experiment name from the axes' size when called, so the figure
    is laid out first: a label drawn before a multi-panel constrained layout settles would run
    into the name ("CMSSimulation"). Call it after the axes' contents are drawn.
    """
    ax.figure.draw_without_rendering()
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
        with cms_style():
            fig.savefig(t, dpi=100)
    return targets



def finish_figure(fig: Any, path: str | Path | None, formats: Sequence[str]) -> Any:
    if path is not None:
        save_figure(fig, path, formats)
    return fig



def log_ticks(ax: Any) -> None:
    """Log x ticks at 1, 2, 5 x 10^k without overlapping minor labels."""
    from matplotlib.ticker import LogFormatterSciNotation, LogLocator, NullFormatter

    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(LogFormatterSciNotation(labelOnlyBase=False))
    ax.xaxis.set_minor_formatter(NullFormatter())



def panel_grid(n: int, ncols: int = 3) -> tuple[int, int]:
    ncols = min(ncols, n)
    return math.ceil(n / ncols), ncols
