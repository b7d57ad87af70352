"""The LGAE paper's comparison (Hao et al. 2022, table 2) on jets from our own generator.

One command runs everything, stage by stage, and skips what is already on disk::

    python benchmarks/paper_comparison.py            # full comparison (see RECIPE below)
    python benchmarks/paper_comparison.py --small    # quick end-to-end check (minutes)

Stages
------
1. ``data``: seeded generator runs (:func:`lgae_hep.data.generate.generate`) written as PFNano
   ROOT files under ``--data-dir`` (default ``data/generated/paper_comparison``, git-ignored):
   a QCD training set, a separate QCD validation set (early stopping, loss choice) plus small
   t/W/Z validation sets (model choices are made on these, never on the test sets), and
   independent QCD, t, W, Z test sets. Every set has its own seed.
2. ``train``: LGAE-Min-Max (tau_v = 4), LGAE-Mix (tau_v = 2), GNNAE-JL at the compression rate
   of LGAE-Mix and GNNAE-PL (2 x 30) with :func:`lgae_hep.train.fit`, into ``--run-dir``
   (default ``runs/paper_comparison``); interrupted trainings resume from ``last.pt``.
3. ``evaluate``: :func:`lgae_hep.evaluate.evaluate` of each model on the test sets (anomaly and
   reconstruction metrics) and the trivial jet-mass score.
4. ``report``: ``docs/RESULTS.md``, plots in ``docs/figures/`` and the bundled models
   ``models/pretrained/lgae-mix.pt`` / ``lgae-minmax.pt`` with their JSON model cards.

``--stages data`` (etc.) runs a subset; ``--force`` redoes the selected stages.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

#: The data recipe. ``n``: jets; ``seed``: generator seed (unique per set); all sets use
#: ``generate(process, n, seed=seed, workers=WORKERS, fast=FAST)`` with the default pT window
#: 0.8-1.6 TeV, |eta| < 2.5, anti-kT R = 0.8. ``(seed, workers)`` fixes a file exactly.
RECIPE: dict[str, dict[str, Any]] = {
    "train_qcd": {"process": "qcd", "n": 50_000, "seed": 101},
    "val_qcd": {"process": "qcd", "n": 10_000, "seed": 102},
    "val_t": {"process": "t", "n": 2_000, "seed": 103},
    "val_w": {"process": "w", "n": 2_000, "seed": 104},
    "val_z": {"process": "z", "n": 2_000, "seed": 105},
    "test_qcd": {"process": "qcd", "n": 10_000, "seed": 201},
    "test_t": {"process": "t", "n": 10_000, "seed": 202},
    "test_w": {"process": "w", "n": 10_000, "seed": 203},
    "test_z": {"process": "z", "n": 10_000, "seed": 204},
}
#: ``--small``: the same sets, fewer jets, other seeds (never mixed with the full cache).
SMALL_N = {"train_qcd": 1_500, "val_qcd": 400, "val_t": 200, "val_w": 200, "val_z": 200,
           "test_qcd": 400, "test_t": 400, "test_w": 400, "test_z": 400}
#: generator worker processes (part of the recipe: the seed of worker w derives from (seed, w))
WORKERS = 2
#: multi-parton interactions off (``fast=True``): halves the generation time on 2 cores
FAST = True


def recipe(small: bool) -> dict[str, dict[str, Any]]:
    """The data sets of the full or the ``--small`` comparison."""
    out = {}
    for name, r in RECIPE.items():
        r = dict(r, workers=WORKERS, fast=FAST)
        if small:
            r["n"] = SMALL_N[name]
            r["seed"] = r["seed"] + 10_000
        out[name] = r
    return out


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------------------------------------------ stage 1
def stage_data(data_dir: Path, small: bool, force: bool = False) -> dict[str, Path]:
    """Generate (or find cached) every data set of the recipe; returns name -> ROOT path.

    A set is cached as ``<name>_<process>_n<n>_s<seed>.root`` plus a ``.json`` sidecar with the
    recipe and generation time; it is only reused when the sidecar matches the recipe. The ROOT
    file is written to a temporary name and renamed, so an interrupted run never leaves a
    half-written file that looks complete.
    """
    from lgae_hep.data.generate import generate

    data_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, r in recipe(small).items():
        stem = f"{name}_{r['process']}_n{r['n']}_s{r['seed']}{'_fast' if r['fast'] else ''}"
        path = data_dir / f"{stem}.root"
        side = data_dir / f"{stem}.json"
        paths[name] = path
        if not force and path.exists() and side.exists():
            meta = json.loads(side.read_text())
            if meta.get("recipe") == r:
                continue
        _log(f"data: generating {name}: {r}")
        tmp = data_dir / f".{stem}.tmp.root"
        t0 = time.perf_counter()
        info = generate(r["process"], r["n"], seed=r["seed"], workers=r["workers"],
                        fast=r["fast"], output=tmp, progress=True, return_info=True)
        dt = time.perf_counter() - t0
        os.replace(tmp, path)
        side.write_text(json.dumps({
            "recipe": r, "seconds": round(dt, 1), "events": int(len(info.jets)),
            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
        }, indent=1))
        _log(f"data: {name} done in {dt:.0f} s ({r['n'] / dt:.1f} jets/s)")
    return paths


# ------------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--small", action="store_true", help="quick end-to-end check")
    p.add_argument("--stages", nargs="+", default=["data", "train", "evaluate", "report"],
                   choices=["data", "train", "evaluate", "report"])
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--run-dir", type=Path, default=None)
    p.add_argument("--force", action="store_true", help="redo the selected stages")
    args = p.parse_args(argv)
    sub = "paper_comparison_small" if args.small else "paper_comparison"
    data_dir = args.data_dir or REPO / "data" / "generated" / sub
    t0 = time.perf_counter()
    if "data" in args.stages:
        stage_data(data_dir, args.small, args.force)
    _log(f"done in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
