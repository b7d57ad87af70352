"""Supervised ceilings on our own validation jets (issue 21.6): how much a classifier that sees
the labels gets out of each representation, as a bound on what an anomaly score built on it
can use; and how well the constituents' Lorentz invariants predict the substructure that the
LGAE latents lack (is the encoder or the information the limit?).

    python benchmarks/supervised_ceilings.py               # print the tables
    python benchmarks/supervised_ceilings.py --write-docs  # and put them into docs/RESULTS.md

Data: the validation sets of ``benchmarks/anomaly_scores.py`` (MPI-on; generate them with
``python benchmarks/anomaly_scores.py --stages data``): QCD jets 5,000-9,999 of ``val_qcd``
(the background half of every validation table of ``substructure_latent.py``) against the
2,000 jets of each of ``val_t`` / ``val_w`` / ``val_z``. No test set is read.

Classifier: scikit-learn's ``HistGradientBoostingClassifier`` (200 iterations, seed 0),
5-fold stratified cross-validation, the AUC of the out-of-fold predictions. A ceiling, not an
anomaly score: it sees signal labels. Representations (the 12 hardest constituents, zero-padded
where a jet has fewer):

* Lorentz invariants only: log m, p_i.P / m^2 (sorted by it) and p_i.p_j / m^2 of the pairs in
  that order: everything a fully equivariant score can use;
* lab-frame constituents: pT_i / pT_jet, eta_i - eta_jet, phi_i - phi_jet;
* (log m, tau21, tau32, log D2);
* the bundled ``lgae-mix`` latent's invariant columns (``norms`` and ``gram`` sets of
  :func:`lgae_hep.density.invariant_features`).

Probes: R^2 on QCD validation jets 5,000-9,999 of a ``HistGradientBoostingRegressor`` fitted on
jets 0-4,999, predicting log m, tau21, tau32, log D2 from the Lorentz invariants of the 30
hardest constituents (every particle the models see; beside the latent probes of
``substructure_latent.py``, the same regressor and split).
"""

from __future__ import annotations

import sys
from pathlib import Path

if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)  # keep benchmarks/ off the import path (see rate_distortion.py)

import argparse  # noqa: E402
import importlib  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
N_LEAD = 12
N_PROBE = 30  # the probes see every particle the models see
N_FIT = 5_000
SIGNALS = {"t": "t", "W": "w", "Z": "z"}
BEGIN, END = "<!-- supervised-ceilings:begin -->", "<!-- supervised-ceilings:end -->"


def _sibling(name: str) -> Any:
    """Another benchmark script as a module (benchmarks/ on the path only for the import)."""
    here = str(Path(__file__).resolve().parent)
    sys.path.insert(0, here)
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(here)


def _mdot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[..., 0] * b[..., 0] - (a[..., 1:] * b[..., 1:]).sum(-1)


def constituents(name: str, n_lead: int = N_LEAD) -> np.ndarray:
    """(n, n_lead, 4) float64 (E, px, py, pz) of the ``n_lead`` highest-pT constituents of every
    jet of a validation set, zero-padded."""
    from lgae_hep.data import to_tensors

    sl = _sibling("substructure_latent")
    t = to_tensors(sl._jets(name), 64, dtype=np.float64, backend="numpy")
    p4 = np.where(t.mask[..., None], t.p4, 0.0)
    pt = np.hypot(p4[..., 1], p4[..., 2])
    order = np.argsort(-pt, axis=1, kind="stable")[:, :n_lead]
    return np.take_along_axis(p4, order[..., None], axis=1)


def invariant_features(p4: np.ndarray) -> np.ndarray:
    """log m, p_i.P / m^2 (descending) and p_i.p_j / m^2 (i < j in that order): (n, 1 + k +
    k (k - 1) / 2)."""
    jet = p4.sum(1)
    m2 = np.maximum(_mdot(jet, jet), 1e-12)
    x = _mdot(p4, jet[:, None]) / m2[:, None]
    order = np.argsort(-x, axis=1, kind="stable")
    p4 = np.take_along_axis(p4, order[..., None], axis=1)
    x = np.take_along_axis(x, order, axis=1)
    pair = _mdot(p4[:, :, None], p4[:, None]) / m2[:, None, None]
    iu = np.triu_indices(p4.shape[1], 1)
    return np.concatenate([0.5 * np.log(m2)[:, None], x, pair[:, iu[0], iu[1]]], 1)


def lab_features(p4: np.ndarray) -> np.ndarray:
    """pT_i / pT_jet, eta_i - eta_jet, phi_i - phi_jet (0 for padding): (n, 3 k)."""
    jet = p4.sum(1)
    pt = np.hypot(p4[..., 1], p4[..., 2])
    real = pt > 0
    ptj = np.hypot(jet[:, 1], jet[:, 2])
    eta = np.arcsinh(np.divide(p4[..., 3], pt, out=np.zeros_like(pt), where=real))
    etaj = np.arcsinh(jet[:, 3] / ptj)
    dphi = np.angle(np.exp(1j * (np.arctan2(p4[..., 2], p4[..., 1])
                                 - np.arctan2(jet[:, 2], jet[:, 1])[:, None])))
    return np.concatenate([pt / ptj[:, None], np.where(real, eta - etaj[:, None], 0.0),
                           np.where(real, dphi, 0.0)], 1)


def representations() -> tuple[dict[str, dict[str, np.ndarray]], np.ndarray, np.ndarray]:
    """Per representation and set ("qcd", "t", "w", "z"): the (n, F) features; the QCD
    validation jets' substructure targets (log m, tau21, tau32, log D2) and the invariants of
    their ``N_PROBE`` hardest constituents (the probes' input)."""
    import lgae_hep
    from lgae_hep.objectives import substructure_targets

    sl = _sibling("substructure_latent")
    an = _sibling("anomaly_scores")
    sets = ("val_qcd", "val_t", "val_w", "val_z")
    lat = sl.model_sets(lgae_hep.load_model("lgae-mix"), "bundled", sets)
    reps: dict[str, dict[str, np.ndarray]] = {
        f"Lorentz invariants of the {N_LEAD} hardest constituents": {},
        f"lab-frame {N_LEAD} hardest constituents (pT_rel, d_eta, d_phi)": {},
        "(log m, tau21, tau32, log D2)": {},
        "bundled lgae-mix latent invariants (norms)": {},
        "bundled lgae-mix latent invariants (gram)": {},
    }
    keys = list(reps)
    for s in sets:
        k = s.split("_", 1)[1]
        p4 = constituents(s)
        reps[keys[0]][k] = invariant_features(p4)
        reps[keys[1]][k] = lab_features(p4)
        reps[keys[2]][k] = substructure_targets(lat[k])
        for key, kind in ((keys[3], "norms"), (keys[4], "gram")):
            f = an._features(lat[k], kind)
            reps[key][k] = np.stack([f[c] for c in f], 1)
    probe_x = invariant_features(constituents("val_qcd", N_PROBE))
    return reps, substructure_targets(lat["qcd"]), probe_x


def ceiling(bkg: np.ndarray, sig: np.ndarray) -> float:
    """5-fold out-of-fold AUC of a gradient-boosted classifier, signal vs background."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    x = np.concatenate([bkg, sig])
    y = np.concatenate([np.zeros(len(bkg)), np.ones(len(sig))])
    clf = HistGradientBoostingClassifier(max_iter=200, random_state=0)
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    p = cross_val_predict(clf, x, y, cv=cv, method="predict_proba")[:, 1]
    return float(roc_auc_score(y, p))


def probe(x: np.ndarray, y: np.ndarray) -> list[float]:
    """R^2 on QCD jets N_FIT.. of a regressor fitted on jets ..N_FIT, per target column."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.metrics import r2_score

    out = []
    for j in range(y.shape[1]):
        ok = np.isfinite(y[:, j]) & np.isfinite(x).all(1)
        tr, te = ok.copy(), ok.copy()
        tr[N_FIT:] = False
        te[:N_FIT] = False
        reg = HistGradientBoostingRegressor(max_iter=200, random_state=0).fit(x[tr], y[tr, j])
        out.append(float(r2_score(y[te, j], reg.predict(x[te]))))
    return out


def run() -> str:
    t0 = time.perf_counter()
    reps, targets, probe_x = representations()
    lines = ["| what the classifier sees (validation jets) | features | t | W | Z |",
             "|---|---|---|---|---|"]
    for name, d in reps.items():
        bkg = d["qcd"][N_FIT:]
        aucs = [ceiling(bkg, d[s]) for s in SIGNALS.values()]
        lines.append(f"| {name} | {d['qcd'].shape[1]} | "
                     + " | ".join(f"{a:.3f}" for a in aucs) + " |")
        print(lines[-1], flush=True)
    lines += ["", "| probe R^2 (val QCD jets 5000-9999) | log m | tau21 | tau32 | log D2 |",
              "|---|---|---|---|---|"]
    r2 = probe(probe_x, targets)
    lines.append(f"| Lorentz invariants of the {N_PROBE} hardest constituents "
                 f"({probe_x.shape[1]} features) | "
                 + " | ".join(f"{v:.3f}" for v in r2) + " |")
    lines.append(f"\nHistGradientBoosting (200 iterations), 5-fold out-of-fold AUC; background: "
                 f"val_qcd jets {N_FIT}-9999, signals: 2,000 val jets each; "
                 f"{(time.perf_counter() - t0) / 60:.1f} min.")
    return "\n".join(lines)


def write_docs(text: str, path: Path = REPO / "docs" / "RESULTS.md") -> None:
    """Put the tables between the markers (appended to the issue-21 section the first time)."""
    block = (f"{BEGIN}\nGenerated by `python benchmarks/supervised_ceilings.py --write-docs`."
             f"\n\n{text.rstrip()}\n{END}")
    old = path.read_text()
    if BEGIN in old:
        new = old[: old.index(BEGIN)] + block + old[old.index(END) + len(END):]
    else:
        anchor = "### What was tried, what won on validation, and why"
        heading = "### Supervised ceilings on our validation jets (issue 21.6)\n\n"
        new = old.replace(anchor, heading + block + "\n\n" + anchor, 1)
    path.write_text(new)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args()
    text = run()
    print(text)
    if args.write_docs:
        write_docs(text)


if __name__ == "__main__":
    main()
