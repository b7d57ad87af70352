"""The LGAE processor on a batch cluster or an analysis facility: the dask-awkward path.

The same three lines run everywhere; only the dask ``Client`` changes::

    lazy = apply_to_fileset(LGAEProcessor("lgae-mix"), fileset, schemaclass=PFNanoAODSchema)
    (out,) = dask.compute(lazy)          # on whatever scheduler `client` points to

or, with the output converted to what ``processor.Runner`` returns (hist.Hist, cutflow,
column accumulators)::

    out = lgae_hep.run.run_dask(fileset, LGAEProcessor("lgae-mix"), client=client)

Choose the cluster with ``--cluster``:

``local``
    ``dask.distributed.LocalCluster`` (what the tests use).
``htcondor`` / ``slurm``
    dask-jobqueue (``pip install dask-jobqueue``): each job is one dask worker; the workers
    need the same environment (lgae-hep installed, e.g. from a shared venv or an apptainer
    image) and read the input through XRootD (``pip install "lgae-hep[xrootd]"``).
``casa``
    A coffea-casa style facility: the scheduler already runs next to your notebook, usually at
    ``tls://localhost:8786`` (pass ``--scheduler``); workers there have the facility's image,
    so ship lgae-hep to them with ``client.upload_file`` or a PipInstall plugin (below).

This script is not run by the test suite (no batch system or facility there); the function it
calls, :func:`lgae_hep.run.run_dask` on a ``LocalCluster``, is tested against the eager
``Runner`` in ``tests/processors/test_joinback_and_dask.py``.

    python examples/dask_cluster.py root://cmsxrootd.fnal.gov//store/.../nano.root \
        --cluster htcondor
"""

from __future__ import annotations

import argparse


def make_client(kind: str, workers: int, scheduler: str | None):
    from dask.distributed import Client

    if scheduler:  # an existing scheduler: coffea-casa, a dask-gateway cluster, ...
        client = Client(scheduler)
        if kind == "casa":
            # workers run the facility's image: install lgae-hep on them (same version)
            from distributed.diagnostics.plugin import PipInstall

            client.register_plugin(PipInstall(packages=["lgae-hep[xrootd]"]))
        return client, None
    if kind == "local":
        from dask.distributed import LocalCluster

        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
    elif kind == "htcondor":
        from dask_jobqueue import HTCondorCluster

        cluster = HTCondorCluster(cores=1, memory="3 GB", disk="2 GB",
                                  job_extra_directives={"+JobFlavour": '"espresso"'},
                                  log_directory="dask-logs")
        cluster.scale(jobs=workers)
    elif kind == "slurm":
        from dask_jobqueue import SLURMCluster

        cluster = SLURMCluster(cores=1, memory="3 GB", walltime="01:00:00",
                               log_directory="dask-logs")
        cluster.scale(jobs=workers)
    else:
        raise SystemExit(f"unknown --cluster {kind!r}")
    return Client(cluster), cluster


def main() -> None:
    ap = argparse.ArgumentParser(description="LGAE scores with dask-awkward on a cluster")
    ap.add_argument("files", nargs="+", help="ROOT files or URLs (root://, https://, ...)")
    ap.add_argument("--cluster", choices=("local", "htcondor", "slurm", "casa"),
                    default="local", help="where the dask workers run")
    ap.add_argument("--scheduler", default=None, help="address of a running scheduler")
    ap.add_argument("--workers", type=int, default=2, help="workers / batch jobs")
    ap.add_argument("--model", default="lgae-mix", help="bundled model name or checkpoint")
    ap.add_argument("--chunksize", type=int, default=100_000, help="events per partition")
    args = ap.parse_args()

    from lgae_hep.processors import LGAEProcessor

    from lgae_hep.run import run_dask

    client, cluster = make_client(args.cluster, args.workers, args.scheduler)
    try:
        out = run_dask({"sample": args.files}, LGAEProcessor(args.model, pt_min=200.0),
                       client=client, chunksize=args.chunksize)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    o = out["sample"]
    print("cutflow:", o["cutflow"])
    print("score histogram:", o["hists"]["score"])
    cols = o["columns"]
    print("first jets (event, index in FatJet, score):",
          list(zip(cols["event"].value[:5], cols["jet_idx"].value[:5], cols["score"].value[:5])))


if __name__ == "__main__":
    main()
