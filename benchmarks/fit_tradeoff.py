"""Batch size and learning rate of ``lgae_hep.train.fit`` by time to a validation loss.

Trains the bundled lgae-mix recipe (``models/pretrained/lgae-mix.json``: config, loss,
gradient clipping, plateau schedule, seed) on a small QCD sample for each (batch size,
learning rate) of a grid, every run for the same wall-clock budget, and records after every
epoch the process's CPU time, the wall time and the validation loss (a fixed subset of the
validation jets, the same for every run). The table gives, per run, the time until the
validation loss first reached each target and the best loss within the budget. Targets: the
loss every run reached (the worst run's best) and the recipe's (batch 128, lr 1e-3) best.
CPU seconds are the comparison to trust on a shared machine; wall seconds are printed beside.

Usage::

    python benchmarks/fit_tradeoff.py --data q.root              # split 75/25 train/val
    python benchmarks/fit_tradeoff.py --data train.root --val val.root --budget 40 --threads 2
    lgae-hep generate --process qcd -n 4000 --seed 7 -o q.root --fast   # a sample

The numbers behind fit's defaults (``batch_size=64``, ``lr=3e-3``; the ``fit`` docstring
cites them) come from this script. The run they were chosen on (3,000 + 1,000 jets of
``lgae-hep generate --process qcd -n 4000 --seed 7 --fast``, defaults: 25 CPU s per run, 500
jets per epoch, 200 validation jets, 1 thread, a shared machine at load average 8-10)::

    batch     lr jets/CPU-s epochs  best val     to 0.0878 CPU/wall s     to 0.0537 CPU/wall s
      128  1e-03        901     46    0.0537                  14 / 56                  23 / 93
       32  1e-03        597     30    0.0468                   7 / 27                  14 / 56
       64  1e-03        859     43    0.0491                   8 / 33                  19 / 81
      256  1e-03        837     42    0.0878                 25 / 104                        -
       64  3e-03        702     36    0.0474                   6 / 17                  11 / 35
      128  3e-03        824     42    0.0461                   7 / 31                  14 / 61
      256  3e-03        846     43    0.0539                  14 / 58                        -

One seed and one sample: the 64 / 3e-3, 32 / 1e-3 and 128 / 3e-3 runs are within the noise of
each other (at one thread jets/CPU-s should not depend on the learning rate, yet 64 / 1e-3 and
64 / 3e-3 differ by 20 %: the load's share of the CPU time); 128 / 1e-3 and 256 / either are
clearly slower to a given loss. Fewer, larger steps lose on CPU because a step's cost per jet
hardly falls beyond batch 64.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from fit_loop import recipe  # noqa: E402

#: (batch size, learning rate) runs, in the order they run
GRID = [(128, 1e-3), (32, 1e-3), (64, 1e-3), (256, 1e-3), (64, 3e-3), (128, 3e-3),
        (256, 3e-3)]


def load(path: Path, n_part: int = 30):
    """QCD jets of a (generated) NanoAOD file as training tensors."""
    import lgae_hep
    from lgae_hep.objectives import prepare_data

    p4, mask, _ = prepare_data(lgae_hep.read_nanoaod(str(path)), n_part, warn=False)
    return p4, mask


class _Budget(Exception):
    """Raised from fit's log line when the run's CPU budget is spent (ends the run)."""


def run_one(batch: int, lr: float, train, val, budget: float, epoch_size: int,
            val_size: int) -> dict[str, Any]:
    """One fit until ``budget`` CPU seconds are spent (checked after every epoch: the run
    ends at the first epoch end past it); (CPU s, wall s, val loss) after every epoch."""
    from lgae_hep.train import fit

    cfg, loss, opts, _ = recipe()
    curve: list[tuple[float, float, float]] = []
    c0, t0 = time.process_time(), time.perf_counter()

    def log(msg: str) -> None:
        if msg.startswith("epoch "):
            val_txt = msg.split(" val ")[1].split()[0]
            curve.append((time.process_time() - c0, time.perf_counter() - t0, float(val_txt)))
            if curve[-1][0] > budget:
                raise _Budget

    kw = dict(opts, batch_size=batch, lr=lr, epochs=10_000, patience=10_000,
              epoch_size=epoch_size, val_size=val_size, loss=loss, device="cpu",
              progress=False, log=log)
    with tempfile.TemporaryDirectory() as out:
        try:
            fit(dict(cfg), train, val, out_dir=out, **kw)
        except _Budget:
            pass
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    jets = len(curve) * min(epoch_size, len(train[0]))
    return {"batch": batch, "lr": lr, "curve": curve, "best": min(v for _, _, v in curve),
            "epochs": len(curve), "cpu": cpu, "wall": wall, "jets_per_cpu_s": jets / cpu}


def first_reach(curve, target: float) -> tuple[float, float] | None:
    for cpu, wall, v in curve:
        if v <= target:
            return cpu, wall
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__)
    ap.add_argument("--data", type=Path, required=True, help="QCD NanoAOD ROOT file")
    ap.add_argument("--val", type=Path, default=None, help="validation file (else 25 %% of --data)")
    ap.add_argument("--budget", type=float, default=25.0, help="CPU seconds per run")
    ap.add_argument("--epoch-size", type=int, default=500)
    ap.add_argument("--val-size", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--grid", default=None,
                    help="runs as 'B:LR,B:LR,...' (default: %(default)s = the built-in grid)")
    ap.add_argument("--json", type=Path, default=None, help="also write the runs here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    grid = GRID if args.grid is None else [
        (int(b), float(lr)) for b, lr in (x.split(":") for x in args.grid.split(","))]
    p4, mask = load(args.data)
    if args.val is None:
        g = torch.Generator().manual_seed(0)
        perm = torch.randperm(len(p4), generator=g)
        n_val = len(p4) // 4
        val, train = (p4[perm[:n_val]], mask[perm[:n_val]]), (p4[perm[n_val:]], mask[perm[n_val:]])
    else:
        train, val = (p4, mask), load(args.val)
    load_avg = os.getloadavg()
    print(f"{len(train[0])} training jets ({args.epoch_size} per epoch), validation loss on "
          f"{min(args.val_size, len(val[0]))} jets; {args.budget:.0f} CPU s per run, "
          f"{args.threads} threads; load average {load_avg[0]:.1f} on {os.cpu_count()} CPUs",
          flush=True)
    runs = []
    for b, lr in grid:
        r = run_one(b, lr, train, val, args.budget, args.epoch_size, args.val_size)
        runs.append(r)
        print(f"  batch {b:>4} lr {lr:.0e}: best {r['best']:.4f} after {r['epochs']} epochs, "
              f"{r['cpu']:.0f} CPU s", file=sys.stderr, flush=True)
    loose = max(r["best"] for r in runs)
    base = next((r for r in runs if (r["batch"], r["lr"]) == (128, 1e-3)), runs[0])
    tight = base["best"]
    head = (f"{'batch':>5} {'lr':>6} {'jets/CPU-s':>10} {'epochs':>6} {'best val':>9} "
            f"{'to ' + format(loose, '.4f') + ' CPU/wall s':>24} "
            f"{'to ' + format(tight, '.4f') + ' CPU/wall s':>24}")
    print(head)
    print("-" * len(head))
    for r in runs:
        cells = []
        for t in (loose, tight):
            hit = first_reach(r["curve"], t)
            cells.append("-" if hit is None else f"{hit[0]:.0f} / {hit[1]:.0f}")
        print(f"{r['batch']:>5} {r['lr']:>6.0e} {r['jets_per_cpu_s']:>10.0f} {r['epochs']:>6} "
              f"{r['best']:>9.4f} {cells[0]:>24} {cells[1]:>24}")
    print("('-': not reached within the budget; times are at epoch ends and include fit's "
          "validation, the same per epoch for every run)")
    load_avg = os.getloadavg()
    print(f"load average at the end: {load_avg[0]:.1f}")
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
