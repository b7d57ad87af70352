"""Runner throughput of the LGAE processor per executor, relative to bare ``lgae_hep.score``.

    python benchmarks/runner_throughput.py --jets 20000 --files 4

Writes ``--files`` PFNano files with ``--jets`` toy jets in total, then on the same jets and in
the same process measures jets/s of: bare ``lgae_hep.score`` (1 torch thread, as the workers),
``Runner`` + ``IterativeExecutor``, ``FuturesExecutor(workers=2)`` and ``DaskExecutor`` on a
local 2-worker cluster (cluster start-up excluded, pool start-up included for futures). Prints a
Markdown table with the ratio to bare score (target: futures >= 0.5).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import awkward as ak
import numpy as np
import vector

vector.register_awkward()


def write_files(folder: Path, n_jets: int, n_files: int, seed: int = 0) -> list[str]:
    from lgae_hep.data import write_pfnano

    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n_files):
        nj = np.full(n_jets // n_files // 2, 2)
        tj = int(nj.sum())
        nc = rng.integers(30, 61, tj)
        tot = int(nc.sum())
        eta0 = np.repeat(rng.uniform(-2, 2, tj), nc)
        phi0 = np.repeat(rng.uniform(-3, 3, tj), nc)
        p = ak.zip({"pt": rng.exponential(30, tot) + 0.5, "eta": eta0 + rng.normal(0, .2, tot),
                    "phi": phi0 + rng.normal(0, .2, tot), "mass": np.zeros(tot)},
                   with_name="Momentum4D")
        paths.append(str(write_pfnano(folder / f"f{i}.root",
                                      ak.unflatten(ak.unflatten(p, nc), nj))))
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jets", type=int, default=20_000)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--chunksize", type=int, default=2_500, help="events per chunk")
    parser.add_argument("--model", choices=("default", "tiny"), default="default")
    args = parser.parse_args()

    import torch
    from coffea import processor
    from coffea.nanoevents import PFNanoAODSchema
    from dask.distributed import Client, LocalCluster
    from lgae_hep.models import LGAE
    from lgae_hep.processors import LGAEProcessor

    import lgae_hep
    from lgae_hep.checkpoint import save_checkpoint

    warnings.filterwarnings("ignore")
    tmp = Path(tempfile.mkdtemp(prefix="lgae-runner-bench-"))
    torch.manual_seed(0)
    model = (LGAE() if args.model == "default" else
             LGAE(encoder_channels=(2,), decoder_channels=(2,), mlp_hidden=4, num_basis=2))
    ckpt = str(save_checkpoint(tmp / "model.pt", model))
    files = write_files(tmp, args.jets, args.files)
    fileset = {"bench": files}
    jets = lgae_hep.read_nanoaod(files, max_particles=None, flat=True, progress=False)
    n = len(jets)

    rows = []
    torch.set_num_threads(1)
    lgae_hep.score(jets[:256], ckpt)
    t = time.perf_counter()
    ref = ak.to_numpy(lgae_hep.score(jets, ckpt))
    bare = n / (time.perf_counter() - t)
    rows.append(("bare lgae_hep.score (1 thread)", bare))
    proc = LGAEProcessor(ckpt)

    def timed(executor) -> float:
        runner = processor.Runner(executor, schema=PFNanoAODSchema, chunksize=args.chunksize)
        t = time.perf_counter()
        out = runner(fileset, proc, treename="Events")
        dt = time.perf_counter() - t
        assert np.array_equal(out["bench"]["columns"]["score"].value, ref)
        return n / dt

    rows.append(("Runner + IterativeExecutor", timed(processor.IterativeExecutor(status=False))))
    rows.append(("Runner + FuturesExecutor(workers=2)",
                 timed(processor.FuturesExecutor(workers=2, status=False))))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.run(lambda: None)
        rows.append(("Runner + DaskExecutor (2 workers)",
                     timed(processor.DaskExecutor(client=client, status=False))))
    print(f"{n} jets in {len(files)} files, model {args.model}, chunksize {args.chunksize}")
    print("| path | jets/s | ratio to bare score |\n|---|---:|---:|")
    for name, rate in rows:
        print(f"| {name} | {rate:.0f} | {rate / bare:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
