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
4. ``report``: ``docs/results_paper_comparison.md`` and plots in ``docs/figures/``. (The bundled
   models are no longer written here: since issue 13 they come from MPI-on training and a
   score chosen on validation, ``benchmarks/anomaly_scores.py --stages bundle``.)

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
def data_paths(data_dir: Path, small: bool,
               sets: dict[str, dict[str, Any]] | None = None) -> dict[str, Path]:
    """Set name -> cached ROOT file of the recipe (whether or not it exists yet); ``sets``:
    another recipe of the same form (default: this comparison's, :func:`recipe`)."""
    out = {}
    for name, r in (sets if sets is not None else recipe(small)).items():
        stem = f"{name}_{r['process']}_n{r['n']}_s{r['seed']}{'_fast' if r['fast'] else ''}"
        out[name] = data_dir / f"{stem}.root"
    return out


def stage_data(data_dir: Path, small: bool, force: bool = False,
               sets: dict[str, dict[str, Any]] | None = None) -> dict[str, Path]:
    """Generate (or find cached) every data set of the recipe; returns name -> ROOT path.

    ``sets``: another recipe of the form of :func:`recipe` (default: this comparison's).

    A set is cached as ``<name>_<process>_n<n>_s<seed>.root`` plus a ``.json`` sidecar with the
    recipe and generation time; it is only reused when the sidecar matches the recipe. The ROOT
    file is written to a temporary name and renamed, so an interrupted run never leaves a
    half-written file that looks complete.
    """
    from lgae_hep.data.generate import generate

    data_dir.mkdir(parents=True, exist_ok=True)
    sets = sets if sets is not None else recipe(small)
    paths = data_paths(data_dir, small, sets)
    for name, r in sets.items():
        path = paths[name]
        stem = path.stem
        side = path.with_suffix(".json")
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


# ------------------------------------------------------------------------------------ models
#: The four models of the paper's table 2. ``config``: model config; ``loss``: training loss;
#: ``budget``: training wall-clock budget in minutes (full run; the epoch loop stops there).
#: training overrides of the schedule studies: cosine LR over 110 epochs, no early stop
COSINE_110 = {"scheduler": "cosine", "epochs": 110, "patience": 110}
MODELS: dict[str, dict[str, Any]] = {
    "lgae-mix": {
        "label": "LGAE-Mix (tau_v=2)",
        "config": {"architecture": "lgae", "tau_v": 2, "aggregation": "mix"},
        "loss": "chamfer", "budget": 25,
        "paper": {"auc": 0.802, "eps_s": [0.618, 0.166, 0.025]},
    },
    "lgae-minmax": {
        "label": "LGAE-Min-Max (tau_v=4)",
        "config": {"architecture": "lgae", "tau_v": 4, "aggregation": "min&max"},
        "loss": "chamfer", "budget": 25,
        "paper": {"auc": 0.763},
    },
    "gnnae-jl": {
        "label": "GNNAE-JL (latent 18)",
        "config": {"architecture": "gnnae", "encoding": "jet", "latent_dim": 18},
        "loss": "chamfer", "budget": 12,
        "paper": {"auc": "0.59-0.70"},
    },
    "gnnae-pl": {
        "label": "GNNAE-PL (2 x 30)",
        "config": {"architecture": "gnnae", "encoding": "particle", "latent_dim": 2},
        "loss": "chamfer", "budget": 12,
        "paper": {"auc": 0.820},
    },
    # loss study (not part of the default run): LGAE-Mix trained with the order-preserving MSE
    "lgae-mix-mse": {
        "label": "LGAE-Mix (tau_v=2), MSE loss",
        "config": {"architecture": "lgae", "tau_v": 2, "aggregation": "mix"},
        "loss": "mse", "budget": 28, "study": True,
        "paper": {"auc": 0.802},
    },
    # schedule study: the paper's LGAE-Mix with a cosine learning-rate schedule over a fixed
    # number of epochs instead of ReduceLROnPlateau (which decayed the rate to ~1e-6 by epoch 60)
    "lgae-mix-cosine": {
        "label": "LGAE-Mix (tau_v=2), cosine LR",
        "config": {"architecture": "lgae", "tau_v": 2, "aggregation": "mix"},
        "loss": "chamfer", "budget": 30, "study": True,
        "train": COSINE_110,
        "paper": {"auc": 0.802},
    },
    # training-length study: the comparison's LGAE-Mix resumed for 82 more epochs; trained by
    # benchmarks/configs/longer_training_experiment.py (this entry only evaluates it)
    "lgae-mix-long": {
        "label": "LGAE-Mix (tau_v=2), +82 epochs",
        "config": {"architecture": "lgae", "tau_v": 2, "aggregation": "mix"},
        "loss": "chamfer", "budget": 0, "study": True, "external": True,
        "paper": {"auc": 0.802},
    },
    # GPU study: the same LGAE-Mix trained on a GPU from the same data for 5 minutes (full
    # 50k-jet epochs, batch 512); trained by benchmarks/gpu_training.py (this entry evaluates)
    "lgae-mix-gpu": {
        "label": "LGAE-Mix (tau_v=2), GPU 5 min",
        "config": {"architecture": "lgae", "tau_v": 2, "aggregation": "mix"},
        "loss": "chamfer", "budget": 0, "study": True, "external": True,
        "paper": {"auc": 0.802},
    },
    # bottleneck study: one latent 4-vector channel (a tighter "one-prong" prior for QCD)
    "lgae-mix-tv1": {
        "label": "LGAE-Mix (tau_v=1), cosine LR",
        "config": {"architecture": "lgae", "tau_v": 1, "aggregation": "mix"},
        "loss": "chamfer", "budget": 30, "study": True,
        "train": COSINE_110,
        "paper": {"auc": None},
    },
}
#: training options of the full run (fit() keywords) and of --small
TRAIN = {"epochs": 200, "batch_size": 128, "lr": 1e-3, "patience": 8, "grad_clip": 1.0,
         "epoch_size": 5_000, "seed": 0, "scheduler": "plateau"}
TRAIN_SMALL = {"epochs": 4, "batch_size": 64, "lr": 1e-3, "patience": 3, "grad_clip": 1.0,
               "epoch_size": None, "seed": 0, "scheduler": "plateau"}
#: validation jets used for the per-epoch validation loss (first N of val_qcd)
N_VAL_LOSS = 3_000
#: test QCD jets used for the reconstruction metrics (the figure model uses all of them)
N_RECO = 5_000
SIGNALS = {"t": "test_t", "W": "test_w", "Z": "test_z"}
VAL_SIGNALS = {"t": "val_t", "W": "val_w", "Z": "val_z"}


def _read(path: Path):
    from lgae_hep.data import read_nanoaod

    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run the data stage first (--stages data)")
    jets = read_nanoaod(path, flat=True, progress=False)
    if len(jets) == 0:
        raise ValueError(f"{path} holds no jets")
    return jets


def _hardware() -> str:
    try:
        import re

        cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo")
                    if ln.startswith("model name")), platform.processor())
        cpu = re.sub(r"\s+", " ", cpu)
    except OSError:  # pragma: no cover
        cpu = platform.processor()
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} cores, {gpu}, torch {torch.__version__}"


# ------------------------------------------------------------------------------------ stage 2
def train_one(name: str, paths: dict[str, Path], run_dir: Path, small: bool,
              force: bool = False) -> Path:
    """Train one model of :data:`MODELS` (resuming an interrupted run); returns its run dir."""
    import torch

    from lgae_hep.data import to_tensors
    from lgae_hep.train import fit

    spec = MODELS[name]
    if spec.get("external"):
        raise ValueError(f"{name} is trained by its own script (see the comment in MODELS); "
                         "this script only evaluates it")
    out = run_dir / name
    done = out / "DONE.json"
    if done.exists() and not force:
        _log(f"train: {name} already trained ({done})")
        return out
    if force and out.exists():
        import shutil

        shutil.rmtree(out)
    opts = dict(TRAIN_SMALL if small else TRAIN)
    if not small:  # per-model overrides (studies); --small keeps its quick settings
        opts.update(spec.get("train", {}))
    budget = (2.0 if small else float(spec["budget"])) * 60
    n_part = 30
    train = to_tensors(_read(paths["train_qcd"]), n_part)
    val = to_tensors(_read(paths["val_qcd"])[:N_VAL_LOSS], n_part)
    _log(f"train: {name} on {len(train)} QCD jets (validation {len(val)}), "
         f"budget {budget / 60:.0f} min, torch threads {torch.get_num_threads()}")
    t0 = time.perf_counter()
    res = fit(dict(spec["config"]), train, val, out_dir=out, resume=True, loss=spec["loss"],
              max_seconds=budget, progress=False, log=lambda m: _log(f"{name}: {m}"),
              extra_info={"recipe": recipe(small), "model": name}, **opts)
    seconds = time.perf_counter() - t0
    prev = 0.0
    if (out / "time.json").exists():
        prev = json.loads((out / "time.json").read_text())["seconds"]
    (out / "time.json").write_text(json.dumps({"seconds": prev + seconds}))
    done.write_text(json.dumps({
        "epochs": res.epochs_run, "best_epoch": res.best_epoch, "best_val_loss": res.best_val_loss,
        "train_seconds": prev + seconds, "stopped_early": res.stopped_early,
        "jets_seen": sum(int(h["step"]) for h in res.history[-1:]) * opts["batch_size"],
        "hardware": _hardware(), "torch_threads": torch.get_num_threads(),
        "options": opts, "loss": spec["loss"], "budget_s": budget,
    }, indent=1))
    _log(f"train: {name} done: {res.epochs_run} epochs, best val loss {res.best_val_loss:.5g} "
         f"(epoch {res.best_epoch + 1}), {seconds / 60:.1f} min")
    return out


def stage_train(names: list[str], paths: dict[str, Path], run_dir: Path, small: bool,
                jobs: int, force: bool, argv_base: list[str]) -> None:
    """Train the models, ``jobs`` at a time in subprocesses (1 torch thread each)."""
    if jobs <= 1 or len(names) == 1:
        for n in names:
            train_one(n, paths, run_dir, small, force)
        return
    _run_parallel(names, ["--stages", "train"] + (["--force"] if force else []), jobs, argv_base)


def _run_parallel(names: list[str], stage_args: list[str], jobs: int,
                  argv_base: list[str]) -> None:
    """Run this script once per model (``--only NAME``), ``jobs`` at a time, 1 thread each."""
    import subprocess

    pending = list(names)
    running: list[tuple[str, subprocess.Popen]] = []
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    failed = []
    while pending or running:
        while pending and len(running) < jobs:
            n = pending.pop(0)
            cmd = [sys.executable, str(Path(__file__).resolve()), *argv_base, *stage_args,
                   "--only", n, "--jobs", "1", "--worker"]
            running.append((n, subprocess.Popen(cmd, env=env)))
        time.sleep(2)
        for item in list(running):
            if item[1].poll() is not None:
                running.remove(item)
                if item[1].returncode != 0:
                    failed.append(item[0])
    if failed:
        raise RuntimeError(f"{stage_args[1]} failed for {failed}; rerun to resume them")


# ------------------------------------------------------------------------------------ stage 3
def _reco_arrays(model, jets):
    from lgae_hep import api
    from lgae_hep.data import to_tensors
    from lgae_hep.metrics import padded_p4

    p4_in, mask_in, _ = to_tensors(jets, num_particles=30, backend="numpy")
    p4_re, mask_re = padded_p4(api.reconstruct(jets, model=model, progress=False))
    return p4_in, mask_in, p4_re, mask_re


#: anomaly-score metrics compared for every model; the one with the best combined validation
#: AUC is the model's reported score (chosen on the validation sets, never on the test sets)
SCORE_METRICS = ("chamfer", "chamfer-dr")


def _score_sets(model, sets: dict[str, Any], metric: str) -> dict[str, Any]:
    import numpy as np

    from lgae_hep import api

    return {k: np.asarray(api.score(v, model=model, progress=False, metric=metric),
                          dtype=np.float64) for k, v in sets.items()}


def _val_sets(paths: dict[str, Path]) -> dict[str, Any]:
    val_qcd = _read(paths["val_qcd"])
    # QCD jets not used for the validation loss (--small: too few, all of them are used)
    val_qcd = val_qcd[N_VAL_LOSS:] if len(val_qcd) > 2 * N_VAL_LOSS else val_qcd
    return {"QCD": val_qcd, **{k: _read(paths[v]) for k, v in VAL_SIGNALS.items()}}


def _test_sets(paths: dict[str, Path]) -> dict[str, Any]:
    return {"QCD": _read(paths["test_qcd"]), **{k: _read(paths[v]) for k, v in SIGNALS.items()}}


def anomaly_by_metric(model, val: dict[str, Any], test: dict[str, Any]) -> dict[str, Any]:
    """Validation and test anomaly metrics of ``model`` for every metric of SCORE_METRICS.

    Returns ``{"selected": metric, "validation": {metric: {signal: {auc, eps_s}}},
    "test": {metric: anomaly_metrics(...)}, "test_scores": {metric: {class: scores}},
    "score_seconds": {metric: s}}``; ``selected`` maximises the combined validation AUC.
    """
    from lgae_hep.metrics import anomaly_metrics

    out: dict[str, Any] = {"validation": {}, "test": {}, "test_scores": {}, "score_seconds": {}}
    for metric in SCORE_METRICS:
        v = _score_sets(model, val, metric)
        vm = anomaly_metrics(v["QCD"], {k: v[k] for k in VAL_SIGNALS}, roc_points=0)
        out["validation"][metric] = {k: {"auc": m["auc"], "eps_s": m["eps_s"]}
                                     for k, m in vm["signals"].items()}
        t0 = time.perf_counter()
        t = _score_sets(model, test, metric)
        out["score_seconds"][metric] = time.perf_counter() - t0
        out["test"][metric] = anomaly_metrics(t["QCD"], {k: t[k] for k in SIGNALS})
        out["test_scores"][metric] = t
    out["selected"] = max(SCORE_METRICS,
                          key=lambda m: out["validation"][m]["combined"]["auc"])
    return out


def evaluate_one(name: str, paths: dict[str, Path], run_dir: Path, figures: Path | None,
                 force: bool = False) -> dict[str, Any]:
    """Test-set (and validation-set) metrics of one trained model, cached as eval.json.

    The anomaly metrics are computed for every metric of SCORE_METRICS; ``anomaly`` and
    ``validation`` hold those of the metric chosen on the validation sets (``score_metric``),
    ``by_metric`` all of them. A cache from before the metric comparison is completed without
    recomputing its reconstruction metrics (unless the figure model needs new plots).
    """
    import numpy as np

    from lgae_hep.checkpoint import load_model_file
    from lgae_hep.evaluate import evaluate
    from lgae_hep.jsonio import jsonable as _json_safe
    from lgae_hep.metrics import reconstruction_metrics

    out = run_dir / name / "eval.json"
    cached = json.loads(out.read_text()) if (out.exists() and not force) else None
    if cached is not None and "by_metric" in cached:
        return cached
    model = load_model_file(run_dir / name / "best.pt")
    t0 = time.perf_counter()
    test = _test_sets(paths)  # read once: scored here and, for the figure model, plotted
    by = anomaly_by_metric(model, _val_sets(paths), test)
    sel = by["selected"]
    scores = by["test_scores"][sel]
    _log(f"evaluate: {name}: score metric {sel} (combined validation AUC "
         + ", ".join(f"{m} {by['validation'][m]['combined']['auc']:.3f}" for m in SCORE_METRICS)
         + ")")
    if figures is not None:  # the figure model: the full evaluation with plots
        res = evaluate(
            lambda jets: scores[next(k for k, v in test.items() if v is jets)],
            test["QCD"], {k: test[k] for k in SIGNALS},
            reconstruct_fn=lambda jets: _reco_arrays(model, jets),
            compression_rate=model.compression_rate, model_name=f"{name} ({sel})",
            outdir=figures, formats=("png",), progress=False,
        )
        reco = res.reconstruction
        for extra in ("scores.npz", "metrics.json"):  # docs/figures holds the plots only
            (figures / extra).unlink(missing_ok=True)
    elif cached is not None:
        reco = cached["reconstruction"]
    else:
        reco = reconstruction_metrics(*_reco_arrays(model, _read(paths["test_qcd"])[:N_RECO]),
                                      progress=False)
    cr = model.compression_rate
    result = {
        "name": name, "score_metric": sel, "anomaly": by["test"][sel],
        "validation": by["validation"][sel],
        "by_metric": {m: {"validation": by["validation"][m],
                          "test": {k: {"auc": v["auc"], "eps_s": v["eps_s"]}
                                   for k, v in by["test"][m]["signals"].items()}}
                      for m in SCORE_METRICS},
        "reconstruction": reco, "compression_rate": cr,
        "n_params": int(sum(p.numel() for p in model.parameters())),
        "score_seconds": by["score_seconds"][sel], "eval_seconds": time.perf_counter() - t0,
        "n_test": {k: int(len(v)) for k, v in scores.items()},
    }
    out.write_text(json.dumps(_json_safe(result), indent=1))
    np.savez_compressed(run_dir / name / "test_scores.npz",
                        **{f"{m}/{k}": v for m, t in by["test_scores"].items()
                           for k, v in t.items()})
    return result


def evaluate_mass(paths: dict[str, Path], run_dir: Path) -> dict[str, Any]:
    """The trivial anomaly score: the jet mass (constituent sum)."""
    from lgae_hep.jsonio import jsonable as _json_safe
    from lgae_hep.metrics import anomaly_metrics, jet_masses

    out = run_dir / "jet-mass" / "eval.json"
    if out.exists():
        return json.loads(out.read_text())
    m = {"QCD": jet_masses(_read(paths["test_qcd"])),
         **{k: jet_masses(_read(paths[v])) for k, v in SIGNALS.items()}}
    res = {"name": "jet-mass", "anomaly": anomaly_metrics(m["QCD"], {k: m[k] for k in SIGNALS})}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(_json_safe(res), indent=1))
    return res


# ------------------------------------------------------------------------------------ stage 4
def _fmt(x: Any, nd: int = 3) -> str:
    if x is None or (isinstance(x, float) and x != x):
        return "-"
    return f"{x:.{nd}f}" if isinstance(x, int | float) else str(x)


def _cr(cr: Any) -> str:
    if isinstance(cr, dict):
        return f"{100 * cr['paper']:.1f}%"
    return "-" if cr is None else f"{100 * cr:.1f}%"


def _anomaly_table(results: dict[str, dict[str, Any]]) -> str:
    eps = ("0.1", "0.01", "0.001")
    head = ("| model | compression | signal | AUC | eps_s @ 1e-1 | eps_s @ 1e-2 | eps_s @ 1e-3 |"
            "\n|---|---|---|---|---|---|---|")
    rows = [head]
    for name, r in results.items():
        label = MODELS[name]["label"] if name in MODELS else "jet mass (trivial)"
        for sig, m in r["anomaly"]["signals"].items():
            rows.append(f"| {label if sig == 't' else ''} | "
                        f"{_cr(r.get('compression_rate')) if sig == 't' else ''} | {sig} | "
                        f"{_fmt(m['auc'])} | " + " | ".join(_fmt(m["eps_s"][e]) for e in eps)
                        + " |")
    return "\n".join(rows)


def _paper_table(results: dict[str, dict[str, Any]]) -> str:
    rows = ["| model | compression | score metric | combined AUC (ours) | "
            "combined AUC (paper, JetNet) | eps_s @ 1e-1 / 1e-2 / 1e-3 (ours) | (paper) |",
            "|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        m = r["anomaly"]["signals"]["combined"]
        p = MODELS.get(name, {}).get("paper", {})
        eff = " / ".join(_fmt(m["eps_s"][e]) for e in ("0.1", "0.01", "0.001"))
        peff = " / ".join(f"{v:.3f}" for v in p["eps_s"]) if "eps_s" in p else "-"
        label = MODELS[name]["label"] if name in MODELS else "jet mass (trivial)"
        rows.append(f"| {label} | {_cr(r.get('compression_rate'))} | "
                    f"{r.get('score_metric', '-')} | {_fmt(m['auc'])} | "
                    f"{_fmt(p.get('auc'))} | {eff} | {peff} |")
    return "\n".join(rows)


def _metric_table(results: dict[str, dict[str, Any]]) -> str:
    """Combined AUC per score metric: validation (the choice) and test (for the record)."""
    head = ["| model | " + " | ".join(f"val {m}" for m in SCORE_METRICS) + " | chosen | "
            + " | ".join(f"test {m}" for m in SCORE_METRICS) + " | test t / W / Z (chosen) |",
            "|---|" + "---|" * (2 * len(SCORE_METRICS) + 2)]
    rows = head
    for name, r in results.items():
        by = r.get("by_metric")
        if not by:
            continue
        sel = r["score_metric"]
        per = " / ".join(_fmt(by[sel]["test"][k]["auc"]) for k in ("t", "W", "Z"))
        rows.append(f"| {MODELS[name]['label']} | "
                    + " | ".join(_fmt(by[m]["validation"]["combined"]["auc"])
                                 for m in SCORE_METRICS)
                    + f" | {sel} | "
                    + " | ".join(_fmt(by[m]["test"]["combined"]["auc"]) for m in SCORE_METRICS)
                    + f" | {per} |")
    return "\n".join(rows)


#: (level, feature) columns of the reconstruction tables, as in lgae_hep.evaluate's output
RECO_FEATURES = [("particle", "pt_rel"), ("particle", "eta_rel"), ("particle", "phi_rel"),
                 ("jet", "mass"), ("jet", "pt"), ("jet", "eta")]


def _feature_table(results: dict[str, dict[str, Any]], header: str, cell) -> str:
    """One row per model with a reconstruction summary; ``cell(summary or None) -> str``."""
    rows = ["| model | " + " | ".join(header.format(f) for _, f in RECO_FEATURES) + " |",
            "|---|" + "---|" * len(RECO_FEATURES)]
    for name, r in results.items():
        reco = r.get("reconstruction")
        if not reco:
            continue
        cells = [cell(reco.get(level, {}).get(f)) for level, f in RECO_FEATURES]
        rows.append(f"| {MODELS[name]['label']} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _reco_table(results: dict[str, dict[str, Any]]) -> str:
    return _feature_table(
        results, "{} median (IQR)",
        lambda s: "-" if s is None else f"{s['median']:+.3f} ({s['iqr']:.3f})")


def _w1_table(results: dict[str, dict[str, Any]]) -> str:
    return _feature_table(
        results, "W1 {}",
        lambda s: "-" if s is None or s.get("w1") is None else f"{s['w1']:.4g}")


def _roc_plot(results: dict[str, dict[str, Any]], path: Path) -> None:
    import numpy as np

    from lgae_hep import plotting

    curves = {}
    for name, r in results.items():
        m = r["anomaly"]["signals"]["combined"]
        roc = m.get("roc") or {}
        if roc:
            label = MODELS[name]["label"] if name in MODELS else "jet mass"
            curves[label] = (np.asarray(roc["eps_b"], float), np.asarray(roc["eps_s"], float),
                             m["auc"])
    plotting.plot_roc(curves, path=path, formats=("png",))


def stage_report(names: list[str], paths: dict[str, Path], run_dir: Path, report_path: Path,
                 figures: Path, pretrained: Path | None, small: bool, wall: dict[str, float],
                 force: bool = False, jobs: int = 1, argv_base: list[str] | None = None) -> None:
    """Evaluate every trained model, then write the report and its figures."""
    import shutil

    figures.mkdir(parents=True, exist_ok=True)
    def stale(n: str) -> bool:
        f = run_dir / n / "eval.json"
        return not f.exists() or "by_metric" not in json.loads(f.read_text())

    missing = [n for n in names if (run_dir / n / "best.pt").exists() and (force or stale(n))]
    if jobs > 1 and len(missing) > 1:  # evaluate in parallel subprocesses, as the training
        _run_parallel(missing, ["--stages", "evaluate"] + (["--force"] if force else []),
                      jobs, argv_base)
        force = False
    results: dict[str, dict[str, Any]] = {}
    for n in names:
        if not (run_dir / n / "best.pt").exists():
            _log(f"evaluate: {n} has no best.pt, skipped")
            continue
        _log(f"evaluate: {n}")
        results[n] = evaluate_one(n, paths, run_dir, figures / n if n == "lgae-mix" else None,
                                  force)
    results["jet-mass"] = evaluate_mass(paths, run_dir)
    # training studies evaluated with `--stages evaluate --only <study>` (not in the main table)
    studies = {n: json.loads((run_dir / n / "eval.json").read_text()) for n in MODELS
               if MODELS[n].get("study") and n not in results
               and (run_dir / n / "eval.json").exists()}
    studies = {n: r for n, r in studies.items() if "by_metric" in r}
    _roc_plot(results, figures / "roc_combined")
    trained = {n: json.loads((run_dir / n / "DONE.json").read_text())
               for n in names if (run_dir / n / "DONE.json").exists()}
    discussion = REPO / "benchmarks" / "configs" / "results_discussion.md"
    hw = next(iter(trained.values()), {}).get("hardware", _hardware())
    lines = [
        "# Results: the LGAE paper's comparison on our own generated jets",
        "",
        "Generated by `python benchmarks/paper_comparison.py"
        + (" --small" if small else "") + "` (do not edit by hand; the discussion is kept in "
        "`benchmarks/configs/results_discussion.md`).",
        "",
        "A study on MPI-off jets with the paper's models and losses. The models bundled today "
        "are trained on MPI-on jets with the score chosen on validation: see `RESULTS.md`.",
        "",
        "## Data",
        "",
        "Pythia 8 + FastJet jets from `lgae_hep.data.generate` (anti-kT R = 0.8, "
        "0.8 < pT < 1.6 TeV, |eta| < 2.5, 13 TeV, "
        + ("MPI off (`fast=True`)" if FAST else "MPI on") + f", {WORKERS} workers per set):",
        "",
        "| set | process | jets | seed |", "|---|---|---|---|",
        *[f"| {k} | {r['process']} | {r['n']} | {r['seed']} |" for k, r in recipe(small).items()],
        "",
        f"Validation loss: first {N_VAL_LOSS} jets of `val_qcd`; model choices use the rest of "
        "`val_qcd` against `val_t/w/z` (never the test sets). Anomaly score: "
        "`lgae_hep.score(..., metric=M)` for every model, with M the metric of "
        f"{', '.join(f'`{m}`' for m in SCORE_METRICS)} (the Cartesian 4-vector Chamfer "
        "distance in GeV^2, the paper's, or the pT-weighted angular Chamfer distance, "
        "`lgae_hep.losses.chamfer_dr`) that gives the model the higher combined AUC on the "
        "validation sets.",
        "",
        "## Anomaly detection (test sets)",
        "",
        "Combined = t + W + Z against QCD. Compression = latent real numbers / (30 x 3).",
        "",
        _paper_table(results),
        "",
        "Per signal:",
        "",
        _anomaly_table(results),
        "",
        "![ROC curves](figures/roc_combined.png)",
        "",
        "## Score metric (chosen on the validation sets)",
        "",
        "Combined AUC of each model for each anomaly-score metric. The choice uses only the "
        "validation columns; the test columns are shown so the effect of the choice can be "
        "read off.",
        "",
        _metric_table(results),
        "",
        *([("Training studies (same data and evaluation; not bundled; run with "
            "`--stages train evaluate --only <name>`):"), "",
           _metric_table(studies), ""] if studies else []),
        "## Validation sets (used for choices)",
        "",
        "| model | combined AUC | t | W | Z |", "|---|---|---|---|---|",
        *[f"| {MODELS[n]['label']} | " + " | ".join(
            _fmt(r["validation"][s]["auc"]) for s in ("combined", "t", "W", "Z")) + " |"
          for n, r in results.items() if "validation" in r],
        "",
        "## Reconstruction (test QCD)",
        "",
        f"Hungarian-matched particles, first {N_RECO} test QCD jets (LGAE-Mix: all). "
        "Relative errors for pT_rel, jet mass and pT; absolute differences for angles.",
        "",
        _reco_table(results),
        "",
        "Wasserstein-1 distances between the input and reconstructed feature distributions "
        "(jet mass and pT in GeV):",
        "",
        _w1_table(results),
        "",
        "LGAE-Mix figures: [ROC](figures/lgae-mix/roc.png), "
        "[scores](figures/lgae-mix/scores.png), "
        "[reconstruction](figures/lgae-mix/reconstruction.png), "
        "[mass sculpting](figures/lgae-mix/mass_sculpting.png).",
        "",
        "![LGAE-Mix reconstruction](figures/lgae-mix/reconstruction.png)",
        "",
        "## Training",
        "",
        f"Hardware: {hw}.",
        "",
        "| model | params | loss | epochs (x jets) | best epoch | best val loss | train time |",
        "|---|---|---|---|---|---|---|",
        *[f"| {MODELS[n]['label']} | {results.get(n, {}).get('n_params', '-')} | {t['loss']} | "
          f"{t['epochs']} (x {t['options']['epoch_size'] or 'all'}) | {t['best_epoch'] + 1} | "
          f"{t['best_val_loss']:.4g} | {t['train_seconds'] / 60:.1f} min |"
          for n, t in trained.items()],
        "",
        "Wall-clock per stage (last run of each stage, from `wall_clock.json` in the run "
        "directory): " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in wall.items()) + ".",
        "",
    ]
    if discussion.exists() and not small:
        lines += [discussion.read_text().strip(), ""]
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text("\n".join(lines))
    _log(f"report: wrote {report_path}")
    (run_dir / "results.json").write_text(json.dumps(results, indent=1))
    del shutil


# ------------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--small", action="store_true", help="quick end-to-end check (minutes)")
    p.add_argument("--stages", nargs="+", default=["data", "train", "report"],
                   choices=["data", "train", "evaluate", "report"],
                   help="stages to run (report = evaluate, in parallel, + the report; "
                   "evaluate alone only fills the per-model eval.json caches)")
    p.add_argument("--only", nargs="+", choices=list(MODELS), default=None,
                   help="train/evaluate only these models")
    p.add_argument("--jobs", type=int, default=2, help="models trained in parallel (2)")
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--run-dir", type=Path, default=None)
    p.add_argument("--force", action="store_true", help="redo the selected stages")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    sub = "paper_comparison_small" if args.small else "paper_comparison"
    data_dir = args.data_dir or REPO / "data" / "generated" / sub
    run_dir = args.run_dir or REPO / "runs" / sub
    names = args.only or [n for n, m in MODELS.items() if not m.get("study")]
    base = (["--small"] if args.small else []) + ["--data-dir", str(data_dir),
                                                  "--run-dir", str(run_dir)]
    wall: dict[str, float] = {}
    t0 = time.perf_counter()
    t = t0
    if "data" in args.stages:
        paths = stage_data(data_dir, args.small, args.force)
        wall["data"] = time.perf_counter() - t
    else:  # use the cache; a missing set is an error when a stage reads it
        paths = data_paths(data_dir, args.small)
    if "train" in args.stages:
        t = time.perf_counter()
        stage_train(names, paths, run_dir, args.small, args.jobs, args.force, base)
        wall["train"] = time.perf_counter() - t
    if "evaluate" in args.stages:  # (report runs it when needed; this is its worker form)
        t = time.perf_counter()
        fig_root = run_dir / "figures" if args.small else REPO / "docs" / "figures"
        for n in names:
            evaluate_one(n, paths, run_dir, fig_root / n if n == "lgae-mix" else None,
                         args.force)
        wall["evaluate"] = time.perf_counter() - t
    wall_file = run_dir / "wall_clock.json"
    # the wall-clock file records the comparison itself: runs of study models do not touch it
    only_studies = all(MODELS[n].get("study") for n in names)
    if wall and not args.worker and not only_studies:
        run_dir.mkdir(parents=True, exist_ok=True)
        old = json.loads(wall_file.read_text()) if wall_file.exists() else {}
        wall_file.write_text(json.dumps({**old, **wall}, indent=1))
    if "report" in args.stages:
        old = json.loads(wall_file.read_text()) if wall_file.exists() else {}
        wall = {**old, **wall}
        t = time.perf_counter()
        if args.small:
            report, figures, pre = run_dir / "RESULTS.md", run_dir / "figures", None
        else:
            report = REPO / "docs" / "results_paper_comparison.md"
            figures, pre = REPO / "docs" / "figures", None
        # the report always covers every trained model of the comparison, not only --only ones
        report_names = [n for n in MODELS if n in names or (
            not MODELS[n].get("study") and (run_dir / n / "best.pt").exists())]
        stage_report(report_names, paths, run_dir, report, figures, pre, args.small, wall,
                     args.force, args.jobs, base)
        wall["report"] = time.perf_counter() - t
    _log("wall-clock: " + ", ".join(f"{k} {v:.0f} s" for k, v in wall.items())
         + f"; total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
