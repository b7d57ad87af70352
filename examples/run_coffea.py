"""Run the LGAE coffea processor over ROOT files with FuturesExecutor and DaskExecutor.

    python examples/run_coffea.py qcd.root top.root --model lgae-mix

Each file becomes a dataset. The same ``processor.Runner`` job runs twice: with
``FuturesExecutor`` (local processes) and with ``DaskExecutor`` on a local
``dask.distributed`` cluster (replace ``LocalCluster`` by your site's cluster, e.g. a
dask-jobqueue ``HTCondorCluster``, to scale out). The two outputs are identical.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from coffea import processor
from coffea.nanoevents import PFNanoAODSchema
from lgae_hep.processors import LGAEProcessor


def run(fileset: dict, proc: LGAEProcessor, executor: processor.ExecutorBase,
        chunksize: int) -> dict:
    runner = processor.Runner(executor, schema=PFNanoAODSchema, chunksize=chunksize)
    return runner(fileset, proc, treename="Events")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", help="PFNano / NanoAOD ROOT files")
    parser.add_argument("--model", default="lgae-mix", help="bundled name or checkpoint")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunksize", type=int, default=50_000)
    parser.add_argument("--pt-min", type=float, default=None)
    args = parser.parse_args(argv)

    fileset = {Path(f).stem: [str(Path(f).resolve())] for f in args.files}
    proc = LGAEProcessor(args.model, jets="FatJet", pt_min=args.pt_min)

    t0 = time.perf_counter()
    futures_out = run(fileset, proc, processor.FuturesExecutor(workers=args.workers),
                      args.chunksize)
    t1 = time.perf_counter()

    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        t2 = time.perf_counter()
        dask_out = run(fileset, proc, processor.DaskExecutor(client=client), args.chunksize)
        t3 = time.perf_counter()

    print(f"FuturesExecutor: {t1 - t0:.1f} s, DaskExecutor: {t3 - t2:.1f} s (cluster up)")
    for ds, out in futures_out.items():
        s_fut = out["columns"]["score"].value
        s_dask = dask_out[ds]["columns"]["score"].value
        same = np.array_equal(s_fut, s_dask, equal_nan=True)
        print(f"{ds}: {out['cutflow']}")
        median = float(np.nanmedian(s_fut)) if len(s_fut) else 0.0
        print(f"{ds}: {len(s_fut)} jets, median score {median:.4g}, futures == dask: {same}")
        if not same:
            raise SystemExit(f"{ds}: executors disagree")
    h = futures_out[next(iter(futures_out))]["hists"]["score"]
    print(h)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
