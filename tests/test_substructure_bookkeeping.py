"""The run bookkeeping of benchmarks/substructure_latent.py that its results tables rest on:
a run trained further is never scored from its earlier weights' cached features, and the
training table says on which devices a resumed run trained and how it ended."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
from lgae_hep.models import LGAE

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "substructure_latent.py"


@pytest.fixture(scope="module")
def sl():
    spec = importlib.util.spec_from_file_location("substructure_latent_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def _tiny() -> LGAE:
    torch.manual_seed(0)
    return LGAE(tau_v=1, encoder_channels=(2, 2), decoder_channels=(2, 2), num_basis=2,
                mlp_hidden=4)


def test_feature_cache_key_follows_the_weights(sl):
    a, b = _tiny(), _tiny()
    assert sl._fingerprint(a) == sl._fingerprint(b)  # same weights, same key
    with torch.no_grad():
        next(p for p in b.parameters() if not p.is_complex()).view(-1)[0] += 1e-6
    assert sl._fingerprint(a) != sl._fingerprint(b)  # one weight moved: another cache file
    c = _tiny()
    with torch.no_grad():  # a complex weight's imaginary part alone also changes the key
        w = next(p for p in c.parameters() if p.is_complex())
        w.view(-1)[0] += 1e-6j
    assert sl._fingerprint(a) != sl._fingerprint(c)


def _record(model_dir: Path, name: str, **info) -> None:
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / name).write_text(json.dumps(info))


def test_devices_of_a_resumed_run(sl, tmp_path, monkeypatch):
    out = tmp_path / "model"
    monkeypatch.setattr(sl, "_device_name", lambda: "cpu")
    assert sl._devices(out) == "cpu"  # no earlier record
    _record(out, "PROGRESS.json", device="NVIDIA H200")
    assert sl._devices(out) == "NVIDIA H200, then cpu"
    _record(out, "PROGRESS.json", device="NVIDIA H200, then cpu")
    assert sl._devices(out) == "NVIDIA H200, then cpu"  # a third call on the CPU adds nothing
    _record(out, "PROGRESS.json", device="cpu")
    assert sl._devices(out) == "cpu"


def test_training_table_reads_the_newest_record(sl, tmp_path, monkeypatch):
    monkeypatch.setattr(sl, "ROOT", tmp_path)
    opts = {"epochs": 400}
    for run, name, info in (
            ("a-s0", "PROGRESS.json", {"device": "NVIDIA H200", "epochs": 79, "best_epoch": 76,
                                       "epoch_seconds_total": 324.0, "stopped_early": False,
                                       "options": opts}),
            ("a-s1", "DONE.json", {"device": "cpu", "epochs": 74, "best_epoch": 65,
                                   "epoch_seconds_total": 654.0, "stopped_early": True,
                                   "options": opts}),
            ("a-s2", "FAILED.json", {"device": "NVIDIA H200",
                                     "error": "non-finite loss in epoch 13; details"})):
        _record(tmp_path / run / "model", name, **info)
        (tmp_path / run / "eval.json").write_text("{}")
    (tmp_path / "b-s0" / "model").mkdir(parents=True)  # not evaluated: not in the table
    rows = sl._training_table().splitlines()[2:]
    assert rows == [
        "| a-s0 | NVIDIA H200 | 79 (77) | 5.4 | the time budget |",
        "| a-s1 | cpu | 74 (66) | 10.9 | early stopping |",
        "| a-s2 | NVIDIA H200 | - | - | diverged (non-finite loss in epoch 13) |",
    ]
