"""The summary of a run (cutflows, AUCs, provenance), its Markdown table, and the output folder:
writing it, reading it back, clearing what an earlier run wrote."""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from coffea.util import load, save

from lgae_hep.data.truth import LABEL_NAMES
from lgae_hep.jsonio import jsonable
from lgae_hep.metrics import anomaly_metrics

from .execution import RunResult

__all__ = ["CLASS_MODES", "RUN_OUTPUTS", "clear_run_outputs", "load_output", "save_output",
           "split_classes", "summarize", "summary_markdown"]

#: What a run writes into its output folder (cleared by :func:`clear_run_outputs`).
RUN_OUTPUTS = ("output.coffea", "summary.json", "summary.md", "plots", "skim")
#: How plot/summary classes are formed: ``auto`` (truth labels when every dataset has them,
#: else datasets), ``labels`` (``<jets>_label`` truth classes, an error if absent) or
#: ``datasets`` (one class per fileset dataset).
CLASS_MODES = ("auto", "labels", "datasets")




def split_classes(output: Mapping[str, Any], background: str | None,
             classes: str = "auto") -> tuple[dict[str, dict], str]:
    """Per-jet column arrays per class (sorted by name) and the background class.

    Raises
    ------
    ValueError
        ``background`` is not one of the classes (the message lists them), or
        ``classes="labels"`` without truth labels.
    """
    if classes not in CLASS_MODES:
        raise ValueError(f"classes must be one of {CLASS_MODES}, got {classes!r}")
    per: dict[str, dict[str, list]] = {}
    has_labels = bool(output) and all("label" in o.get("columns", {}) for o in output.values())
    if classes == "labels" and not has_labels:
        raise ValueError("classes='labels' (--classes labels) but not every dataset has truth "
                         "labels (<jets>_label); use --classes datasets")
    labelled = has_labels and classes != "datasets"
    for ds in sorted(output):
        o = output[ds]
        cols = o.get("columns", {})
        if "score" not in cols:
            continue
        values = {k: c.value for k, c in cols.items()}
        if labelled:
            lab = values["label"]
            for k in np.unique(lab):
                name = LABEL_NAMES.get(int(k), f"label{int(k)}")
                sel = lab == k
                d = per.setdefault(name, {})
                for n, v in values.items():
                    d.setdefault(n, []).append(v[sel])
        else:
            d = per.setdefault(ds, {})
            for n, v in values.items():
                d.setdefault(n, []).append(v)
    from lgae_hep.plotting import sort_names

    out = {k: {n: np.concatenate(per[k][n]) for n in per[k]} for k in sort_names(per)}
    what = "truth-label classes" if labelled else "datasets"
    if background is None:
        matches = [k for k in out if "qcd" in k.lower()]
        background = matches[0] if matches else ""
    elif background not in out:
        raise ValueError(f"--background-class {background!r} is not one of the {what} "
                         f"{sorted(out) or '(none with columns)'}"
                         + ("; classes come from the truth labels (pass --classes datasets "
                            "to use dataset names)" if labelled else ""))
    return out, background


def clear_run_outputs(outdir: str | Path) -> list[Path]:
    """Remove what an earlier run wrote into ``outdir`` (:data:`RUN_OUTPUTS`), and nothing else.

    ``lgae-hep run --overwrite`` calls this first, so an output folder never mixes the skims or
    plots of two runs. Returns the removed paths.
    """
    import shutil

    removed = []
    for name in RUN_OUTPUTS:
        p = Path(outdir) / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()
        else:
            continue
        removed.append(p)
    return removed


def summarize(result_or_output: RunResult | Mapping[str, Any], *,
              background: str | None = None, classes: str = "auto") -> dict[str, Any]:
    """Cutflows, AUC per signal (when a background class exists), skipped files and the run
    settings (model, model SHA-256, score metric, lgae-hep version, selection), datasets and
    classes in sorted order."""

    if isinstance(result_or_output, RunResult):
        output, bad = result_or_output.output, result_or_output.bad_files
        extra = {"elapsed_s": result_or_output.elapsed_s,
                 "jets_per_s": result_or_output.n_jets / max(result_or_output.elapsed_s, 1e-9),
                 "settings": result_or_output.settings,
                 "simulated": result_or_output.simulated,
                 "generator_level": result_or_output.generator_level}
    else:
        output, bad, extra = result_or_output, {}, {}
    from lgae_hep import __version__

    classes, bkg = split_classes(output, background, classes)
    summary: dict[str, Any] = {
        "lgae_hep_version": __version__,
        "cutflow": {ds: dict(output[ds]["cutflow"]) for ds in sorted(output)},
        "bad_files": dict(bad),
        "background": bkg or None,
        "auc": {},
        **extra,
    }
    # an empty selection (say pt_min=1e6) is a valid result: zero counts and no AUC, with a
    # note that says why; a class without a finite score has no AUC
    signals = {k: v["score"] for k, v in classes.items()
               if k != bkg and np.isfinite(v["score"]).any()}
    has_bkg = bool(bkg) and bkg in classes and np.isfinite(classes[bkg]["score"]).any()
    if has_bkg and signals:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            metrics = anomaly_metrics(classes[bkg]["score"], signals, combined=False)
        summary["auc"] = {k: float(m["auc"]) for k, m in metrics["signals"].items()}
        summary["metrics"] = metrics
    no_auc = sorted(k for k in classes if k != bkg and k not in summary["auc"])
    if bkg and (no_auc or not has_bkg):
        summary["auc_note"] = (
            f"no AUC: the background {bkg!r} has no scored jet" if not has_bkg else
            f"no AUC for {no_auc}: no scored jet")
    return summary


def summary_markdown(summary: Mapping[str, Any]) -> str:
    """The summary as Markdown: provenance line, cutflow table, AUC table, skipped files."""
    st = summary.get("settings", {})
    lines = []
    if st:
        sha = st.get("model_sha256")
        lines += [f"model `{st.get('model')}`" + (f" (sha256 `{sha[:12]}`)" if sha else "")
                  + f", score metric `{st.get('metric')}`, lgae-hep "
                  f"{summary.get('lgae_hep_version')}", ""]
    lines += ["| dataset | events | jets | selected | scored | invalid | outside domain |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for ds, c in summary["cutflow"].items():
        lines.append(f"| {ds} | {c['events']} | {c['jets']} | {c['jets_selected']} | "
                     f"{c['jets_scored']} | {c['jets_invalid']} | "
                     f"{c.get('jets_outside_domain', 0)} |")
    if summary.get("auc"):
        lines += ["", f"| signal (vs {summary['background']}) | AUC |", "|---|---:|"]
        lines += [f"| {k} | {v:.3f} |" for k, v in summary["auc"].items()]
    if summary.get("auc_note"):
        lines += ["", f"{summary['auc_note']}"]
    if summary.get("bad_files"):
        lines += ["", "Skipped files:", ""]
        lines += [f"- `{p}`: {why}" for p, why in summary["bad_files"].items()]
    return "\n".join(lines) + "\n"


def save_output(result: RunResult, outdir: str | Path, *,
                background: str | None = None, classes: str = "auto",
                summary: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write ``output.coffea``, ``summary.json`` and ``summary.md``; returns the summary.

    ``output.coffea`` holds ``output`` (per dataset, as the processor returns it), ``hists``
    (every histogram summed over datasets with a ``process`` axis,
    :func:`lgae_hep.workflow.execution.merged_hists`), ``bad_files``, ``simulated``,
    ``settings`` and ``elapsed_s``. ``summary``: a :func:`summarize` of ``result`` computed
    already (default: computed here, after ``output.coffea`` is written, so an unknown
    ``background`` fails without losing the run); pass the returned summary on to
    :func:`lgae_hep.workflow.plots.make_plots` so that it is computed once.
    """

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    save({"output": result.output, "hists": result.hists, "bad_files": result.bad_files,
          "simulated": result.simulated, "settings": result.settings,
          "elapsed_s": result.elapsed_s, "generator_level": result.generator_level},
         outdir / "output.coffea")
    # after the save: an unknown background is an error, but the run's work is kept
    summary = dict(summary) if summary is not None else summarize(
        result, background=background, classes=classes)
    (outdir / "summary.json").write_text(json.dumps(jsonable(summary), indent=2))
    (outdir / "summary.md").write_text(summary_markdown(summary))
    return summary


def load_output(outdir: str | Path) -> RunResult:
    """Read back what :func:`save_output` wrote (unpickles: only for your own output)."""

    path = Path(outdir) / "output.coffea"
    if not path.is_file():
        raise ValueError(f"{str(path)!r} not found; expected the folder of an `lgae-hep run`")
    d = load(path)
    return RunResult(output=d["output"], bad_files=d.get("bad_files", {}),
                     simulated=d.get("simulated", {}), elapsed_s=d.get("elapsed_s", 0.0),
                     settings=d.get("settings", {}),
                     generator_level=d.get("generator_level", {}))
