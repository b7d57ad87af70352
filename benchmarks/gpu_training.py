"""Train the paper comparison's LGAE-Mix on a GPU, from tensors exported here (no ROOT stack).

A GPU machine may lack the HEP stack (awkward, uproot, ...), so the training and validation
sets of ``benchmarks/paper_comparison.py`` are exported to one ``.npz`` of padded tensors on
the machine that has them, and this script trains from it with :func:`lgae_hep.train.fit`::

    python benchmarks/gpu_training.py export gpu_data/paper_comparison.npz   # here (CPU)
    python benchmarks/gpu_training.py train gpu_data/paper_comparison.npz \\
        --out runs/paper_comparison/lgae-mix-gpu --minutes 5                  # on the GPU

The run directory (``best.pt``, ``last.pt``, ``metrics.csv``, ``metrics.json``, ``DONE.json``)
is then evaluated like every other model of the comparison:
``python benchmarks/paper_comparison.py --stages evaluate --only lgae-mix-gpu`` (a study entry).
Same data, model config and validation loss as the CPU model; only the device, the batch size
and the amount of training differ (``DONE.json`` records them).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

#: the comparison's LGAE-Mix (see MODELS["lgae-mix"] in paper_comparison.py)
CONFIG = {"architecture": "lgae", "tau_v": 2, "aggregation": "mix"}


def export(path: Path) -> None:
    """Write train/validation tensors of the comparison's recipe to ``path`` (.npz)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import paper_comparison as pc

    from lgae_hep.data import to_tensors

    paths = pc.data_paths(pc.REPO / "data" / "generated" / "paper_comparison", False)
    out = {}
    for key, jets in (("train", pc._read(paths["train_qcd"])),
                      ("val", pc._read(paths["val_qcd"])[: pc.N_VAL_LOSS])):
        t = to_tensors(jets, 30, backend="numpy")
        out[f"{key}_p4"] = np.asarray(t.p4, dtype=np.float32)
        out[f"{key}_mask"] = np.asarray(t.mask, dtype=bool)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, recipe=json.dumps(pc.recipe(False)), **out)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB): "
          f"{len(out['train_p4'])} training, {len(out['val_p4'])} validation jets")


def train(path: Path, out: Path, minutes: float, batch_size: int, lr: float) -> None:
    """Train LGAE-Mix from the exported tensors for ``minutes`` (CUDA when available)."""
    import torch

    from lgae_hep.train import fit

    d = np.load(path)
    tr = (torch.from_numpy(d["train_p4"]), torch.from_numpy(d["train_mask"]))
    va = (torch.from_numpy(d["val_p4"]), torch.from_numpy(d["val_mask"]))
    opts = {"epochs": 10_000, "batch_size": batch_size, "lr": lr, "patience": 30,
            "grad_clip": 1.0, "epoch_size": None, "seed": 0, "scheduler": "plateau"}
    t0 = time.perf_counter()
    res = fit(dict(CONFIG), tr, va, out_dir=out, resume=True, loss="chamfer",
              max_seconds=minutes * 60, progress=False, log=print, **opts)
    seconds = time.perf_counter() - t0
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    (out / "DONE.json").write_text(json.dumps({
        "epochs": res.epochs_run, "best_epoch": res.best_epoch,
        "best_val_loss": res.best_val_loss, "train_seconds": seconds,
        "stopped_early": res.stopped_early, "hardware": f"{dev}, torch {torch.__version__}",
        "options": opts, "loss": "chamfer", "budget_s": minutes * 60,
        "recipe": json.loads(str(d["recipe"])),
    }, indent=1))
    print(f"done: {res.epochs_run} epochs of {len(tr[0])} jets, best val loss "
          f"{res.best_val_loss:.5g} (epoch {res.best_epoch + 1}), {seconds:.0f} s on {dev}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export", help="write the tensors (needs the HEP stack and the data)")
    e.add_argument("npz", type=Path)
    t = sub.add_parser("train", help="train from the tensors")
    t.add_argument("npz", type=Path)
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--minutes", type=float, default=5.0)
    t.add_argument("--batch-size", type=int, default=512)
    t.add_argument("--lr", type=float, default=1e-3)
    args = ap.parse_args(argv)
    if args.cmd == "export":
        export(args.npz)
    else:
        train(args.npz, args.out, args.minutes, args.batch_size, args.lr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
