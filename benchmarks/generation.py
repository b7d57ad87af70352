"""Generation throughput of the Pythia 8 + FastJet jet generator, per core.

For each jet class, with MPI on (default) and off (``--fast``), one worker (one core) generates
``--jets`` jets; the table gives jets per second of CPU time of that process (the per-core rate,
insensitive to other load on a shared machine) and of wall time, excluding Pythia's one-off
initialisation (listed separately), plus the number of events generated per selected jet
(counted in whole batches of 50 events, so coarse for small ``--jets``).

    python benchmarks/generation.py --jets 100
    python benchmarks/generation.py --jets 300 --processes t qcd --modes fast
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

from lgae_hep.data.generate import DEFAULT_PTHAT_RANGE, PROCESSES, _Worker, worker_seed


def measure(process: str, n_jets: int, *, fast: bool, seed: int) -> dict[str, float]:
    """Time one single-process worker generating ``n_jets`` jets of ``process``."""
    t0 = time.perf_counter()
    worker = _Worker(
        process,
        worker_seed(seed, 0),
        fast=fast,
        pt_range=(800.0, 1600.0),
        eta_max=2.5,
        pthat_range=DEFAULT_PTHAT_RANGE,
        batch_size=50,
    )
    t1, c1 = time.perf_counter(), time.process_time()
    worker.run(n_jets, max_events=1000 + 200 * n_jets, report=lambda n: None)
    t2, c2 = time.perf_counter(), time.process_time()
    return {
        "init_s": t1 - t0,
        "cpu_rate": n_jets / max(c2 - c1, 1e-9),
        "wall_rate": n_jets / max(t2 - t1, 1e-9),
        "events_per_jet": worker.n_events / n_jets,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jets", type=int, default=100, help="jets per class and mode (100)")
    parser.add_argument(
        "--processes",
        nargs="+",
        default=["qcd", "g", "q", "t", "w", "z"],
        choices=sorted(PROCESSES),
        help="jet classes (default: all)",
    )
    parser.add_argument(
        "--modes",
        nargs="+",
        default=["default", "fast"],
        choices=["default", "fast"],
        help="default = MPI on, fast = MPI off (default: both)",
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.jets < 1:
        parser.error(f"--jets must be >= 1, got {args.jets}")

    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"python {platform.python_version()}, load average {os.getloadavg()[0]:.1f}; "
        f"{args.jets} jets per row, 1 worker"
    )
    header = (
        f"{'process':>8} {'mode':>8} {'jets/s/core (CPU)':>18} {'jets/s (wall)':>14} "
        f"{'events/jet':>11} {'init s':>7}"
    )
    print(header)
    print("-" * len(header))
    for process in args.processes:
        for mode in args.modes:
            r = measure(process, args.jets, fast=mode == "fast", seed=args.seed)
            print(
                f"{process:>8} {mode:>8} {r['cpu_rate']:>18.1f} {r['wall_rate']:>14.1f} "
                f"{r['events_per_jet']:>11.2f} {r['init_s']:>7.2f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
