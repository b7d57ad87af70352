"""Peak memory under load: ``lgae_hep.score`` on 1,000,000 jets in one call, and a coffea
``Runner`` job over 20 files with :class:`lgae_hep.processors.LGAEProcessor` (issue 7, item 7;
target < 2 GB peak RSS each).

Every measurement runs in a fresh Python subprocess. Peak RSS is the kernel's high-water mark
(``VmHWM``); for the score benchmark it is reset (``/proc/self/clear_refs``) after the input
jets are built, so "peak" is the whole process (interpreter, torch, input jets, scoring) at its
largest *during* the call, and "input" is what the jets alone added. For the Runner, worker
processes are measured with ``getrusage(RUSAGE_CHILDREN)`` (largest child).

Usage::

    python benchmarks/load.py                          # both benchmarks, defaults below
    python benchmarks/load.py --only score --jets 1000000 --model tiny
    python benchmarks/load.py --only runner --files 20 --events 2000 --executor futures

``--model``: ``tiny`` (default; a 1+1-layer LGAE, randomly initialised, saved as a checkpoint
and loaded back through ``lgae_hep.load_model``), ``paper`` (the paper-size LGAE, untrained; slow
on a 2-core CPU), or a bundled model name / checkpoint path. Memory does not depend on the
weights, and only weakly on the architecture (activations of one batch of 256 jets).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MB = 1024.0 * 1024.0


# --------------------------------------------------------------------------------------------
# memory probes (Linux /proc; ru_maxrss fallback)
# --------------------------------------------------------------------------------------------


def _status_kb(key: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return float(line.split()[1])
    except OSError:
        return None
    return None


def rss_mb() -> float:
    """Current resident set size (MB)."""
    kb = _status_kb("VmRSS")
    return kb / 1024.0 if kb is not None else float("nan")


def peak_mb() -> float:
    """Peak resident set size since start or the last :func:`reset_peak` (MB)."""
    kb = _status_kb("VmHWM")
    if kb is None:
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return kb / 1024.0


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def children_peak_mb() -> float:
    """Largest peak RSS of any terminated, waited-for child process (MB)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0


# --------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------


def make_model(spec: str, workdir: Path) -> str:
    """Return a bundled name or a checkpoint path for ``spec`` (see module docstring)."""
    if spec not in ("tiny", "paper"):
        return spec
    import torch
    from lgae_hep.models import LGAE

    from lgae_hep.checkpoint import save_checkpoint

    torch.manual_seed(0)
    if spec == "tiny":
        model = LGAE(encoder_channels=(2,), decoder_channels=(2,), mlp_hidden=4, num_basis=2)
    else:
        model = LGAE()
    path = workdir / f"{spec}.pt"
    if not path.exists():
        save_checkpoint(path, model)
    return str(path)


def make_jets(n_jets: int, seed: int, *, max_particles: int = 30) -> Any:
    """``[jet][particle]`` float32 pt/eta/phi/mass jets as ``read_nanoaod`` returns them
    (N hardest kept): multiplicity min(Poisson(35), 30) + 1, massless and pion-mass particles."""
    import awkward as ak
    import numpy as np
    import vector

    vector.register_awkward()
    rng = np.random.default_rng(seed)
    counts = np.minimum(rng.poisson(35, n_jets), max_particles - 1) + 1
    total = int(counts.sum())
    jet_of = np.repeat(np.arange(n_jets, dtype=np.int64), counts)
    eta = rng.uniform(-2.4, 2.4, n_jets).astype(np.float32)[jet_of]
    eta += rng.normal(0, 0.2, total).astype(np.float32)
    phi = rng.uniform(-np.pi, np.pi, n_jets).astype(np.float32)[jet_of]
    phi += rng.normal(0, 0.2, total).astype(np.float32)
    del jet_of
    pt = (rng.exponential(25.0, total) + 0.5).astype(np.float32)
    mass = np.where(rng.random(total) < 0.6, np.float32(0.13957), np.float32(0.0))
    particles = ak.zip({"pt": pt, "eta": eta, "phi": phi, "mass": mass},
                       with_name="Momentum4D")
    return ak.unflatten(particles, counts)


def make_files(directory: Path, n_files: int, n_events: int, seed: int) -> list[str]:
    """Write ``n_files`` PFNano files of ``n_events`` events (0-3 AK8 jets each, with all
    constituents) with :func:`lgae_hep.data.write_pfnano`; reuse them when present."""
    import awkward as ak
    import numpy as np

    from lgae_hep.data import write_pfnano

    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n_files):
        path = directory / f"load_{n_events}_{seed}_{i:03d}.root"
        if not path.exists():
            rng = np.random.default_rng([seed, i])
            n_jets = rng.integers(0, 4, n_events)
            jets = make_jets(int(n_jets.sum()), seed * 1000 + i, max_particles=80)
            labels = ak.unflatten(np.zeros(len(jets), np.int32), n_jets)
            write_pfnano(path, ak.unflatten(jets, n_jets), jet_fields={"label": labels})
        paths.append(str(path))
    return paths


# --------------------------------------------------------------------------------------------
# children
# --------------------------------------------------------------------------------------------


def child_score(args: argparse.Namespace) -> dict[str, Any]:
    import awkward as ak
    import numpy as np
    import torch

    import lgae_hep

    torch.set_num_threads(args.threads)
    model = lgae_hep.load_model(args.model_path)
    base = rss_mb()
    jets = make_jets(args.jets, args.seed)
    input_mb = rss_mb() - base
    exact = reset_peak()
    t0 = time.perf_counter()
    scores = lgae_hep.score(jets, model, progress=args.progress)
    seconds = time.perf_counter() - t0
    s = np.asarray(ak.to_numpy(scores))
    return {
        "bench": "score",
        "jets": len(s),
        "finite": int(np.isfinite(s).sum()),
        "seconds": seconds,
        "jets_per_s": len(s) / seconds,
        "base_mb": base,
        "input_mb": input_mb,
        "peak_mb": peak_mb(),
        "peak_is_during_call": exact,
    }


def child_runner(args: argparse.Namespace) -> dict[str, Any]:
    import warnings

    import numpy as np
    import torch
    from coffea import processor
    from coffea.nanoevents import PFNanoAODSchema
    from lgae_hep.processors import LGAEProcessor

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=RuntimeWarning)
    files = json.loads(Path(args.fileset).read_text())
    if args.executor == "futures":
        executor = processor.FuturesExecutor(workers=args.workers, status=args.progress)
    else:
        executor = processor.IterativeExecutor(status=args.progress)
    runner = processor.Runner(executor, schema=PFNanoAODSchema, chunksize=args.chunksize,
                              savemetrics=False)
    t0 = time.perf_counter()
    out = runner({"load": files}, LGAEProcessor(args.model_path), treename="Events")
    seconds = time.perf_counter() - t0
    s = out["load"]["columns"]["score"].value
    return {
        "bench": f"runner-{args.executor}",
        "files": len(files),
        "jets": int(len(s)),
        "finite": int(np.isfinite(s).sum()),
        "seconds": seconds,
        "jets_per_s": len(s) / seconds,
        "peak_mb": peak_mb(),
        "children_peak_mb": children_peak_mb(),
    }


# --------------------------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------------------------


def _spawn(extra: list[str]) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", *extra]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark child failed ({proc.returncode}): {' '.join(cmd)}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _table(rows: list[dict[str, Any]], limit_mb: float) -> str:
    head = (f"{'benchmark':<18} {'jets':>9} {'files':>5} {'seconds':>8} {'jets/s':>8} "
            f"{'input MB':>9} {'peak MB':>8} {'workers MB':>10} {'< limit':>7}")
    lines = [head, "-" * len(head)]
    for r in rows:
        worst = max(r["peak_mb"], r.get("children_peak_mb", 0.0))
        lines.append(
            f"{r['bench']:<18} {r['jets']:>9} {r.get('files', ''):>5} {r['seconds']:>8.1f} "
            f"{r['jets_per_s']:>8.0f} {r.get('input_mb', float('nan')):>9.0f} "
            f"{r['peak_mb']:>8.0f} {r.get('children_peak_mb', float('nan')):>10.0f} "
            f"{'yes' if worst < limit_mb else 'NO':>7}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("score", "runner"), default=None)
    parser.add_argument("--jets", type=int, default=1_000_000, help="jets scored in one call")
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--events", type=int, default=2000, help="events per file")
    parser.add_argument("--executor", choices=("iterative", "futures", "both"), default="both")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunksize", type=int, default=100_000)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads for score (1: fastest on a shared CPU)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--limit-mb", type=float, default=2048.0)
    parser.add_argument("--workdir", type=Path,
                        default=Path(tempfile.gettempdir()) / "lgae_hep_load_bench")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--kind", help=argparse.SUPPRESS)
    parser.add_argument("--model-path", help=argparse.SUPPRESS)
    parser.add_argument("--fileset", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        result = child_score(args) if args.kind == "score" else child_runner(args)
        print(json.dumps(result))
        return 0

    args.workdir.mkdir(parents=True, exist_ok=True)
    model_path = make_model(args.model, args.workdir)
    common = ["--model-path", model_path, "--seed", str(args.seed)]
    if args.progress:
        common.append("--progress")
    rows = []
    if args.only in (None, "score"):
        print(f"scoring {args.jets} jets in one call (model {args.model}) ...", flush=True)
        rows.append(_spawn(["--kind", "score", "--jets", str(args.jets), "--threads",
                            str(args.threads), *common]))
    if args.only in (None, "runner"):
        print(f"writing {args.files} files x {args.events} events ...", flush=True)
        files = make_files(args.workdir / "files", args.files, args.events, args.seed)
        fileset = args.workdir / "fileset.json"
        fileset.write_text(json.dumps(files))
        executors = ("iterative", "futures") if args.executor == "both" else (args.executor,)
        for ex in executors:
            print(f"Runner ({ex}) over {len(files)} files ...", flush=True)
            rows.append(_spawn(["--kind", "runner", "--fileset", str(fileset), "--executor", ex,
                                "--workers", str(args.workers), "--chunksize",
                                str(args.chunksize), *common]))
    print()
    print(_table(rows, args.limit_mb))
    print(f"\npeak = whole process (MB, VmHWM); workers = largest worker process; limit "
          f"{args.limit_mb:.0f} MB; model {args.model}; {os.cpu_count()} CPUs")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    ok = all(max(r["peak_mb"], r.get("children_peak_mb", 0.0)) < args.limit_mb for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
