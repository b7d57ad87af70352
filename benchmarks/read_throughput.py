"""Reading + conversion to tensors: jets/s and peak memory.

Writes a PFNano file with :func:`lgae_hep.data.write_pfnano` (deterministic numpy generator:
``--jets`` jets, one or two per event, 30-80 massless particles each, unsorted), then times

* ``read_nanoaod`` (uproot.iterate + grouping through the index table + pT sort/truncation),
* ``to_tensors`` on the result (numpy and torch backends),
* the two together,

and prints a table with jets/s and the peak RSS of the process. Target (issue 4): reading +
conversion >= 200,000 jets/s.

Run::

    python benchmarks/read_throughput.py --jets 50000
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import awkward as ak
import numpy as np

from lgae_hep.data import read_nanoaod, to_tensors, write_pfnano


def make_jets(n_jets: int, seed: int = 0) -> ak.Array:
    """Deterministic random jets: [event][jet][particle] massless Momentum4D, 30-80 particles."""
    rng = np.random.default_rng(seed)
    n_per_jet = rng.integers(30, 81, n_jets)
    total = int(n_per_jet.sum())
    jet_eta = np.repeat(rng.uniform(-2.0, 2.0, n_jets), n_per_jet)
    jet_phi = np.repeat(rng.uniform(-np.pi, np.pi, n_jets), n_per_jet)
    particles = ak.zip(
        {
            "pt": rng.exponential(20.0, total) + 0.5,
            "eta": jet_eta + rng.normal(0, 0.2, total),
            "phi": jet_phi + rng.normal(0, 0.2, total),
            "mass": np.zeros(total),
            "charge": rng.integers(-1, 2, total).astype(np.int32),
            "pdgId": np.full(total, 211, np.int32),
        },
        with_name="Momentum4D",
    )
    jets = ak.unflatten(particles, n_per_jet)
    # one or two jets per event
    jets_per_event = rng.integers(1, 3, n_jets)
    cum = np.cumsum(jets_per_event)
    n_events = int(np.searchsorted(cum, n_jets)) + 1
    jets_per_event = jets_per_event[:n_events]
    jets_per_event[-1] -= int(cum[n_events - 1] - n_jets)
    return ak.unflatten(jets, jets_per_event)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


CPU_TIMES: dict = {}


def best_of(fn, repeat: int) -> tuple[float, object]:
    """Best wall time of ``repeat`` runs; the CPU time of that run goes to CPU_TIMES["last"]."""
    best, best_cpu, out = float("inf"), float("inf"), None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if wall < best:
            best, best_cpu = wall, cpu
    CPU_TIMES["last"] = best_cpu
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jets", type=int, default=50_000)
    parser.add_argument("--num-particles", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--compression", choices=["zlib", "lz4", "none"], default="lz4",
                        help="basket compression (default lz4, as write_pfnano writes)")
    parser.add_argument("--out", type=Path, default=None, help="keep the file here")
    args = parser.parse_args()

    import uproot

    compression = {
        "zlib": uproot.ZLIB(1),
        "lz4": uproot.LZ4(1),
        "none": None,
    }[args.compression]
    tmp = tempfile.TemporaryDirectory()
    path = args.out or Path(tmp.name) / "bench.root"
    jets = make_jets(args.jets)
    t0 = time.perf_counter()
    write_pfnano(path, jets, compression=compression, metadata={"benchmark": "read_throughput"})
    t_write = time.perf_counter() - t0
    del jets
    n = args.jets
    n_part = args.num_particles
    size_mb = path.stat().st_size / 1e6

    rows = []
    t_read, consts = best_of(
        lambda: read_nanoaod(path, max_particles=n_part, flat=True), args.repeat
    )
    rows.append(("read_nanoaod (flat)", t_read, CPU_TIMES["last"]))
    t_np, _ = best_of(lambda: to_tensors(consts, n_part, backend="numpy"), args.repeat)
    rows.append(("to_tensors numpy", t_np, CPU_TIMES["last"]))
    t_torch, _ = best_of(lambda: to_tensors(consts, n_part, backend="torch"), args.repeat)
    rows.append(("to_tensors torch", t_torch, CPU_TIMES["last"]))
    t_all, jt = best_of(
        lambda: to_tensors(read_nanoaod(path, max_particles=n_part), n_part, backend="torch"),
        args.repeat,
    )
    cpu_all = CPU_TIMES["last"]
    assert len(jt) == n and bool(jt.valid.all())
    rows.append(("read + to_tensors (torch)", t_all, cpu_all))
    t_raw, _ = best_of(lambda: read_nanoaod(path, max_particles=None, flat=True), args.repeat)
    rows.append(("read_nanoaod all particles", t_raw, CPU_TIMES["last"]))

    print(f"file: {n} jets, {size_mb:.1f} MB ({args.compression}), written in {t_write:.2f} s")
    print(f"{'step':32s} {'wall [s]':>9s} {'jets/s':>12s} {'cpu [s]':>8s} {'jets/cpu-s':>12s}")
    for name, t, cpu in rows:
        print(f"{name:32s} {t:9.3f} {n / t:12,.0f} {cpu:8.3f} {n / cpu:12,.0f}")
    print(f"peak RSS: {peak_rss_mb():.0f} MB")
    verdict = "meets" if n / t_all >= 200_000 else "misses"
    print(
        f"read + to_tensors: {n / t_all:,.0f} jets/s wall, {n / cpu_all:,.0f} jets per CPU-second "
        f"({verdict} the 200,000 jets/s target in wall time; "
        f"load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )


if __name__ == "__main__":
    main()
