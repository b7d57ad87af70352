"""Diagnostic experiment for docs/RESULTS.md: LGAE-Mix on per-jet normalised jets.

Each jet is boosted along z to zero rapidity (a Lorentz transformation: the equivariant LGAE
does not care, but the Cartesian Chamfer metric does) and scaled to pT_jet = 1 TeV, close to
the paper's JetNet relative coordinates; training and the anomaly score (per-jet Chamfer loss,
:func:`lgae_hep.train.jet_losses`) both use these units. The public scoring API does not apply
this normalisation, so this model is NOT bundled; it tests whether the nuisance spread of jet
rapidity and pT in the absolute GeV score is what hides the anomalies.

    python benchmarks/configs/normalized_input_experiment.py [--minutes 15]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import paper_comparison as pc  # noqa: E402

from lgae_hep.data import to_tensors  # noqa: E402
from lgae_hep.metrics import anomaly_metrics  # noqa: E402
from lgae_hep.train import fit, jet_losses  # noqa: E402


def normalise(jt):
    """(p4, mask) boosted to zero jet rapidity and scaled to pT_jet = 1000 (GeV-like units)."""
    p4, mask = jt.p4.double(), jt.mask
    jet = (p4 * mask[..., None]).sum(1)
    y = 0.5 * torch.log((jet[:, 0] + jet[:, 3]) / (jet[:, 0] - jet[:, 3]))
    ch, sh = torch.cosh(y)[:, None], torch.sinh(y)[:, None]
    e, pz = p4[..., 0], p4[..., 3]
    out = p4.clone()
    out[..., 0] = e * ch - pz * sh
    out[..., 3] = pz * ch - e * sh
    pt = torch.sqrt(jet[:, 1] ** 2 + jet[:, 2] ** 2)
    out = out * (1000.0 / pt)[:, None, None] * mask[..., None]
    return out.float(), mask


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=15.0)
    ap.add_argument("--out", type=Path, default=pc.REPO / "runs" / "paper_comparison" /
                    "lgae-mix-normalised")
    args = ap.parse_args()
    paths = pc.data_paths(pc.REPO / "data" / "generated" / "paper_comparison", False)
    tens = lambda k, n=None: to_tensors(pc._read(paths[k])[:n], 30)  # noqa: E731
    train = normalise(tens("train_qcd"))
    val = normalise(tens("val_qcd", pc.N_VAL_LOSS))
    opts = dict(pc.TRAIN)
    t0 = time.perf_counter()
    res = fit(dict(pc.MODELS["lgae-mix"]["config"]), train, val, out_dir=args.out, resume=True,
              max_seconds=args.minutes * 60, progress=False, log=print, **opts)
    t_train = time.perf_counter() - t0
    scores = {k: jet_losses(res.model, normalise(tens(v)))
              for k, v in {"QCD": "test_qcd", **pc.SIGNALS}.items()}
    m = anomaly_metrics(scores["QCD"], {k: scores[k] for k in pc.SIGNALS}, roc_points=0)
    summary = {k: {"auc": v["auc"], "eps_s": v["eps_s"]} for k, v in m["signals"].items()}
    (args.out / "eval.json").write_text(json.dumps({
        "epochs": res.epochs_run, "best_val_loss": res.best_val_loss, "train_seconds": t_train,
        "anomaly": summary}, indent=1))
    print(json.dumps(summary, indent=1))
    print("median test score", {k: float(np.median(v)) for k, v in scores.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
