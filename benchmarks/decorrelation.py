"""Mass decorrelation of the bundled models' scores: fit on QCD validation jets, measure on test.

For every bundled model and each score of ``--scores`` (default: the model's default score and
``chamfer-dr``), fits a :class:`lgae_hep.scoring.decorrelation.MassDecorrelation` on the QCD
validation jets that the model's latent density was *not* fitted on (``val_qcd`` jets
5000-9999 of ``benchmarks/anomaly_scores.py``'s recipe), then prints, on the test sets
(``test_qcd`` against ``test_t/w/z``), the raw and the decorrelated score side by side: AUC per
signal and combined, eps_s at eps_b = 0.1, and the QCD mass sculpting (1/JSD, base 2, of the
mass histogram before/after the cut at eps_b = 0.1 and 0.01; higher is less sculpting).

    python benchmarks/decorrelation.py             # table (needs the anomaly_scores data stage)
    python benchmarks/decorrelation.py --bundle    # also store the maps in the bundled model files

Nothing is chosen here: the decorrelated scores are reported beside the raw ones, and a model's
default score is not changed.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data" / "generated" / "anomaly_scores"
FILES = {"val_qcd": "val_qcd_qcd_n10000_s302.root", "test_qcd": "test_qcd_qcd_n10000_s401.root",
         "t": "test_t_t_n10000_s402.root", "W": "test_w_w_n10000_s403.root",
         "Z": "test_z_z_n10000_s404.root"}
#: ``--test-sets test3k``: the 3,000-jet test sets of benchmarks/substructure_latent.py
TEST3K = {"test_qcd": "test3k_qcd_qcd_n3000_s411.root", "t": "test3k_t_t_n3000_s412.root",
          "W": "test3k_w_w_n3000_s413.root", "Z": "test3k_z_z_n3000_s414.root"}
FIT_SLICE = slice(5000, 10000)


def _jets(name: str):
    import lgae_hep

    path = DATA / FILES[name]
    if not path.exists():
        raise SystemExit(f"{path} not found: run `python benchmarks/anomaly_scores.py "
                         "--stages data` first")
    return lgae_hep.read_nanoaod(path, flat=True)


def _mass(jets) -> np.ndarray:
    from lgae_hep.observables import jet_mass

    return np.asarray(jet_mass(jets), dtype=np.float64)


def _score(jets, model, metric: str) -> np.ndarray:
    import awkward as ak

    import lgae_hep

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ak.to_numpy(lgae_hep.score(jets, model, metric=metric, progress=False)).astype(
            float)


def _metrics(bkg: np.ndarray, sig: dict[str, np.ndarray], mass_bkg: np.ndarray) -> dict:
    from lgae_hep.metrics.anomaly import anomaly_metrics
    from lgae_hep.metrics.sculpting import mass_sculpting

    ok = np.isfinite(bkg)
    am = anomaly_metrics(bkg[ok], {k: v[np.isfinite(v)] for k, v in sig.items()},
                         roc_points=0)["signals"]
    sc = mass_sculpting(bkg[ok], mass_bkg[ok])
    return {"auc": {k: am[k]["auc"] for k in (*sig, "combined")},
            "eps_s@0.1": am["combined"]["eps_s"]["0.1"], "inv_jsd": sc["inv_jsd"]}


def main(argv: list[str] | None = None) -> int:
    import lgae_hep
    from lgae_hep.scoring.decorrelation import MassDecorrelation
    from lgae_hep.zoo import bundled_models

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(bundled_models()))
    ap.add_argument("--scores", default=None,
                    help="comma-separated scores (default: each model's default and chamfer-dr)")
    ap.add_argument("--bundle", action="store_true",
                    help="store the fitted maps in models/pretrained/<name>.pt")
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    ap.add_argument("--test-sets", choices=["anomaly_scores", "test3k"],
                    default="anomaly_scores",
                    help="the 10,000-jet test sets of anomaly_scores (default) or the 3,000-jet "
                         "ones of substructure_latent")
    args = ap.parse_args(argv)
    if args.test_sets == "test3k":
        FILES.update(TEST3K)
    sets = {k: _jets(k) for k in FILES}
    fit_jets = sets["val_qcd"][FIT_SLICE]
    masses = {k: _mass(v) for k, v in sets.items()}
    fit_mass = _mass(fit_jets)
    rows, out = [], {}
    for name in args.models.split(","):
        model = lgae_hep.load_model(name)
        scores = args.scores.split(",") if args.scores else sorted(
            {model.score_metric, "chamfer-dr"})
        maps = dict(getattr(model, "decorrelation", None) or {})
        for metric in scores:
            fit = _score(fit_jets, model, metric)
            sample = f"val_qcd jets {FIT_SLICE.start}-{FIT_SLICE.stop - 1} (anomaly_scores recipe)"
            dec = MassDecorrelation.fit(fit, fit_mass, info={"score": metric,
                                                             "fit_sample": sample})
            maps[metric] = dec
            raw = {k: _score(v, model, metric) for k, v in sets.items() if k != "val_qcd"}
            cor = {k: dec.transform(v, masses[k])[0] for k, v in raw.items()}
            for label, s in ((metric, raw), (f"{metric}-decorrelated", cor)):
                m = _metrics(s["test_qcd"], {k: s[k] for k in ("t", "W", "Z")},
                             masses["test_qcd"])
                out[f"{name}/{label}"] = m
                rows.append((name, label, m))
        if args.bundle:
            from lgae_hep.checkpoint import load_checkpoint, save_checkpoint

            path = REPO / "models" / "pretrained" / f"{name}.pt"
            ckpt = load_checkpoint(path)
            # save_checkpoint lifts "metrics", "epoch", "step" of extra to the top level
            extra = {**(ckpt.get("extra") or {}), "metrics": ckpt["metrics"],
                     "epoch": ckpt["epoch"], "step": ckpt["step"],
                     "decorrelation": {k: v.to_state() for k, v in maps.items()}}
            # the file's own precision, not the card's inference dtype the model was loaded in
            from lgae_hep.checkpoint import load_model_file

            bare = load_model_file(path, dtype=ckpt["config"]["dtype"])
            bare.decorrelation = maps
            save_checkpoint(path, bare, rng_state=False, extra=extra)
            # and the card says which maps the file holds and how they were made
            card_path = path.with_suffix(".json")
            card = json.loads(card_path.read_text())
            card["decorrelation"] = {
                "scores": sorted(maps), "mass_bins": int(len(next(iter(maps.values())).counts)),
                "fit_sample": f"val_qcd jets {FIT_SLICE.start}-{FIT_SLICE.stop - 1} of "
                              "benchmarks/anomaly_scores.py's recipe (the latent density used "
                              f"jets 0-{FIT_SLICE.start - 1})",
                "how": "python benchmarks/decorrelation.py --bundle",
                "note": "registered as '<score>-decorrelated' (-log(1 - F), F the QCD quantile "
                        "given the jet mass); the default score is unchanged"}
            card_path.write_text(json.dumps(card, indent=1) + "\n")
    mass = {k: masses[k] for k in ("test_qcd", "t", "W", "Z")}
    rows.append(("-", "jet mass", _metrics(mass["test_qcd"], {k: mass[k] for k in "tWZ"},
                                           mass["test_qcd"])))
    print("| model | score | t | W | Z | combined | eps_s @ eps_b 0.1 | 1/JSD @ 0.1 | "
          "1/JSD @ 0.01 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, label, m in rows:
        a = m["auc"]
        print(f"| {name} | {label} | {a['t']:.3f} | {a['W']:.3f} | {a['Z']:.3f} | "
              f"{a['combined']:.3f} | {m['eps_s@0.1']:.3f} | {m['inv_jsd']['0.1']:.1f} | "
              f"{m['inv_jsd']['0.01']:.1f} |")
    if args.json:
        from lgae_hep.jsonio import jsonable

        args.json.write_text(json.dumps(jsonable(out), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
