"""``lgae-hep run`` and ``lgae-hep plot``: the LGAE coffea processor over a fileset, and its plots.

::

    lgae-hep run --fileset fileset.json --model lgae-mix --executor futures --workers 2 -o out/
    lgae-hep plot out/

``run`` checks every file first (opens it, finds the tree and the jet collection's PF-candidate
table); unreadable files are reported and skipped with ``--skipbadfiles``, and name the file in
the error without it. It then runs :class:`lgae_hep.processors.LGAEProcessor` through coffea's
``processor.Runner`` with the iterative, futures (local processes) or dask executor (a local
``dask.distributed`` cluster, or ``--scheduler`` to use an existing one: the scale-out path),
saves the accumulated output and draws the plots.

Output folder
-------------
``output.coffea``
    The accumulated output (``coffea.util.save``: cloudpickle + LZ4). It is read back with
    ``coffea.util.load``, i.e. unpickled: only load output folders you wrote yourself.
``summary.json``
    Cutflow per dataset, skipped files with reasons, AUCs, run settings, timing.
``summary.md``
    The same as a Markdown table (AUC per signal).
``plots/``
    ``score.png``, ``roc.png`` (when truth labels or a background dataset are available),
    ``latent_invariants.png``, ``mass_sculpting.png``: CMS style, "CMS Simulation" for
    simulated input (``genWeight`` or ``FatJet_label`` branches, or files written by
    ``lgae-hep generate``), "CMS" otherwise.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import uproot
from coffea import processor
from coffea.nanoevents import PFNanoAODSchema
from coffea.util import load, save
from tqdm.auto import tqdm

from lgae_hep.data import detect_layout, read_metadata
from lgae_hep.data.truth import LABEL_NAMES
from lgae_hep.jsonio import jsonable, read_json
from lgae_hep.metrics import anomaly_metrics

__all__ = [
    "RunResult",
    "check_files",
    "load_fileset",
    "load_output",
    "make_plots",
    "run_fileset",
    "save_output",
    "summarize",
]

#: Truth label (``FatJet_label`` of generated files) -> class name used in plots and tables.
EXECUTORS = ("iterative", "futures", "dask")


# --------------------------------------------------------------------------------------------
# fileset handling
# --------------------------------------------------------------------------------------------


def load_fileset(fileset: str | Path | Mapping[str, Any]) -> dict[str, list[str]]:
    """Read a fileset: ``{dataset: [files]}`` or ``{dataset: {"files": [files]}}``.

    A JSON path is accepted; relative file paths in it are relative to the JSON file.

    Raises
    ------
    ValueError
        Not a mapping of dataset names to non-empty file lists.
    """
    base = None
    if isinstance(fileset, str | Path):
        path = Path(fileset)
        fileset = read_json(path, "fileset", "; expected a JSON file")
        base = path.resolve().parent
    if not isinstance(fileset, Mapping) or not fileset:
        raise ValueError(
            "fileset must be a non-empty mapping {dataset: [file, ...]}, got "
            f"{type(fileset).__name__}"
        )
    out: dict[str, list[str]] = {}
    for dataset, files in fileset.items():
        if isinstance(files, Mapping):
            files = files.get("files")
        if isinstance(files, Mapping):
            files = list(files)
        if isinstance(files, str):
            files = [files]
        if not isinstance(files, Sequence) or not files:
            raise ValueError(f"dataset {dataset!r}: expected a non-empty list of files")
        resolved = []
        for f in files:
            text = str(f)
            if base is not None and "://" not in text and not Path(text).is_absolute():
                text = str(base / text)
            resolved.append(text)
        out[str(dataset)] = resolved
    return out


def _file_problem(path: str, jets: str, treename: str) -> tuple[str | None, bool]:
    """Why ``path`` cannot be processed (None if fine), and whether it is simulation."""

    try:
        with uproot.open(path) as f:
            if treename not in f:
                return f"no tree {treename!r} in the file", False
            tree = f[treename]
            keys = set(tree.keys())
            detect_layout(keys, jets, where=f"tree {treename!r}")
            simulated = "genWeight" in keys or f"{jets}_label" in keys
            if not simulated:
                try:
                    simulated = read_metadata(path) is not None
                except Exception:  # noqa: BLE001 - metadata is optional
                    simulated = False
            return None, simulated
    except FileNotFoundError:
        return "file not found", False
    except Exception as err:  # noqa: BLE001 - every failure is a reason to report
        return f"{type(err).__name__}: {str(err).splitlines()[0]}", False


def check_files(
    fileset: Mapping[str, Sequence[str]], *, jets: str = "FatJet", treename: str = "Events",
    progress: bool = True,
) -> tuple[dict[str, list[str]], dict[str, str], dict[str, bool]]:
    """Open every file and check its tree and jet collection.

    Returns
    -------
    good : dict
        The fileset without the bad files (datasets left without files are dropped).
    bad : dict
        ``{path: reason}``.
    simulated : dict
        ``{dataset: True}`` when all its good files look simulated.
    """

    good: dict[str, list[str]] = {}
    bad: dict[str, str] = {}
    simulated: dict[str, bool] = {}
    items = [(ds, f) for ds, files in fileset.items() for f in files]
    for ds, f in tqdm(items, desc="checking files", unit="file", disable=not progress):
        problem, sim = _file_problem(f, jets, treename)
        if problem is None:
            good.setdefault(ds, []).append(f)
            simulated[ds] = simulated.get(ds, True) and sim
        else:
            bad[f] = problem
    return good, bad, simulated


# --------------------------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    """What :func:`run_fileset` returns."""

    output: dict[str, Any]
    bad_files: dict[str, str] = field(default_factory=dict)
    simulated: dict[str, bool] = field(default_factory=dict)
    elapsed_s: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def n_jets(self) -> int:
        """Selected jets processed in all datasets."""
        return sum(int(o["cutflow"]["jets_selected"]) for o in self.output.values())


def _make_executor(executor: str, workers: int, retries: int, status: bool,
                   client: Any = None) -> tuple[Any, Any]:

    if executor == "iterative":
        return processor.IterativeExecutor(status=status, retries=retries), None
    if executor == "futures":
        return processor.FuturesExecutor(workers=workers, status=status, retries=retries), None
    if executor == "dask":
        cluster = None
        if client is None:
            from dask.distributed import Client, LocalCluster  # the `dask` extra

            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None)
            client = Client(cluster)
        ex = processor.DaskExecutor(client=client, status=status, retries=retries)
        return ex, (client, cluster)
    raise ValueError(f"executor must be one of {EXECUTORS}, got {executor!r}")


def run_fileset(
    fileset: str | Path | Mapping[str, Any],
    proc: Any,
    *,
    executor: str = "futures",
    workers: int = 2,
    chunksize: int = 100_000,
    maxchunks: int | None = None,
    skipbadfiles: bool = False,
    retries: int = 0,
    treename: str = "Events",
    scheduler: str | None = None,
    client: Any = None,
    status: bool = True,
) -> RunResult:
    """Run ``proc`` (an :class:`~lgae_hep.processors.LGAEProcessor`) over ``fileset``.

    Parameters
    ----------
    fileset : path or mapping
        See :func:`load_fileset`.
    proc : LGAEProcessor
        The processor (its ``jets`` collection is used to check the files).
    executor : {"iterative", "futures", "dask"}
        coffea executor; ``"dask"`` starts a local ``dask.distributed`` cluster with
        ``workers`` single-threaded worker processes unless ``scheduler``/``client`` is given.
    workers : int
        Worker processes (futures, local dask).
    chunksize, maxchunks : int
        Events per chunk and chunks per dataset (``Runner`` options).
    skipbadfiles : bool
        Skip unreadable files (reported in :attr:`RunResult.bad_files`) instead of failing.
    retries : int
        Retries of a failed chunk (iterative/futures executors; dask retries are dask's).
    scheduler : str, optional
        Address of a running dask scheduler (``tcp://host:8786``).
    status : bool
        Progress bars.

    Raises
    ------
    ValueError
        Bad arguments, an unreadable file without ``skipbadfiles`` (the message names the
        file and the reason), or no readable file at all.
    """

    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    for name, v in (("workers", workers), ("chunksize", chunksize)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if maxchunks is not None and (not isinstance(maxchunks, int) or maxchunks < 1):
        raise ValueError(f"maxchunks must be a positive integer or None, got {maxchunks!r}")
    if not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be an integer >= 0, got {retries!r}")
    files = load_fileset(fileset)
    jets = getattr(proc, "jets", "FatJet")
    good, bad, simulated = check_files(files, jets=jets, treename=treename, progress=status)
    if bad and not skipbadfiles:
        lines = "\n".join(f"  {p}: {why}" for p, why in bad.items())
        raise ValueError(f"{len(bad)} unreadable input file(s) (use --skipbadfiles / "
                         f"skipbadfiles=True to skip them):\n{lines}")
    if not good:
        raise ValueError("no readable input file in the fileset:\n" +
                         "\n".join(f"  {p}: {why}" for p, why in bad.items()))
    if scheduler is not None and client is None:
        from dask.distributed import Client  # the `dask` extra

        client = Client(scheduler)
    ex, dask_handles = _make_executor(executor, workers, retries, status, client)

    runner = processor.Runner(
        ex,
        schema=PFNanoAODSchema,
        chunksize=chunksize,
        maxchunks=maxchunks,
        skipbadfiles=(OSError, uproot.deserialization.DeserializationError) if skipbadfiles
        else False,
    )
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            # the schema warns about cross-references of collections PFNano files do not have
            warnings.filterwarnings("ignore", message="Missing cross-reference")
            warnings.filterwarnings("ignore", message=".*already exists but its values")
            output = runner(good, proc, treename=treename)
    finally:
        if dask_handles is not None and client is None and scheduler is None:
            dclient, cluster = dask_handles
            dclient.close()
            if cluster is not None:
                cluster.close()
    elapsed = time.perf_counter() - start
    # files that opened in the check but failed while processing (skipbadfiles) are missing
    for ds, flist in good.items():
        done = output.get(ds, {}).get("files", set())
        for f in flist:
            if f not in done and f not in bad:
                bad[f] = "failed while processing (skipped by skipbadfiles) or no events"
    for ds in files:
        if ds not in output:
            warnings.warn(f"dataset {ds!r} produced no output (all its files were skipped)",
                          RuntimeWarning, stacklevel=2)
    settings = {
        "executor": executor, "workers": workers, "chunksize": chunksize,
        "maxchunks": maxchunks, "skipbadfiles": skipbadfiles, "retries": retries,
        "model": getattr(proc, "model", None), "jets": jets,
        "pt_min": getattr(proc, "pt_min", None), "eta_max": getattr(proc, "eta_max", None),
        "max_particles": getattr(proc, "max_particles", None),
    }
    return RunResult(output=output, bad_files=bad, simulated=simulated, elapsed_s=elapsed,
                     settings=settings)


# --------------------------------------------------------------------------------------------
# summary and plots
# --------------------------------------------------------------------------------------------


def _classes(output: Mapping[str, Any], background: str | None) -> tuple[dict[str, dict], str]:
    """Per-jet column arrays per class: truth labels if present, else datasets."""
    per: dict[str, dict[str, list]] = {}
    labelled = bool(output) and all("label" in o.get("columns", {}) for o in output.values())
    for ds, o in output.items():
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
    classes = {k: {n: np.concatenate(v[n]) for n in v} for k, v in per.items()}
    if background is None:
        matches = [k for k in classes if "qcd" in k.lower()]
        background = matches[0] if matches else ""
    return classes, background


def summarize(result_or_output: RunResult | Mapping[str, Any], *,
              background: str | None = None) -> dict[str, Any]:
    """Cutflows, AUC per signal (when a background class exists) and skipped files."""

    if isinstance(result_or_output, RunResult):
        output, bad = result_or_output.output, result_or_output.bad_files
        extra = {"elapsed_s": result_or_output.elapsed_s,
                 "jets_per_s": result_or_output.n_jets / max(result_or_output.elapsed_s, 1e-9),
                 "settings": result_or_output.settings,
                 "simulated": result_or_output.simulated}
    else:
        output, bad, extra = result_or_output, {}, {}
    classes, bkg = _classes(output, background)
    summary: dict[str, Any] = {
        "cutflow": {ds: dict(o["cutflow"]) for ds, o in output.items()},
        "bad_files": dict(bad),
        "background": bkg or None,
        "auc": {},
        **extra,
    }
    signals = {k: v["score"] for k, v in classes.items() if k != bkg}
    if bkg and signals and bkg in classes:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            metrics = anomaly_metrics(classes[bkg]["score"], signals, combined=False)
        summary["auc"] = {k: float(m["auc"]) for k, m in metrics["signals"].items()}
        summary["metrics"] = metrics
    return summary


def summary_markdown(summary: Mapping[str, Any]) -> str:
    lines = ["| dataset | events | jets | selected | scored | invalid |",
             "|---|---:|---:|---:|---:|---:|"]
    for ds, c in summary["cutflow"].items():
        lines.append(f"| {ds} | {c['events']} | {c['jets']} | {c['jets_selected']} | "
                     f"{c['jets_scored']} | {c['jets_invalid']} |")
    if summary.get("auc"):
        lines += ["", f"| signal (vs {summary['background']}) | AUC |", "|---|---:|"]
        lines += [f"| {k} | {v:.3f} |" for k, v in summary["auc"].items()]
    if summary.get("bad_files"):
        lines += ["", "Skipped files:", ""]
        lines += [f"- `{p}`: {why}" for p, why in summary["bad_files"].items()]
    return "\n".join(lines) + "\n"


def save_output(result: RunResult, outdir: str | Path, *,
                background: str | None = None) -> dict[str, Any]:
    """Write ``output.coffea``, ``summary.json`` and ``summary.md``; returns the summary."""

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    save({"output": result.output, "bad_files": result.bad_files,
          "simulated": result.simulated, "settings": result.settings,
          "elapsed_s": result.elapsed_s}, outdir / "output.coffea")
    summary = summarize(result, background=background)
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
                     settings=d.get("settings", {}))


def _latent_invariant_columns(output: Mapping[str, Any], cols: Mapping[str, Any]) -> list[str]:
    """Column names of latent Lorentz invariants in ``cols``, as the processor recorded them
    (``latent_invariants`` of each dataset's output; none for outputs without it)."""
    names = {n for o in output.values() for n in o.get("latent_invariants", ())}
    return [c for c in cols if c.startswith("latent_") and c[len("latent_"):] in names]


def _merged(output: Mapping[str, Any], name: str) -> Any:
    hists = [o["hists"][name] for o in output.values() if name in o.get("hists", {})]
    if not hists:
        return None
    total = hists[0].copy()
    for h in hists[1:]:
        total = total + h
    return total


def make_plots(result: RunResult, outdir: str | Path, *, background: str | None = None,
               formats: Sequence[str] = ("png",), progress: bool = True) -> list[Path]:
    """Draw the CMS-style plots of a run into ``outdir/plots``; returns the written files."""
    # lazy: the non-interactive backend must be chosen before pyplot loads, and a run that
    # draws no plots (--no-plots, coffea workers) never imports matplotlib
    import matplotlib

    matplotlib.use("Agg", force=False)
    from lgae_hep import plotting

    output = result.output
    plot_dir = Path(outdir) / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    data_label = not (result.simulated and all(result.simulated.values()))
    classes, bkg = _classes(output, background)
    summary = summarize(result, background=background)
    jobs: list[tuple[str, Any]] = []
    # per-jet columns give exact, adaptively binned distributions; the histograms (fixed
    # binning, mergeable across chunks) are the fallback when columns were switched off
    h_score = _merged(output, "score")
    finite = {k: v["score"][np.isfinite(v["score"])] for k, v in classes.items()}
    if any(len(v) and np.any(v > 0) for v in finite.values()):
        jobs.append(("score", lambda p: plotting.plot_score_distributions(
            {k: v for k, v in finite.items() if len(v)}, data_label=data_label, path=p,
            formats=formats)))
    elif h_score is not None and h_score.sum(flow=True) > 0:
        jobs.append(("score", lambda p: plotting.plot_score_distributions(
            h_score, category_axis="process", data_label=data_label, path=p, formats=formats)))
    if summary.get("metrics"):
        jobs.append(("roc", lambda p: plotting.plot_roc(
            summary["metrics"], data_label=data_label, path=p, formats=formats)))
    inv = {k: {n[len("latent_"):]: v[n] for n in _latent_invariant_columns(output, v)}
           for k, v in classes.items()}
    inv = {k: v for k, v in inv.items() if v and len(next(iter(v.values())))}
    h_lat = _merged(output, "latent")
    if inv:
        n_inv = max(len(v) for v in inv.values())
        jobs.append(("latent_invariants", lambda p: plotting.plot_latent_invariants(
            inv, max_panels=n_inv, data_label=data_label, path=p, formats=formats)))
    elif h_lat is not None and h_lat.sum(flow=True) > 0:
        n_inv = len(h_lat.axes["invariant"])
        jobs.append(("latent_invariants", lambda p: plotting.plot_latent_invariants(
            h_lat, category_axis="process", max_panels=max(n_inv, 1), data_label=data_label,
            path=p, formats=formats)))
    mass_src = classes.get(bkg) if bkg else None
    if mass_src is not None and np.isfinite(mass_src["score"]).sum() >= 20:
        jobs.append(("mass_sculpting", lambda p: plotting.plot_mass_sculpting(
            mass_src["mass"], mass_src["score"], background=bkg, data_label=data_label,
            path=p, formats=formats)))
    written: list[Path] = []
    for stem, job in tqdm(jobs, desc="plots", unit="plot", disable=not progress):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            job(plot_dir / stem)
        written += [plot_dir / f"{stem}.{f}" for f in formats]
    return written
