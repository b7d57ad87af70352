"""Throughput of the dask-awkward path vs the eager ``processor.Runner`` path, in one run.

Both score the same files with the same :class:`lgae_hep.processors.LGAEProcessor` (the
bundled default model unless ``--model``), on the same number of worker processes:

* eager: ``processor.Runner`` with ``FuturesExecutor(workers=W)`` (and ``IterativeExecutor``
  as the single-process reference);
* dask-awkward: ``coffea.dataset_tools.apply_to_fileset`` on ``mode="dask"`` NanoEvents,
  computed on a ``dask.distributed.LocalCluster`` of W single-threaded workers
  (:func:`lgae_hep.run.run_dask`), the path that scales out to batch clusters.

The input is synthetic PFNano files (``write_pfnano``; AK8-like jets of 20-80 constituents,
pT 800-1600 GeV), so the benchmark needs no generator and no network. Each path runs
``--repeat`` times after one warm-up (model loading, cluster start-up are excluded for dask;
the cluster start-up time is printed separately). Prints a table of jets/s and the ratio to the
futures executor, and checks that both paths give the same scores.

    python benchmarks/dask_vs_eager.py --events 4000 --files 4 --workers 2
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

# a script name in this folder can shadow a module that a dependency imports (uproot imports
# the Python 3.14 stdlib package `compression`; issue 15's benchmark was renamed from
# compression.py to rate_distortion.py for that reason): keep the folder off the import path
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.getcwd()) != _HERE]

import awkward as ak  # noqa: E402
import numpy as np  # noqa: E402
import vector  # noqa: E402
from coffea import processor  # noqa: E402
from coffea.nanoevents import PFNanoAODSchema  # noqa: E402
from lgae_hep.processors import LGAEProcessor  # noqa: E402

from lgae_hep.data import write_pfnano  # noqa: E402
from lgae_hep.run import run_dask  # noqa: E402

vector.register_awkward()


def synthetic_files(folder: Path, n_files: int, n_events: int, seed: int = 0) -> list[str]:
    """PFNano files with 1-3 AK8-like jets per event."""
    rng = np.random.default_rng(seed)
    files = []
    for i in range(n_files):
        nj = rng.integers(1, 4, n_events)
        tj = int(nj.sum())
        nc = rng.integers(20, 81, tj)
        tot = int(nc.sum())
        jet_pt = np.repeat(rng.uniform(800, 1600, tj), nc)
        frac = rng.dirichlet(np.ones(3), tot)[:, 0]
        p = ak.zip({"pt": jet_pt * frac / 10 + 0.5,
                    "eta": np.repeat(rng.uniform(-2, 2, tj), nc) + rng.normal(0, .2, tot),
                    "phi": np.repeat(rng.uniform(-3, 3, tj), nc) + rng.normal(0, .2, tot),
                    "mass": np.full(tot, 0.14)}, with_name="Momentum4D")
        files.append(str(write_pfnano(folder / f"bench_{i}.root",
                                      ak.unflatten(ak.unflatten(p, nc), nj))))
    return files


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=4000, help="events per file")
    ap.add_argument("--files", type=int, default=4, help="number of files")
    ap.add_argument("--workers", type=int, default=2, help="worker processes of both paths")
    ap.add_argument("--chunksize", type=int, default=2000, help="events per chunk/partition")
    ap.add_argument("--repeat", type=int, default=2, help="timed repetitions per path")
    ap.add_argument("--model", default=None, help="model (default: the bundled default)")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    from dask.distributed import Client, LocalCluster

    from lgae_hep.zoo import DEFAULT_MODEL

    proc = LGAEProcessor(args.model or DEFAULT_MODEL)
    with tempfile.TemporaryDirectory() as tmp:
        files = synthetic_files(Path(tmp), args.files, args.events)
        fileset = {"bench": files}

        def runner(executor):
            r = processor.Runner(executor, schema=PFNanoAODSchema, chunksize=args.chunksize)
            return r(fileset, proc, treename="Events")

        timings: dict[str, list[float]] = {}
        outputs = {}
        paths = {
            "eager, IterativeExecutor (1 process)":
                lambda: runner(processor.IterativeExecutor(status=False)),
            f"eager, FuturesExecutor ({args.workers} workers)":
                lambda: runner(processor.FuturesExecutor(workers=args.workers, status=False)),
        }
        for name, fn in paths.items():
            fn()  # warm-up
            timings[name] = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                outputs[name] = fn()
                timings[name].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            startup = time.perf_counter() - t0
            name = f"dask-awkward, LocalCluster ({args.workers} workers)"
            run_dask(fileset, proc, client=client, chunksize=args.chunksize, status=False)
            timings[name] = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                outputs[name] = run_dask(fileset, proc, client=client,
                                         chunksize=args.chunksize, status=False)
                timings[name].append(time.perf_counter() - t0)
    n_jets = int(outputs[name]["bench"]["cutflow"]["jets_selected"])
    ref_name = f"eager, FuturesExecutor ({args.workers} workers)"
    same = np.array_equal(outputs[name]["bench"]["columns"]["score"].value,
                          outputs[ref_name]["bench"]["columns"]["score"].value)
    best = {k: min(v) for k, v in timings.items()}
    print(f"{args.files} files x {args.events} events, {n_jets} jets, chunk {args.chunksize}, "
          f"model {proc.model!r}, best of {args.repeat}")
    print("| path | time [s] | jets/s | ratio to futures |\n|---|---:|---:|---:|")
    for k, t in best.items():
        print(f"| {k} | {t:.2f} | {n_jets / t:,.0f} | {best[ref_name] / t:.2f} |")
    print(f"LocalCluster start-up (not included): {startup:.1f} s; "
          f"dask scores == futures scores (bitwise): {same}")


if __name__ == "__main__":
    main()
