"""An exposure head for a bundled model whose network stays as it is (issue 21.5).

``benchmarks/substructure_latent.py`` chose the ``exposure`` score (``lgae_hep.scoring.exposure``)
for ``lgae-mix`` and re-bundled it with a new network. This script gives another bundled
model, by default ``lgae-minmax``, the same head on its existing, frozen encoder. It keeps
the choice rule and the single look at the test sets:

* ``val``: three heads (seeds 0, 1, 2), each fitted on the first 20,000 QCD training jets and
  one synthetic anomaly of each (``lgae_hep.exposure.fit_exposure_head``, the recipe fixed in
  ``substructure_latent.py``). Each is measured on the validation sets (background val_qcd
  jets 5000-9999, signals val_t/W/Z) beside the model card's default score on the same jets.
  The rule: the exposure score is chosen when its mean combined AUC over the three seeds is
  higher than the card default's and its mean 1/JSD at eps_b = 0.1 is at least 5.
* ``test`` (once, only when the rule chose it): the card's test sets (10,000 jets per class).
* ``bundle``: the model file gets the head of the best validation seed among those that pass
  the sculpting floor on their own, ``exposure`` as its default score, and a card that says so.
  Afterwards run ``python benchmarks/decorrelation.py --bundle --models MODEL`` and
  ``python tools/score_axes.py --write --models MODEL``.

    python benchmarks/exposure_bundled.py --model lgae-minmax --stages val
    python benchmarks/exposure_bundled.py --model lgae-minmax --stages test bundle

Data: ``python benchmarks/anomaly_scores.py --stages data``. Results go to
``runs/exposure_bundled/<model>/{val,test}.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
# the exposure recipe (EXPOSURE_JETS), the data folder and _summary; its _load_sibling gives
# anomaly_scores (measure, the data recipe)
import substructure_latent as sl  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "runs" / "exposure_bundled"
PRETRAINED = REPO / "models" / "pretrained"
#: class -> set of benchmarks/anomaly_scores.py's recipe
VAL = {"qcd": "val_qcd", "t": "val_t", "W": "val_w", "Z": "val_z"}
TEST = {"qcd": "test_qcd", "t": "test_t", "W": "test_w", "Z": "test_z"}
SEEDS = (0, 1, 2)
N_FIT = 5_000  # val_qcd jets 0-4999 fit the card's densities; 5000-9999 are the background
MIN_INV_JSD = 5.0


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _read(name: str) -> Any:
    import lgae_hep

    an = sl._load_sibling("anomaly_scores")
    path = an.pc.data_paths(sl.DATA, False, an.recipe())[name]
    if not path.exists():
        raise SystemExit(f"{path} not found: run `python benchmarks/anomaly_scores.py --stages "
                         "data` first")
    return lgae_hep.read_nanoaod(path, flat=True, progress=False)


def _model(name: str) -> Any:
    """A fresh copy of the bundled model (not the zoo's cached one: a head is attached)."""
    from lgae_hep.api import card_inference_dtype
    from lgae_hep.checkpoint import load_model_file

    model = load_model_file(PRETRAINED / f"{name}.pt", dtype=card_inference_dtype(name))
    return model.eval()


def _score(jets: Any, model: Any, metric: str) -> np.ndarray:
    import awkward as ak

    import lgae_hep

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # out-of-domain / invalid jets are counted elsewhere
        return np.asarray(ak.to_numpy(lgae_hep.score(jets, model, metric=metric,
                                                     progress=False)), dtype=np.float64)


def _measure(bkg: np.ndarray, mass: np.ndarray, sig: dict[str, np.ndarray]) -> dict[str, Any]:
    """anomaly_scores.measure: AUCs, eps_s and the sculpting of the background's mass."""
    return sl._load_sibling("anomaly_scores").measure({"mass": mass}, bkg, sig)


def heads(name: str) -> dict[int, Any]:
    """The three heads (cached under ``OUT/<model>/head_s<seed>.pt``)."""
    import torch

    from lgae_hep.data import to_tensors
    from lgae_hep.exposure import fit_exposure_head
    from lgae_hep.scoring.exposure import ExposureHead

    out, model, t = {}, None, None
    for seed in SEEDS:
        cache = OUT / name / f"head_s{seed}.pt"
        if cache.exists():
            out[seed] = ExposureHead.from_state(torch.load(cache, weights_only=True)).double()
            continue
        if model is None:
            model = _model(name)
            t = to_tensors(_read("train_qcd")[:sl.EXPOSURE_JETS],
                           model.config["num_particles"])
        t0 = time.time()
        out[seed] = fit_exposure_head(model, t.p4, t.mask, seed=seed, progress=False)
        _log(f"{name}: head seed {seed} fitted in {time.time() - t0:.0f} s")
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save(out[seed].to_state(), cache)
    return out


def _evaluate(name: str, sets: dict[str, str], background: slice) -> dict[str, Any]:
    """Every head's exposure score and the card default on one collection of sets."""
    from lgae_hep.exposure import attach_exposure_head
    from lgae_hep.observables import jet_mass
    from lgae_hep.zoo import model_card

    jets = {k: _read(v) for k, v in sets.items()}
    jets["qcd"] = jets["qcd"][background]
    mass = np.asarray(jet_mass(jets["qcd"]), dtype=np.float64)
    default = model_card(name)["score_metric"]
    model = _model(name)
    rows, full = {}, {}
    s = {k: _score(v, model, default) for k, v in jets.items()}
    full[f"card default ({default})"] = _measure(s["qcd"], mass, {k: s[k] for k in "tWZ"})
    for seed, head in heads(name).items():
        attach_exposure_head(model, head)
        s = {k: _score(v, model, "exposure") for k, v in jets.items()}
        full[f"exposure, head seed {seed}"] = _measure(s["qcd"], mass, {k: s[k] for k in "tWZ"})
    for k, m in full.items():
        rows[k] = sl._summary(m)
        _log(f"{name}: {k}: " + ", ".join(f"{c} {v:.3f}" for c, v in rows[k].items()))
    return {"rows": rows, "measures": full, "default": default}


def stage_val(name: str) -> dict[str, Any]:
    res = _evaluate(name, VAL, slice(N_FIT, None))
    ex = [res["rows"][f"exposure, head seed {s}"] for s in SEEDS]
    mean = {c: float(np.mean([r[c] for r in ex])) for c in ex[0]}
    sd = {c: float(np.std([r[c] for r in ex], ddof=1)) for c in ex[0]}
    base = res["rows"][f"card default ({res['default']})"]
    chosen = mean["inv_jsd@0.1"] >= MIN_INV_JSD and mean["combined"] > base["combined"]
    res.update(exposure_mean=mean, exposure_sd=sd, chosen=bool(chosen),
               rule=f"exposure if its mean combined validation AUC over seeds {list(SEEDS)} is "
                    f"above the card default's and its mean 1/JSD@0.1 >= {MIN_INV_JSD}")
    _log(f"{name}: exposure mean combined {mean['combined']:.3f} +- {sd['combined']:.3f}, "
         f"1/JSD {mean['inv_jsd@0.1']:.1f}; card default {base['combined']:.3f}: "
         + ("chosen" if chosen else "not chosen"))
    _write(name, "val", res)
    return res


def stage_test(name: str) -> dict[str, Any]:
    val = json.loads((OUT / name / "val.json").read_text())
    if not val["chosen"]:
        raise SystemExit(f"{name}: the rule did not choose the exposure score on validation; "
                         "the test sets stay unread")
    res = _evaluate(name, TEST, slice(None))
    _write(name, "test", res)
    return res


def _write(name: str, kind: str, res: dict[str, Any]) -> None:
    (OUT / name).mkdir(parents=True, exist_ok=True)
    (OUT / name / f"{kind}.json").write_text(json.dumps(res, indent=1, default=float) + "\n")


def stage_bundle(name: str) -> None:
    from lgae_hep.checkpoint import load_checkpoint, save_checkpoint
    from lgae_hep.exposure import attach_exposure_head
    from lgae_hep.jsonio import jsonable

    val = json.loads((OUT / name / "val.json").read_text())
    test = json.loads((OUT / name / "test.json").read_text())
    ok = [s for s in SEEDS if val["rows"][f"exposure, head seed {s}"]["inv_jsd@0.1"]
          >= MIN_INV_JSD] or list(SEEDS)
    seed = max(ok, key=lambda s: val["rows"][f"exposure, head seed {s}"]["combined"])
    key = f"exposure, head seed {seed}"
    path = PRETRAINED / f"{name}.pt"
    extra = dict(load_checkpoint(path)["extra"])
    model = _model(name)
    head = heads(name)[seed]
    attach_exposure_head(model, head)
    model.score_metric = "exposure"
    meas = test["measures"][key]
    metrics = {k: {"auc": v["auc"], "eps_s": v["eps_s"], "n_signal": v["n_signal"],
                   "n_background": v["n_background"]} for k, v in meas["signals"].items()}
    extra.update(score_metric="exposure", metrics=metrics)
    extra.pop("exposure_head", None)
    save_checkpoint(path, model, rng_state=False, extra=extra)
    card_path = PRETRAINED / f"{name}.json"
    card = json.loads(card_path.read_text())
    previous = {"score_metric": card["score_metric"], "selection": card["selection"],
                "metrics": card["metrics"], "sculpting": card.get("sculpting")}
    card["score_metric"] = "exposure"
    card["description"] = (card["description"].split("; default score")[0]
                           + "; default score exposure (a classifier head on the frozen "
                             "latent's invariants and log m: QCD jet or QCD jet with extra "
                             "hard prongs at its own mass)")
    card["anomaly_score"] = ("lgae_hep.score(jets) uses score_metric; the exposure head was "
                             "chosen on the validation sets by benchmarks/exposure_bundled.py "
                             "(docs/RESULTS.md)")
    card["exposure_head"] = sl.exposure_card(
        head, "the score is the head's logit; the network is the card's, unchanged")
    card["selection"] = {"model": card["selection"].get("model"), "seed": seed,
                         "family": "exposure", "metric": "exposure",
                         "val_combined_auc": val["rows"][key]["combined"],
                         "val_inv_jsd": val["rows"][key]["inv_jsd@0.1"],
                         "rule": val["rule"],
                         "validation_mean_over_seeds": {**val["exposure_mean"],
                                                        "sd": val["exposure_sd"],
                                                        "seeds": list(SEEDS)}}
    card.setdefault("validation_by_score", {})["exposure"] = val["rows"][key]["combined"]
    card["metrics"] = metrics
    card["sculpting"] = meas["sculpting"]
    card["previous_default"] = previous
    card["retrain"] = (card["retrain"] + f" && python benchmarks/exposure_bundled.py --model "
                       f"{name} --stages val test bundle && python benchmarks/decorrelation.py "
                       f"--bundle --models {name} && python tools/score_axes.py --write "
                       f"--models {name}")
    card_path.write_text(json.dumps(jsonable(card), indent=1) + "\n")
    _log(f"bundle: {name} <- exposure head seed {seed}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="lgae-minmax")
    ap.add_argument("--stages", nargs="+", choices=["val", "test", "bundle"], default=["val"])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    if "val" in args.stages:
        stage_val(args.model)
    if "test" in args.stages:
        stage_test(args.model)
    if "bundle" in args.stages:
        stage_bundle(args.model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
