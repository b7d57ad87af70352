"""`lgae-hep run` and `lgae-hep plot` on small generated-like files."""

from __future__ import annotations

import json

import awkward as ak
import numpy as np
import pytest
import torch
from lgae_hep.models import LGAE

from lgae_hep.checkpoint import save_checkpoint
from lgae_hep.cli import main
from lgae_hep.data import write_pfnano

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore::UserWarning")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    for name, label, width in (("qcd", 0, 0.3), ("top", 2, 0.6)):
        nj = rng.integers(1, 3, 40)
        tj = int(nj.sum())
        nc = rng.integers(2, 40, tj)
        tot = int(nc.sum())
        p = ak.zip({"pt": rng.exponential(40, tot) + 1, "eta": rng.normal(0, width, tot),
                    "phi": rng.normal(0, width, tot), "mass": np.zeros(tot)},
                   with_name="Momentum4D")
        write_pfnano(d / f"{name}.root", ak.unflatten(ak.unflatten(p, nc), nj),
                     jet_fields={"label": ak.unflatten(np.full(tj, label, np.int32), nj)})
    torch.manual_seed(0)
    save_checkpoint(d / "tiny.pt", LGAE(encoder_channels=(2,), decoder_channels=(2,),
                                        mlp_hidden=4, num_basis=2))
    (d / "fileset.json").write_text(json.dumps({"QCD": ["qcd.root"], "Top": ["top.root"]}))
    (d / "bad.json").write_text(json.dumps({"QCD": ["qcd.root", "missing.root"]}))
    return d


def test_run_and_plot(setup, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["run", "--fileset", str(setup / "fileset.json"), "--model",
               str(setup / "tiny.pt"), "--executor", "iterative", "-o", str(out), "--quiet",
               "--chunksize", "25"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "| t |" in text and str(out.resolve()) in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["background"] == "QCD" and set(summary["auc"]) == {"t"}
    assert summary["cutflow"]["QCD"]["events"] == 40
    assert summary["simulated"] == {"QCD": True, "Top": True}
    plots = {p.name for p in (out / "plots").glob("*.png")}
    assert {"score.png", "roc.png", "latent_invariants.png", "mass_sculpting.png"} <= plots
    for p in (out / "plots").glob("*.png"):
        p.unlink()
    assert main(["plot", str(out), "--quiet"]) == 0
    assert {p.name for p in (out / "plots").glob("*.png")} == plots


def test_run_bad_file(setup, tmp_path, capsys):
    rc = main(["run", "--fileset", str(setup / "bad.json"), "--model", str(setup / "tiny.pt"),
               "--executor", "iterative", "-o", str(tmp_path / "x"), "--quiet"])
    assert rc == 2 and "missing.root" in capsys.readouterr().err
    rc = main(["run", "--fileset", str(setup / "bad.json"), "--model", str(setup / "tiny.pt"),
               "--executor", "iterative", "-o", str(tmp_path / "y"), "--quiet",
               "--skipbadfiles", "--no-plots"])
    assert rc == 0
    err = capsys.readouterr().err
    assert "1 file(s) skipped" in err and "missing.root" in err
    summary = json.loads((tmp_path / "y" / "summary.json").read_text())
    assert list(summary["bad_files"]) == [str(setup / "missing.root")]


def test_run_unknown_model(setup, tmp_path, capsys):
    rc = main(["run", "--fileset", str(setup / "fileset.json"), "--model", "nope",
               "-o", str(tmp_path / "z"), "--quiet"])
    assert rc == 2 and "bundled models" in capsys.readouterr().err
    assert main(["plot", str(tmp_path / "nothing")]) == 2
