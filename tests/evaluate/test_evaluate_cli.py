"""``lgae-hep evaluate`` end to end on small written PFNano files: the score metric it uses."""

from __future__ import annotations

import argparse
import json
import warnings

import awkward as ak
import numpy as np
import pytest
import torch
import vector

import lgae_hep
from lgae_hep import api
from lgae_hep.checkpoint import save_checkpoint
from lgae_hep.data import write_pfnano
from lgae_hep.evaluate import add_arguments, cli_main

vector.register_awkward()


def _events(n_events: int, seed: int, spread: float):
    rng = np.random.default_rng(seed)
    nj = rng.integers(1, 3, n_events)
    tj = int(nj.sum())
    nc = rng.integers(5, 40, tj)
    tot = int(nc.sum())
    eta0 = np.repeat(rng.uniform(-2, 2, tj), nc)
    phi0 = np.repeat(rng.uniform(-3, 3, tj), nc)
    p = ak.zip({"pt": rng.exponential(40, tot) + 1, "eta": eta0 + rng.normal(0, spread, tot),
                "phi": phi0 + rng.normal(0, spread, tot), "mass": np.full(tot, 0.14)},
               with_name="Momentum4D")
    return ak.unflatten(ak.unflatten(p, nc), nj)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("evalcli")
    files = {"qcd": write_pfnano(d / "qcd.root", _events(40, 1, 0.1)),
             "t": write_pfnano(d / "t.root", _events(40, 2, 0.3))}
    torch.manual_seed(0)
    from lgae_hep.models import LGAE

    model = LGAE(encoder_channels=(2,), decoder_channels=(2,), mlp_hidden=4, num_basis=2)
    save_checkpoint(d / "carded.pt", model)
    (d / "carded.json").write_text(json.dumps({"name": "carded", "score_metric": "chamfer-dr"}))
    return d, files


def _run(argv):
    p = argparse.ArgumentParser()
    add_arguments(p)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # small-sample eps_s notes
        return cli_main(p.parse_args(argv))


@pytest.mark.parametrize("extra, expected", [([], "chamfer-dr"), (["--metric", "chamfer"],
                                                                    "chamfer")])
def test_evaluate_cli_uses_the_cards_metric(setup, monkeypatch, extra, expected):
    d, files = setup
    monkeypatch.setattr(api, "_pretrained_dir", lambda: d)
    monkeypatch.setattr(api, "_CACHE", {})
    out = d / f"out_{expected}"
    rc = _run(["--model", "carded", "--background", str(files["qcd"]), "--signal",
               str(files["t"]), "--signal-names", "t", "-o", str(out), "--no-plots",
               "--no-reconstruction", *extra])
    assert rc == 0
    meta = json.loads((out / "metrics.json").read_text())
    assert meta["metadata"]["score_metric"] == expected
    saved = np.load(out / "scores.npz")
    jets = lgae_hep.read_nanoaod(files["t"], flat=True)
    ref = ak.to_numpy(lgae_hep.score(jets, "carded", metric=expected))
    np.testing.assert_allclose(saved["t"], ref, rtol=1e-12)
