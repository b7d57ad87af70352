"""Anomaly-score families on MPI-on jets: train, choose on validation, measure on test (issue 13).

One command runs everything, stage by stage, and skips what is already on disk::

    python benchmarks/anomaly_scores.py                 # data, train, features, select, test
    python benchmarks/anomaly_scores.py --stages report # docs/RESULTS.md section + figures

Stages
------
1. ``data``: seeded MPI-on generator runs (``fast=False``, the generator's default) cached as
   ROOT files under ``--data-dir`` (default ``data/generated/anomaly_scores``): QCD training
   and validation sets, small t/W/Z validation sets (every choice is made on these) and
   independent QCD/t/W/Z test sets (looked at once, after the choice).
2. ``train``: the candidate networks of :data:`MODELS` with :func:`lgae_hep.train.fit` (the
   paper comparison's schedule), ``--jobs`` at a time, 1 torch thread each.
3. ``features``: per jet of every validation and test set: jet mass, tau21, tau32, D2
   (:mod:`lgae_hep.observables`), and for every model its reconstruction scores and latent
   invariants (``.npz`` under ``--run-dir``).
4. ``select``: every score family of every model, its density fitted on the first half of the
   QCD validation set and measured on the second half against the t/W/Z validation sets. The
   choice rule is fixed before looking: the highest combined (t+W+Z) validation AUC among the
   scores whose QCD mass sculpting stays acceptable (1/JSD >= 5 at eps_b = 0.1). Written to
   ``selection.json``.
5. ``test``: every score on the test sets (the densities as fitted in ``select``); written to
   ``test.json``.
6. ``report``: the table for docs/RESULTS.md and the decorrelation-plane figure.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import paper_comparison as pc  # noqa: E402

REPO = pc.REPO

#: The MPI-on data recipe (``generate(process, n, seed=seed, workers=2, fast=False)``, default
#: pT window 0.8-1.6 TeV, |eta| < 2.5, anti-kT R = 0.8); every set has its own seed.
RECIPE: dict[str, dict[str, Any]] = {
    "train_qcd": {"process": "qcd", "n": 50_000, "seed": 301},
    "val_qcd": {"process": "qcd", "n": 10_000, "seed": 302},
    "val_t": {"process": "t", "n": 2_000, "seed": 303},
    "val_w": {"process": "w", "n": 2_000, "seed": 304},
    "val_z": {"process": "z", "n": 2_000, "seed": 305},
    "test_qcd": {"process": "qcd", "n": 10_000, "seed": 401},
    "test_t": {"process": "t", "n": 10_000, "seed": 402},
    "test_w": {"process": "w", "n": 10_000, "seed": 403},
    "test_z": {"process": "z", "n": 10_000, "seed": 404},
}
WORKERS = 2
FAST = False


def recipe() -> dict[str, dict[str, Any]]:
    """The data sets of this study (the form of ``paper_comparison.recipe``)."""
    return {k: dict(v, workers=WORKERS, fast=FAST) for k, v in RECIPE.items()}


#: Candidate networks. ``config``: model config; ``loss``: training loss; ``budget``: training
#: wall-clock budget in minutes on one CPU thread.
MODELS: dict[str, dict[str, Any]] = {
    "lgae-mix-mass": {
        "label": "LGAE-Mix (tau_v=2), mass-normalised input",
        "config": {"architecture": "lgae", "tau_v": 2, "aggregation": "mix",
                   "normalization": "mass"},
        "loss": "chamfer", "budget": 30,
    },
    "lgae-minmax-mass": {
        "label": "LGAE-Min-Max (tau_v=4), mass-normalised input",
        "config": {"architecture": "lgae", "tau_v": 4, "aggregation": "min&max",
                   "normalization": "mass"},
        "loss": "chamfer", "budget": 30,
    },
    "lgae-mix-mass-tv1": {
        "label": "LGAE-Mix (tau_v=1), mass-normalised input",
        "config": {"architecture": "lgae", "tau_v": 1, "aggregation": "mix",
                   "normalization": "mass"},
        "loss": "chamfer", "budget": 30,
    },
    "lgae-mix-dr": {
        "label": "LGAE-Mix (tau_v=2), GeV input, angular loss",
        "config": {"architecture": "lgae", "tau_v": 2, "aggregation": "mix"},
        "loss": "chamfer-dr", "budget": 30,
    },
    "lgae-mix-mass-dr": {
        "label": "LGAE-Mix (tau_v=2), mass-normalised input, angular loss",
        "config": {"architecture": "lgae", "tau_v": 2, "aggregation": "mix",
                   "normalization": "mass"},
        "loss": "chamfer-dr", "budget": 30,
    },
    "lgae-mix-lab": {
        "label": "LGAE-Mix (tau_v=2), GeV input (control)",
        "config": {"architecture": "lgae", "tau_v": 2, "aggregation": "mix"},
        "loss": "chamfer", "budget": 30,
    },
}


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def train_one(name: str, paths: dict[str, Path], run_dir: Path, force: bool = False) -> Path:
    """Train one model of :data:`MODELS` (resuming an interrupted run); returns its run dir."""
    import torch

    from lgae_hep.data import to_tensors
    from lgae_hep.train import fit

    spec = MODELS[name]
    out = run_dir / name
    done = out / "DONE.json"
    if done.exists() and not force:
        _log(f"train: {name} already trained ({done})")
        return out
    opts = dict(pc.TRAIN)
    budget = float(spec["budget"]) * 60
    n_part = 30
    train = to_tensors(pc._read(paths["train_qcd"]), n_part)
    val = to_tensors(pc._read(paths["val_qcd"])[: pc.N_VAL_LOSS], n_part)
    _log(f"train: {name} on {len(train)} QCD jets (validation {len(val)}), "
         f"budget {budget / 60:.0f} min, torch threads {torch.get_num_threads()}")
    t0 = time.perf_counter()
    res = fit(dict(spec["config"]), train, val, out_dir=out, resume=True, loss=spec["loss"],
              max_seconds=budget, progress=False, log=lambda m: _log(f"{name}: {m}"),
              extra_info={"recipe": recipe(), "model": name}, **opts)
    seconds = time.perf_counter() - t0
    done.write_text(json.dumps({
        "epochs": res.epochs_run, "best_epoch": res.best_epoch, "best_val_loss": res.best_val_loss,
        "train_seconds": seconds, "stopped_early": res.stopped_early,
        "hardware": pc._hardware(), "torch_threads": torch.get_num_threads(),
        "options": opts, "loss": spec["loss"], "budget_s": budget,
        "config": spec["config"],
    }, indent=1))
    _log(f"train: {name} done: {res.epochs_run} epochs, best val loss {res.best_val_loss:.5g}, "
         f"{seconds / 60:.1f} min")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--stages", nargs="+", default=["data", "train", "features", "select", "test"],
                   choices=["data", "train", "features", "select", "test", "report"])
    p.add_argument("--only", nargs="+", choices=list(MODELS), default=None)
    p.add_argument("--data-dir", type=Path, default=REPO / "data" / "generated" / "anomaly_scores")
    p.add_argument("--run-dir", type=Path, default=REPO / "runs" / "anomaly_scores")
    p.add_argument("--force", action="store_true", help="redo the selected stages")
    args = p.parse_args(argv)
    names = args.only or list(MODELS)
    if "data" in args.stages:
        paths = pc.stage_data(args.data_dir, False, args.force, sets=recipe())
    else:
        paths = pc.data_paths(args.data_dir, False, recipe())
    if "train" in args.stages:
        for n in names:
            train_one(n, paths, args.run_dir, args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
