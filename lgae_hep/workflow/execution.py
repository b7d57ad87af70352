"""Running ``lgae-hep run``: the processor over a checked fileset with coffea's ``Runner``
(iterative, futures or dask executor) or the dask-awkward path, and the result type."""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import uproot
from coffea import processor
from coffea.nanoevents import PFNanoAODSchema

from .fileset import check_files, dask_fileset, generator_level, load_fileset

__all__ = ["EXECUTORS", "RunResult", "coffea_progress", "merged_hist", "merged_hists", "run_dask",
           "run_fileset"]

#: ``iterative``/``futures``/``dask``: coffea's ``processor.Runner`` with that executor;
#: ``dask-awkward``: ``coffea.dataset_tools.apply_to_fileset`` on ``mode="dask"`` NanoEvents,
#: computed on a ``dask.distributed`` cluster (:func:`run_dask`).
EXECUTORS = ("iterative", "futures", "dask", "dask-awkward")


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
    return {n: merged_hist(output, n) for n in names}


def merged_hist(output: Mapping[str, Any], name: str) -> Any:
    """Histogram ``name`` summed over the datasets of ``output`` (sorted order), or None."""
    hists = [output[ds]["hists"][name] for ds in sorted(output)
             if name in output[ds].get("hists", {})]
    if not hists:
        return None
    total = hists[0].copy()
    for h in hists[1:]:
        total = total + h
    return total


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


@contextlib.contextmanager
def coffea_progress(status: bool) -> Iterator[None]:
    """With ``status=False``, coffea's ``Runner`` draws no progress bars.

    coffea's iterative and futures executors draw their ``rich`` bars ("Preprocessing",
    "Processing", "Merging (local)") whatever their ``status`` flag says; within this context
    their bar factory (``coffea.processor.executor.rich_bar``) makes disabled bars."""
    if status:
        yield
        return
    from coffea.processor import executor as coffea_executor
    from rich.progress import Progress

    original = coffea_executor.rich_bar
    coffea_executor.rich_bar = lambda: Progress(disable=True)
    try:
        yield
    finally:
        coffea_executor.rich_bar = original


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
        Progress bars (``False``: none, coffea's included, :func:`coffea_progress`).

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
                         generator_level=generator_level(good))
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
        with warnings.catch_warnings(), coffea_progress(status):
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
                     settings=settings, generator_level=generator_level(good))


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
    spec = dask_fileset(files, chunksize, treename)
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
