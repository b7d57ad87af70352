"""Training job run in a subprocess by the SIGKILL and DDP tests.

usage: python _train_job.py OUT_DIR EPOCHS [resume] [report_dir]
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _jets import TINY_GNNAE, make_jets  # noqa: E402

from lgae_hep.train import fit  # noqa: E402

torch.set_num_threads(1)
out, epochs = sys.argv[1], int(sys.argv[2])
resume = len(sys.argv) > 3 and sys.argv[3] == "resume"
report = sys.argv[4] if len(sys.argv) > 4 else None
n = int(os.environ.get("JOB_JETS", "3000"))
train = make_jets(n, seed=1)
val = make_jets(64, seed=2)
batch = int(os.environ.get("JOB_BS", "8"))
res = fit(dict(TINY_GNNAE), train, val, epochs=epochs, batch_size=batch, lr=3e-3, patience=100,
          out_dir=out, resume=resume, device="cpu", seed=3, progress=False,
          log=lambda msg: print(msg, flush=True))
if report:
    rank = int(os.environ.get("RANK", "0"))
    flat = torch.cat([p.detach().flatten() for p in res.model.parameters()])
    Path(report, f"rank{rank}.json").write_text(json.dumps({
        "epochs_run": res.epochs_run, "params": flat.tolist(),
        "history": [h["train_loss"] for h in res.history],
    }))
