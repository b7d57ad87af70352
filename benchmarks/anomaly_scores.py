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
7. ``bundle`` (not run by default): ``models/pretrained/lgae-mix`` and ``lgae-minmax``, each the
   candidate of its aggregation chosen by the same rule, with its latent density inside the
   weights-only model file and a model card.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _load_sibling(name: str) -> Any:
    """Import ``benchmarks/<name>.py`` by path (the folder is not put on sys.path, where a
    script name could shadow a package that a dependency imports)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parent
                                                  / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


pc = _load_sibling("paper_comparison")

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
    "lgae-minmax-dr": {
        "label": "LGAE-Min-Max (tau_v=4), GeV input, angular loss",
        "config": {"architecture": "lgae", "tau_v": 4, "aggregation": "min&max"},
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


# ------------------------------------------------------------------------------------ features
VAL_SETS = ("val_qcd", "val_t", "val_w", "val_z")
TEST_SETS = ("test_qcd", "test_t", "test_w", "test_z")
SIGNALS = {"t": "t", "W": "w", "Z": "z"}
#: QCD validation jets the densities are fitted on (the first half); the second half is the
#: validation background the choice is made on
N_DENSITY_FIT = 5_000
#: mixture components of every density (fixed beforehand, not tuned)
N_COMPONENTS = 8
#: the choice rule's sculpting floor: 1/JSD of the QCD mass at eps_b = 0.1
MIN_INV_JSD = 5.0
#: reconstruction scores every model is measured with
RECO_METRICS = ("chamfer", "chamfer-dr")


def observables_of(path: Path, cache: Path) -> dict[str, Any]:
    """Jet mass, tau21, tau32, D2 of every jet of a set (cached ``.npz``)."""
    import numpy as np

    from lgae_hep.metrics.yardsticks import jet_observables

    if cache.exists():
        return dict(np.load(cache))
    obs = jet_observables(pc._read(path))
    np.savez(cache, **obs)
    return obs


def model_features(model: Any, path: Path, cache: Path) -> dict[str, Any]:
    """A model's reconstruction scores and latent columns on a set (cached ``.npz``):
    ``score_<metric>`` per :data:`RECO_METRICS`, ``latent`` (n, C) all latent columns,
    ``latent_names`` and ``latent_invariants`` (:func:`lgae_hep.inference.latent_columns`)."""
    import numpy as np

    from lgae_hep.inference import latent_columns, run_chunks

    if cache.exists():
        return dict(np.load(cache))
    jets = pc._read(path)
    out: dict[str, Any] = {}
    for metric in RECO_METRICS:
        res = run_chunks(jets, model, want_latent=(metric == RECO_METRICS[0]), metric=metric,
                         progress=False)
        out[f"score_{metric}"] = res.result.score
        if res.result.latent is not None:
            cols, inv = latent_columns(res.result.latent)
            out["latent"] = np.stack(list(cols.values()), 1)
            out["latent_names"] = np.array(list(cols))
            out["latent_invariants"] = np.array(inv)
    np.savez(cache, **out)
    return out


def stage_features(names: list[str], paths: dict[str, Path], run_dir: Path) -> None:
    """Observables of every set and every trained model's features on them."""
    from lgae_hep.zoo import load_model

    feat = run_dir / "features"
    feat.mkdir(parents=True, exist_ok=True)
    for s in VAL_SETS + TEST_SETS:
        observables_of(paths[s], feat / f"observables_{s}.npz")
    for name in names:
        best = run_dir / name / "best.pt"
        if not best.exists():
            _log(f"features: {name} is not trained yet ({best}); skipped")
            continue
        model = load_model(best)
        for s in VAL_SETS + TEST_SETS:
            t0 = time.perf_counter()
            model_features(model, paths[s], feat / f"{name}_{s}.npz")
        _log(f"features: {name} done ({time.perf_counter() - t0:.0f} s for the last set)")


# ------------------------------------------------------------------------------------ scores
def _sets(run_dir: Path, name: str | None, kind: str) -> dict[str, dict[str, Any]]:
    """Per set of ``kind`` ("val"/"test"): observables merged with model ``name``'s features."""
    import numpy as np

    feat = run_dir / "features"
    out = {}
    for s in (VAL_SETS if kind == "val" else TEST_SETS):
        d = dict(np.load(feat / f"observables_{s}.npz"))
        if name is not None:
            d.update(np.load(feat / f"{name}_{s}.npz"))
        out[s.split("_", 1)[1]] = d
    return out


def _split_qcd(sets: dict[str, dict[str, Any]], kind: str
               ) -> tuple[dict[str, Any] | None, dict[str, Any], dict[str, dict[str, Any]]]:
    """(density-fit QCD, background QCD, signals): validation QCD is split in halves."""
    q = sets["qcd"]
    sig = {k: sets[v] for k, v in SIGNALS.items()}
    if kind != "val":
        return None, q, sig

    def part(sl: slice) -> dict[str, Any]:
        return {k: (v if k.startswith("latent_") else v[sl]) for k, v in q.items()}

    return part(slice(0, N_DENSITY_FIT)), part(slice(N_DENSITY_FIT, None)), sig


#: the "gram" feature set is used only up to this many features (a full-covariance mixture
#: in more dimensions is not determined by 5,000 jets): LGAE-Mix's 12, not Min-Max's 140
MAX_GRAM_FEATURES = 32


def _columns(d: dict[str, Any]) -> dict[str, Any]:
    return {str(n): d["latent"][:, i] for i, n in enumerate(d["latent_names"])}


def _features(d: dict[str, Any], kind: str) -> dict[str, Any]:
    from lgae_hep.density import invariant_features

    return invariant_features(_columns(d), [str(x) for x in d["latent_invariants"]], kind)


def fit_densities(fit_qcd: dict[str, Any]) -> dict[str, Any]:
    """The densities of a model (latent invariants, each feature set) and of the classic
    observables, fitted on the QCD density-fit jets."""
    from lgae_hep.density import FEATURE_SETS, fit_latent_density

    out = {}
    if "latent" in fit_qcd:
        for kind in FEATURE_SETS:
            feats = _features(fit_qcd, kind)
            if kind == "gram" and len(feats) > MAX_GRAM_FEATURES:
                continue
            out[kind] = fit_latent_density(feats, list(feats), fit_qcd["mass"],
                                           n_components=N_COMPONENTS,
                                           info={"features": kind})
    obs = {"tau21": fit_qcd["tau21"], "tau32": fit_qcd["tau32"]}
    out["observables"] = fit_latent_density(obs, ["tau21", "tau32"], fit_qcd["mass"],
                                            n_components=N_COMPONENTS)
    return out


def scores_of(d: dict[str, Any], densities: dict[str, Any], model: bool) -> dict[str, Any]:
    """Every score family of one set: the model's (reconstruction, latent densities) or the
    yardsticks (``model=False``)."""

    from lgae_hep.density import DENSITY_METRICS
    from lgae_hep.metrics.yardsticks import scores_from_observables

    out = {}
    if model:
        for metric in RECO_METRICS:
            out[metric] = d[f"score_{metric}"]
        for kind, dens in densities.items():
            if kind == "observables":
                continue
            coords = dens.transform(_columns(d), d["mass"])
            for metric in DENSITY_METRICS:
                out[f"{metric} [{kind}]"] = dens.score(coords, metric)
        return out
    out.update(scores_from_observables(d))
    dens = densities["observables"]
    coords = dens.transform({"tau21": d["tau21"], "tau32": d["tau32"]}, d["mass"])
    out["density (log m, tau21, tau32)"] = dens.score(coords, "latent-density-joint")
    out["density (tau21, tau32 | m)"] = dens.score(coords, "latent-density-given-mass")
    return out


def measure(bkg: dict[str, Any], scores_b: Any, scores_s: dict[str, Any]) -> dict[str, Any]:
    """AUCs, eps_s at 1e-1 / 1e-2, and the sculpting of the background ``bkg``'s mass by one
    score."""
    import warnings

    from lgae_hep.metrics.anomaly import anomaly_metrics
    from lgae_hep.metrics.sculpting import mass_sculpting

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # non-finite scores are counted, not shown
        m = anomaly_metrics(scores_b, scores_s, eps_b=(0.1, 0.01), roc_points=0)
        m["sculpting"] = mass_sculpting(scores_b, bkg["mass"])
    return m


FamilyScores = tuple[str | None, dict[str, Any], dict[str, Any], dict[str, Any]]


def family_scores(names: list[str], run_dir: Path, kind: str) -> Iterator[FamilyScores]:
    """For the yardsticks (name None) and every model with features: ``(name, background,
    background scores, signal name -> scores)`` of every score family on the ``kind`` sets,
    the densities fitted on the QCD density-fit jets of the validation set."""
    for name in [None, *names]:
        if name is not None and not (run_dir / "features" / f"{name}_{kind}_qcd.npz").exists():
            continue
        fit_qcd, _, _ = _split_qcd(_sets(run_dir, name, "val"), "val")
        dens = fit_densities(fit_qcd)
        _, bkg, sig = _split_qcd(_sets(run_dir, name, kind), kind)
        sb = scores_of(bkg, dens, name is not None)
        ss = {k: scores_of(v, dens, name is not None) for k, v in sig.items()}
        yield name, bkg, sb, ss


def stage_scores(names: list[str], run_dir: Path, kind: str) -> dict[str, Any]:
    """Every score family of every model (and the yardsticks) on the ``kind`` sets."""
    out: dict[str, Any] = {}
    for name, bkg, sb, ss in family_scores(names, run_dir, kind):
        key = name or "yardsticks"
        out[key] = {f: measure(bkg, sb[f], {k: v[f] for k, v in ss.items()}) for f in sb}
        _log(f"{kind}: {key}: " + ", ".join(
            f"{f} {m['signals']['combined']['auc']:.3f}" for f, m in out[key].items()))
    return out


def choose(val: dict[str, Any]) -> dict[str, Any]:
    """The choice rule (module docstring) over the models' scores (never the yardsticks)."""
    cands = [(n, f, m) for n, fams in val.items() if n != "yardsticks" for f, m in fams.items()]
    ok = [c for c in cands if c[2]["sculpting"]["inv_jsd"]["0.1"] >= MIN_INV_JSD]
    pool = ok or cands
    n, f, m = max(pool, key=lambda c: c[2]["signals"]["combined"]["auc"])
    return {"model": n, "metric": f, "val_combined_auc": m["signals"]["combined"]["auc"],
            "val_inv_jsd": m["sculpting"]["inv_jsd"]["0.1"],
            "rule": f"max validation combined AUC among scores with 1/JSD >= {MIN_INV_JSD} at "
                    "eps_b = 0.1" + ("" if ok else " (none passed: max AUC overall)")}


# ------------------------------------------------------------------------------------ report
#: the issue's targets for the default score of the default model (test sets)
TARGETS = {"combined AUC": 0.75, "W/Z AUC above the jet mass's": 0.05, "eps_s at eps_b 0.1": 0.25,
           "1/JSD at eps_b 0.1": 5.0}
BEGIN, END = "<!-- anomaly_scores:begin -->", "<!-- anomaly_scores:end -->"


def _f(x: Any, nd: int = 3) -> str:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return "-"
    if x != x:
        return "-"
    if x == float("inf"):
        return "inf"
    return f"{x:.{nd}f}" if abs(x) < 100 else f"{x:.0f}"


def _row(label: str, m: dict[str, Any], val: dict[str, Any] | None) -> str:
    sig = m["signals"]
    sc = m["sculpting"]
    return (f"| {label} | " + " | ".join(_f(sig[k]["auc"]) for k in ("t", "W", "Z", "combined"))
            + f" | {_f(sig['combined']['eps_s']['0.1'])} | {_f(sig['combined']['eps_s']['0.01'])}"
            + f" | {_f(sc['inv_jsd']['0.1'], 1)} | {_f(sc['inv_jsd']['0.01'], 1)}"
            + f" | {_f(sc['spearman'], 2)} | "
            + (_f(val["signals"]["combined"]["auc"]) if val else "-") + " |")


def table(test: dict[str, Any], val: dict[str, Any], choice: dict[str, Any]) -> str:
    """The markdown table of every model x score family and the yardsticks (test sets)."""
    head = ["| model / score | t AUC | W AUC | Z AUC | combined AUC | eps_s @ 1e-1 | eps_s @ 1e-2 "
            "| 1/JSD @ 1e-1 | 1/JSD @ 1e-2 | Spearman with mass | validation combined AUC |",
            "|---|" + "---|" * 10]
    rows = []
    for name, fams in test.items():
        label0 = "yardstick" if name == "yardsticks" else f"`{name}`"
        for fam, m in fams.items():
            star = " **(chosen)**" if (name, fam) == (choice["model"], choice["metric"]) else ""
            label = f"{label0}: {fam}{star}".replace("|", "\\|")  # a pipe ends a cell
            rows.append(_row(label, m, val.get(name, {}).get(fam)))
    return "\n".join(head + rows)


def targets(test: dict[str, Any], choice: dict[str, Any]) -> list[str]:
    """The issue's targets for the chosen score, measured on the test sets."""
    m = test[choice["model"]][choice["metric"]]
    mass = test["yardsticks"]["jet mass"]["signals"]
    sig = m["signals"]
    rows = [("combined AUC >= 0.75", sig["combined"]["auc"], sig["combined"]["auc"] >= 0.75)]
    for k in ("W", "Z"):
        d = sig[k]["auc"] - mass[k]["auc"]
        rows.append((f"{k} AUC >= jet-mass AUC + 0.05 ({_f(mass[k]['auc'])} + 0.05)",
                     sig[k]["auc"], d >= 0.05))
    e = sig["combined"]["eps_s"]["0.1"]
    rows.append(("combined eps_s >= 0.25 at eps_b = 0.1", e, e >= 0.25))
    j = m["sculpting"]["inv_jsd"]["0.1"]
    rows.append(("1/JSD >= 5 at eps_b = 0.1", j, j >= 5))
    return ["| target | measured | met |", "|---|---|---|"] + [
        f"| {t} | {_f(v)} | {'yes' if ok else '**no**'} |" for t, v, ok in rows]


def decorrelation_plane(run_dir: Path, names: list[str], path: Path) -> dict[str, Any]:
    """Background rejection at eps_s = 0.5 (t+W+Z) against 1/JSD at the same cut, every score
    on the test sets; the figure and the points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep
    import numpy as np

    from lgae_hep.metrics.sculpting import decorrelation_point

    points: dict[str, Any] = {}
    for name, bkg, sb, ss in family_scores(names, run_dir, "test"):
        for fam in sb:
            allsig = np.concatenate([ss[k][fam] for k in ss])
            points[f"{name or 'yardstick'}: {fam}"] = decorrelation_point(
                sb[fam], allsig, bkg["mass"], eps_s=0.5)
    plt.style.use(mplhep.style.CMS)
    fig, ax = plt.subplots(figsize=(10, 8))
    chosen = json.loads((run_dir / "selection.json").read_text())["choice"] \
        if (run_dir / "selection.json").exists() else {}
    chosen_label = f"{chosen.get('model')}: {chosen.get('metric')}"
    colours = dict(zip([n for n in names if any(k.startswith(n + ":") for k in points)],
                       [plt.get_cmap("tab10")(i) for i in range(10)], strict=False))
    markers = {"chamfer": "v", "chamfer-dr": "^"}
    for label, pnt in points.items():
        x, y = pnt["rejection"], min(pnt["inv_jsd"], 1e3)
        model, fam = label.split(": ", 1)
        if model == "yardstick":
            ax.scatter(x, y, marker="s", s=70, color="black", zorder=3)
            ax.annotate(fam, (x, y), fontsize=11, xytext=(5, 3), textcoords="offset points")
            continue
        marker = markers.get(fam, "s" if "[gram]" in fam else "o")
        ax.scatter(x, y, marker=marker, s=45, color=colours[model], alpha=0.75,
                   label=model if fam == "chamfer-dr" else None)
        if label == chosen_label:
            ax.scatter(x, y, marker="*", s=500, facecolor="none", edgecolor="black",
                       linewidth=1.5, zorder=4)
            ax.annotate(f"default: {fam}", (x, y), fontsize=11, xytext=(8, -16),
                        textcoords="offset points")
    ax.legend(title="networks (^ chamfer-dr, v chamfer, o density on norms, "
                    "s on gram)", fontsize=10, title_fontsize=10, loc="upper right",
              ncol=2)
    ax.set_xlabel(r"Background rejection $1/\varepsilon_B$ at $\varepsilon_S = 0.5$ (t+W+Z)")
    ax.set_ylabel("1/JSD of the QCD jet mass at the same cut")
    ax.set_yscale("log")
    ax.axhline(5, color="grey", ls="--", lw=1)
    ax.set_title("Private work", loc="left", fontsize=18, style="italic")
    ax.set_title("Pythia 8 generator level, MPI on (13 TeV)", loc="right", fontsize=16)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return points


def write_section(path: Path, text: str) -> None:
    """Put ``text`` between the markers in ``path`` (appended when the markers are absent)."""
    old = path.read_text() if path.exists() else ""
    block = f"{BEGIN}\n{text.rstrip()}\n{END}"
    if BEGIN in old and END in old:
        new = old[: old.index(BEGIN)] + block + old[old.index(END) + len(END):]
    else:
        new = (old.rstrip() + "\n\n" if old else "") + block + "\n"
    path.write_text(new)


def stage_report(names: list[str], run_dir: Path, results: Path) -> None:
    """The docs/RESULTS.md section (between markers) and the decorrelation-plane figure."""
    sel = json.loads((run_dir / "selection.json").read_text())
    test = json.loads((run_dir / "test.json").read_text())
    choice = sel["choice"]
    fig = REPO / "docs" / "figures" / "decorrelation_plane.png"
    points = decorrelation_plane(run_dir, names, fig)
    (run_dir / "decorrelation_plane.json").write_text(json.dumps(points, indent=1))
    trained = {n: json.loads((run_dir / n / "DONE.json").read_text())
               for n in names if (run_dir / n / "DONE.json").exists()}
    lines = [
        "### Every model and score family on the MPI-on test sets",
        "",
        "Test sets: 10,000 jets each of QCD, t, W, Z (MPI on, seeds 401-404); the densities are "
        f"fitted on the first {N_DENSITY_FIT:,} QCD validation jets ({N_COMPONENTS} Gaussian "
        "components, full covariances, fixed beforehand). The last column is the validation "
        "combined AUC the choice was made on (second half of the QCD validation set against "
        "2,000 jets each of t, W, Z). 1/JSD: the QCD jet-mass histogram before/after the cut "
        "(30 bins, 0-300 GeV; a random cut gives ~29 at eps_b = 0.1 with these statistics).",
        "",
        table(test, sel["validation"], choice),
        "",
        f"**Chosen on validation:** `{choice['model']}` with `{choice['metric']}` "
        f"(rule: {choice['rule']}; validation combined AUC {_f(choice['val_combined_auc'])}, "
        f"1/JSD {_f(choice['val_inv_jsd'], 1)}).",
        "",
        "### The issue's targets, for the chosen score on the test sets",
        "",
        *targets(test, choice),
        "",
        "### Decorrelation plane",
        "",
        "![decorrelation plane](figures/decorrelation_plane.png)",
        "",
        "Background rejection at a signal efficiency of 0.5 (t, W and Z pooled) against the "
        "1/JSD of the QCD mass at the same cut; circles are LGAE scores, squares the "
        "yardsticks; the dashed line is the sculpting target 1/JSD = 5.",
        "",
        "### Candidate networks (trained on 50,000 MPI-on QCD jets, 1 CPU thread each)",
        "",
        "| model | config | loss | epochs | best val loss | minutes | stopped |",
        "|---|---|---|---|---|---|---|",
        *[f"| `{n}` | {MODELS[n]['label']} | {t.get('loss')} | {t.get('epochs')} | "
          f"{_f(t.get('best_val_loss'), 4)} | {_f((t.get('train_seconds') or 0) / 60, 0)} | "
          + ("by hand (DONE.json note)" if t.get("note") else
             "early stopping" if t.get("stopped_early") else "30-min budget") + " |"
          for n, t in trained.items()],
        "",
        "Reproduce: `python benchmarks/anomaly_scores.py` (all stages; the data stage generates "
        "the MPI-on sets, ~25 min on 2 cores), then `python benchmarks/anomaly_scores.py "
        "--stages report bundle`.",
    ]
    write_section(results, "\n".join(lines))
    _log(f"report: wrote the section of {results} and {fig}")


# ------------------------------------------------------------------------------------ bundle
#: bundled name -> the aggregation of the candidates it is chosen from
BUNDLES = {"lgae-mix": "mix", "lgae-minmax": "min&max"}
INFERENCE_DTYPE_REASON = (
    "min/max aggregation picks a particle per latent channel; in float32 candidates can differ "
    "by ~1e-7 relative, so rounding (thread count, CPU, batch size) decides the pick for some "
    "jets and their scores jump. In float64 every code path agrees to ~1e-12 "
    "(benchmarks/determinism.py, lgae_hep/precision.py).")


def _split_metric(fam: str) -> tuple[str, str | None]:
    """``"latent-density-given-mass [gram]"`` -> (metric, feature set); reconstruction
    metrics have no feature set."""
    if fam.endswith("]") and " [" in fam:
        metric, kind = fam[:-1].split(" [")
        return metric, kind
    return fam, None


def stage_bundle(names: list[str], run_dir: Path, pretrained: Path) -> None:
    """Re-bundle lgae-mix and lgae-minmax: for each, the candidate network of its aggregation
    and the score family chosen on validation (:func:`choose`), with its latent density in the
    weights-only model file, and a model card."""
    from lgae_hep.checkpoint import load_model_file, save_checkpoint
    from lgae_hep.density import fit_latent_density
    from lgae_hep.jsonio import jsonable

    sel = json.loads((run_dir / "selection.json").read_text())
    test = json.loads((run_dir / "test.json").read_text())
    for bundle, agg in BUNDLES.items():
        cands = {n: v for n, v in sel["validation"].items()
                 if n in MODELS and MODELS[n]["config"]["aggregation"] == agg and n in names}
        if not cands:
            _log(f"bundle: no trained candidate with aggregation {agg!r}; {bundle} unchanged")
            continue
        choice = choose(cands)
        name, fam = choice["model"], choice["metric"]
        metric, kind = _split_metric(fam)
        model = load_model_file(run_dir / name / "best.pt")
        if kind is not None:
            fit_qcd, _, _ = _split_qcd(_sets(run_dir, name, "val"), "val")
            feats = _features(fit_qcd, kind)
            model.latent_density = fit_latent_density(
                feats, list(feats), fit_qcd["mass"], n_components=N_COMPONENTS,
                info={"features": kind, "fit_sample": f"val_qcd[:{N_DENSITY_FIT}]",
                      "recipe": RECIPE["val_qcd"]})
        model.score_metric = metric
        done = json.loads((run_dir / name / "DONE.json").read_text())
        m = test[name][fam]
        card = {
            "name": bundle,
            "file": f"{bundle}.pt",
            "description": f"{MODELS[name]['label']} trained on MPI-on generated QCD jets; "
                           f"default score {metric}"
                           + (f" on the '{kind}' latent invariants" if kind else ""),
            "architecture": model.config["architecture"],
            "config": model.config,
            "compression_rate": model.compression_rate,
            "anomaly_score": "lgae_hep.score(jets) uses score_metric; chosen on the validation "
                             "sets by benchmarks/anomaly_scores.py (docs/RESULTS.md)",
            "score_metric": metric,
            "latent_density": None if kind is None else {
                "features": kind, "n_components": N_COMPONENTS,
                "fit_sample": f"first {N_DENSITY_FIT} jets of val_qcd"},
            "selection": choice,
            "validation_by_score": {f: v["signals"]["combined"]["auc"]
                                    for f, v in cands[name].items()},
            "training": {"candidate": name, "data": {k: v for k, v in recipe().items()
                                                     if k in ("train_qcd", "val_qcd")},
                         "generator": "lgae_hep.data.generate(process, n, seed=seed, workers=2, "
                                      "fast=False): MPI on, pT 0.8-1.6 TeV, |eta| < 2.5, "
                                      "anti-kT R=0.8",
                         **{k: done.get(k) for k in ("loss", "options", "epochs", "best_epoch",
                                                     "best_val_loss", "train_seconds",
                                                     "hardware", "note")}},
            "training_domain": {"collection": "FatJet", "pt_range": [800.0, 1600.0],
                                "eta_max": 2.5, "jet_radius": 0.8},
            "test_sets": {k: v for k, v in recipe().items() if k.startswith("test")},
            "metrics": {k: {"auc": v["auc"], "eps_s": v["eps_s"], "n_signal": v["n_signal"],
                            "n_background": v["n_background"]}
                        for k, v in m["signals"].items()},
            "sculpting": m["sculpting"],
            "retrain": f"python benchmarks/anomaly_scores.py --only {name} && python "
                       "benchmarks/anomaly_scores.py --stages report bundle",
        }
        if agg == "min&max":
            card["inference_dtype"] = "float64"
            card["inference_dtype_reason"] = INFERENCE_DTYPE_REASON
        pretrained.mkdir(parents=True, exist_ok=True)
        save_checkpoint(pretrained / f"{bundle}.pt", model, rng_state=False,
                        extra={"name": bundle, "metrics": card["metrics"]})
        (pretrained / f"{bundle}.json").write_text(json.dumps(jsonable(card), indent=1) + "\n")
        _log(f"bundle: {bundle} <- {name} with {fam} "
             f"({(pretrained / (bundle + '.pt')).stat().st_size / 1e3:.0f} kB)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--stages", nargs="+", default=["data", "train", "features", "select", "test"],
                   choices=["data", "train", "features", "select", "test", "report", "bundle"])
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
    if "features" in args.stages:
        stage_features(names, paths, args.run_dir)
    from lgae_hep.jsonio import jsonable

    if "select" in args.stages:
        val = stage_scores(names, args.run_dir, "val")
        sel = {"validation": val, "choice": choose(val)}
        (args.run_dir / "selection.json").write_text(json.dumps(jsonable(sel), indent=1))
        _log(f"select: {sel['choice']}")
    if "test" in args.stages:
        test = stage_scores(names, args.run_dir, "test")
        (args.run_dir / "test.json").write_text(json.dumps(jsonable(test), indent=1))
    if "report" in args.stages:
        stage_report(names, args.run_dir, REPO / "docs" / "RESULTS.md")
    if "bundle" in args.stages:
        stage_bundle(names, args.run_dir, REPO / "models" / "pretrained")
    return 0


if __name__ == "__main__":
    sys.exit(main())
