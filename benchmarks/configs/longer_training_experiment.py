"""Diagnostic for docs/RESULTS.md: does more training move the LGAE-Mix anomaly score?

Copies the comparison's LGAE-Mix run to ``runs/paper_comparison/lgae-mix-long``, resumes it for
``--minutes`` more (same options, same data) and reports the combined AUC on the *validation*
sets (rest of val_qcd vs val_t/w/z) before and after. The bundled model is not changed.

    python benchmarks/configs/longer_training_experiment.py [--minutes 15]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import paper_comparison as pc  # noqa: E402

from lgae_hep import api  # noqa: E402
from lgae_hep.data import to_tensors  # noqa: E402
from lgae_hep.metrics import anomaly_metrics  # noqa: E402
from lgae_hep.train import fit  # noqa: E402


def val_auc(model, paths) -> dict[str, float]:
    qcd = pc._read(paths["val_qcd"])[pc.N_VAL_LOSS:]
    sig = {k: np.asarray(api.score(pc._read(paths[v]), model=model, progress=False))
           for k, v in pc.VAL_SIGNALS.items()}
    m = anomaly_metrics(np.asarray(api.score(qcd, model=model, progress=False)), sig,
                        roc_points=0)
    return {k: round(v["auc"], 4) for k, v in m["signals"].items()}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=15.0)
    args = ap.parse_args()
    run = pc.REPO / "runs" / "paper_comparison"
    src, out = run / "lgae-mix", run / "lgae-mix-long"
    if not out.exists():
        shutil.copytree(src, out)
    paths = pc.data_paths(pc.REPO / "data" / "generated" / "paper_comparison", False)
    train = to_tensors(pc._read(paths["train_qcd"]), 30)
    val = to_tensors(pc._read(paths["val_qcd"])[: pc.N_VAL_LOSS], 30)
    from lgae_hep.checkpoint import load_model_file

    before = val_auc(load_model_file(src / "best.pt"), paths)
    t0 = time.perf_counter()
    res = fit(dict(pc.MODELS["lgae-mix"]["config"]), train, val, out_dir=out, resume=True,
              max_seconds=args.minutes * 60, progress=False, log=print, **pc.TRAIN)
    after = val_auc(res.model, paths)
    summary = {"epochs": res.epochs_run, "best_val_loss": res.best_val_loss,
               "extra_seconds": time.perf_counter() - t0, "val_auc_before": before,
               "val_auc_after": after}
    (out / "experiment.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
