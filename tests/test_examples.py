"""The example scripts run (small) end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    import awkward as ak
    from lgae_hep.models import LGAE

    from lgae_hep.checkpoint import save_checkpoint
    from lgae_hep.data import write_pfnano

    d = tmp_path_factory.mktemp("examples")
    torch.manual_seed(0)
    model = save_checkpoint(d / "tiny.pt", LGAE(encoder_channels=(2,), decoder_channels=(2,),
                                                mlp_hidden=4, num_basis=2))
    rng = np.random.default_rng(0)
    files = []
    for name in ("qcd", "top"):
        nj = rng.integers(0, 3, 40)
        nc = rng.integers(1, 40, nj.sum())
        tot = nc.sum()
        p = ak.zip({"pt": rng.exponential(40, tot) + 1, "eta": rng.normal(0, .3, tot),
                    "phi": rng.normal(0, .3, tot), "mass": np.zeros(tot)}, with_name="Momentum4D")
        files.append(write_pfnano(d / f"{name}.root", ak.unflatten(ak.unflatten(p, nc), nj)))
    return model, files


def run_script(*args: str) -> str:
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_score_jets_example(tiny):
    model, files = tiny
    out = run_script(str(EXAMPLES / "score_jets.py"), "--model", str(model), "--events", "12")
    assert "scores : 12 * var * float64" in out
    assert "all finite: True" in out
    out = run_script(str(EXAMPLES / "score_jets.py"), "--model", str(model), "--file",
                     str(files[0]))
    assert "scores : 40 * var * float64" in out


def test_run_coffea_example(tiny):
    model, files = tiny
    out = run_script(str(EXAMPLES / "run_coffea.py"), *map(str, files), "--model", str(model),
                     "--chunksize", "20")
    assert "qcd:" in out and "futures == dask: True" in out and "top:" in out
