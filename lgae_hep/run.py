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
    The accumulated output (``coffea.util.save``: cloudpickle + LZ4) and ``hists``, every
    histogram with all datasets on one ``process`` axis (:func:`merged_hists`). It is read back
    with ``coffea.util.load``, i.e. unpickled: only load output folders you wrote yourself.
``summary.json``
    Cutflow per dataset (sorted), skipped files with reasons, AUCs, timing and the run
    settings: model, model file and its SHA-256, score metric, lgae-hep version, selection,
    PUPPI, training domain.
``skim/`` (``--skim``)
    ``<dataset>/<file stem>_<path hash>_<first>-<last>.<root|parquet>``: unique per input file
    and chunk, with ``<jets>_lgaeIdx`` to join back (see :class:`LGAEProcessor`).
``summary.md``
    The same as a Markdown table (AUC per signal).
``plots/``
    ``score.png``, ``roc.png`` (when truth labels or a background dataset are available),
    ``latent_invariants.png``, ``mass_sculpting.png``: CMS style; the label follows
    :func:`plot_label` (no CMS logo on generator-level files of ``lgae-hep generate``, "CMS
    Simulation Private work" for CMS simulation, "CMS Private work" for data; ``--cms-label``,
    ``--energy``, ``--lumi`` override).

``--overwrite`` removes what an earlier run wrote (:data:`RUN_OUTPUTS`) before running, so an
output folder never mixes two runs.
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
    "EXECUTORS",
    "RUN_OUTPUTS",
    "RunResult",
    "check_files",
    "clear_run_outputs",
    "merged_hists",
    "run_dask",
    "load_fileset",
    "load_output",
    "make_plots",
    "run_fileset",
    "save_output",
    "summarize",
]

#: ``iterative``/``futures``/``dask``: coffea's ``processor.Runner`` with that executor;
#: ``dask-awkward``: ``coffea.dataset_tools.apply_to_fileset`` on ``mode="dask"`` NanoEvents,
#: computed on a ``dask.distributed`` cluster (:func:`run_dask`).
EXECUTORS = ("iterative", "futures", "dask", "dask-awkward")
#: What a run writes into its output folder (cleared by :func:`clear_run_outputs`).
RUN_OUTPUTS = ("output.coffea", "summary.json", "summary.md", "plots", "skim")
#: Plot file stems :func:`make_plots` writes (stale ones are removed before drawing).
PLOT_STEMS = ("score", "roc", "latent_invariants", "mass_sculpting")


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
    #: ``{dataset: True}`` when all its files were written by ``lgae-hep generate`` (Pythia 8
    #: generator-level jets, not CMS simulation: plots then carry no CMS logo)
    generator_level: dict[str, bool] = field(default_factory=dict)

    @property
    def n_jets(self) -> int:
        """Selected jets processed in all datasets."""
        return sum(int(o["cutflow"]["jets_selected"]) for o in self.output.values())

    @property
    def hists(self) -> dict[str, Any]:
        """Every histogram summed over datasets: one ``hist.Hist`` per name whose ``process``
        axis holds all datasets (see :func:`merged_hists`)."""
        return merged_hists(self.output)


def merged_hists(output: Mapping[str, Any]) -> dict[str, Any]:
    """Histograms of all datasets in one object per name, with a proper ``process`` axis.

    The processor fills each dataset's histograms with one ``process`` category (its dataset);
    here they are added, so ``h[{"process": "QCD"}]`` selects one dataset and
    ``h[{"process": sum}]`` sums them. Datasets are added in sorted order (reproducible
    category order).
    """
    names: list[str] = []
    for ds in sorted(output):
        names += [n for n in output[ds].get("hists", {}) if n not in names]
    return {n: _merged(output, n) for n in names}


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
    if executor == "dask-awkward" and (maxchunks is not None or retries):
        raise ValueError("maxchunks and retries are Runner options; the dask-awkward path "
                         "reads every chunk and leaves retries to dask")
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
    settings = {
        "executor": executor, "workers": workers, "chunksize": chunksize,
        "maxchunks": maxchunks, "skipbadfiles": skipbadfiles, "retries": retries,
        **_provenance(proc),
    }
    if executor == "dask-awkward":
        start = time.perf_counter()
        output = run_dask(good, proc, client=client, workers=workers, chunksize=chunksize,
                          treename=treename, status=status)
        _warn_outside_domain(output)
        return RunResult(output=output, bad_files=bad, simulated=simulated,
                         elapsed_s=time.perf_counter() - start, settings=settings,
                         generator_level=_generator_level(good))
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
    _warn_outside_domain(output)
    return RunResult(output=output, bad_files=bad, simulated=simulated, elapsed_s=elapsed,
                     settings=settings, generator_level=_generator_level(good))


def _file_sha256(path: str | Path) -> str | None:
    import hashlib

    try:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()
    except OSError:
        return None


def _provenance(proc: Any) -> dict[str, Any]:
    """Run settings that make an output self-describing: the processor's selection, the
    score metric, the lgae-hep version and the model file with its SHA-256."""
    from lgae_hep import __version__

    model = getattr(proc, "model", None)
    model_file = sha = None
    if model is not None:
        try:
            from lgae_hep.zoo import resolve_model

            model_file = str(resolve_model(model)[1])
            sha = _file_sha256(model_file)
        except ValueError:
            pass
    domain = getattr(proc, "training_domain", None)
    return {
        "model": model, "model_file": model_file, "model_sha256": sha,
        "metric": getattr(proc, "metric", None), "lgae_hep_version": __version__,
        "jets": getattr(proc, "jets", None),
        "pt_min": getattr(proc, "pt_min", None), "eta_max": getattr(proc, "eta_max", None),
        "mass_range": getattr(proc, "mass_range", None),
        "max_particles": getattr(proc, "max_particles", None),
        "puppi": getattr(proc, "puppi", None),
        "training_domain": domain.describe() if domain is not None else None,
    }


def _generator_level(fileset: Mapping[str, Sequence[str]]) -> dict[str, bool]:
    """``{dataset: True}`` when every file carries ``lgae-hep generate`` metadata."""
    out = {}
    for ds, files in fileset.items():
        ok = True
        for f in files:
            try:
                ok = ok and read_metadata(f) is not None
            except Exception:  # noqa: BLE001 - metadata is optional
                ok = False
        out[ds] = ok
    return out


def _warn_outside_domain(output: Mapping[str, Any]) -> None:
    n = sum(int(o.get("cutflow", {}).get("jets_outside_domain", 0)) for o in output.values())
    if n:
        from lgae_hep.domain import OutsideTrainingDomainWarning

        per = {ds: int(o["cutflow"]["jets_outside_domain"]) for ds, o in sorted(output.items())
               if o.get("cutflow", {}).get("jets_outside_domain")}
        warnings.warn(f"{n} selected jets are far outside the model's training domain "
                      f"(per dataset: {per}); their scores are not calibrated (see the "
                      "training_domain setting in summary.json)",
                      OutsideTrainingDomainWarning, stacklevel=3)


def _dask_fileset(fileset: Mapping[str, Sequence[str]], chunksize: int,
                  treename: str) -> dict[str, Any]:
    """``{dataset: {"files": {path: {"object_path": tree, "steps": [[a, b], ...]}}}}`` with
    the Runner's chunking (``ceil(n / chunksize)`` equal chunks per file)."""
    spec: dict[str, Any] = {}
    for ds, files in fileset.items():
        entries: dict[str, Any] = {}
        for f in files:
            with uproot.open({f: None}) as fh:
                n = int(fh[treename].num_entries)
            nchunks = max(1, -(-n // chunksize))
            edges = np.linspace(0, n, nchunks + 1).round().astype(int)
            entries[f] = {"object_path": treename,
                          "steps": [[int(a), int(b)] for a, b in zip(edges[:-1], edges[1:])]}
        spec[ds] = {"files": entries}
    return spec


def run_dask(
    fileset: str | Path | Mapping[str, Any],
    proc: Any,
    *,
    client: Any = None,
    workers: int = 2,
    chunksize: int = 100_000,
    treename: str = "Events",
    status: bool = True,
) -> dict[str, Any]:
    """Run ``proc`` with coffea's dask-awkward path and return what the ``Runner`` returns.

    Builds ``mode="dask"`` NanoEvents per dataset with
    ``coffea.dataset_tools.apply_to_fileset`` (one partition per chunk of ``chunksize``
    events), computes the lazy output on ``client`` (default: a new
    ``dask.distributed.LocalCluster`` with ``workers`` single-threaded processes, closed
    afterwards) and converts it to the ``Runner`` layout: ``hist.Hist`` histograms, integer
    cutflow, ``column_accumulator`` columns in file order, ``files``.

    The same code runs on any dask scheduler: pass a ``Client`` of a dask-jobqueue cluster or
    of a coffea-casa facility (see ``examples/dask_cluster.py``).
    """
    import dask
    from coffea.dataset_tools import apply_to_fileset

    files = load_fileset(fileset)
    spec = _dask_fileset(files, chunksize, treename)
    cluster = own_client = None
    if client is None:
        from dask.distributed import Client, LocalCluster  # the `dask` extra

        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = own_client = Client(cluster)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Missing cross-reference")
            warnings.filterwarnings("ignore", message=".*already exists but its values")
            lazy = apply_to_fileset(proc, spec, schemaclass=PFNanoAODSchema)
            if isinstance(lazy, tuple):
                lazy = lazy[0]
            if status:
                from dask.distributed import progress

                futures = client.compute(lazy)
                progress(futures)
                computed = futures.result()
            else:
                (computed,) = dask.compute(lazy, scheduler=client.get)
    finally:
        if own_client is not None:
            own_client.close()
            cluster.close()
    output: dict[str, Any] = {}
    for ds in files:
        out = dict(computed[ds][ds])
        out["cutflow"] = {k: int(v) for k, v in out["cutflow"].items()}
        if "columns" in out:
            import awkward as ak

            out["columns"] = {k: processor.column_accumulator(np.asarray(ak.to_numpy(v)))
                              for k, v in out["columns"].items()}
        out["files"] = set(files[ds])
        output[ds] = out
    return output


# --------------------------------------------------------------------------------------------
# summary and plots
# --------------------------------------------------------------------------------------------


#: How plot/summary classes are formed: ``auto`` (truth labels when every dataset has them,
#: else datasets), ``labels`` (``<jets>_label`` truth classes, an error if absent) or
#: ``datasets`` (one class per fileset dataset).
CLASS_MODES = ("auto", "labels", "datasets")


def _classes(output: Mapping[str, Any], background: str | None,
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
        raise ValueError(f"--background {background!r} is not one of the {what} "
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

    classes, bkg = _classes(output, background, classes)
    summary: dict[str, Any] = {
        "lgae_hep_version": __version__,
        "cutflow": {ds: dict(output[ds]["cutflow"]) for ds in sorted(output)},
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
    if summary.get("bad_files"):
        lines += ["", "Skipped files:", ""]
        lines += [f"- `{p}`: {why}" for p, why in summary["bad_files"].items()]
    return "\n".join(lines) + "\n"


def save_output(result: RunResult, outdir: str | Path, *,
                background: str | None = None, classes: str = "auto") -> dict[str, Any]:
    """Write ``output.coffea``, ``summary.json`` and ``summary.md``; returns the summary.

    ``output.coffea`` holds ``output`` (per dataset, as the processor returns it), ``hists``
    (every histogram summed over datasets with a ``process`` axis, :func:`merged_hists`),
    ``bad_files``, ``simulated``, ``settings`` and ``elapsed_s``.
    """

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    save({"output": result.output, "hists": result.hists, "bad_files": result.bad_files,
          "simulated": result.simulated, "settings": result.settings,
          "elapsed_s": result.elapsed_s, "generator_level": result.generator_level},
         outdir / "output.coffea")
    # after the save: an unknown background is an error, but the run's work is kept
    summary = summarize(result, background=background, classes=classes)
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


def _latent_invariant_columns(output: Mapping[str, Any], cols: Mapping[str, Any]) -> list[str]:
    """Column names of latent Lorentz invariants in ``cols``, as the processor recorded them
    (``latent_invariants`` of each dataset's output; none for outputs without it)."""
    names = {n for o in output.values() for n in o.get("latent_invariants", ())}
    return [c for c in cols if c.startswith("latent_") and c[len("latent_"):] in names]


def _merged(output: Mapping[str, Any], name: str) -> Any:
    hists = [output[ds]["hists"][name] for ds in sorted(output)
             if name in output[ds].get("hists", {})]
    if not hists:
        return None
    total = hists[0].copy()
    for h in hists[1:]:
        total = total + h
    return total


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
               classes: str = "auto", label: Any = None) -> list[Path]:
    """Draw the CMS-style plots of a run into ``outdir/plots``; returns the written files.

    Plots: ``score`` (per class, x label naming the score metric and unit, log x only for the
    reconstruction metrics), ``roc`` (when a background class exists), ``latent_invariants``
    and ``mass_sculpting`` (background soft-drop mass when the files have ``msoftdrop``, else
    the jet mass). Classes are sorted by name and keep one colour in every figure. Plots of an
    earlier run in the folder (:data:`PLOT_STEMS`, any format) are removed first, so the folder
    never shows a stale ROC. ``label``: a :class:`lgae_hep.plotting.PlotLabel` (default
    :func:`plot_label`).

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
    cls, bkg = _classes(output, background, classes)  # raises for an unknown background
    summary = summarize(result, background=background, classes=classes)
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
    h_score = _merged(output, "score")
    finite = {k: v["score"][np.isfinite(v["score"])] for k, v in cls.items()}
    finite = {k: v for k, v in finite.items() if len(v)}
    if finite and (not score_log or any(np.any(v > 0) for v in finite.values())):
        jobs.append(("score", lambda p: plotting.plot_score_distributions(
            finite, path=p, colors=colors, xlabel=score_label,
            log_x=score_log and all(np.all(v > 0) for v in finite.values()), **common)))
    elif h_score is not None and h_score.sum(flow=True) > 0:
        jobs.append(("score", lambda p: plotting.plot_score_distributions(
            h_score, category_axis="process", path=p, colors=colors, xlabel=score_label,
            **common)))
    if summary.get("metrics"):
        jobs.append(("roc", lambda p: plotting.plot_roc(
            summary["metrics"], path=p, colors=colors,
            title=f"{metric} score, background: {bkg}", **common)))
    inv = {k: {n[len("latent_"):]: v[n] for n in _latent_invariant_columns(output, v)}
           for k, v in cls.items()}
    inv = {k: v for k, v in inv.items() if v and len(next(iter(v.values())))}
    h_lat = _merged(output, "latent")
    if inv:
        n_inv = max(len(v) for v in inv.values())
        jobs.append(("latent_invariants", lambda p: plotting.plot_latent_invariants(
            inv, max_panels=n_inv, path=p, colors=colors, **common)))
    elif h_lat is not None and h_lat.sum(flow=True) > 0:
        n_inv = len(h_lat.axes["invariant"])
        jobs.append(("latent_invariants", lambda p: plotting.plot_latent_invariants(
            h_lat, category_axis="process", max_panels=max(n_inv, 1), path=p, colors=colors,
            **common)))
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
