"""The CMS-style plots of a run (``lgae-hep run`` / ``lgae-hep plot``) and their label."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .execution import RunResult, merged_hist
from .summary import split_classes, summarize

__all__ = ["PLOT_STEMS", "latent_invariant_columns", "make_plots", "plot_label"]

#: Plot file stems :func:`make_plots` writes (stale ones are removed before drawing).
PLOT_STEMS = ("score", "roc", "latent_invariants", "mass_sculpting")


def latent_invariant_columns(output: Mapping[str, Any], cols: Mapping[str, Any]) -> list[str]:
    """Column names of latent Lorentz invariants in ``cols``, as the processor recorded them
    (``latent_invariants`` of each dataset's output; none for outputs without it)."""
    names = {n for o in output.values() for n in o.get("latent_invariants", ())}
    return [c for c in cols if c.startswith("latent_") and c[len("latent_"):] in names]


def plot_label(result: RunResult, *, text: str | None = None, energy: str | None = None,
               lumi: float | None = None, experiment: str | None = None) -> Any:
    """The experiment label of a run's plots (:class:`lgae_hep.plotting.PlotLabel`).

    Defaults by input: generator-level files written by ``lgae-hep generate`` get no CMS logo
    ("Private work", "Pythia 8 generator level"): they are not CMS simulation; CMS simulation
    (``genWeight``) gets "CMS Simulation Private work", data "CMS Private work". ``text``,
    ``energy`` (e.g. ``"13.6"`` for Run 3), ``lumi`` (fb^-1) and ``experiment`` override.
    """
    from lgae_hep.plotting import PlotLabel

    gen = bool(result.generator_level) and all(result.generator_level.values())
    sim = bool(result.simulated) and all(result.simulated.values())
    energy = str(energy) if energy is not None else "13"
    if gen:
        return PlotLabel(exp="" if experiment is None else experiment,
                         text="Private work" if text is None else text, energy=energy,
                         rtext=None if lumi else f"Pythia 8 generator level ({energy} TeV)")
    default_text = "Simulation Private work" if sim else "Private work"
    return PlotLabel(exp="CMS" if experiment is None else experiment,
                     text=default_text if text is None else text, energy=energy, lumi=lumi)


def make_plots(result: RunResult, outdir: str | Path, *, background: str | None = None,
               formats: Sequence[str] = ("png",), progress: bool = True,
               classes: str = "auto", label: Any = None,
               summary: Mapping[str, Any] | None = None) -> list[Path]:
    """Draw the CMS-style plots of a run into ``outdir/plots``; returns the written files.

    Plots: ``score`` (per class, x label naming the score metric and unit, log x only for the
    reconstruction metrics), ``roc`` (when a background class exists), ``latent_invariants``
    and ``mass_sculpting`` (background soft-drop mass when the files have ``msoftdrop``, else
    the jet mass). Classes are sorted by name and keep one colour in every figure. Plots of an
    earlier run in the folder (:data:`PLOT_STEMS`, any format) are removed first, so the folder
    never shows a stale ROC. ``label``: a :class:`lgae_hep.plotting.PlotLabel` (default
    :func:`plot_label`). ``summary``: the run's :func:`lgae_hep.workflow.summary.summarize`
    with the same ``background`` and ``classes``, as :func:`lgae_hep.workflow.summary.save_output`
    returns it (default: computed here).

    Raises
    ------
    ValueError
        ``background`` is not one of the classes (the message lists them).
    """
    # lazy: the non-interactive backend must be chosen before pyplot loads, and a run that
    # draws no plots (--no-plots, coffea workers) never imports matplotlib
    import matplotlib

    matplotlib.use("Agg", force=False)
    from lgae_hep import plotting
    from lgae_hep.scoring.registry import SCORES

    output = result.output
    cls, bkg = split_classes(output, background, classes)  # raises for an unknown background
    if summary is None:
        summary = summarize(result, background=background, classes=classes)
    elif (summary.get("background") or "") != bkg:
        raise ValueError(f"the summary was computed with background {summary.get('background')!r}, "
                         f"the plots use {bkg or None!r}; pass the same background and classes")
    label = label if label is not None else plot_label(result)
    colors = plotting.class_colors(list(cls))
    metric = result.settings.get("metric") or "chamfer"
    spec = SCORES.get(metric)
    score_label, score_log = (spec.label, spec.log_axis) if spec else ("Anomaly score", True)
    plot_dir = Path(outdir) / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    for stem in PLOT_STEMS:  # no stale figures of an earlier run
        for old in plot_dir.glob(f"{stem}.*"):
            old.unlink()
    common = {"label": label, "formats": formats}
    jobs: list[tuple[str, Any]] = []
    # per-jet columns give exact, adaptively binned distributions; the histograms (fixed
    # binning, mergeable across chunks) are the fallback when columns were switched off
    h_score = merged_hist(output, "score")
    # real collision data (a dataset class whose files are neither simulation nor generated):
    # black points on top, so a data set is never hidden under a simulated one
    data_classes = [k for k in cls if k in result.simulated and not result.simulated[k]
                    and not result.generator_level.get(k, False)]
    finite = {k: v["score"][np.isfinite(v["score"])] for k, v in cls.items()}
    finite = {k: v for k, v in finite.items() if len(v)}
    if finite and (not score_log or any(np.any(v > 0) for v in finite.values())):
        jobs.append(("score", lambda p: plotting.plot_score_distributions(
            finite, path=p, colors=colors, xlabel=score_label, data_classes=data_classes,
            log_x=score_log and all(np.all(v > 0) for v in finite.values()), **common)))
    elif h_score is not None and h_score.sum(flow=True) > 0:
        jobs.append(("score", lambda p: plotting.plot_score_distributions(
            h_score, category_axis="process", path=p, colors=colors, xlabel=score_label,
            data_classes=data_classes, **common)))
    if summary.get("metrics"):
        jobs.append(("roc", lambda p: plotting.plot_roc(
            summary["metrics"], path=p, colors=colors,
            title=f"{metric} score, background: {bkg}", **common)))
    inv = {k: {n[len("latent_"):]: v[n] for n in latent_invariant_columns(output, v)}
           for k, v in cls.items()}
    inv = {k: v for k, v in inv.items() if v and len(next(iter(v.values())))}
    h_lat = merged_hist(output, "latent")
    if inv:  # the first invariants (plot_latent_invariants' default number of panels)
        jobs.append(("latent_invariants", lambda p: plotting.plot_latent_invariants(
            inv, path=p, colors=colors, **common)))
    elif h_lat is not None and h_lat.sum(flow=True) > 0:
        jobs.append(("latent_invariants", lambda p: plotting.plot_latent_invariants(
            h_lat, category_axis="process", path=p, colors=colors, **common)))
    mass_src = cls.get(bkg) if bkg else None
    if mass_src is not None and np.isfinite(mass_src["score"]).sum() >= 20:
        msd = mass_src.get("msoftdrop")
        use_sd = msd is not None and np.isfinite(msd).any()
        jobs.append(("mass_sculpting", lambda p: plotting.plot_mass_sculpting(
            msd if use_sd else mass_src["mass"], mass_src["score"], background=bkg, path=p,
            mass_label=r"Jet $m_{SD}$ [GeV]" if use_sd else "Jet mass [GeV]",
            score_label=f"{metric} score", **common)))
    written: list[Path] = []
    for stem, job in tqdm(jobs, desc="plots", unit="plot", disable=not progress):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            job(plot_dir / stem)
        written += [plot_dir / f"{stem}.{f}" for f in formats]
    return written
